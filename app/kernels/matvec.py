"""y (n_vec, rows) (+)= x (n_vec, cols) @ W^T (+ bias), f32, for a GPUWeight in any internal
layout, through shaders/matvec.wgsl (decode: memory-bandwidth bound).

Per layout, one thread decodes a "unit" of W per step (words = u32 words of W it loads):

    layout  unit elements  words  notes
    f32     4              4      cols % 4 == 0, else 1 element (SCALAR variant)
    f16     8              4      cols % 8 == 0, else 1 element (SCALAR variant)
    bf16    8              4      as f16
    q4_1    32 (1 block)   5      d|m + 16 B quants (CPU adapters)
    q4_1    8 (FINE)       2      d|m (shared by the block's 4 lanes) + 1 quant word (GPUs)
    q8_0a   8 (FINE)       3      d (shared by the block's 4 lanes) + 2 quant words (GPUs)
    q5_1    32 (1 block)   6      d|m + qh + 16 B quants
    q8_0a   32 (1 block)   9      d + 32 B quants
    q4_k    32 (1/8 sb)    8      4 header words (L1 hits across the 8 lanes) + 16 B quants
    q5_k    32 (1/8 sb)    12     4 header + 4 qh + 4 qs words
    q6_ka   32 (1/8 sb)    9      6 quant words + 2 scale words + d

Each thread owns RPT rows (4 for n_vec = 1, 2 for n_vec 2..4, 1 above) and reuses each unit's
x values for all of them. Threads per row TPR = next power of two >= units / 2 (1..256); a
256-invocation workgroup covers RPT * 256 / TPR rows. choose(): a chunk that would get fewer than
FEW_WG workgroups takes RPT 2, then doubles TPR (small matrices spread over the GPU). Row sums
are reduced with subgroup shuffles where the device has "subgroups" (else a workgroup tree).
H100, Llama-3.2-1B Q4_0 decode: qkv+gate_up 18.5 -> 13.2 us avg, o+down 14.9 -> 9.5, lm_head
Q6_K 162 -> 123; 8B: 43.6 -> 32.0, 28.3 -> 22.2 (python -m app.bench profile).
E.g. 4096 cols, n_vec 1: q4_1 -> 128
units, TPR 64, 16 rows per workgroup; f32 -> 1024 units, TPR 256, 4 rows per workgroup.

CPU adapters (dev.is_cpu: SwiftShader, lavapipe) take choose_cpu() instead: TPR 1 (each thread
walks whole rows, so the shader has no reduction, no barrier and no workgroup memory: NORED) and
CPU_WG-invocation workgroups, so even a 576-row matrix gives each of a few cores workgroups.

GLU input (`glu=("silu" | "gelu_tanh", ffn)`, ffn == w.cols): x is the fused gate | up buffer
(n_vec, 2 ffn) and the kernel forms act(gate) * up on load (shaders/matvec.wgsl GLU_X, the
functions of shaders/glu.wgsl, so the same f32 values as glu() then matvec), one dispatch fewer
(decode's down projection). Exact f32 path only. Every row group recomputes the activations of
the units it walks: rows / RPT exp per element of x in all.

int8-dot path (opt-in, quantized layouts only): `xq = await quantize_x(dev, x, cols)` once per
step (shaders/quantize_x.wgsl: int8 per 32-element block, d_x = amax / 127, exact f32 sum of x),
then `matvec(..., xq=xq)` runs shaders/matvec_q8.wgsl (dot4I8Packed; units of 32 elements for
q4_1/q5_1/q8_0a, 64 for the K-quants). Error: the x quantization, <= d_x / 2 per element times
|the weight's scale part|. On an H100 1.3-2x faster than the exact path (docs/benchmarks.md).
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

from ..gpu import Buffer, Device
from .activation import ACTIVATIONS
from .grid import grid, uniform
from .layouts import GPUWeight, row_bytes

WG = 256
UNITS_PER_THREAD = 2  # tuned on an H100 (see the module docstring)
FINE_UPT = 8  # FINE units per thread (H100 sweep 2026-11-25: TPR 64 at 4096 cols, 128 at 14336)
FINE_MAX_TPR = 128
FEW_WG = 256  # below this many workgroups choose() trades rows per thread, then units, for more
MIN_RPT = 2  # 1 row per thread measured slower than 2 even for small matrices (H100)
VT = {1: "f32", 2: "vec2<f32>", 4: "vec4<f32>"}  # rows per thread -> the shader's sum type
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


def release_shape_uniforms(dev: Device) -> int:
    """Destroy the shape uniforms cached for `dev` (matvec, matmul_q). Only when no recorded plan
    that uses them will be replayed again (e.g. after every model on the device is destroyed);
    returns how many were freed."""
    cache = _uniforms.pop(dev, None) or {}
    for buf in cache.values():
        if not buf.destroyed:
            dev.destroy_buffer(buf)
    return len(cache)


def threads_per_row(units: int, upt: int = UNITS_PER_THREAD) -> int:
    """Power of two >= units / upt (units per thread), at most 256."""
    tpr = 1
    while tpr < WG and tpr * upt < units:
        tpr *= 2
    return tpr


def rows_per_thread(n_vec: int) -> int:
    """Rows each thread handles, reusing its x values: 4 for one vector; fewer for more vectors
    (n_vec * rows accumulators per thread; the reduction buffer of 256 * n_vec * rows floats
    must stay within 16 KiB)."""
    return 4 if n_vec == 1 else 2 if n_vec <= 4 else 1


# Dense layouts (vector path) read each unit's 4 words with one vec4 load (V4 define).
V4_DEFAULT = os.environ.get("LOCALLLM_MV_V4", "1") == "1"   # "0": scalar loads (benchmarks)
# FINE units (q4_1: one quant word = 8 elements; q8_0a: two words = 8): consecutive lanes read
# consecutive words of W and runs of x (coalesced loads); see shaders/matvec.wgsl. (q4_k FINE
# units of 16 elements measured slower on the H100, two 6-bit scale pairs unpacked per unit.)
FINE_UNIT = {"q4_1": 8, "q8_0a": 8}   # used by default on GPUs (FINE_DEFAULT)
FINE_DEFAULT = os.environ.get("LOCALLLM_MV_FINE", "1") == "1"   # "0": 1-block units (benchmarks)
# q8_0a FINE: 2 rows per thread (H100 sweep, Dawn: 4096x4096 39% -> 56% of the probe, 4096x14336
# 68% -> 77%, vs 4 rows; 14336x4096 75-76% either way; 1-block units: 33-42%).
FINE_RPT = {"q8_0a": 2}


# q4_k / q5_k super-blocks are 144 / 176 bytes, so a unit's header and quant runs are 16-byte
# aligned: V4 reads them with vec4 loads too (w4() in matvec.wgsl).
V4_QUANT = ("q4_k", "q5_k")


def v4_ok(layout: str, cols: int) -> bool:
    return (layout in DENSE or layout in V4_QUANT) and cols % UNIT[layout][1] == 0


def plan(layout: str, cols: int, fine: bool = False) -> tuple[bool, int, int]:
    """(scalar, units per row, u32 words per row [SCALAR: elements per row])."""
    define, elems = UNIT[layout]
    if layout in DENSE and cols % elems:
        return True, cols, cols
    if fine:
        elems = FINE_UNIT[layout]
    return False, cols // elems, row_bytes(layout, cols) // 4


def workgroups(rows: int, tpr: int, rpt: int, wg: int = WG) -> int:
    return -(-rows // (rpt * wg // tpr))


CPU_WG = 16  # CPU adapters: invocations per workgroup (4 SIMD rows on SwiftShader, 2 on lavapipe)


CPU_MAX_SERIAL = 16384  # CPU adapters: most units x vectors one thread walks (see choose_cpu)


def choose_cpu(units: int, n_vec: int) -> tuple[int, int]:
    """(threads per row, rows per thread) on a CPU adapter: TPR 1 (no cross-thread reduction,
    which needs barriers) and rows_per_thread(n_vec) rows per thread, reusing each x load for
    them; a workgroup of CPU_WG threads covers CPU_WG * rpt / TPR rows (64 for one vector).
    TPR doubles while a thread would walk more than CPU_MAX_SERIAL units x vectors: lavapipe
    (Mesa 22.3.6) returned wrong sums for TPR 1 at 8000 q4_k units x 8 vectors (4000 x 8 and
    8000 x 4 were right, with TPR 2 too). Decode shapes stay far below (4096 cols q4: 128)."""
    tpr = 1
    while tpr < CPU_WG and -(-units // tpr) * n_vec > CPU_MAX_SERIAL:
        tpr *= 2
    return tpr, rows_per_thread(n_vec)


def choose(units: int, rows: int, n_vec: int, fine: bool = False) -> tuple[int, int]:
    """(threads per row, rows per thread) for one weight chunk: threads_per_row(units) and
    rows_per_thread(n_vec), then, while that gives fewer than FEW_WG workgroups, fewer rows per
    thread and then more threads per row (down to one unit per thread), so that small matrices
    still spread over the whole GPU (a decode matvec is latency-bound below ~10 MB).
    FINE units are 4x smaller and each thread walks FINE_UPT of them (H100 sweep, q4_1:
    4096 cols -> TPR 64, 14336 -> 128; docs/benchmarks.md)."""
    tpr = (min(FINE_MAX_TPR, threads_per_row(units, FINE_UPT)) if fine
           else threads_per_row(units))
    rpt = rows_per_thread(n_vec)
    while workgroups(rows, tpr, rpt) < FEW_WG:
        if rpt > MIN_RPT:
            rpt //= 2
        elif tpr < WG and tpr < units:
            tpr *= 2
        else:
            break
    return tpr, rpt


async def matvec(dev: Device, w: GPUWeight, x: Buffer, out: Buffer | None = None, n_vec: int = 1,
                 bias: Buffer | None = None, accumulate: bool = False, target=None,
                 tpr: int | None = None, xq: "QuantX | None" = None, rpt: int | None = None,
                 subgroups: bool | None = None, cpu: bool | None = None,
                 glu: tuple[str, int] | None = None, v4: bool | None = None,
                 fine: bool | None = None, norm: tuple | None = None,
                 epilogue: tuple | None = None) -> Buffer:
    """`out` is (n_vec, w.rows) f32; `bias` (w.rows,) f32 is added when given; accumulate adds
    the product (and bias) to out's contents (a fused residual add). `tpr` / `rpt` override the
    threads per row (a power of two 1..256) and rows per thread (1, 2 or 4, n_vec * rpt <= 16)
    (tests and benchmarks). `subgroups`: reduce with subgroup shuffles (default: when the device
    has the "subgroups" feature; False forces the workgroup-memory tree). `xq` (from quantize_x
    of this x): use the int8-dot path (shaders/matvec_q8.wgsl) for the layouts in Q8_UNIT; other
    layouts ignore it and take the exact f32 path. The default (xq None) is the exact f32 path.
    `cpu`: choose_cpu()'s barrier-free parameters and CPU_WG workgroups (default: dev.is_cpu).
    `glu` = (activation, ffn): x is (n_vec, 2 ffn) gate | up and the product's input is
    act(gate) * up (see the module docstring); ffn must equal w.cols; not with xq."""
    if not 1 <= n_vec <= MAX_VEC:
        raise ValueError(f"matvec: n_vec must be 1..{MAX_VEC}, got {n_vec}")
    if w.layout not in UNIT:
        raise ValueError(f"matvec: unknown layout {w.layout!r}")
    xw = w.cols  # f32 per x row
    if glu is not None:
        kind, ffn = glu
        if kind not in ACTIVATIONS:
            raise ValueError(f"matvec: glu activation {kind!r} is not one of {ACTIVATIONS}")
        if ffn != w.cols:
            raise ValueError(f"matvec {w.name}: glu ffn {ffn} must equal the weight's cols {w.cols}")
        if xq is not None:
            raise ValueError("matvec: glu input is not supported on the int8-dot path (xq): run "
                             "glu() and quantize_x() first")
        xw = 2 * w.cols
    if norm is not None or epilogue is not None:
        # norm = (xr, eps): x holds xr * g' and the input is rmsnorm(xr) * g' (folded rmsnorm);
        # epilogue = (g, add_one, ex): also write ex = y * (g or 1 + g) (the next norm's input).
        if n_vec != 1 or xq is not None or w.cols % 4 or (norm is not None and glu is not None):
            raise ValueError(f"matvec {w.name}: norm / epilogue need one vector, no xq input "
                             "(norm: no glu input either) and cols % 4 == 0")
    if x.size < 4 * n_vec * xw:
        raise ValueError(f"matvec {w.name}: x holds {x.size} B, needs ({n_vec}, {xw}) f32")
    if accumulate and out is None:
        raise ValueError("matvec: accumulate=True needs the out buffer to add into")
    if out is None:
        out = dev.create_buffer(4 * n_vec * w.rows, kind="activations", label=f"{w.name}.y")
    if out.size < 4 * n_vec * w.rows:
        raise ValueError(f"matvec {w.name}: out holds {out.size} B, needs ({n_vec}, {w.rows}) f32")
    cpu = getattr(dev, "is_cpu", False) if cpu is None else cpu
    if xq is not None and w.layout in Q8_UNIT:
        return await _matvec_q8(dev, w, xq, out, n_vec, bias, accumulate, target, tpr)
    if tpr is not None and (tpr & (tpr - 1) or not 1 <= tpr <= WG):
        raise ValueError(f"matvec: tpr must be a power of two 1..{WG}, got {tpr}")
    if rpt is not None and (rpt not in VT or n_vec * rpt > 16):
        raise ValueError(f"matvec: rpt must be 1, 2 or 4 with n_vec * rpt <= 16, got {rpt}")
    if subgroups is None:
        subgroups = "subgroups" in dev.features
    elif subgroups and "subgroups" not in dev.features:
        raise ValueError("matvec: subgroups=True needs the device's subgroups feature")
    if v4 is None:
        v4 = V4_DEFAULT and not cpu
    v4 = v4 and v4_ok(w.layout, w.cols)
    if fine is None:
        fine = FINE_DEFAULT and not cpu
    fine = fine and w.layout in FINE_UNIT
    scalar, units, row_words = plan(w.layout, w.cols, fine)
    xs = xw if scalar else xw // 4
    xbind = (x, 0, 4 * n_vec * xw)
    for ch in w.chunks:
        c_tpr, c_rpt = choose_cpu(units, n_vec) if cpu else choose(units, ch.rows, n_vec, fine)
        if fine and w.layout in FINE_RPT:
            c_rpt = min(c_rpt, FINE_RPT[w.layout])
        c_tpr, c_rpt = tpr or c_tpr, rpt or c_rpt
        wg = CPU_WG if cpu and c_tpr <= CPU_WG else WG  # a forced tpr > CPU_WG gets WG threads
        defines = {UNIT[w.layout][0]: True, "NV": n_vec, "NV1": n_vec == 1, "RPT": c_rpt,
                   "R2": c_rpt == 2, "R4": c_rpt == 4, "VT": VT[c_rpt], "RED": wg * n_vec,
                   "WG": wg, "NORED": c_tpr == 1,
                   "SCALAR": scalar, "BIAS": bias is not None,
                   "V4": v4, "FINE": fine,
                   "ACC": accumulate, "SUBGROUPS": subgroups,
                   "GLU_X": glu is not None, "ACT": glu[0] if glu else "",
                   # Dawn needs the enable directive; wgpu-native's naga rejects it (and needs none)
                   "SG_ENABLE": subgroups and dev.backend == "browser"}
        consts = {"TPR": c_tpr}
        params = shape_uniform(dev, "<8I", ch.rows, w.cols, units, row_words, ch.row0, w.rows,
                               xs, 0, label="matvec.params")
        bufs = [ch.buffer, xbind, out, params]
        if bias is not None:
            bufs.append(bias)
        if norm is not None:
            defines.update(NORM=True, B_G=len(bufs))
            consts["EPS"] = float(norm[1])
            bufs.append((norm[0], 0, 4 * w.cols))
        if epilogue is not None:
            g, add_one, ex = epilogue
            defines.update(EPI=True, B_EG=len(bufs), B_EX=len(bufs) + 1)
            consts["EPI_ADD_ONE"] = bool(add_one)
            bufs += [(g, 0, 4 * w.rows), (ex, 0, 4 * w.rows)]
        pipe = await dev.pipeline("matvec", "main", consts, defines)
        (target or dev).dispatch(pipe, [dev.bind(pipe, bufs)],
                                 grid(workgroups(ch.rows, c_tpr, c_rpt, wg)))
    return out


# ---- int8-dot decode path (llama.cpp's mmvq idea): x quantized once per step to int8 per 32-block
# by shaders/quantize_x.wgsl, weights dotted with it by dot4I8Packed in shaders/matvec_q8.wgsl.
# layout -> (define, elements per unit, unit spans 2 x blocks)
Q8_UNIT = {"q4_1": ("Q4_1", 32, False), "q5_1": ("Q5_1", 32, False), "q8_0a": ("Q8_0A", 32, False),
           "q4_k": ("Q4_K", 64, True), "q5_k": ("Q5_K", 64, True), "q6_ka": ("Q6_KA", 64, True)}


@dataclass
class QuantX:
    """x (n_vec, cols) quantized per 32-element block: q = int8 x 4 per u32 (n_vec * cols / 4
    words), ds = (d_x, exact f32 sum of x) per block, inv = the multiplier s used (q = round(x s)),
    kept for tests. Reuse it for every matvec reading the same x in a step."""
    q: Buffer
    ds: Buffer
    inv: Buffer
    cols: int
    n_vec: int

    def destroy(self, dev: Device) -> None:
        for b in (self.q, self.ds, self.inv):
            dev.destroy_buffer(b)


async def quantize_x(dev: Device, x: Buffer, cols: int, n_vec: int = 1, target=None,
                     out: QuantX | None = None) -> QuantX:
    """One dispatch: x (n_vec, cols) f32 -> QuantX (cols % 32 == 0)."""
    if cols % 32:
        raise ValueError(f"quantize_x: cols {cols} is not a multiple of 32")
    if x.size < 4 * n_vec * cols:
        raise ValueError(f"quantize_x: x holds {x.size} B, needs ({n_vec}, {cols}) f32")
    blocks = n_vec * cols // 32
    if out is None:
        out = QuantX(dev.create_buffer(4 * blocks * 8, kind="activations", label="xq.q"),
                     dev.create_buffer(8 * blocks, kind="activations", label="xq.ds"),
                     dev.create_buffer(4 * blocks, kind="activations", label="xq.inv"), cols, n_vec)
    pipe = await dev.pipeline("quantize_x", "main")
    params = shape_uniform(dev, "<4I", blocks, 0, 0, 0, label="quantize_x.params")
    bg = dev.bind(pipe, [(x, 0, 4 * n_vec * cols), out.q, out.ds, out.inv, params])
    (target or dev).dispatch(pipe, [bg], grid(-(-blocks // WG)))
    return out


Q8_UNITS_PER_THREAD = 2  # units each thread walks per row (TPR = units / this, power of two)
Q8_RPT = {1: 4}  # rows per thread by n_vec (else rows_per_thread(n_vec))
Q8_FEW_WG = 256
# Tuned on an H100 (native, 2026-11-24; units per thread 1/2/4 x rows per thread 1/2/4 tried):
# 2 units and 4 rows per thread were best from 14336x4096 up, 1 unit below (see above).


async def _matvec_q8(dev, w, xq, out, n_vec, bias, accumulate, target, tpr):
    if xq.cols != w.cols or xq.n_vec < n_vec:
        raise ValueError(f"matvec {w.name}: xq is ({xq.n_vec}, {xq.cols}), needs ({n_vec}, {w.cols})")
    define, elems, pair = Q8_UNIT[w.layout]
    units, row_words = w.cols // elems, row_bytes(w.layout, w.cols) // 4
    if not tpr:
        tpr = 1
        while tpr < WG and tpr * Q8_UNITS_PER_THREAD < units:
            tpr *= 2
        # Few workgroups (<= Q8_FEW_WG, ~2 per H100 SM): one unit per thread instead, twice the
        # workgroups (4096x4096 q4_1 on an H100: 36% of peak vs 32%; q4_k 27% vs 21%).
        rpt0 = Q8_RPT.get(n_vec) or rows_per_thread(n_vec)
        if tpr < WG and tpr < units and -(-w.rows // (rpt0 * WG // tpr)) <= Q8_FEW_WG:
            tpr *= 2
    if tpr & (tpr - 1) or not 1 <= tpr <= WG:
        raise ValueError(f"matvec: tpr must be a power of two 1..{WG}, got {tpr}")
    rpt = Q8_RPT.get(n_vec) or rows_per_thread(n_vec)
    defines = {define: True, "PAIR": pair, "NV": n_vec, "RPT": rpt, "NACC": n_vec * rpt,
               "RED": WG * n_vec * rpt, "BIAS": bias is not None, "ACC": accumulate}
    pipe = await dev.pipeline("matvec_q8", "main", {"TPR": tpr}, defines)
    for ch in w.chunks:
        params = shape_uniform(dev, "<8I", ch.rows, w.cols, units, row_words, ch.row0, w.rows,
                               w.cols // 32, 0, label="matvec_q8.params")
        bufs = [ch.buffer, xq.q, xq.ds, out, params] + ([bias] if bias is not None else [])
        (target or dev).dispatch(pipe, [dev.bind(pipe, bufs)], grid(-(-ch.rows // (rpt * WG // tpr))))
    return out
