"""Numeric oracle for app/kernels/matmul_sgmat.py, in pure Python (no numpy: it also runs in
Pyodide, through Dawn: `node app/bench/node/run.mjs sgmat-check`, the only place the
subgroup-matrix feature exists; tests/gpu/test_matmul_sgmat.py calls it where the device has it).

For each case: random weight blocks written byte by byte in the internal layout (q4_1: d, m f16 and
16 nibble bytes; q8_0a: d f16 and 32 int8), fresh random x (n_tokens, cols), bias and a previous Y
for the ACC variant; Y poisoned with NaN before the run (an unwritten output fails). Two references
in float64 from the same dequantized weights:

  exact:     Y = x @ W^T (+ bias)(+ Y0). The kernel rounds x to int8 per block (q = round(x s),
             |q d - x| <= d / 2, d = max|x| / 127 of the block), so per output
             |err| <= sum_b d_b / 2 sum_{k in b} |w_k|  +  slack,
  quantized: the same sum over the GPU's own q and (d, sum x) (read back from quantize_x; the min
             term m sum_x of q4_1 uses the exact block sum, as the kernel does): only
             f32 rounding separates it from the kernel: |err| <= 64 cols 2^-24 (|q d| @ |W|^T + |Y0|
             + |bias|), a deterministic f32 bound with margin, far below an indexing error.
slack (f32 terms of the exact check) = the quantized bound. Reports the largest error relative to
each bound and to max |Y|."""
from __future__ import annotations

import math
import random
import struct

from ..gpu import Device
from ..kernels import matmul_sgmat as sg
from ..kernels.layouts import Chunk, GPUWeight
from ..kernels.matvec import quantize_x

U = 2.0 ** -24
# (layout, n_tokens, rows, cols, bias, accumulate): edges below / across the 64 x 64 tile
CASES = [("q4_1", 70, 100, 320, False, False), ("q8_0a", 130, 65, 96, True, False),
         ("q4_1", 1, 7, 32, True, True), ("q8_0a", 64, 128, 128, False, True),
         ("q4_1", 129, 64, 128, True, True)]


def f16(v: float) -> float:
    """v rounded to f16 (the value the weight block stores)."""
    return struct.unpack("<e", struct.pack("<e", v))[0]


