"""shaders/rope_kv.wgsl (app/kernels/rope_kv.py) against float64 numpy.

One token's fused q | k | v row: q rotated in place, rope(k) and v appended to the KV cache at
step.pos. The reference angles are test_rope.py's (transformers' formulas in numpy float64, not
the module's tables).

Tolerances, per element (pair (a, b), attention factor m):
  q and k, rotated dims:  |err| <= (|a| + |b|) * m * 2^-20   test_rope.py's bound and reasoning:
                          the same angle code (lib/rope_angle.wgsl), measured worst ~2^-22.7
  dims past rotary_dim:   exact (copied; q is not touched there)
  v in an f32 cache:      exact (a copy)
  f16 cache:              the f32 value's bound + one f16 ulp, |ref| * 2^-10 + 2^-24
                          (pack2x16float may round either way, as tests/gpu/test_kv_cache.py
                          notes; values here are normal f16 or tiny)
A wrong pair, sign, table or cache row gives errors ~|a|: far above these.
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.grid import step_params, write_step
from app.kernels.kv_cache import KVCache
from app.kernels.rope import rope_table
from app.kernels.rope_kv import rope_kv
from tests.gpu.test_rope import LLAMA3, longrope, ref_inv_freq, ref_rope


def rotate(x, pos, inv, attn, rot, neox):
    """x (H, D) f32 -> (rotated float64, per-element bound without the f16 term)."""
    ref, mag, ia, ib = ref_rope(x[None], pos, inv, attn, rot, neox)
    tol = np.zeros(x.shape)
    tol[..., ia] = tol[..., ib] = (mag * attn * 2.0 ** -20)[0]
    return ref[0], tol


def cache_row(gpu, run, buf, pos, width, f16):
    size = 2 if f16 else 4
    raw = run(gpu.read(buf, pos * width * size, width * size))
    return np.frombuffer(raw, np.float16 if f16 else np.float32).astype(np.float64)


def check_step(gpu, run, gqkv, cache, layer, qkv, pos, nh, nkv, hd, inv, attn, rot, neox):
    """Compare q (in qkv) and the cache row at pos with numpy; qkv is the f32 input row."""
    q, k, v = np.split(qkv, [nh * hd, (nh + nkv) * hd])
    got = np.frombuffer(run(gpu.read(gqkv)), np.float32)
    rq, tq = rotate(q.reshape(nh, hd), pos, inv, attn, rot, neox)
    assert np.all(np.abs(got[:nh * hd] - rq.ravel()) <= tq.ravel()), f"q at pos {pos}"
    assert np.array_equal(got[nh * hd:], qkv[nh * hd:]), "k and v in qkv must stay as they were"
    rk, tk = rotate(k.reshape(nkv, hd), pos, inv, attn, rot, neox)
    for buf, ref, tol, what in ((cache.k[layer], rk.ravel(), tk.ravel(), "k"),
                                (cache.v[layer], v.astype(np.float64), 0.0, "v")):
        row = cache_row(gpu, run, buf, pos, nkv * hd, cache.f16)
        if cache.f16:
            tol = tol + np.abs(ref) * 2.0 ** -10 + 2.0 ** -24
        err = np.abs(row - ref)
        assert np.all(err <= tol), f"{what} at pos {pos}: max err {err.max():.3g}"


# (n_heads, n_kv_heads, head_dim, rotary_dim, neox, theta, scaling)
CASES = [
    (9, 3, 64, 64, False, 10000.0, None),          # SmolLM2-135M
    (14, 2, 64, 64, True, 1000000.0, None),        # Qwen2.5-0.5B
    (8, 2, 128, 128, False, 500000.0, LLAMA3),     # Llama-3.2 (fewer heads)
    (5, 1, 80, 32, True, 10000.0, None),           # partial rotary, half split
    (3, 2, 100, 50, False, 10000.0, None),         # partial rotary, interleaved, 25 pairs
    (4, 2, 100, 50, True, 10000.0, None),          # NeoX with an odd pair count: the f16 word
                                                   # of elements 24, 25 mixes pairs 24 and 0
]
MAX_CTX = 32769
POSITIONS = [0, 17, 4093, 32768 - 7, 32768]


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("nh,nkv,hd,rot,neox,theta,scaling", CASES)
def test_rope_kv_matches_numpy_on_replay(gpu, run, dtype, nh, nkv, hd, rot, neox, theta, scaling):
    """One recorded dispatch replayed at several positions (only the Step uniform changes):
    q rotated in place, each position's cache row written, other rows and layers untouched."""
    rng = np.random.default_rng()
    table = rope_table(gpu, rot, theta, scaling)
    inv, attn = ref_inv_freq(rot, theta, scaling)
    cache = KVCache(gpu, 2, MAX_CTX, nkv, hd, dtype)
    width = (nh + 2 * nkv) * hd
    gqkv = gpu.create_buffer(4 * width, kind="activations", label="qkv")
    step = step_params(gpu, 0, 1)
    plan = gpu.plan("rope_kv-test")
    run(rope_kv(gpu, gqkv, table, cache, 1, step, nh, neox=neox, target=plan))
    assert len(plan) == 1
    rows = {}
    for pos in POSITIONS:
        qkv = rng.standard_normal(width).astype(np.float32)
        gpu.write(gqkv, qkv.tobytes())
        gpu.replay(plan, step, np.array([pos, 1, pos + 1, 0], np.uint32).tobytes())
        run(gpu.check("rope_kv replay"))
        check_step(gpu, run, gqkv, cache, 1, qkv, pos, nh, nkv, hd, inv, attn, rot, neox)
        rows[pos] = qkv
    # every earlier row is still there (checked at its own step above; here only that later
    # replays did not overwrite it: an overwrite would be a different random row, errors ~1)
    for pos in POSITIONS[:-1]:
        k = rows[pos][nh * hd:(nh + nkv) * hd].reshape(nkv, hd)
        ref = rotate(k, pos, inv, attn, rot, neox)[0].ravel()
        got = cache_row(gpu, run, cache.k[1], pos, nkv * hd, cache.f16)
        assert np.allclose(got, ref, rtol=2.0 ** -10, atol=1e-5)
    for pos in (1, 16, 18, 32760):
        for buf in (cache.k[1], cache.v[1]):
            assert not np.any(cache_row(gpu, run, buf, pos, nkv * hd, cache.f16))
    for buf in (cache.k[0], cache.v[0]):
        assert not np.any(np.frombuffer(run(gpu.read(buf)), np.uint8)), "layer 0 was written"
    for b in (gqkv, step, table.buffer):
        gpu.destroy_buffer(b)
    cache.destroy()


