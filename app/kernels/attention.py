"""Attention against the KV cache: decode (one query token, split over the KV range and
combined) and causal prefill (a chunk of queries, flash-attention tiles). On CPU adapters
(dev.is_cpu) decode runs shaders/attention_decode_cpu.wgsl and prefill
shaders/attention_prefill_cpu.wgsl: no workgroup barriers.

    await kv_write(dev, cache, layer, k, v, step)                 # first: this step's rows
    o = await attention_decode(dev, q, cache, layer, step, n_heads)     # q (n_heads, head_dim)
    o = await attention_prefill(dev, q, cache, layer, step, n_heads)    # q (n_tokens, n_heads, hd)

Everything position- or length-dependent (pos, n_tokens, kv_len) comes from the Step uniform
(shaders/lib/step.wgsl), so a recorded plan replays at any position after one write_step().
Shape and model constants (head counts, head_dim, scale, softcap, window) are pipeline
constants: a model has a handful of such pipelines (Gemma-2/3: sliding and global layers).

q/out may be Buffers or (Buffer, offset, size) views. Prefill's grid covers as many tokens as q
holds; decode reads the first n_heads rows of q. The query scale defaults to 1/sqrt(head_dim);
Gemma-2/3 pass query_pre_attn_scalar ** -0.5. softcap > 0 caps logits as cap * tanh(s / cap).
window > 0 lets position p see keys p - window + 1 .. p only.
"""
from __future__ import annotations

import math

from ..gpu import Buffer, Device
from .kv_cache import KVCache, nbytes

MAX_SPLITS = 32  # decode: splits dispatched per head (the ones past kv_len write neutral partials)
CHUNK_MIN = 64   # decode: keys per tile; a split takes a whole number of tiles, so up to
                 # CHUNK_MIN * MAX_SPLITS keys every busy split runs one tile (the latency floor)
CPU_WG = 8       # decode on CPU adapters: shaders/attention_decode_cpu.wgsl's workgroup size
PREFILL_BQ = 16  # prefill: queries per workgroup (shaders/attention_prefill.wgsl's BQ)
PREFILL_CPU_WG = 8  # prefill on CPU adapters: tokens per workgroup (attention_prefill_cpu.wgsl)


def _constants(cache: KVCache, n_heads: int, scale, softcap: float, window: int) -> dict:
    if n_heads % cache.n_kv_heads:
        raise ValueError(f"n_heads {n_heads} is not a multiple of n_kv_heads {cache.n_kv_heads}")
    if cache.head_dim > 256:
        raise ValueError(f"head_dim {cache.head_dim} > 256 is not supported")
    if softcap < 0 or window < 0:
        raise ValueError(f"softcap ({softcap}) and window ({window}) must be >= 0")
    return {"N_KV": cache.n_kv_heads, "GROUP": n_heads // cache.n_kv_heads,
            "SCALE": 1.0 / math.sqrt(cache.head_dim) if scale is None else float(scale),
            "SOFTCAP": float(softcap), "WINDOW": int(window)}


def _defines(cache: KVCache, **more) -> dict:
    return {"HEAD_DIM": cache.head_dim, "KV_F16": cache.f16, **more}


async def attention_decode(dev: Device, q, cache: KVCache, layer: int, step: Buffer, n_heads: int,
                           out=None, scale=None, softcap: float = 0.0, window: int = 0,
                           target=None, cpu: bool | None = None):
    """out (n_heads, head_dim) f32 = attention of q (n_heads, head_dim) over cache rows
    [max(0, kv_len - window), kv_len) of `layer`, kv_len = step.kv_len. Two dispatches: per-split
    partials into cache.scratch(), then the combine. `cpu` picks the barrier-free variant
    (shaders/attention_decode_cpu.wgsl, same results); default: dev.is_cpu."""
    hd = cache.head_dim
    row = 4 * n_heads * hd
    if nbytes(q) < row:
        raise ValueError(f"attention_decode: q holds {nbytes(q)} bytes, needs {row}")
    consts = _constants(cache, n_heads, scale, softcap, window)
    out = out or dev.create_buffer(row, kind="activations", label="attention_decode.out")
    if nbytes(out) < row:
        raise ValueError(f"attention_decode: out holds {nbytes(out)} bytes, needs {row}")
    partials = cache.scratch(16 * n_heads * MAX_SPLITS * (hd // 4 + 1))
    # MAX_SPLITS is a define (not an override) so the combine's loops over splits have constant
    # trip counts; the tile size (CHUNK_MIN) is the shader's TK.
    cpu = getattr(dev, "is_cpu", False) if cpu is None else cpu
    shader = "attention_decode_cpu" if cpu else "attention_decode"
    split = await dev.pipeline(shader, "main", consts, _defines(cache, MAX_SPLITS=MAX_SPLITS))
    combine = await dev.pipeline(shader, "main", {},
                                 _defines(cache, MAX_SPLITS=MAX_SPLITS, COMBINE=True))
    d = target or dev
    bg = dev.bind(split, [q, cache.k[layer], cache.v[layer], partials, step])
    if cpu:   # one invocation per (split, head) / per (vec4 column, head), CPU_WG per workgroup
        d.dispatch(split, [bg], (-(-MAX_SPLITS // CPU_WG), n_heads, 1))
        d.dispatch(combine, [dev.bind(combine, [partials, out])],
                   (-(-(hd // 4) // CPU_WG), n_heads, 1))
    else:
        d.dispatch(split, [bg], (MAX_SPLITS, n_heads, 1))
        d.dispatch(combine, [dev.bind(combine, [partials, out])], (n_heads, 1, 1))
    return out


async def attention_prefill(dev: Device, q, cache: KVCache, layer: int, step: Buffer, n_heads: int,
                            out=None, scale=None, softcap: float = 0.0, window: int = 0,
                            target=None, cpu: bool | None = None):
    """out (n_tokens, n_heads, head_dim) f32: query t (at position step.pos + t) attends causally
    to cache rows [max(0, pos + t + 1 - window), pos + t] of `layer`, earlier turns included.
    The grid covers every token q can hold; step.n_tokens says how many are real. `cpu` picks
    the barrier-free variant (shaders/attention_prefill_cpu.wgsl, one invocation per (token,
    head), same results); default: dev.is_cpu."""
    row = 4 * n_heads * cache.head_dim
    tokens = nbytes(q) // row
    if tokens < 1:
        raise ValueError(f"attention_prefill: q holds {nbytes(q)} bytes, less than one token")
    consts = _constants(cache, n_heads, scale, softcap, window)
    consts["N_HEADS"] = n_heads
    out = out or dev.create_buffer(tokens * row, kind="activations", label="attention_prefill.out")
    if nbytes(out) < tokens * row:
        raise ValueError(f"attention_prefill: out holds {nbytes(out)} bytes, needs {tokens * row}")
    cpu = getattr(dev, "is_cpu", False) if cpu is None else cpu
    shader, per_wg = ("attention_prefill_cpu", PREFILL_CPU_WG) if cpu else \
        ("attention_prefill", PREFILL_BQ)
    pipe = await dev.pipeline(shader, "main", consts, _defines(cache))
    bg = dev.bind(pipe, [q, cache.k[layer], cache.v[layer], out, step])
    (target or dev).dispatch(pipe, [bg], (-(-tokens // per_wg), n_heads, 1))
    return out
