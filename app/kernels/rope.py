"""Rotary position embedding (shaders/rope.wgsl), in place on q (n_tokens, n_heads, head_dim) or
k (n_tokens, n_kv_heads, head_dim), f32. One call per tensor.

At load, `rope_table` computes the per-pair inverse frequencies in pure Python (float64; no
numpy: this runs in Pyodide) and uploads them once. Positions are never baked in: the kernel
reads step.pos (shaders/lib/step.wgsl), so a recorded plan replays at any position.

Scaling follows transformers' modeling_rope_utils (rope_scaling dicts as in HF configs):
    None / "default"  inv[j] = 1 / theta^(2j / rotary_dim)
    "linear"          inv[j] / factor                (= positions / factor)
    "llama3"          factor, low_freq_factor, high_freq_factor, original_max_position_embeddings:
                      long wavelengths divided by factor, short ones kept, a smooth blend between
    "longrope"        short_factor, long_factor (rotary_dim/2 each),
                      original_max_position_embeddings (Phi-3 keeps it outside rope_scaling:
                      merge it in), optional
                      max_position_embeddings or factor, attention_factor:
                      inv[j] = 1 / (ext[j] * theta^(2j/d)), ext = long_factor when
                      pos + n_tokens > original_max_position_embeddings (chosen on the GPU), else
                      short_factor; cos and sin scaled by attention_factor, by default
                      sqrt(1 + ln(s) / ln(original)) with s = max_position / original (1 if s <= 1).
`freq_factors` (GGUF rope_freqs.weight, e.g. Llama-3.1 files) divide inv[j] as llama.cpp does.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from ..gpu import Buffer, Device
from .grid import grid


@dataclass(frozen=True)
class RopeFrequencies:
    inv_freq: tuple          # (rotary_dim / 2,) radians per position
    long_inv_freq: tuple | None  # longrope: used past long_after
    long_after: int          # 0: single table
    attention_factor: float  # scales cos and sin


@dataclass(frozen=True)
class RopeTable:
    buffer: Buffer           # (n_tables, rotary_dim / 2) x (hi, lo) u32: see shaders/rope.wgsl
    rotary_dim: int
    long_after: int
    attention_factor: float


def _llama3(inv: list, s: dict) -> list:
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:          # high frequency: unchanged
            out.append(f)
        elif wavelen > low_wavelen:         # low frequency: interpolated by factor
            out.append(f / factor)
        else:                               # medium (bounds included): smooth blend
            smooth = (old_len / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out


def rope_frequencies(rotary_dim: int, theta: float, scaling: dict | None = None,
                     freq_factors=None) -> RopeFrequencies:
    if rotary_dim <= 0 or rotary_dim % 2:
        raise ValueError(f"rotary_dim must be even and positive, got {rotary_dim}")
    half = rotary_dim // 2
    inv = [1.0 / theta ** (2 * j / rotary_dim) for j in range(half)]
    if freq_factors is not None:
        if len(freq_factors) != half:
            raise ValueError(f"freq_factors: {len(freq_factors)} values for {half} pairs")
        inv = [f / ff for f, ff in zip(inv, freq_factors)]
    scaling = scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return RopeFrequencies(tuple(inv), None, 0, 1.0)
    if kind == "linear":
        return RopeFrequencies(tuple(f / scaling["factor"] for f in inv), None, 0, 1.0)
    if kind == "llama3":
        return RopeFrequencies(tuple(_llama3(inv, scaling)), None, 0, 1.0)
    if kind == "longrope":
        short, long = scaling["short_factor"], scaling["long_factor"]
        if len(short) != half or len(long) != half:
            raise ValueError(f"longrope factors: {len(short)}/{len(long)} values for {half} pairs")
        orig = int(scaling["original_max_position_embeddings"])
        attn = scaling.get("attention_factor")
        if attn is None:
            mx = scaling.get("max_position_embeddings")
            factor = mx / orig if mx is not None else scaling.get("factor", 1.0)
            attn = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
        return RopeFrequencies(tuple(f / e for f, e in zip(inv, short)),
                               tuple(f / e for f, e in zip(inv, long)), orig, float(attn))
    raise ValueError(f"unsupported rope scaling {kind!r} (none, linear, llama3, longrope)")


def _fixed_turns(inv: float) -> tuple[int, int]:
    """inv radians per position -> turns per position mod 1 as a 64-bit fraction (hi, lo)."""
    f = inv / (2 * math.pi)
    q = round(math.ldexp(f - math.floor(f), 64)) % (1 << 64)
    return q >> 32, q & 0xFFFFFFFF


def rope_table(dev: Device, rotary_dim: int, theta: float, scaling: dict | None = None,
               freq_factors=None, label: str = "rope.freq") -> RopeTable:
    """Upload the frequency table(s) of one rotary configuration (once per model at load; Gemma-3
    has two: local and global layers)."""
    fr = rope_frequencies(rotary_dim, theta, scaling, freq_factors)
    words = []
    for table in (fr.inv_freq, fr.long_inv_freq):
        for f in table or ():
            words.extend(_fixed_turns(f))
    buf = dev.upload(struct.pack(f"<{len(words)}I", *words), kind="weights", label=label)
    return RopeTable(buf, rotary_dim, fr.long_after, fr.attention_factor)


async def rope(dev: Device, x: Buffer, table: RopeTable, step: Buffer, n_tokens: int,
               n_heads: int, head_dim: int, neox: bool = False, target=None) -> Buffer:
    """Rotate x (n_tokens, n_heads, head_dim) in place at positions step.pos + t. neox=False:
    interleaved pairs (GGUF llama); True: half split (NeoX, HF rotate_half). `step` is the Step
    uniform (grid.step_params / write_step); longrope also reads its n_tokens. Returns x."""
    if table.rotary_dim > head_dim:
        raise ValueError(f"rope: rotary_dim {table.rotary_dim} > head_dim {head_dim}")
    n = n_tokens * n_heads * head_dim
    if n <= 0:
        raise ValueError(f"rope of {n_tokens} x {n_heads} x {head_dim}")
    if x.size < 4 * n:
        raise ValueError(f"rope: buffer {x.label!r} holds {x.size} bytes, needs {4 * n}")
    half = table.rotary_dim // 2
    pipe = await dev.pipeline("rope", "main", {
        "HEAD_DIM": head_dim, "N_HEADS": n_heads, "HALF_ROT": half, "NEOX": bool(neox),
        "LONG_AFTER": table.long_after, "ATTN_FACTOR": table.attention_factor})
    bg = dev.bind(pipe, [(x, 0, 4 * n), table.buffer, step])
    wg = grid(-(-n_tokens * n_heads * half // 256))
    # `target is None`, not `target or dev`: an empty Plan is falsy (it has __len__).
    (dev if target is None else target).dispatch(pipe, [bg], wg)
    return x
