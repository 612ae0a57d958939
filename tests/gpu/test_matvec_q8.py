"""shaders/quantize_x.wgsl + shaders/matvec_q8.wgsl (app.kernels.matvec: quantize_x, matvec(xq=))
against float64 numpy.

1. quantize_x is checked bit-exactly: d_x = f32(amax) * f32(1/127) and q = rint(f32(x * s)) clipped
   to +-127 (s = the GPU's stored multiplier, s ~ 127 / amax within a few ULP), reproduced in numpy
   float32; sum_x against the float64 sum (31 f32 additions: <= 31 u sum|x|).
2. matvec_q8 against a float64 reference from the SAME quantized x: with x^ = q * d_x (per block),
   y = S @ x^ + M @ x, where W = S + M, S the scale part (d*q, d*sc*q, ...) and M the min part
   (m of q4_1/q5_1, -dmin*mn of q4_k/q5_k, 0 otherwise); the kernel's integer dots are exact, then
   each block does <= 6 f32 roundings, the sum over units and the tree add <= nb + 8 more (nb = x
   blocks per row): worst case |err| <= (nb + 16) u (|S| @ |x^| + |M| @ |x|) + 32 u |M| @ |x| (the
   f32 sum_x), u = 2^-24. (Plus 1 u |q6 int sums| when an int sum exceeds 2^24: included in the
   (nb + 16) u slack, since that is one more rounding.) A wrong bit gives errors ~ |W| |x|.
3. Against the exact f32-path reference W @ x: |err| <= |S| @ |x - x^| (computed from the real
   x^, bounded by |S| @ (d_x / 2)) + the bound of 2. We check the stated a-priori form
   |S| @ (d_x / 2 * (1 + 1e-5)) + bound 2 (1e-5: s vs 1/d_x differ by a few ULP).
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.layouts import GGUF_BLOCK, LAYOUT_OF
from app.kernels.matvec import Q8_UNIT, matvec, quantize_x
from tests.gpu.test_matvec import upload_weight
from tests.quant_data import TYPES, random_weight, reference, to_internal

U = 2.0 ** -24
QTYPES = [t for t in TYPES if LAYOUT_OF[t] in Q8_UNIT]


def split(t: str, raw: np.ndarray, rows: int, cols: int):
    """(W, M) float64: W the dequantized weight, M its min part (zero d -> only the min term)."""
    W = reference(t, raw, rows, cols)
    if t in ("Q4_0", "Q5_0"):  # internal q4_1/q5_1 bytes = GGUF Q4_1/Q5_1 with m = -8d / -16d
        raw, t = to_internal(t, raw), {"Q4_0": "Q4_1", "Q5_0": "Q5_1"}[t]
    if t not in ("Q4_1", "Q5_1", "Q4_K", "Q5_K"):
        return W, np.zeros_like(W)
    b = raw.copy().reshape(-1, GGUF_BLOCK[t][1])
    b[:, 0:2] = 0  # d = 0
    return W, reference(t, b.reshape(-1), rows, cols)


def quantize_ref(x: np.ndarray, s: np.ndarray):
    """numpy float32 reproduction of quantize_x (s: the GPU's multipliers per block)."""
    xb = x.reshape(-1, 32)
    amax = np.max(np.abs(xb), axis=1)
    d = amax * np.float32(1 / 127)
    q = np.clip(np.rint(xb * s[:, None].astype(np.float32)), -127, 127).astype(np.int8)
    return q.reshape(x.shape), d


def read_xq(dev, run, xq, n):
    q = np.frombuffer(run(dev.read(xq.q)), np.int8)[:n]
    ds = np.frombuffer(run(dev.read(xq.ds)), np.float32).reshape(-1, 2)
    s = np.frombuffer(run(dev.read(xq.inv)), np.float32)
    return q, ds[:, 0], ds[:, 1], s


def check_quantize(x, q, d, sx, s):
    qr, dr = quantize_ref(x.reshape(-1), s)
    xb = x.reshape(-1, 32).astype(np.float64)
    amax = np.max(np.abs(xb), axis=1)
    assert np.all(np.abs(s * amax.astype(np.float32) - 127) <= 127 * 4e-7), "s != 127 / amax"
    assert np.array_equal(d, dr), "d_x not bit-exact"
    assert np.array_equal(q, qr), f"q differs at {np.count_nonzero(q != qr)} places"
    assert np.all(np.abs(sx - xb.sum(1)) <= 31 * U * np.abs(xb).sum(1) + 1e-30)


def run_case(dev, run, t, rows, nb, n_vec, splits=(), bias=False, acc=False):
    rng = np.random.default_rng()
    cols = GGUF_BLOCK[t][0] * nb
    raw = random_weight(t, rows, cols, rng)
    w = upload_weight(dev, t, raw, rows, cols, splits)
    x = (rng.standard_normal((n_vec, cols)) * rng.uniform(0.1, 10, (n_vec, cols // 32)).repeat(32, 1)
         ).astype(np.float32)
    gx = dev.upload(x.tobytes(), kind="activations", label="x")
    xq = run(quantize_x(dev, gx, cols, n_vec))
    q, d, sx, s = read_xq(dev, run, xq, n_vec * cols)
    check_quantize(x, q, d, sx, s)
    W, M = split(t, raw, rows, cols)
    S = W - M
    xh = (q.astype(np.float64).reshape(-1, 32) * d[:, None].astype(np.float64)).reshape(n_vec, cols)
    x64 = x.astype(np.float64)
    ref = xh @ S.T + x64 @ M.T
    bound = ((nb * GGUF_BLOCK[t][0] // 32 + 16) * U * (np.abs(xh) @ np.abs(S).T + np.abs(x64) @ np.abs(M).T)
             + 32 * U * (np.abs(x64) @ np.abs(M).T))
    exact = x64 @ W.T
    bound2 = bound + (np.repeat(d.astype(np.float64), 32).reshape(n_vec, cols) / 2 * (1 + 1e-5)) @ np.abs(S).T
    extra = {}
    if bias:
        b = rng.standard_normal(rows).astype(np.float32)
        extra["bias"] = dev.upload(b.tobytes(), kind="activations", label="bias")
        ref, exact = ref + b, exact + b
    if acc:
        prev = rng.standard_normal((n_vec, rows)).astype(np.float32)
        extra["out"] = dev.upload(prev.tobytes(), kind="activations", label="y")
        extra["accumulate"] = True
        ref, exact = ref + prev, exact + prev
    slack = 4 * U * np.abs(ref) if (bias or acc) else 0.0
    gy = run(matvec(dev, w, gx, n_vec=n_vec, xq=xq, **extra))
    y = np.frombuffer(run(dev.read(gy)), np.float32)[:n_vec * rows].reshape(n_vec, rows)
    err = np.abs(y - ref)
    assert np.all(err <= bound + slack + 1e-30), f"same-x: max err/bound {np.max(err / (bound + 1e-30)):.3g}"
    err2 = np.abs(y - exact)
    assert np.all(err2 <= bound2 + slack + 1e-30), f"exact: max err/bound {np.max(err2 / bound2):.3g}"
    # the q8 path really differs from the exact path: x quantization error is visible
    assert np.max(np.abs(y - exact)) > 0
    xq.destroy(dev)
    for b in (gx, gy, extra.get("bias")):
        if b is not None:
            dev.destroy_buffer(b)
    w.destroy(dev)


# (rows, blocks per row, n_vec): rows not multiples of rows per workgroup; 1..3 blocks, longer rows.
SHAPES = [(1, 1, 1), (37, 2, 2), (300, 3, 1), (67, 16, 3), (5, 40, 8)]


@pytest.mark.parametrize("t", QTYPES)
@pytest.mark.parametrize("rows,nb,n_vec", SHAPES)
def test_matvec_q8(gpu, run, t, rows, nb, n_vec):
    run_case(gpu, run, t, rows, nb, n_vec)


@pytest.mark.parametrize("t", QTYPES)
def test_matvec_q8_chunks_bias_accumulate(gpu, run, t):
    run_case(gpu, run, t, 203, 3, 2, splits=(50, 51), bias=True, acc=True)


def test_matvec_q8_spill_into_y(gpu, run):
    """262161 rows of one q8_0 block with TPR 256 (4 rows per workgroup): 65541 workgroups, so
    the grid spills into y. Tolerance as in the module docstring (nb = 1: 17 u)."""
    t, rows, cols = "Q8_0", 4 * 65540 + 1, 32
    rng = np.random.default_rng()
    raw = random_weight(t, rows, cols, rng)
    w = upload_weight(gpu, t, raw, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    xq = run(quantize_x(gpu, gx, cols))
    q, d, _, _ = read_xq(gpu, run, xq, cols)
    W = reference(t, raw, rows, cols)
    xh = q.astype(np.float64) * float(d[0])
    gy = run(matvec(gpu, w, gx, xq=xq, tpr=256))
    y = np.frombuffer(run(gpu.read(gy)), np.float32)[:rows]
    assert np.all(np.abs(y - W @ xh) <= 17 * U * (np.abs(W) @ np.abs(xh)) + 1e-30)
    xq.destroy(gpu)
    for b in (gx, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)