def make_weight(layout: str, rows: int, cols: int, rng: random.Random):
    """(bytes of the internal layout, dequantized rows as lists of floats, per-row block mins)."""
    out, deq, mins = bytearray(), [], []
    for _ in range(rows):
        row, rmin = [], []
        for _ in range(cols // 32):
            d = f16(rng.uniform(0.002, 0.05) * rng.choice((1, -1)))
            if layout == "q4_1":
                m = f16(rng.uniform(-0.4, 0.1))
                q = [rng.randrange(16) for _ in range(32)]
                out += struct.pack("<ee", d, m) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
                row += [qj * d + m for qj in q]
                rmin.append(m)
            else:
                q = [rng.randrange(-127, 128) for _ in range(32)]
                out += struct.pack("<eH", d, 0) + struct.pack("<32b", *q)
                row += [qj * d for qj in q]
                rmin.append(0.0)
        deq.append(row)
        mins.append(rmin)
    return bytes(out), deq, mins


def f32s(b: bytes) -> list:
    return list(struct.unpack(f"<{len(b) // 4}f", b))


async def check_case(dev: Device, layout, n, rows, cols, use_bias, acc, rng) -> dict:
    raw, wd, mn = make_weight(layout, rows, cols, rng)
    w = GPUWeight(f"check.{layout}", layout, rows, cols,
                  [Chunk(dev.upload(raw, kind="weights", label="check.w"), 0, rows)])
    x = [[rng.gauss(0, 1) * (3 if rng.random() < 0.02 else 1) for _ in range(cols)]
         for _ in range(n)]
    x = [f32s(struct.pack(f"<{cols}f", *r)) for r in x]           # the f32 values the GPU sees
    bias = f32s(struct.pack(f"<{rows}f", *(rng.uniform(-1, 1) for _ in range(rows))))
    y0 = (f32s(struct.pack(f"<{n * rows}f", *(rng.uniform(-2, 2) for _ in range(n * rows))))
          if acc else [math.nan] * (n * rows))
    bufs = []
    try:
        xb = dev.upload(struct.pack(f"<{n * cols}f", *(v for r in x for v in r)),
                        kind="activations", label="check.x")
        bb = dev.upload(struct.pack(f"<{rows}f", *bias), kind="activations", label="check.b")
        yb = dev.upload(struct.pack(f"<{n * rows}f", *y0), kind="activations", label="check.y")
        bufs = [xb, bb, yb]
        xq = await quantize_x(dev, xb, cols, n_vec=n)
        await sg.matmul_sgmat(dev, w, xq, n, out=yb, bias=bb if use_bias else None,
                              accumulate=acc)
        await dev.check("matmul_sgmat check")
        got = f32s(await dev.read(yb, 0, 4 * n * rows))
        q = struct.unpack(f"<{n * cols}b", await dev.read(xq.q, 0, n * cols))
        ds = f32s(await dev.read(xq.ds, 0, 8 * n * cols // 32))
        xq.destroy(dev)
    finally:
        w.destroy(dev)
        for b in bufs:
            dev.destroy_buffer(b)
    worst = {"exact": 0.0, "quantized": 0.0, "max_abs_err": 0.0, "max_abs_y": 0.0}
    nb = cols // 32
    for t in range(n):
        xt = x[t]
        dq = [ds[2 * (t * nb + k // 32)] * q[t * cols + k] for k in range(cols)]
        for r in range(rows):
            wr = wd[r]
            extra = (bias[r] if use_bias else 0.0) + (y0[t * rows + r] if acc else 0.0)
            mag_extra = abs(extra)
            exact = math.fsum(a * b for a, b in zip(xt, wr)) + extra
            # the kernel takes the min term from the exact block sum of x (quantize_x ds.y)
            mins = mn[r]
            quant = math.fsum([dq[k] * (wr[k] - mins[k // 32]) for k in range(cols)]
                              + [mins[b] * ds[2 * (t * nb + b) + 1] for b in range(nb)]) + extra
            mag = (sum(abs(a * b) for a, b in zip(dq, wr)) + mag_extra
                   + sum(abs(mins[b] * ds[2 * (t * nb + b) + 1]) for b in range(nb)))
            fbound = 64 * cols * U * mag + 1e-30
            rbound = sum(ds[2 * (t * nb + b)] / 2 * sum(abs(v) for v in wr[32 * b:32 * b + 32])
                         for b in range(nb)) + fbound
            g = got[t * rows + r]
            if not math.isfinite(g):
                raise AssertionError(f"{layout} {n}x{rows}x{cols}: Y[{t}, {r}] = {g} (unwritten?)")
            worst["exact"] = max(worst["exact"], abs(g - exact) / rbound)
            worst["quantized"] = max(worst["quantized"], abs(g - quant) / fbound)
            worst["max_abs_err"] = max(worst["max_abs_err"], abs(g - exact))
            worst["max_abs_y"] = max(worst["max_abs_y"], abs(exact))
    return worst


async def run(dev: Device, seed: int | None = None, cases=CASES) -> list:
    """Every case; raises AssertionError on an error above its bound. Returns the reports."""
    rng = random.Random(seed)
    reports = []
    for case in cases:
        r = await check_case(dev, *case, rng)
        layout, n, rows, cols, use_bias, acc = case
        line = (f"{layout:6s} {n:4d} tok x {rows:4d} rows x {cols:4d} cols bias={int(use_bias)} "
                f"acc={int(acc)}: err/bound exact {r['exact']:.3f}, vs own int8 x "
                f"{r['quantized']:.3f}; max |err| {r['max_abs_err']:.3g} (max |Y| "
                f"{r['max_abs_y']:.3g})")
        print(line, flush=True)
        reports.append((case, r))
        if r["exact"] > 1 or r["quantized"] > 1:
            raise AssertionError(f"matmul_sgmat out of bounds: {line}")
    return reports
