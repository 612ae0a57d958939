"""One frozen config per model, read from GGUF metadata or from a Hugging Face config.json.

Families differ by config values and a few flags, never by copied forward passes (style.md 5):

    family   norms        activation  extras
    llama    w            silu        rope scaling (linear / llama3), tied or untied output
    qwen2    w            silu        q/k/v bias
    qwen3    w            silu        per-head RMSNorm on q and k (QK-norm)
    gemma    1 + w        gelu_tanh   embeddings * sqrt(dim)
    gemma2   1 + w        gelu_tanh   sliding window on even layers, attention and final-logit
                                      softcapping, post-attention/post-ffn norms, query scale
    gemma3   1 + w        gelu_tanh   QK-norm, 5 local : 1 global layers, local RoPE base 10000
    phi3     w            silu        fused qkv and gate_up, longrope (short/long factors)

from_gguf and from_hf give the same ModelConfig for the same model (llama.cpp's
convert_hf_to_gguf.py output vs the HF checkpoint it came from), except these fields, where the
formats store different tensors or keep a parameter in a tensor instead of the header:

    field          family   HF config.json                 GGUF (converter output)
    norm_add_one   gemma*   True: weights are w, use 1 + w  False: the converter stored w + 1
    rope_neox      llama    True: q/k rows in NeoX order    False: converter permuted q/k rows
                                                            for interleaved pairs
    rope_scaling   llama    llama3(factor, low, high, orig) none; the per-pair divisors are the
                   (llama3)                                 tensor rope_freqs.weight
    rope_scaling   phi3     longrope with short_factor and  longrope with empty factor tuples; the
                            long_factor tuples              factors are the tensors
                                                            rope_factors_short/long.weight
    vocab_size     gemma3   config vocab_size (262208)      token count: the converter drops the
                                                            out-of-vocabulary embedding rows

Semantics checked against transformers 5.24 and llama.cpp (b0c1e57 vendored in
llama-cpp-python 0.3.36); both agree on each of these:
  - sliding window w: a query at position p sees keys p-w+1 .. p (w keys; HF
    `kv_idx > q_idx - w`, llama.cpp masks p1 - p0 >= w).
  - gemma2: layers 0, 2, 4, ... are local; local layers use the global RoPE base.
    gemma3: layer i is local unless (i + 1) % pattern == 0 (pattern 6; GGUF key
    {arch}.attention.sliding_window_pattern when present); local layers use
    rope_parameters.sliding_attention.rope_theta (GGUF {arch}.rope.freq_base_swa, default 10000).
  - gemma query scale: HF query_pre_attn_scalar ** -0.5; the GGUF has no key for it and llama.cpp
    uses head_dim ** -0.5, or (dim / n_heads) ** -0.5 for the 27B models (gemma2 46 layers,
    gemma3 62 layers), which is what their query_pre_attn_scalar says. query_scale is 0 (meaning
    head_dim ** -0.5) whenever that is the value.
  - phi3 longrope: HF takes long_factor when max(position) + 1 > original_max_position_embeddings
    for the whole forward; cos and sin are scaled by attention_factor (default
    sqrt(1 + ln(s) / ln(orig)), s = max_position_embeddings / orig). llama.cpp picks by context
    size instead and ignores phi3's sliding_window; we follow HF.
  - HF configs come in two shapes: transformers >= 5 writes `rope_parameters` (per layer type for
    gemma3) and `layer_types`; older files have `rope_theta`, `rope_scaling`,
    `rope_local_base_freq`, `sliding_window_pattern`. Both are read.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

FAMILIES = ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3")
GEMMA = ("gemma", "gemma2", "gemma3")
# HF model_type / architectures -> family
HF_MODEL_TYPES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
                  "gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3",
                  "phi3": "phi3"}
GEMMA3_LOCAL_THETA = 10000.0        # llama.cpp's rope_freq_base_train_swa default
GEMMA3_PATTERN = 6
GEMMA_27B_LAYERS = {"gemma2": 46, "gemma3": 62}


class UnsupportedArchitectureError(ValueError):
    def __init__(self, arch: str):
        super().__init__(f"model architecture {arch!r} is not supported; supported families: "
                         + ", ".join(FAMILIES))
        self.arch = arch


class ConfigError(ValueError):
    """A required hyperparameter is missing or inconsistent."""


@dataclass(frozen=True)
class RopeScaling:
    kind: str = "none"                  # none | linear | llama3 | longrope
    factor: float = 1.0
    low_freq_factor: float = 1.0        # llama3
    high_freq_factor: float = 4.0       # llama3
    original_context: int = 0           # llama3 / longrope
    short_factor: tuple = ()            # longrope, one per rotary dim pair
    long_factor: tuple = ()
    attention_factor: float = 1.0       # longrope: cos/sin scale


@dataclass(frozen=True)
class ModelConfig:
    family: str
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    context_length: int
    norm_eps: float
    rope_theta: float
    rope_dim: int                       # rotary dims per head (partial rotary when < head_dim)
    rope_neox: bool                     # half-split pairs (True) or interleaved pairs (False)
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    rope_theta_local: float = 0.0       # gemma3: base of sliding-window layers
    sliding_window: int = 0
    local_pattern: int = 0              # every local_pattern-th layer is global (gemma3: 6); 0 = none
    attn_softcap: float = 0.0
    final_softcap: float = 0.0
    query_scale: float = 0.0            # multiplier on q.k; 0 -> 1/sqrt(head_dim)
    qkv_bias: bool = False
    qk_norm: bool = False
    norm_add_one: bool = False
    post_norms: bool = False
    embed_scale: float = 1.0
    activation: str = "silu"
    tied_embeddings: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise UnsupportedArchitectureError(self.family)
        for name in ("n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                     "vocab_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"{self.n_heads} heads are not a multiple of {self.n_kv_heads} "
                              "kv heads")
        if self.rope_dim > self.head_dim or self.rope_dim % 2:
            raise ConfigError(f"rotary dims {self.rope_dim} vs head_dim {self.head_dim}")

    @property
    def scale(self) -> float:
        return self.query_scale or 1.0 / math.sqrt(self.head_dim)

    def is_local(self, layer: int) -> bool:
        """Whether `layer` uses the sliding window (and, for gemma3, the local RoPE base)."""
        if not self.sliding_window:
            return False
        if self.family == "gemma2":
            return layer % 2 == 0
        if self.local_pattern:
            return (layer + 1) % self.local_pattern != 0
        return True  # every layer windowed (e.g. Mistral-style sliding window)

    def layer_rope_theta(self, layer: int) -> float:
        return self.rope_theta_local if self.rope_theta_local and self.is_local(layer) else self.rope_theta


def _family_defaults(family: str, dim: int) -> dict:
    if family in GEMMA:
        return {"norm_add_one": True, "activation": "gelu_tanh", "embed_scale": math.sqrt(dim),
                "post_norms": family != "gemma", "qk_norm": family == "gemma3"}
    return {"qk_norm": family == "qwen3"}


def _gemma_query_scale(family: str, n_layers: int, dim: int, n_heads: int, head_dim: int) -> float:
    """llama.cpp's rule for GGUF files, which carry no query_pre_attn_scalar."""
    if GEMMA_27B_LAYERS.get(family) == n_layers and dim // n_heads != head_dim:
        return (dim // n_heads) ** -0.5
    return 0.0


def _f32(x) -> float:
    """A GGUF float32 value as the shortest decimal that rounds to the same float32 (1e-05, not
    9.99999974e-06), so GGUF and config.json values compare equal."""
    x = float(x)
    bits = struct.pack("<f", x)
    for digits in range(1, 10):
        y = float(f"{x:.{digits}g}")
        if struct.pack("<f", y) == bits:
            return y
    return x


def from_gguf(metadata: dict, tensor_names) -> ModelConfig:
    """Config from a GGUF header (metadata dict and the set of tensor names). Float values are
    float32 in the file; they come back as their shortest decimal (see _f32)."""
    arch = metadata.get("general.architecture")
    if arch not in FAMILIES:
        raise UnsupportedArchitectureError(str(arch))
    names = set(tensor_names)

    def get(key, default=None, required=False):
        v = metadata.get(f"{arch}.{key}", default)
        if required and v is None:
            raise ConfigError(f"GGUF metadata lacks {arch}.{key}")
        return v

    dim = get("embedding_length", required=True)
    n_layers = get("block_count", required=True)
    n_heads = get("attention.head_count", required=True)
    n_kv = get("attention.head_count_kv", n_heads)
    head_dim = get("attention.key_length", dim // n_heads)
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = get("vocab_size") or (len(tokens) if tokens else 0)
    scaling = RopeScaling()
    kind = get("rope.scaling.type", "none")
    if kind == "linear" and get("rope.scaling.factor", 1.0) != 1.0:
        scaling = RopeScaling("linear", _f32(get("rope.scaling.factor")))
    if arch == "phi3" and "rope_factors_long.weight" in names:
        # The factor arrays are tensors; the loader reads them into short/long_factor.
        orig = get("rope.scaling.original_context_length", get("context_length"))
        attn = get("rope.scaling.attn_factor")
        if attn is None:    # HF's default: sqrt(1 + ln(s) / ln(orig)), s = context / orig
            s = get("context_length", orig) / orig
            attn = math.sqrt(1 + math.log(s) / math.log(orig)) if s > 1 else 1.0
        scaling = RopeScaling("longrope", original_context=int(orig), attention_factor=_f32(attn))
    rope_theta = _f32(get("rope.freq_base", 10000.0))
    window = int(get("attention.sliding_window", 0) or 0)
    theta_local, pattern = 0.0, 0
    if arch == "gemma2":
        window = window or 4096                            # llama.cpp's default for gemma2
        theta_local = _f32(get("rope.freq_base_swa", 0.0) or 0.0)
        if theta_local == rope_theta:
            theta_local = 0.0
    elif arch == "gemma3" and window:
        theta_local = _f32(get("rope.freq_base_swa", GEMMA3_LOCAL_THETA))
        pattern = get("attention.sliding_window_pattern", GEMMA3_PATTERN)
        if not isinstance(pattern, int):
            raise ConfigError(f"{arch}.attention.sliding_window_pattern as a per-layer array is "
                              "not supported; expected one integer period")
    defaults = _family_defaults(arch, dim)
    return ModelConfig(
        family=arch, n_layers=n_layers, dim=dim, n_heads=n_heads,
        n_kv_heads=n_kv, head_dim=head_dim, ffn_dim=get("feed_forward_length", required=True),
        vocab_size=vocab, context_length=get("context_length", 2048),
        norm_eps=_f32(get("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=rope_theta,
        rope_dim=get("rope.dimension_count", head_dim), rope_neox=arch != "llama",
        rope_scaling=scaling, rope_theta_local=theta_local,
        sliding_window=window, local_pattern=pattern,
        attn_softcap=_f32(get("attn_logit_softcapping", 0.0) or 0.0),
        final_softcap=_f32(get("final_logit_softcapping", 0.0) or 0.0),
        query_scale=_gemma_query_scale(arch, n_layers, dim, n_heads, head_dim)
        if arch in GEMMA else 0.0,
        qkv_bias="blk.0.attn_q.bias" in names,
        tied_embeddings="output.weight" not in names,
        **{**defaults,
           "norm_add_one": False,   # the converter already added 1 to every Gemma norm weight
           "qk_norm": "blk.0.attn_q_norm.weight" in names or defaults["qk_norm"]},
    )


def _hf_rope(config: dict, family: str) -> tuple[dict, float, float]:
    """(rope parameters of the global layers, rope_theta, local rope_theta or 0) from either
    config.json shape: transformers >= 5 `rope_parameters` (nested per layer type for gemma3) or
    the older top-level `rope_theta` + `rope_scaling` + `rope_local_base_freq`."""
    rp = config.get("rope_parameters") or config.get("rope_scaling") or {}
    local = {}
    if "full_attention" in rp or "sliding_attention" in rp:
        local = rp.get("sliding_attention") or {}
        rp = rp.get("full_attention") or {}
    default_theta = 1e6 if family == "gemma3" else 10000.0
    theta = float(rp.get("rope_theta") or config.get("rope_theta") or default_theta)
    theta_local = 0.0
    if family == "gemma3":
        theta_local = float(local.get("rope_theta") or config.get("rope_local_base_freq")
                            or GEMMA3_LOCAL_THETA)
    return rp, theta, theta_local


def _hf_scaling(config: dict, rp: dict) -> RopeScaling:
    rtype = rp.get("rope_type", rp.get("type", "default"))
    if rtype == "linear":
        return RopeScaling("linear", float(rp["factor"]))
    if rtype == "llama3":
        return RopeScaling("llama3", float(rp["factor"]), float(rp["low_freq_factor"]),
                           float(rp["high_freq_factor"]),
                           int(rp["original_max_position_embeddings"]))
    if rtype in ("longrope", "su"):
        max_pos = config["max_position_embeddings"]
        # Phi-3 keeps the pretraining length at the top level, and HF gives that one priority.
        orig = (config.get("original_max_position_embeddings")
                or rp.get("original_max_position_embeddings") or max_pos)
        s = rp.get("factor") or max_pos / orig
        attn = rp.get("attention_factor") or (
            1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(orig)))
        return RopeScaling("longrope", original_context=int(orig),
                           short_factor=tuple(float(x) for x in rp["short_factor"]),
                           long_factor=tuple(float(x) for x in rp["long_factor"]),
                           attention_factor=float(attn))
    if rtype not in ("default", "none", None):
        raise ConfigError(f"rope scaling {rtype!r} is not supported (supported: linear, llama3, "
                          "longrope)")
    return RopeScaling()


def _hf_local_layers(config: dict, family: str, n_layers: int) -> int:
    """Local/global pattern period; checks HF's explicit `layer_types` against it."""
    if family == "gemma2":
        pattern = 2
        expect = [i % 2 == 0 for i in range(n_layers)]
    elif family == "gemma3":
        types = config.get("layer_types")
        pattern = (config.get("sliding_window_pattern") or config.get("_sliding_window_pattern")
                   or (types.index("full_attention") + 1 if types and "full_attention" in types
                       else GEMMA3_PATTERN))
        expect = [(i + 1) % pattern != 0 for i in range(n_layers)]
    else:
        return 0
    types = config.get("layer_types")
    if types and [t == "sliding_attention" for t in types] != expect:
        raise ConfigError(f"{family} layer_types {types} do not follow a local/global pattern "
                          f"of period {pattern}; this engine supports only that pattern")
    return pattern if family == "gemma3" else 0


def from_hf(config: dict) -> ModelConfig:
    """Config from a Hugging Face config.json dict."""
    mt = config.get("model_type", "")
    family = HF_MODEL_TYPES.get(mt)
    if family is None:
        raise UnsupportedArchitectureError(mt or str(config.get("architectures")))
    if mt == "gemma3" and "text_config" in config:
        config = {**config["text_config"], "tie_word_embeddings": config.get("tie_word_embeddings", True)}
    dim, n_heads = config["hidden_size"], config["num_attention_heads"]
    n_layers = config["num_hidden_layers"]
    head_dim = config.get("head_dim") or dim // n_heads
    rp, theta, theta_local = _hf_rope(config, family)
    scaling = _hf_scaling(config, rp)
    partial = rp.get("partial_rotary_factor") or config.get("partial_rotary_factor") or 1.0
    window = config.get("sliding_window") or 0
    if family in GEMMA:
        window = window if family != "gemma" else 0
    elif not config.get("use_sliding_window", mt in ("mistral", "phi3")):
        window = 0
    qpas = config.get("query_pre_attn_scalar")
    query_scale = 0.0 if not qpas or qpas == head_dim else qpas ** -0.5
    return ModelConfig(
        family=family, n_layers=n_layers, dim=dim, n_heads=n_heads,
        n_kv_heads=config.get("num_key_value_heads") or n_heads, head_dim=head_dim,
        ffn_dim=config["intermediate_size"], vocab_size=config["vocab_size"],
        context_length=config.get("max_position_embeddings", 2048),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=theta, rope_dim=int(head_dim * partial), rope_neox=True, rope_scaling=scaling,
        rope_theta_local=theta_local if window else 0.0,
        sliding_window=window,
        local_pattern=_hf_local_layers(config, family, n_layers) if window else 0,
        attn_softcap=float(config.get("attn_logit_softcapping") or 0.0),
        final_softcap=float(config.get("final_logit_softcapping") or 0.0),
        query_scale=query_scale,
        qkv_bias=family == "qwen2" or bool(config.get("attention_bias", False)),
        tied_embeddings=bool(config.get("tie_word_embeddings", family in GEMMA)),
        **_family_defaults(family, dim),
    )
