"""How much GPU memory a model needs, before its files are read: weights in the engine's GPU
layouts, the KV cache and the work buffers. Used by app.runtime.catalog (CatalogModel.memory_bytes,
runnable) to warn or refuse before a download.

    weights       file bytes x layout growth (below)                       estimate, +-5 %
    kv_cache      2 x n_layers x n_kv_heads x head_dim x context x (2 | 4)  exact (kv_cache.py)
    activations   app/models/model.py setup() + blocks.Activations          exact formula + slack

Weights. The engine keeps most GGUF blocks as they are; four types are repacked at load into a
4-byte-aligned sibling 2 bytes per block larger (app/kernels/layouts.py): Q4_0 18 -> 20 B per 32
weights, Q5_0 22 -> 24, Q8_0 34 -> 36, Q6_K 210 -> 212 per 256. A catalog entry knows its file size
and its quantization label, not each tensor's type, so the estimate is file size x the growth of
the label's type. The file size includes the header (vocabulary, a few MB), which the GPU never
holds; that small overcount offsets tensors of other types in the mix (SmolLM2's Q8_0 embeddings
in a Q4_1 file). K-quant files of models whose hidden size is not a multiple of 256 cannot use
K blocks for most matrices: llama.cpp falls back to Q5_0 (for Q4_K) and Q8_0 (for Q6_K), which
grow by 9 % and 6 %; those files get 6 %. Checked against the exact per-tensor sum from the GGUF
header (tests/unit/test_runtime_catalog.py): SmolLM2-135M Q4_1 +0.02 %, gemma-3-270m Q4_K_M
+2.7 % (both also equal the allocation ledger after a real load, up to the RoPE tables).
Safetensors (F32/F16/BF16) are uploaded as they are: growth 1.

Activations: per token of the prefill chunk (and once more for decode) the f32 buffers x, xn, t
(hidden each), q, a (n_heads x head_dim), k, v (n_kv_heads x head_dim), g, u (ffn), fused qkv and
gate|up; then logits and two sampler buffers (vocab each), the token history (context), and a
slack of 1 MiB + 4 B per context position for what the first generation adds (attention split-K
partials, penalty ids, plan uniforms; measured +0.4-0.6 MB). The ledger after a load matched
this formula within 5 kB for both real models above (lavapipe, prefill chunk 64).

The load-time peak adds one tensor chunk of staging (repack input, <= maxStorageBufferBindingSize)
while the weights are uploaded, which happens before the KV cache and work buffers exist.
"""
from __future__ import annotations

from dataclasses import dataclass

KV_ITEM = {"f16": 2, "f32": 4}
PREFILL_CHUNK = 512          # app/models/model.py PREFILL_BUCKETS[-1] (GPU adapters)
SLACK = 1 << 20

# Bytes on the GPU per byte in the file, per GGUF type (app/kernels/layouts.py).
GROWTH = {"F32": 1.0, "F16": 1.0, "BF16": 1.0, "Q4_0": 20 / 18, "Q4_1": 1.0, "Q5_0": 24 / 22,
          "Q5_1": 1.0, "Q8_0": 36 / 34, "Q4_K": 1.0, "Q5_K": 1.0, "Q6_K": 212 / 210}
K_MIX = 1.005      # K-quant mixes: mostly Q4_K/Q5_K (as is) plus some Q6_K (+0.95 %)
K_FALLBACK = 1.06  # ... when hidden % 256 != 0: Q5_0 / Q8_0 fallbacks (+9 % / +6 %)


@dataclass(frozen=True)
class Arch:
    """The shape numbers a memory estimate needs (a model's config.json / GGUF header)."""
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden: int
    ffn: int
    vocab: int
    max_context: int
    tied_embeddings: bool = True

    FIELDS = ("n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden", "ffn", "vocab",
              "max_context")

    @classmethod
    def from_config(cls, cfg) -> "Arch":
        """From an app.models.config.ModelConfig (after a model's header has been read)."""
        return cls(cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.dim, cfg.ffn_dim,
                   cfg.vocab_size, cfg.context_length, cfg.tied_embeddings)

    def to_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in self.FIELDS},
                "tied_embeddings": self.tied_embeddings}


def growth(quantization: str | None, fmt: str, arch: Arch | None) -> float:
    """GPU bytes per file byte for a file of this quantization label (see the module doc)."""
    if fmt == "safetensors":
        return 1.0
    q = (quantization or "").upper()
    if q in GROWTH:
        return GROWTH[q]
    if q.startswith(("Q4_K", "Q5_K")):
        return K_FALLBACK if arch is not None and arch.hidden % 256 else K_MIX
    return max(GROWTH.values())     # unknown label: the largest growth, never an underestimate


def kv_cache_bytes(arch: Arch, context: int, kv_dtype: str = "f16") -> int:
    """Exactly what app/kernels/kv_cache.KVCache allocates (K and V, every layer)."""
    if kv_dtype not in KV_ITEM:
        raise ValueError(f"kv_dtype must be 'f16' or 'f32', got {kv_dtype!r}")
    return 2 * arch.n_layers * kv_layer_bytes(arch, context, kv_dtype)


def kv_layer_bytes(arch: Arch, context: int, kv_dtype: str = "f16") -> int:
    """One layer's K (or V) buffer: it must fit one storage binding."""
    return context * arch.n_kv_heads * arch.head_dim * KV_ITEM[kv_dtype]


def per_token_bytes(arch: Arch) -> int:
    qd, kvd = arch.n_heads * arch.head_dim, arch.n_kv_heads * arch.head_dim
    # x, xn, t | q, a, qkv's q | k, v, qkv's k and v | g, u, gu (2 ffn)
    return 4 * (3 * arch.hidden + 3 * qd + 4 * kvd + 4 * arch.ffn)


def activation_bytes(arch: Arch, context: int, prefill_chunk: int = PREFILL_CHUNK) -> int:
    fixed = (4 * prefill_chunk + 4 * (context + 1)       # prompt ids, token history
             + 3 * 4 * arch.vocab + 4 * arch.hidden)      # logits, sampler x2, last row
    return per_token_bytes(arch) * (prefill_chunk + 1) + fixed + SLACK + 4 * context


def largest_work_buffer(arch: Arch, prefill_chunk: int = PREFILL_CHUNK) -> int:
    """The largest single activation buffer (prefill's fused gate|up, or the logits)."""
    return max(4 * prefill_chunk * 2 * arch.ffn, 4 * arch.vocab)
