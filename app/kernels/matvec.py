"""y (n_vec, rows) (+)= x (n_vec, cols) @ W^T (+ bias), f32, for a GPUWeight in any internal
layout, through shaders/matvec.wgsl (decode: memory-bandwidth bound).

Per layout, one thread decodes a "unit" of W per step (words = u32 words of W it loads):

    layout  unit elements  words  notes
    f32     4              4      cols % 4 == 0, else 1 element (SCALAR variant)
    f16     8              4      cols % 8 == 0, else 1 element (SCALAR variant)
    bf16    8              4      as f16
    q4_1    32 (1 block)   5      d|m + 16 B quants
    q5_1    32 (1 block)   6      d|m + qh + 16 B quants
    q8_0a   32 (1 block)   9      d + 32 B quants
    q4_k    32 (1/8 sb)    8      4 header words (L1 hits across the 8 lanes) + 16 B quants
    q5_k    32 (1/8 sb)    12     4 header + 4 qh + 4 qs words
    q6_ka   32 (1/8 sb)    9      6 quant words + 2 scale words + d

Each thread owns RPT rows (4 for n_vec = 1, 2 for n_vec 2..4, 1 above) and reuses each unit's
x values for all of them. Threads per row TPR = next power of two >= units / 2 (1..256); a
256-invocation workgroup covers RPT * 256 / TPR rows. E.g. 4096 cols, n_vec 1: q4_1 -> 128
units, TPR 64, 16 rows per workgroup; f32 -> 1024 units, TPR 256, 4 rows per workgroup.
"""
from __future__ import annotations

import weakref

from ..gpu import Buffer, Device
from .grid import grid, uniform
from .layouts import GPUWeight, row_bytes

WG = 256
UNITS_PER_THREAD = 2  # tuned on an H100 (see the module docstring)
MAX_VEC = 8
# layout -> (define, elements per unit in the vector path)
UNIT = {"f32": ("F32", 4), "f16": ("F16", 8), "bf16": ("BF16", 8), "q4_1": ("Q4_1", 32),
        "q5_1": ("Q5_1", 32), "q8_0a": ("Q8_0A", 32), "q4_k": ("Q4_K", 32), "q5_k": ("Q5_K", 32),
        "q6_ka": ("Q6_KA", 32)}
DENSE = ("f32", "f16", "bf16")

# Shape-only uniforms, kept per device and reused: a recorded plan may reference them, so an op
# must not free them after dispatching.
_uniforms: "weakref.WeakKeyDictionary[Device, dict]" = weakref.WeakKeyDictionary()


def shape_uniform(dev: Device, fmt: str, *values, label: str) -> Buffer:
    cache = _uniforms.setdefault(dev, {})
    key = (fmt, values)
    buf = cache.get(key)
    if buf is None or buf.destroyed:
        buf = cache[key] = uniform(dev, fmt, *values, label=label)
    return buf


def threads_per_row(units: int) -> int:
    """Power of two >= units / UNITS_PER_THREAD, at most 256."""
    tpr = 1
    while tpr < WG and tpr * UNITS_PER_THREAD < units:
        tpr *= 2
    return tpr


def rows_per_thread(n_vec: int) -> int:
    """Rows each thread handles, reusing its x values: 4 for one vector; fewer for more vectors
    (n_vec * rows accumulators per thread; the reduction buffer of 256 * n_vec * rows floats
    must stay within 16 KiB)."""
    return 4 if n_vec == 1 else 2 if n_vec <= 4 else 1


def plan(layout: str, cols: int) -> tuple[bool, int, int]:
    """(scalar, units per row, u32 words per row [SCALAR: elements per row])."""
    define, elems = UNIT[layout]
    if layout in DENSE and cols % elems:
        return True, cols, cols
    return False, cols // elems, row_bytes(layout, cols) // 4


async def matvec(dev: Device, w: GPUWeight, x: Buffer, out: Buffer | None = None, n_vec: int = 1,
                 bias: Buffer | None = None, accumulate: bool = False, target=None,
                 tpr: int | None = None) -> Buffer:
    """`out` is (n_vec, w.rows) f32; `bias` (w.rows,) f32 is added when given; accumulate adds
    the product (and bias) to out's contents (a fused residual add). `tpr` overrides the threads
    per row (a power of two 1..256; tests and benchmarks)."""
    if not 1 <= n_vec <= MAX_VEC:
        raise ValueError(f"matvec: n_vec must be 1..{MAX_VEC}, got {n_vec}")
    if w.layout not in UNIT:
        raise ValueError(f"matvec: unknown layout {w.layout!r}")
    if x.size < 4 * n_vec * w.cols:
        raise ValueError(f"matvec {w.name}: x holds {x.size} B, needs ({n_vec}, {w.cols}) f32")
    if accumulate and out is None:
        raise ValueError("matvec: accumulate=True needs the out buffer to add into")
    if out is None:
        out = dev.create_buffer(4 * n_vec * w.rows, kind="activations", label=f"{w.name}.y")
    if out.size < 4 * n_vec * w.rows:
        raise ValueError(f"matvec {w.name}: out holds {out.size} B, needs ({n_vec}, {w.rows}) f32")
    scalar, units, row_words = plan(w.layout, w.cols)
    tpr = tpr or threads_per_row(units)
    if tpr & (tpr - 1) or not 1 <= tpr <= WG:
        raise ValueError(f"matvec: tpr must be a power of two 1..{WG}, got {tpr}")
    rpt = rows_per_thread(n_vec)
    defines = {UNIT[w.layout][0]: True, "NV": n_vec, "RPT": rpt, "NACC": n_vec * rpt,
               "RED": WG * n_vec * rpt, "SCALAR": scalar, "BIAS": bias is not None,
               "ACC": accumulate}
    pipe = await dev.pipeline("matvec", "main", {"TPR": tpr}, defines)
    xs = w.cols if scalar else w.cols // 4
    xbind = (x, 0, 4 * n_vec * w.cols)
    for ch in w.chunks:
        params = shape_uniform(dev, "<8I", ch.rows, w.cols, units, row_words, ch.row0, w.rows,
                               xs, 0, label="matvec.params")
        bufs = [ch.buffer, xbind, out, params] + ([bias] if bias is not None else [])
        (target or dev).dispatch(pipe, [dev.bind(pipe, bufs)], grid(-(-ch.rows // (rpt * WG // tpr))))
    return out
