"""Random-weight GGUF files with the real shapes and metadata of a few models, for benchmarks.

    python -m app.bench gen-gguf --shape llama-3.2-1b --type Q4_K_M OUT.gguf [--pure] [--seed S]

Every tensor has the name, shape and ggml type that llama.cpp's converter + llama-quantize give the
real model (checked against the real gemma-3-270m Q4_K_M and SmolLM2-135M Q4_1 files); only the
values are random. Blocks are valid and numerically sane: the quant bits are uniform random, the
f16 scale fields are set so weights have std ~WEIGHT_STD (0.02), zero mean, no NaN/Inf, and no
f16 subnormal scales (real Q6_K files do have some; GPUs may flush them to zero).

Type of each 2-D weight (llama.cpp src/llama-quant.cpp, llama_tensor_get_type; 1-D tensors F32):
    output.weight, or token_embd.weight when the output is tied to it:
        Q8_0 files: Q8_0; otherwise Q6_K
    attn_v (layer i):   Q4_K_M: Q6_K when use_more_bits(i, n_layers), else Q4_K
    ffn_down (layer i): Q4_K_M: Q6_K when use_more_bits(i, n_layers), else Q4_K
    everything else:    the file's base type (Q4_0 / Q4_1 / Q8_0 / Q4_K)
    use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2        (integer division)
    then a K-quant type on a tensor whose row length (cols) is not a multiple of 256 falls back:
        Q4_K -> Q5_0, Q6_K -> Q8_0      (dims 576, 640 and 896 of SmolLM2, Gemma-3, Qwen2.5)
`--pure` (llama-quantize --pure): every 2-D weight in the base type (Q4_K for Q4_K_M).

Files are streamed: header and tensor infos first, then one tensor at a time (the next tensor is
generated on a thread pool while the current one is written), so memory stays at ~2 tensors.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

WEIGHT_STD = 0.02          # std of every random weight matrix (typical of trained LLM weights)
NORM_STD = 0.02            # norm weights 1 + N(0, NORM_STD); biases N(0, WEIGHT_STD)
CHUNK_BYTES = 32 << 20     # one thread-pool job generates this many bytes of blocks


@dataclass(frozen=True)
class Shape:
    arch: str               # GGUF general.architecture
    name: str
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab: int
    context: int
    rope_base: float
    eps: float
    tied: bool              # no output.weight: the LM head is token_embd
    llama3_rope: tuple = ()  # (factor, low_freq_factor, high_freq_factor, original context)
    sliding_window: int = 0  # gemma3


# Numbers from each model's config.json (Hugging Face) / the real GGUF metadata.
SHAPES = {
    "smollm2-135m": Shape("llama", "SmolLM2-135M (random weights)", 30, 576, 9, 3, 64, 1536,
                          49152, 8192, 100000.0, 1e-5, True),
    "qwen2.5-0.5b": Shape("qwen2", "Qwen2.5-0.5B (random weights)", 24, 896, 14, 2, 64, 4864,
                          151936, 32768, 1000000.0, 1e-6, True),
    "llama-3.2-1b": Shape("llama", "Llama-3.2-1B (random weights)", 16, 2048, 32, 8, 64, 8192,
                          128256, 131072, 500000.0, 1e-5, True, (32.0, 1.0, 4.0, 8192)),
    "llama-3.1-8b": Shape("llama", "Llama-3.1-8B (random weights)", 32, 4096, 32, 8, 128, 14336,
                          128256, 131072, 500000.0, 1e-5, False, (8.0, 1.0, 4.0, 8192)),
    "gemma-3-270m": Shape("gemma3", "Gemma-3-270M (random weights)", 18, 640, 4, 1, 256, 2048,
                          262144, 32768, 1000000.0, 1e-6, True, sliding_window=512),
}
# --type -> (base ggml type, general.file_type = llama_ftype)
FILE_TYPES = {"Q4_0": ("Q4_0", 2), "Q4_1": ("Q4_1", 3), "Q8_0": ("Q8_0", 7),
              "Q4_K_M": ("Q4_K", 15)}
# ggml type -> (elements per block, bytes per block)
BLOCK = {"Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q8_0": (32, 34),
         "Q4_K": (256, 144), "Q6_K": (256, 210)}
K_FALLBACK = {"Q4_K": "Q5_0", "Q6_K": "Q8_0"}


class GenGGUFError(ValueError):
    """Bad --shape / --type, or a shape that cannot be written."""


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def weight_type(name: str, layer: int, cols: int, shape: Shape, ftype: str, pure: bool) -> str:
    """ggml type of a 2-D weight, following llama.cpp's Q4_0/Q4_1/Q8_0/Q4_K_M rules (see top)."""
    base = FILE_TYPES[ftype][0]
    t = base
    if not pure:
        if name == "output.weight" or (shape.tied and name == "token_embd.weight"):
            t = "Q8_0" if base == "Q8_0" else "Q6_K"
        elif ftype == "Q4_K_M" and name.endswith(("attn_v.weight", "ffn_down.weight")):
            t = "Q6_K" if use_more_bits(layer, shape.n_layers) else "Q4_K"
    if t in K_FALLBACK and cols % 256:
        t = K_FALLBACK[t]
    return t


