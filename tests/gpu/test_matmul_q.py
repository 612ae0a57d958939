"""shaders/matmul_q.wgsl (app/kernels/matmul_q.py) against float64 numpy on gguf-py's dequantization.

Weights are built from tests/quant_data.py directly (see test_matvec.py, whose helpers we reuse).

f32 path (f16=False). Tolerance as test_matvec.py: each output is one f32 sum over cols of
products of an f32 dequantized weight (the weight itself rounded once: scale * q + min, relative to
T) and x, so |err| <= c * sqrt(n) * 2^-24 * (T @ |x|) with n = cols + 64 and c = 4 (the worst case
is n * 2^-24 * (T @ |x|); rounding errors of random data add like a random walk).

f16-compute variant (SHADER_F16, f16=True; lavapipe has shader-f16). The kernel rounds the f32
dequantized weight and x to f16 (relative error <= u = 2^-11 each, normal range), multiplies in
f16 (one rounding, u) and sums m = F16_FLUSH consecutive products in f16 (partial sums of at most m
products: <= (m - 1) u * sum |products| per segment), then adds each segment exactly converted to
f32 into an f32 sum. Worst case, to first order in u, for every output:
    |err| <= (m + 2) u (T @ |x|)                                operands, products, f16 sums
           + 2^-25 (sum_k |x_k| + sum_k T_k + 2 cols)            f16 subnormals (abs. spacing 2^-24)
           + the f32 bound above                                 f32 dequant + f32 segment sums
We use (m + 3) u for the second-order terms. This is a deterministic bound (it cannot fail on
correct f16 math) and ~ (m + 3) 2^-11 = 0.5% of T @ |x|: loose against single wrong decoded
elements, which the f32-path tests (same decoders, tolerance ~1e-6) catch; the f16 tests check the
f16 staging, tile indexing and accumulation, whose bugs give errors ~ T @ |x|.
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels import matmul_q as mq
from app.kernels.layouts import GGUF_BLOCK
from app.kernels.matmul_q import matmul_q
from tests.gpu.test_matvec import U, blocks_cols, magnitudes, upload_weight
from tests.quant_data import TYPES, random_weight, reference

C = 4.0
U16 = 2.0 ** -11
# (n_tokens, rows, blocks per row): tokens and rows below, at and above the 128 x 128 tile and not
# multiples of it; 1, 2, 3 blocks (dense: 1, 2, 3 columns, i.e. partial K steps).
SHAPES = [(1, 1, 1), (5, 37, 2), (64, 64, 3), (130, 70, 2), (67, 129, 5)]
F16_SHAPES = [(3, 5, 1), (130, 129, 3)]


def _read(dev, run, buf, shape):
    return np.frombuffer(run(dev.read(buf)), np.float32)[:shape[0] * shape[1]].reshape(shape)


def case(dev, t, rows, cols, n_tokens, splits=(), rng=None):
    """(GPUWeight, x, float64 reference, f32-path bound, f16-path bound)."""
    rng = rng or np.random.default_rng()
    raw = random_weight(t, rows, cols, rng)
    w = upload_weight(dev, t, raw, rows, cols, splits)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    ax = np.abs(x).astype(np.float64)
    mag = magnitudes(t, raw, rows, cols)
    tx = ax @ mag.T
    ref = x.astype(np.float64) @ reference(t, raw, rows, cols).T
    b32 = C * np.sqrt(cols + 64) * U * tx
    sub = 2.0 ** -25 * (ax.sum(1)[:, None] + mag.sum(1)[None, :] + 2 * cols)
    b16 = (mq.F16_FLUSH + 3) * U16 * tx + sub + b32
    return w, x, ref, b32, b16


def _check(y, ref, bound):
    err = np.abs(y - ref)
    assert np.all(err <= bound + 1e-30), f"max err/bound {np.max(err / (bound + 1e-30)):.3g}"


@pytest.fixture
def f16_gpu(gpu):
    if "shader-f16" not in gpu.features:
        pytest.skip("adapter lacks shader-f16")
    return gpu


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("n_tokens,rows,nb", SHAPES)
def test_matmul_q_matches_reference(gpu, run, t, n_tokens, rows, nb):
    """f32 path."""
    cols = blocks_cols(t, nb)
    w, x, ref, bound, _ = case(gpu, t, rows, cols, n_tokens)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gy = run(matmul_q(gpu, w, gx, n_tokens, f16=False))
    _check(_read(gpu, run, gy, (n_tokens, rows)), ref, bound)
    for b in (gx, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


@pytest.mark.parametrize("t", TYPES)
def test_chunks_bias_accumulate(gpu, run, t):
    """f32 path: three uneven row chunks (one crossing a tile edge), f32 bias, accumulate."""
    rng = np.random.default_rng()
    n_tokens, rows = 67, 150
    cols = blocks_cols(t, 2) if GGUF_BLOCK[t][0] > 1 else 72
    w, x, ref, bound, _ = case(gpu, t, rows, cols, n_tokens, splits=(70, 71), rng=rng)
    bias = rng.standard_normal(rows).astype(np.float32)
    prev = rng.standard_normal((n_tokens, rows)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gb = gpu.upload(bias.tobytes(), kind="activations", label="bias")
    gy = gpu.upload(prev.tobytes(), kind="activations", label="y")
    run(matmul_q(gpu, w, gx, n_tokens, out=gy, bias=gb, accumulate=True, f16=False))
    want = ref + bias + prev
    slack = 4 * U * (np.abs(bias) + np.abs(prev) + np.abs(want))
    assert np.all(np.abs(_read(gpu, run, gy, (n_tokens, rows)) - want) <= bound + slack)
    gy2 = run(matmul_q(gpu, w, gx, n_tokens, bias=gb, f16=False))
    want2 = ref + bias
    slack2 = 4 * U * (np.abs(bias) + np.abs(want2))
    assert np.all(np.abs(_read(gpu, run, gy2, (n_tokens, rows)) - want2) <= bound + slack2)
    for b in (gx, gb, gy, gy2):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("n_tokens,rows,nb", F16_SHAPES)
def test_f16_matches_reference(f16_gpu, run, t, n_tokens, rows, nb):
    """f16-compute variant, every layout; the larger shape spans 2 x 2 tiles, partial in both."""
    gpu = f16_gpu
    # dense: 37 (odd: scalar x loads, rows at odd half-words) and 116 (vec4 x, partial K step)
    cols = blocks_cols(t, nb) if GGUF_BLOCK[t][0] > 1 else {1: 37, 3: 116}[nb]
    w, x, ref, _, bound = case(gpu, t, rows, cols, n_tokens)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gy = run(matmul_q(gpu, w, gx, n_tokens, f16=True))
    _check(_read(gpu, run, gy, (n_tokens, rows)), ref, bound)
    for b in (gx, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


@pytest.mark.parametrize("t", ["Q4_K", "F16"])
def test_f16_chunks_bias_accumulate_and_default(f16_gpu, run, t):
    """f16 variant with chunks, bias and accumulate; f16=None picks it on a shader-f16 device
    (bit-identical to f16=True, and different from the f32 path's result, which is the
    default)."""
    gpu = f16_gpu
    rng = np.random.default_rng()
    n_tokens, rows = 67, 150
    cols = blocks_cols(t, 2) if GGUF_BLOCK[t][0] > 1 else 72
    w, x, ref, _, bound = case(gpu, t, rows, cols, n_tokens, splits=(70, 71), rng=rng)
    bias = rng.standard_normal(rows).astype(np.float32)
    prev = rng.standard_normal((n_tokens, rows)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gb = gpu.upload(bias.tobytes(), kind="activations", label="bias")
    gy = gpu.upload(prev.tobytes(), kind="activations", label="y")
    run(matmul_q(gpu, w, gx, n_tokens, out=gy, bias=gb, accumulate=True, f16=True))
    want = ref + bias + prev
    slack = 4 * U * (np.abs(bias) + np.abs(prev) + np.abs(want))
    _check(_read(gpu, run, gy, (n_tokens, rows)), want, bound + slack)
    outs = {f: run(matmul_q(gpu, w, gx, n_tokens, f16=f)) for f in (None, True, False)}
    outs["default"] = run(matmul_q(gpu, w, gx, n_tokens))
    ys = {f: _read(gpu, run, b, (n_tokens, rows)) for f, b in outs.items()}
    assert np.array_equal(ys[None], ys[True])
    assert not np.array_equal(ys[None], ys[False])
    assert np.array_equal(ys["default"], ys[False])
    for b in (gx, gb, gy, *outs.values()):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


def test_rejects_bad_arguments(gpu, run):
    w, x, _, _, _ = case(gpu, "Q4_0", 4, 32, 2)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    with pytest.raises(ValueError, match="x holds"):
        run(matmul_q(gpu, w, gx, 3))
    with pytest.raises(ValueError, match="accumulate"):
        run(matmul_q(gpu, w, gx, 2, accumulate=True))
    gpu.destroy_buffer(gx)
    w.destroy(gpu)
