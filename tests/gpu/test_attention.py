"""shaders/attention_decode.wgsl, attention_decode_cpu.wgsl (the barrier-free variant for CPU
adapters; both run here whatever the adapter is), attention_prefill.wgsl and
attention_prefill_cpu.wgsl (likewise) against a float64 numpy reference.

Tolerance (all tests): every output row is a convex combination of V rows computed in f32
(u = 2^-24). Rounding in a head_dim-term dot product moves a logit by about
u * sqrt(head_dim) * scale * sum|q||k| (a random walk, the usual size of f32 summation error),
which moves the output by about that times max|v|; the softmax-weighted sum of kv_len rows adds
about u * sqrt(kv_len) * max|v|. The test allows the sum of these typical sizes:
    |out - ref| <= u * max|V| * (sqrt(head_dim) * (1 + scale * max sum|q||k|) + sqrt(kv_len))
(1e-5 .. 2e-4 over these shapes; observed errors stay below 3% of it). It is an estimate of the
typical error, not a worst-case bound, kept tight on purpose: one missing or extra key among
1500 moves outputs by ~1e-3, a wrong mask, scale or softcap by far more.
f16 KV: the reference reads the cache back from the GPU and decodes it as float16, so it uses
exactly the f16-rounded k/v the kernel read (the rounding itself is checked in test_kv_cache.py);
what remains is the f32 arithmetic above, so the same tolerance applies.
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.attention import CHUNK_MIN, attention_decode, attention_prefill
from app.kernels.grid import step_params, write_step
from app.kernels.kv_cache import KVCache, kv_write


def reference(q, K, V, positions, scale, softcap=0.0, window=0):
    """Plain float64 attention. q (T, H, D); K, V (L, KVH, D); query t sits at positions[t] and
    attends keys lo..positions[t], lo = max(0, positions[t] + 1 - window) when window > 0.
    Head h reads kv head h // (H / KVH)."""
    T, H, D = q.shape
    G = H // K.shape[1]
    out = np.empty((T, H, D))
    for t, p in enumerate(positions):
        lo = max(0, p + 1 - window) if window else 0
        k = np.repeat(K[lo:p + 1], G, axis=1)  # (n, H, D)
        v = np.repeat(V[lo:p + 1], G, axis=1)
        s = np.einsum("hd,nhd->hn", q[t], k) * scale
        if softcap:
            s = softcap * np.tanh(s / softcap)
        w = np.exp(s - s.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        out[t] = np.einsum("hn,nhd->hd", w, v)
    return out


def tolerance(q, K, V, scale, kv_len):
    d = q.shape[-1]
    logit_mass = scale * (np.abs(q).reshape(-1, d) @ np.abs(K).reshape(-1, d).T).max()
    return 2.0 ** -24 * np.abs(V).max() * (np.sqrt(d) * (1 + logit_mass) + np.sqrt(kv_len))


def upload(gpu, a, label):
    return gpu.upload(np.ascontiguousarray(a, np.float32).tobytes(), kind="activations",
                      label=label)


def read(gpu, run, buf, shape):
    return np.frombuffer(run(gpu.read(buf, 0, 4 * int(np.prod(shape)))), np.float32).reshape(shape)


def cache_rows(gpu, run, cache, layer, n):
    """K, V rows 0..n-1 as the GPU holds them (f16 decoded exactly), float64."""
    dt = np.float16 if cache.f16 else np.float32
    shape = (cache.max_ctx, cache.n_kv_heads, cache.head_dim)
    return tuple(np.frombuffer(run(gpu.read(b)), dt).reshape(shape)[:n].astype(np.float64)
                 for b in (cache.k[layer], cache.v[layer]))


def filled_cache(gpu, run, rng, chunks, n_kv, hd, dtype, max_ctx, layer=1):
    """A 2-layer cache whose `layer` gets fresh random rows through kv_write, one call per
    (pos, n_tokens) chunk; returns the cache and its rows as the GPU holds them."""
    cache = KVCache(gpu, 2, max_ctx, n_kv, hd, dtype)
    step = step_params(gpu, 0, 1)
    end = max(p + n for p, n in chunks)
    sent = np.zeros((2, end, n_kv, hd), np.float32)
    for pos, n in chunks:
        sent[:, pos:pos + n] = rng.standard_normal((2, n, n_kv, hd))
        k, v = upload(gpu, sent[0, pos:pos + n], "k"), upload(gpu, sent[1, pos:pos + n], "v")
        write_step(gpu, step, pos, n)
        run(kv_write(gpu, cache, layer, k, v, step))
        gpu.destroy_buffer(k)
        gpu.destroy_buffer(v)
    gpu.destroy_buffer(step)
    K, V = cache_rows(gpu, run, cache, layer, end)
    # The rows landed where they belong. f32: exact copies; f16: within one f16 ulp
    # (|x| 2^-10 for normal values, 2^-24 for subnormals; see test_kv_cache.py).
    ulp = np.abs(sent) * 2.0 ** -10 + 2.0 ** -24 if cache.f16 else 0.0
    assert np.all(np.abs(np.stack([K, V]) - sent) <= ulp)
    return cache, K, V


# (head_dim, n_heads, n_kv_heads, kv_len, kv dtype, kwargs, q multiplier)
DECODE = [
    (64, 4, 4, 1, "f32", {}, 1),
    (64, 8, 2, 37, "f16", {}, 1),
    (96, 4, 4, 64, "f32", {}, 1),
    (80, 6, 1, 200, "f32", {}, 1),
    (80, 8, 2, 1500, "f16", {}, 1),
    (128, 4, 4, 1500, "f32", {}, 1),
    (128, 6, 1, 65, "f16", {}, 1),
    (256, 8, 2, 129, "f32", {}, 1),
    (256, 6, 1, 1500, "f32", {}, 1),
    (64, 4, 4, 2500, "f32", {}, 1),                        # 20 splits of 2 tiles, the last partly
    # Split/tile boundaries (CHUNK_MIN = 64-key tiles, MAX_SPLITS = 32 splits of whole tiles):
    (64, 4, 1, 128, "f32", {}, 1),                         # 2 splits, both full tiles
    (64, 8, 2, 2048, "f16", {}, 1),                        # 32 splits of exactly one tile
    (64, 4, 4, 2049, "f32", {}, 1),                        # 17 splits of 2 tiles, the last 1 key
    (128, 4, 2, 4096, "f16", {}, 1),                       # 32 splits of exactly 2 tiles
    (72, 6, 2, 1, "f16", {}, 1),                           # 1 key; head_dim/4 = 18, not a multiple of 4
    (8, 4, 2, 700, "f32", {}, 1),                          # tiny head: 64 key groups of 1 key
    (180, 3, 3, 333, "f16", {}, 1),                        # 45 vec4s: 5 key groups of 12-13 keys
    (64, 8, 2, 300, "f32", {"window": 50}, 1),             # window < kv_len
    (128, 4, 4, 300, "f32", {"window": 2000}, 1),          # window > kv_len: no effect
    (128, 8, 2, 1500, "f16", {"window": 1000}, 1),         # windowed range split many ways
    (64, 8, 2, 5000, "f16", {"window": 4500}, 1),          # window, long: 24 splits of 3 tiles
    (96, 4, 2, 3000, "f32", {"window": 2048}, 1),          # window = 32 one-tile splits exactly
    (128, 4, 1, 3000, "f32", {"softcap": 30.0}, 4),        # softcap over many tiles
    (256, 4, 4, 100, "f32", {"softcap": 5.0}, 4),          # Gemma-2 logit capping, big logits
    (80, 6, 1, 90, "f32", {"scale": 0.3, "softcap": 2.0}, 1),
    (64, 4, 4, 150, "f32", {"scale": 0.02}, 1),            # custom query scale
]


@pytest.mark.parametrize("cpu", [False, True], ids=["gpu_kernel", "cpu_kernel"])
@pytest.mark.parametrize("hd,n_heads,n_kv,kv_len,dtype,kw,qmul", DECODE)
def test_attention_decode(gpu, run, hd, n_heads, n_kv, kv_len, dtype, kw, qmul, cpu):
    rng = np.random.default_rng()
    cache, K, V = filled_cache(gpu, run, rng, [(0, kv_len)], n_kv, hd, dtype, kv_len + 3)
    q = rng.standard_normal((n_heads, hd)) * qmul
    qb = upload(gpu, q, "q")
    step = step_params(gpu, kv_len - 1, 1)
    ob = run(attention_decode(gpu, qb, cache, 1, step, n_heads, cpu=cpu, **kw))
    got = read(gpu, run, ob, (1, n_heads, hd))
    scale = kw.get("scale", hd ** -0.5)
    args = (q[None].astype(np.float32), K, V, [kv_len - 1], scale)
    ref = reference(*args, kw.get("softcap", 0.0), kw.get("window", 0))
    tol = tolerance(q, K, V, scale, kv_len)
    assert np.abs(got - ref).max() <= tol
    if kw.get("softcap") or kw.get("scale") or 0 < kw.get("window", 0) < kv_len:
        default = reference(q[None].astype(np.float32), K, V, [kv_len - 1], hd ** -0.5)
        assert np.abs(default - ref).max() > 100 * tol  # the option mattered
    for b in (qb, step, ob):
        gpu.destroy_buffer(b)
    cache.destroy()


# (head_dim, n_heads, n_kv_heads, pos, n_tokens, kv dtype, kwargs, q multiplier)
PREFILL = [
    (64, 4, 4, 0, 1, "f32", {}, 1),
    (64, 8, 2, 0, 23, "f32", {}, 1),
    (80, 6, 1, 30, 17, "f16", {}, 1),      # earlier context (pos > 0), f16 cache
    (128, 8, 2, 100, 40, "f32", {}, 1),
    (256, 6, 1, 5, 33, "f32", {}, 1),
    (256, 4, 4, 50, 16, "f16", {}, 1),
    (96, 8, 2, 0, 50, "f32", {"window": 13}, 1),
    (128, 4, 4, 40, 30, "f32", {"window": 100}, 1),        # window > every span
    (64, 8, 2, 20, 35, "f32", {"window": 9, "softcap": 3.0}, 4),
    (128, 6, 1, 10, 9, "f32", {"scale": 0.05}, 1),
]


@pytest.mark.parametrize("cpu", [False, True], ids=["gpu_kernel", "cpu_kernel"])
@pytest.mark.parametrize("hd,n_heads,n_kv,pos,n_tok,dtype,kw,qmul", PREFILL)
def test_attention_prefill(gpu, run, hd, n_heads, n_kv, pos, n_tok, dtype, kw, qmul, cpu):
    rng = np.random.default_rng()
    chunks = ([(0, pos)] if pos else []) + [(pos, n_tok)]  # an earlier turn, then this chunk
    cache, K, V = filled_cache(gpu, run, rng, chunks, n_kv, hd, dtype, pos + n_tok + 5)
    cap = n_tok + 5  # q and out hold 5 tokens more than this step uses: they must stay unwritten
    q = rng.standard_normal((cap, n_heads, hd)) * qmul
    qb = upload(gpu, q, "q")
    step = step_params(gpu, pos, n_tok)
    ob = run(attention_prefill(gpu, qb, cache, 1, step, n_heads, cpu=cpu, **kw))
    got = read(gpu, run, ob, (cap, n_heads, hd))
    scale = kw.get("scale", hd ** -0.5)
    args = (q[:n_tok].astype(np.float32), K, V, range(pos, pos + n_tok), scale)
    ref = reference(*args, kw.get("softcap", 0.0), kw.get("window", 0))
    tol = tolerance(q, K, V, scale, pos + n_tok)
    assert np.abs(got[:n_tok] - ref).max() <= tol
    assert not np.any(got[n_tok:])
    if kw.get("softcap") or kw.get("scale") or 0 < kw.get("window", 0) < pos + n_tok:
        default = reference(q[:n_tok].astype(np.float32), K, V, range(pos, pos + n_tok), hd ** -0.5)
        assert np.abs(default - ref).max() > 100 * tol  # the option mattered
    for b in (qb, step, ob):
        gpu.destroy_buffer(b)
    cache.destroy()


class Recorder:
    """A stand-in for a recorded dispatch plan: ops record into it; replay() re-dispatches the
    same pipelines, bind groups and grids."""

    def __init__(self, dev):
        self.dev, self.calls = dev, []

    def dispatch(self, pipeline, bind_groups, workgroups):
        self.calls.append((pipeline, bind_groups, workgroups))

    def replay(self):
        for call in self.calls:
            self.dev.dispatch(*call)


@pytest.mark.parametrize("cpu", [False, True], ids=["gpu_kernel", "cpu_kernel"])
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_decode_plan_replays_at_new_positions(gpu, run, dtype, cpu):
    """kv_write + attention_decode recorded once, replayed at pos 61..66 (crossing CHUNK_MIN, so
    the number of splits changes), at 700 after a long prefill write, and at 2047 / 2048 (kv_len
    2048 = 32 one-tile splits, 2049 = 17 two-tile splits): only the Step uniform and the input
    data change between replays."""
    rng = np.random.default_rng()
    hd, n_heads, n_kv, start = 64, 8, 2, CHUNK_MIN - 3
    cache, _, _ = filled_cache(gpu, run, rng, [(0, start)], n_kv, hd, dtype, 2100)
    kb, vb = (gpu.create_buffer(4 * n_kv * hd, kind="activations", label=n) for n in "kv")
    qb = gpu.create_buffer(4 * n_heads * hd, kind="activations", label="q")
    step = step_params(gpu, start, 1)
    plan = Recorder(gpu)
    run(kv_write(gpu, cache, 1, kb, vb, step, target=plan))
    ob = run(attention_decode(gpu, qb, cache, 1, step, n_heads, target=plan, cpu=cpu))
    assert len(plan.calls) == 3
    assert plan.calls[1][0].key[0] == ("attention_decode_cpu" if cpu else "attention_decode")
    filled = start  # rows 0 .. filled - 1 hold data
    for pos in [start, start + 1, start + 2, start + 3, start + 4, start + 5, 700, 2047, 2048]:
        if pos > filled:  # fill the rows up to pos - 1 outside the plan, as a prefill would
            p, n = filled, pos - filled
            st = step_params(gpu, p, n)
            kk = upload(gpu, rng.standard_normal((n, n_kv, hd)), "kk")
            run(kv_write(gpu, cache, 1, kk, kk, st))
            for b in (st, kk):
                gpu.destroy_buffer(b)
        filled = pos + 1
        q = rng.standard_normal((n_heads, hd)).astype(np.float32)
        for buf, a in ((kb, rng.standard_normal((n_kv, hd))), (vb, rng.standard_normal((n_kv, hd))),
                       (qb, q)):
            gpu.write(buf, np.asarray(a, np.float32).tobytes())
        write_step(gpu, step, pos, 1)
        plan.replay()
        got = read(gpu, run, ob, (1, n_heads, hd))
        K, V = cache_rows(gpu, run, cache, 1, pos + 1)
        ref = reference(q[None], K, V, [pos], hd ** -0.5)
        assert np.abs(got - ref).max() <= tolerance(q, K, V, hd ** -0.5, pos + 1), pos
    for b in (kb, vb, qb, step, ob):
        gpu.destroy_buffer(b)
    cache.destroy()


@pytest.mark.parametrize("cpu", [False, True], ids=["gpu_kernel", "cpu_kernel"])
def test_prefill_plan_replays_chunks(gpu, run, cpu):
    """kv_write + attention_prefill recorded for 32-token buffers, replayed for chunks of 20, 7
    and 1 tokens at positions 0, 20 and 27 (a chat turn after a previous one)."""
    rng = np.random.default_rng()
    hd, n_heads, n_kv, cap = 128, 6, 2, 32
    cache = KVCache(gpu, 1, 64, n_kv, hd, "f32")
    kb, vb = (gpu.create_buffer(4 * cap * n_kv * hd, kind="activations", label=n) for n in "kv")
    qb = gpu.create_buffer(4 * cap * n_heads * hd, kind="activations", label="q")
    step = step_params(gpu, 0, cap)
    plan = Recorder(gpu)
    run(kv_write(gpu, cache, 0, kb, vb, step, target=plan))
    ob = run(attention_prefill(gpu, qb, cache, 0, step, n_heads, window=24, target=plan, cpu=cpu))
    assert plan.calls[1][0].key[0] == ("attention_prefill_cpu" if cpu else "attention_prefill")
    for pos, n in [(0, 20), (20, 7), (27, 1)]:
        q = rng.standard_normal((cap, n_heads, hd)).astype(np.float32)
        for buf, a in ((kb, rng.standard_normal((cap, n_kv, hd))),
                       (vb, rng.standard_normal((cap, n_kv, hd))), (qb, q)):
            gpu.write(buf, np.asarray(a, np.float32).tobytes())
        write_step(gpu, step, pos, n)
        plan.replay()
        got = read(gpu, run, ob, (n, n_heads, hd))
        K, V = cache_rows(gpu, run, cache, 0, pos + n)
        ref = reference(q[:n], K, V, range(pos, pos + n), hd ** -0.5, window=24)
        assert np.abs(got - ref).max() <= tolerance(q, K, V, hd ** -0.5, pos + n), pos
    for b in (kb, vb, qb, step, ob):
        gpu.destroy_buffer(b)
    cache.destroy()


def test_bad_head_counts_are_refused(gpu, run):
    cache = KVCache(gpu, 1, 8, 3, 64)
    qb = gpu.create_buffer(4 * 4 * 64, kind="activations", label="q")
    step = step_params(gpu, 0, 1)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        run(attention_decode(gpu, qb, cache, 0, step, 4))
    for b in (qb, step):
        gpu.destroy_buffer(b)
    cache.destroy()
