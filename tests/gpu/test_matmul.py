"""shaders/matmul.wgsl through the native backend, against a float64 numpy reference."""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.matmul import matmul
from app.selftest import matmul_selftest


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (16, 16, 16), (17, 33, 5), (64, 48, 96),
                                   (3, 250, 129), (100, 7, 300)])
def test_matmul_matches_numpy(gpu, run, m, n, k):
    rng = np.random.default_rng()
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    ga = gpu.upload(a.tobytes(), kind="activations", label="a")
    gb = gpu.upload(b.tobytes(), kind="activations", label="b")
    gc = run(matmul(gpu, ga, gb, m, n, k))
    c = np.frombuffer(run(gpu.read(gc)), np.float32).reshape(m, n)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    # f32 accumulation over k terms: relative error grows like k * 2^-24 against sum |a||b|.
    bound = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) * k * 2.0 ** -23
    assert np.all(np.abs(c - ref) <= bound + 1e-30)
    for buf in (ga, gb, gc):
        gpu.destroy_buffer(buf)


def test_selftest_reports_its_inputs_and_passes(gpu, run):
    r = run(matmul_selftest(gpu, 19, 23, 31, seed=None))
    a = np.array(r["a"]).reshape(19, 31)
    b = np.array(r["b"]).reshape(31, 23)
    c = np.array(r["c"]).reshape(19, 23)
    assert r["ok"] and np.max(np.abs(c - a @ b)) == pytest.approx(r["max_abs_err"])
    assert np.std(a) > 0.3  # real random inputs, not zeros