def tensor_plan(shape: Shape, ftype: str, pure: bool = False) -> list[tuple]:
    """[(name, ggml type, numpy shape)] in file order (llama.cpp converter order)."""
    s = shape
    q_dim, kv_dim = s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim
    plan = []

    def w(name, rows, cols, layer=-1):
        plan.append((name, weight_type(name, layer, cols, s, ftype, pure), (rows, cols)))

    if s.llama3_rope:
        plan.append(("rope_freqs.weight", "F32", (s.head_dim // 2,)))
    w("token_embd.weight", s.vocab, s.dim)
    for i in range(s.n_layers):
        b = f"blk.{i}."
        plan.append((b + "attn_norm.weight", "F32", (s.dim,)))
        w(b + "attn_q.weight", q_dim, s.dim, i)
        w(b + "attn_k.weight", kv_dim, s.dim, i)
        w(b + "attn_v.weight", kv_dim, s.dim, i)
        if s.arch == "qwen2":
            plan += [(b + "attn_q.bias", "F32", (q_dim,)), (b + "attn_k.bias", "F32", (kv_dim,)),
                     (b + "attn_v.bias", "F32", (kv_dim,))]
        if s.arch == "gemma3":
            plan += [(b + "attn_q_norm.weight", "F32", (s.head_dim,)),
                     (b + "attn_k_norm.weight", "F32", (s.head_dim,))]
        w(b + "attn_output.weight", s.dim, q_dim, i)
        if s.arch == "gemma3":
            plan.append((b + "post_attention_norm.weight", "F32", (s.dim,)))
        plan.append((b + "ffn_norm.weight", "F32", (s.dim,)))
        w(b + "ffn_gate.weight", s.ffn_dim, s.dim, i)
        w(b + "ffn_up.weight", s.ffn_dim, s.dim, i)
        w(b + "ffn_down.weight", s.dim, s.ffn_dim, i)
        if s.arch == "gemma3":
            plan.append((b + "post_ffw_norm.weight", "F32", (s.dim,)))
    plan.append(("output_norm.weight", "F32", (s.dim,)))
    if not s.tied:
        w("output.weight", s.vocab, s.dim)
    return plan


# ---- random blocks -----------------------------------------------------------------------------
# A block is random bytes everywhere, then its scale fields [start, end) are overwritten with one
# of 65536 precomputed valid patterns, picked by the block's own (random) first two header bytes.
# Per type: header span, and rms of the integer code part (q - offset) for uniform random bits:
#   q4: q - 8, q uniform 0..15 -> E[(q-8)^2] = 255/12 + 0.25 = 21.5;  q5: q - 16 -> 85.5;
#   q6: q - 32 -> 341.5;  q8: int8 uniform -128..127 -> 5461.5.
HEADER = {"Q4_0": (0, 2), "Q4_1": (0, 4), "Q5_0": (0, 2), "Q8_0": (0, 2), "Q4_K": (0, 16),
          "Q6_K": (192, 210)}


def _f16_bytes(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).view(np.uint8).reshape(len(x), 2)


def header_patterns(qtype: str, rng: np.random.Generator, n: int = 65536) -> np.ndarray:
    """(n, header bytes) uint8: valid scale fields giving weights of std ~WEIGHT_STD.
    u ~ U(0.75, 1.25) varies the scale per block (E[u^2] = 1.02, so std ~1% above target)."""
    u = rng.uniform(0.75, 1.25, n)
    if qtype in ("Q4_0", "Q4_1", "Q5_0", "Q8_0"):
        rms = {"Q4_0": 21.5, "Q4_1": 21.5, "Q5_0": 85.5, "Q8_0": 5461.5}[qtype] ** 0.5
        d = u * WEIGHT_STD / rms
        if qtype != "Q4_1":
            # w = d (q - 8): mean -d/2 per block; a random sign on d (llama.cpp's d has the sign
            # of the largest-magnitude weight too) makes the tensor's mean ~0.
            return _f16_bytes(d * rng.choice([-1.0, 1.0], n))
        # Q4_1: w = d q + m with m = -7.5 d: mean 0, std as Q4_0
        return np.concatenate([_f16_bytes(d), _f16_bytes(-7.5 * d.astype(np.float16))], axis=1)
    if qtype == "Q4_K":
        # 8 sub-blocks: w = d sc q - dmin mn, sc uniform 16..47, dmin = 8 d, mn = round(sc 15/16)
        # -> w = d sc (q - 7.5) + d (7.5 sc - 8 mn): mean ~0, std d rms(sc) 4.61.
        sc = rng.integers(16, 48, (n, 8))
        mn = (sc * 15 + 8) // 16
        d = u * WEIGHT_STD / (math.sqrt(31.5 ** 2 + (32 ** 2 - 1) / 12) * math.sqrt(21.25))
        s = np.zeros((n, 12), np.uint8)  # packing as ggml's get_scale_min_k4 reads it
        s[:, 0:4] = sc[:, :4] | (sc[:, 4:] >> 4) << 6
        s[:, 4:8] = mn[:, :4] | (mn[:, 4:] >> 4) << 6
        s[:, 8:12] = (sc[:, 4:] & 0xF) | (mn[:, 4:] & 0xF) << 4
        return np.concatenate([_f16_bytes(d), _f16_bytes(8 * d), s], axis=1)
    if qtype == "Q6_K":
        # 16 int8 scales of magnitude 2..15, random sign (rms 9.41); w = d sc (q - 32).
        # Small scales keep d ~1e-4, clear of f16 subnormals (< 6.1e-5).
        sc = rng.integers(2, 16, (n, 16)) * rng.choice([-1, 1], (n, 16))
        d = u * WEIGHT_STD / (math.sqrt(8.5 ** 2 + (14 ** 2 - 1) / 12) * math.sqrt(341.5))
        return np.concatenate([sc.astype(np.int8).view(np.uint8), _f16_bytes(d)], axis=1)
    raise GenGGUFError(f"no random block generator for {qtype}")


def fill_blocks(out: np.ndarray, qtype: str, patterns: np.ndarray, seed) -> None:
    """Random valid blocks into out (n_blocks, block bytes) uint8, in place."""
    rng = np.random.default_rng(seed)
    out[...] = rng.integers(0, 256, out.shape, dtype=np.uint8)
    a, b = HEADER[qtype]
    idx = out[:, a].astype(np.uint16) | out[:, a + 1].astype(np.uint16) << 8
    out[:, a:b] = patterns[idx]


def f32_tensor(name: str, n: int, shape: Shape, rng: np.random.Generator) -> np.ndarray:
    if name == "rope_freqs.weight":
        return llama3_rope_factors(shape)
    if name.endswith(".bias"):
        return rng.normal(0.0, WEIGHT_STD, n).astype(np.float32)
    # Norms. GGUF gemma files store 1 + w (the converter adds the 1), so 1 + noise for all.
    return (1.0 + rng.normal(0.0, NORM_STD, n)).astype(np.float32)


def llama3_rope_factors(shape: Shape) -> np.ndarray:
    """rope_freqs.weight of Llama 3.1/3.2 GGUFs: per rotary pair, the divisor of its frequency
    (1 for high frequencies, `factor` for low ones, smooth in between; Meta's llama3 scaling)."""
    factor, low, high, old_ctx = shape.llama3_rope
    d = shape.head_dim
    freqs = 1.0 / shape.rope_base ** (np.arange(0, d, 2) / d)
    wavelen = 2 * math.pi / freqs
    smooth = (old_ctx / wavelen - low) / (high - low)
    mid = 1.0 / ((1 - smooth) / factor + smooth)
    out = np.where(wavelen < old_ctx / high, 1.0, np.where(wavelen > old_ctx / low, factor, mid))
    return out.astype(np.float32)


# ---- metadata and writing ----------------------------------------------------------------------

def bytes_to_unicode() -> list[str]:
    """GPT-2 byte-level alphabet: printable bytes map to themselves, the rest to U+0100 onward."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def add_metadata(w, shape: Shape, ftype: str) -> None:
    import gguf
    s = shape
    w.add_name(s.name)
    w.add_file_type(FILE_TYPES[ftype][1])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(s.context)
    w.add_embedding_length(s.dim)
    w.add_block_count(s.n_layers)
    w.add_feed_forward_length(s.ffn_dim)
    w.add_head_count(s.n_heads)
    w.add_head_count_kv(s.n_kv_heads)
    w.add_rope_freq_base(s.rope_base)
    w.add_layer_norm_rms_eps(s.eps)
    if s.arch == "gemma3":
        w.add_key_length(s.head_dim)
        w.add_value_length(s.head_dim)
        w.add_sliding_window(s.sliding_window)
    if s.arch == "llama":
        w.add_vocab_size(s.vocab)
        w.add_rope_dimension_count(s.head_dim)
    # Minimal byte-level BPE vocabulary: 256 byte tokens, specials, one merge, fillers.
    tokens = bytes_to_unicode() + ["<|bos|>", "<|eos|>", "Ġt"]
    tokens += [f"<|filler_{i}|>" for i in range(len(tokens), s.vocab)]
    types = [1] * s.vocab
    types[256] = types[257] = 3  # control
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)


def generate(shape_name: str, ftype: str, path, pure: bool = False, seed: int | None = None,
             threads: int | None = None) -> dict:
    """Write the file; returns {"bytes", "seconds", "types": {ggml type: count}}."""
    import gguf
    if shape_name not in SHAPES:
        raise GenGGUFError(f"unknown shape {shape_name!r}; choose one of {', '.join(SHAPES)}")
    if ftype not in FILE_TYPES:
        raise GenGGUFError(f"unknown type {ftype!r}; choose one of {', '.join(FILE_TYPES)}")
    shape = SHAPES[shape_name]
    seed = int(np.random.SeedSequence(seed).entropy % (1 << 63))
    plan = tensor_plan(shape, ftype, pure)
    t0 = time.perf_counter()
    w = gguf.GGUFWriter(os.fspath(path), shape.arch)
    add_metadata(w, shape, ftype)
    types: dict[str, int] = {}
    for name, t, shp in plan:
        types[t] = types.get(t, 0) + 1
        if t == "F32":
            w.add_tensor_info(name, shp, np.dtype(np.float32), 4 * shp[0])
        else:
            rows, cols = shp
            el, bb = BLOCK[t]
            if cols % el:
                raise GenGGUFError(f"{name}: {cols} columns are not a multiple of {t}'s {el}")
            w.add_tensor_info(name, (rows, cols // el * bb), np.dtype(np.uint8),
                              rows * cols // el * bb, raw_dtype=gguf.GGMLQuantizationType[t])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    patterns = {t: header_patterns(t, rng) for t in types if t != "F32"}
    with ThreadPoolExecutor(threads or os.cpu_count() or 4) as pool:
        def start(k):  # -> (array, futures) of tensor k, generated on the pool
            name, t, shp = plan[k]
            if t == "F32":
                return f32_tensor(name, shp[0], shape, np.random.default_rng([seed, k])), []
            el, bb = BLOCK[t]
            blocks = np.empty((shp[0] * shp[1] // el, bb), np.uint8)
            step = max(1, CHUNK_BYTES // bb)
            futs = [pool.submit(fill_blocks, blocks[a:a + step], t, patterns[t], [seed, k, a])
                    for a in range(0, len(blocks), step)]
            return blocks, futs

        pending = start(0)
        for k in range(len(plan)):
            arr, futs = pending
            for f in futs:
                f.result()
            if k + 1 < len(plan):
                pending = start(k + 1)  # generate the next one while this one is written
            w.write_tensor_data(arr)
    w.close()
    return {"bytes": os.path.getsize(path), "seconds": time.perf_counter() - t0, "types": types}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.bench gen-gguf", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--type", required=True, choices=sorted(FILE_TYPES), dest="ftype")
    ap.add_argument("--pure", action="store_true", help="every 2-D weight in the base type")
    ap.add_argument("--seed", type=int, default=None, help="default: fresh entropy")
    ap.add_argument("--threads", type=int, default=None, help="default: all cores")
    ap.add_argument("out", help="output .gguf path")
    args = ap.parse_args(argv)
    import logging
    logging.getLogger("gguf").setLevel(logging.WARNING)
    r = generate(args.shape, args.ftype, args.out, args.pure, args.seed, args.threads)
    print(f"{args.out}: {args.shape} {args.ftype}{' (pure)' if args.pure else ''}, "
          f"{r['bytes'] / 1e9:.3f} GB in {r['seconds']:.1f} s; tensor types "
          + ", ".join(f"{t} x{n}" for t, n in sorted(r["types"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
