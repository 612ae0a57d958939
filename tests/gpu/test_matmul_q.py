"""shaders/matmul_q.wgsl (app/kernels/matmul_q.py) against float64 numpy on gguf-py's dequantization.

Weights are built from tests/quant_data.py directly (see test_matvec.py, whose helpers we reuse).
Tolerance: as test_matvec.py. Each output is one f32 sum over cols of products of an f32
dequantized weight (the weight itself rounded once: scale * q + min, relative to T) and x, so
|err| <= c * sqrt(n) * 2^-24 * (T @ |x|) with n = cols + 64 and c = 4 (the worst case is
n * 2^-24 * (T @ |x|); rounding errors of random data add like a random walk).
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.layouts import GGUF_BLOCK
from app.kernels.matmul_q import matmul_q
from tests.gpu.test_matvec import U, blocks_cols, case
from tests.quant_data import TYPES

# (n_tokens, rows, blocks per row): tokens and rows below, at and above the 64 x 64 tile and not
# multiples of it; 1, 2, 3 blocks (dense: 1, 2, 3 columns, i.e. partial K steps).
SHAPES = [(1, 1, 1), (5, 37, 2), (64, 64, 3), (70, 130, 2), (129, 67, 5)]


def _read(dev, run, buf, shape):
    return np.frombuffer(run(dev.read(buf)), np.float32)[:shape[0] * shape[1]].reshape(shape)


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("n_tokens,rows,nb", SHAPES)
def test_matmul_q_matches_reference(gpu, run, t, n_tokens, rows, nb):
    cols = blocks_cols(t, nb)
    w, x, ref, bound = case(gpu, t, rows, cols, n_tokens)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gy = run(matmul_q(gpu, w, gx, n_tokens))
    y = _read(gpu, run, gy, (n_tokens, rows))
    err = np.abs(y - ref)
    assert np.all(err <= bound + 1e-30), f"max err/bound {np.max(err / (bound + 1e-30)):.3g}"
    for b in (gx, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


@pytest.mark.parametrize("t", TYPES)
def test_chunks_bias_accumulate(gpu, run, t):
    """Three uneven row chunks (one crossing a tile edge), f32 bias, accumulate into out."""
    rng = np.random.default_rng()
    n_tokens, rows = 67, 150
    cols = blocks_cols(t, 2) if GGUF_BLOCK[t][0] > 1 else 72
    w, x, ref, bound = case(gpu, t, rows, cols, n_tokens, splits=(70, 71), rng=rng)
    bias = rng.standard_normal(rows).astype(np.float32)
    prev = rng.standard_normal((n_tokens, rows)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gb = gpu.upload(bias.tobytes(), kind="activations", label="bias")
    gy = gpu.upload(prev.tobytes(), kind="activations", label="y")
    run(matmul_q(gpu, w, gx, n_tokens, out=gy, bias=gb, accumulate=True))
    want = ref + bias + prev
    slack = 4 * U * (np.abs(bias) + np.abs(prev) + np.abs(want))
    assert np.all(np.abs(_read(gpu, run, gy, (n_tokens, rows)) - want) <= bound + slack)
    gy2 = run(matmul_q(gpu, w, gx, n_tokens, bias=gb))
    want2 = ref + bias
    slack2 = 4 * U * (np.abs(bias) + np.abs(want2))
    assert np.all(np.abs(_read(gpu, run, gy2, (n_tokens, rows)) - want2) <= bound + slack2)
    for b in (gx, gb, gy, gy2):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


def test_rejects_bad_arguments(gpu, run):
    w, x, _, _ = case(gpu, "Q4_0", 4, 32, 2)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    with pytest.raises(ValueError, match="x holds"):
        run(matmul_q(gpu, w, gx, 3))
    with pytest.raises(ValueError, match="accumulate"):
        run(matmul_q(gpu, w, gx, 2, accumulate=True))
    gpu.destroy_buffer(gx)
    w.destroy(gpu)