@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_longrope_tables_and_seq_end(gpu, run, neox, dtype):
    """Phi-3 longrope: short factors while the forward's end <= 4096, long ones after, the
    attention factor always; the end is step.seq_end when set (a chunked prompt's whole
    length), else pos + n_tokens. Also a qkv view at an offset (the op binds one row)."""
    rng = np.random.default_rng()
    nh, nkv, hd = 4, 2, 96
    scaling = longrope(hd // 2, rng)
    table = rope_table(gpu, hd, 10000.0, scaling)
    cache = KVCache(gpu, 1, 4200, nkv, hd, dtype)
    width = (nh + 2 * nkv) * hd
    buf = gpu.create_buffer(4 * (width + 64), kind="activations", label="qkv+pad")
    view = (buf, 256, 4 * width)
    step = step_params(gpu, 0, 1)
    plan = gpu.plan("rope_kv-longrope")
    run(rope_kv(gpu, view, table, cache, 0, step, nh, neox=neox, target=plan))
    # (pos, seq_end): below, at and past original_max_position_embeddings = 4096
    for pos, seq_end in ((0, 0), (4094, 0), (4095, 0), (4096, 0), (100, 4097), (4150, 4096)):
        qkv = rng.standard_normal(width).astype(np.float32)
        gpu.write(buf, qkv.tobytes(), offset=256)
        gpu.replay(plan, step, np.array([pos, 1, pos + 1, seq_end], np.uint32).tobytes())
        end = seq_end or pos + 1
        inv, attn = ref_inv_freq(hd, 10000.0, scaling, n_ctx=end)
        assert attn > 1.1
        sub = gpu.create_buffer(4 * width, kind="activations", label="qkv.copy")
        raw = run(gpu.read(buf, 256, 4 * width))
        gpu.write(sub, raw)
        check_step(gpu, run, sub, cache, 0, qkv, pos, nh, nkv, hd, inv, attn, hd, neox)
        gpu.destroy_buffer(sub)
    for b in (buf, step, table.buffer):
        gpu.destroy_buffer(b)
    cache.destroy()


def test_rows_past_max_ctx_are_dropped(gpu, run):
    """pos >= max_ctx: q is still rotated, the cache is not written (kv_cache.wgsl's rule)."""
    rng = np.random.default_rng()
    nh, nkv, hd = 2, 1, 64
    table = rope_table(gpu, hd, 10000.0)
    cache = KVCache(gpu, 1, 8, nkv, hd, "f16")
    width = (nh + 2 * nkv) * hd
    qkv = rng.standard_normal(width).astype(np.float32)
    gqkv = gpu.upload(qkv.tobytes(), kind="activations", label="qkv")
    step = step_params(gpu, 8, 1)
    run(rope_kv(gpu, gqkv, table, cache, 0, step, nh))
    got = np.frombuffer(run(gpu.read(gqkv)), np.float32)
    rq, tq = rotate(qkv[:nh * hd].reshape(nh, hd), 8, ref_inv_freq(hd, 10000.0)[0], 1.0, hd,
                    False)
    assert np.all(np.abs(got[:nh * hd] - rq.ravel()) <= tq.ravel())
    for b in (cache.k[0], cache.v[0]):
        assert not np.any(np.frombuffer(run(gpu.read(b)), np.uint8))
    for b in (gqkv, step, table.buffer):
        gpu.destroy_buffer(b)
    cache.destroy()


def test_rejects_bad_arguments(gpu, run):
    table = rope_table(gpu, 64, 10000.0)
    cache = KVCache(gpu, 2, 8, 2, 32)
    small = gpu.create_buffer(4 * (4 + 4) * 32 - 4, kind="activations", label="qkv")
    step = step_params(gpu, 0, 1)
    with pytest.raises(ValueError, match="rotary_dim"):
        run(rope_kv(gpu, small, table, cache, 0, step, 4))
    table32 = rope_table(gpu, 32, 10000.0)
    with pytest.raises(ValueError, match="qkv holds"):
        run(rope_kv(gpu, small, table32, cache, 0, step, 4))
    with pytest.raises(ValueError, match="layer"):
        run(rope_kv(gpu, small, table32, cache, 2, step, 4))
    for b in (small, step, table.buffer, table32.buffer):
        gpu.destroy_buffer(b)
    cache.destroy()
