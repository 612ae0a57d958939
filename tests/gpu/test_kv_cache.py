"""shaders/kv_cache.wgsl: KV-cache writes at Step positions, f32 and packed f16."""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.grid import step_params, write_step
from app.kernels.kv_cache import KVCache, kv_write


def _f16_pairs(raw: bytes, shape) -> np.ndarray:
    """Packed f16 cache rows (2 values per u32, element 2i in the low half = little-endian f16
    order) as float16."""
    return np.frombuffer(raw, np.float16).reshape(shape)


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("n_kv,hd", [(2, 64), (1, 80), (4, 256)])
def test_kv_write_rows_at_step_positions(gpu, run, dtype, n_kv, hd):
    rng = np.random.default_rng()
    # (pos, n_tokens): chunked prefill, decode steps
    max_ctx, chunks = 50, [(0, 7), (7, 1), (8, 21), (29, 1)]
    cache = KVCache(gpu, 2, max_ctx, n_kv, hd, dtype)
    assert gpu.ledger.live["kv_cache"] >= 4 * max_ctx * n_kv * hd * (2 if dtype == "f16" else 4)
    cap = 24  # the k/v buffers hold 24 rows; each step uses only step.n_tokens of them
    kb = gpu.create_buffer(4 * cap * n_kv * hd, kind="activations", label="k")
    vb = gpu.create_buffer(4 * cap * n_kv * hd, kind="activations", label="v")
    step = step_params(gpu, 0, 1)
    K = np.zeros((30, n_kv, hd), np.float32)
    V = np.zeros((30, n_kv, hd), np.float32)
    for pos, n in chunks:
        k = rng.standard_normal((cap, n_kv, hd)).astype(np.float32) * 3
        v = rng.standard_normal((cap, n_kv, hd)).astype(np.float32) * 3
        gpu.write(kb, k.tobytes())
        gpu.write(vb, v.tobytes())
        write_step(gpu, step, pos, n)
        run(kv_write(gpu, cache, 1, kb, vb, step))
        K[pos:pos + n], V[pos:pos + n] = k[:n], v[:n]
    for buf, ref in ((cache.k[1], K), (cache.v[1], V)):
        raw = run(gpu.read(buf))
        if dtype == "f32":
            got = np.frombuffer(raw, np.float32).reshape(max_ctx, n_kv, hd)
            assert np.array_equal(got[:30], ref)  # a copy: exact
        else:
            got = _f16_pairs(raw, (max_ctx, n_kv, hd))
            # pack2x16float may round either way (WGSL leaves the mode to the implementation):
            # within one f16 ulp (2^-10 relative, values here are normal f16) of the f32 input.
            err = np.abs(got[:30].astype(np.float64) - ref)
            assert np.all(err <= np.abs(ref) * 2.0 ** -10 + 2.0 ** -24)
        assert not np.any(got[30:].astype(np.float32))  # rows past the last step untouched
    assert not np.any(np.frombuffer(run(gpu.read(cache.k[0])), np.uint8))  # other layer untouched
    for b in (kb, vb, step):
        gpu.destroy_buffer(b)
    cache.destroy()


def test_kv_write_drops_rows_past_max_ctx(gpu, run):
    rng = np.random.default_rng()
    cache = KVCache(gpu, 1, 10, 1, 4)
    k = rng.standard_normal((4, 1, 4)).astype(np.float32)
    kb = gpu.upload(k.tobytes(), kind="activations", label="k")
    step = step_params(gpu, 8, 4)  # rows 8, 9 fit; 10, 11 do not
    run(kv_write(gpu, cache, 0, kb, kb, step))
    got = np.frombuffer(run(gpu.read(cache.k[0])), np.float32).reshape(10, 1, 4)
    assert np.array_equal(got[8:], k[:2]) and not np.any(got[:8])
    for b in (kb, step):
        gpu.destroy_buffer(b)
    cache.destroy()


def test_cache_checks_and_frees(gpu):
    before = gpu.ledger.live.get("kv_cache", 0)
    cache = KVCache(gpu, 3, 16, 2, 64, "f16")
    assert gpu.ledger.live["kv_cache"] - before == 6 * 16 * 2 * 64 * 2
    cache.destroy()
    assert gpu.ledger.live.get("kv_cache", 0) == before
    with pytest.raises(ValueError, match="dtype"):
        KVCache(gpu, 1, 16, 2, 64, "bf16")
    with pytest.raises(ValueError, match="multiple of 4"):
        KVCache(gpu, 1, 16, 2, 66)
