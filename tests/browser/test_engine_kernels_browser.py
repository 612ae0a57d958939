"""The rest of the representative kernel set in headless Chromium (browser backend, SwiftShader):
GGUF upload with the GPU repack + dequantize, attention (decode split-K and causal prefill with
an f16 KV cache), and GPU sampling. Same shader files and tolerances as the gpu tier; the
references are the gpu tier's own (imported), fed with fresh random inputs each run."""
from __future__ import annotations

import numpy as np
import pytest

from tests.browser.harness import browser_run, harness_page  # noqa: F401 (fixture)
from tests.gpu.test_attention import reference as attention_reference
from tests.gpu.test_attention import tolerance as attention_tolerance
from tests.quant_data import random_weight, reference


@pytest.mark.parametrize("t", ["Q4_0", "Q5_0", "Q8_0", "Q6_K", "Q4_K", "BF16"])
def test_upload_repack_dequantize_is_exact(harness_page, t):
    """upload_weight (repack on the GPU for Q4_0/Q5_0/Q8_0/Q6_K), forced into 2-row chunks, then
    dequantize: identical to gguf-py's dequantizer (every decode is exact in f32; see
    tests/gpu/test_quant.py), compared by value (Q4_0/Q5_0 may give +0 where gguf gives -0)."""
    rng = np.random.default_rng()
    rows, cols = 5, 512
    raw = random_weight(t, rows, cols, rng)
    outs = browser_run(harness_page, f"""
from app.kernels.dequant import dequantize
from app.kernels.quant import upload_weight
from app.kernels.layouts import row_bytes, LAYOUT_OF
w = await upload_weight(dev, "w", "{t}", inputs["raw"], {rows}, {cols},
                        max_chunk_bytes=2 * row_bytes(LAYOUT_OF["{t}"], {cols}))
assert len(w.chunks) == 3, len(w.chunks)
y = await dequantize(dev, w)
out("y", await dev.read(y), "float32", ({rows}, {cols}))
w.destroy(dev)
dev.destroy_buffer(y)
out("live", str(dev.ledger.live.get("weights", 0) + dev.ledger.live.get("staging", 0)).encode(),
    "uint8", (-1,))
""", {"raw": raw})
    assert np.array_equal(outs["y"].astype(np.float64), reference(t, raw, rows, cols))
    assert bytes(outs["live"]) == b"0"


@pytest.mark.parametrize("hd,n_heads,n_kv,kv_len,dtype,kw", [
    (64, 8, 2, 300, "f16", {}),
    (128, 4, 4, 1500, "f32", {"window": 700}),
    (80, 6, 1, 90, "f32", {"softcap": 2.0, "scale": 0.3}),
])
def test_attention_decode(harness_page, hd, n_heads, n_kv, kv_len, dtype, kw):
    rng = np.random.default_rng()
    k = rng.standard_normal((kv_len, n_kv, hd)).astype(np.float32)
    v = rng.standard_normal((kv_len, n_kv, hd)).astype(np.float32)
    q = rng.standard_normal((n_heads, hd)).astype(np.float32)
    outs = browser_run(harness_page, f"""
from app.kernels.attention import attention_decode
from app.kernels.grid import step_params
from app.kernels.kv_cache import KVCache, kv_write
cache = KVCache(dev, 1, {kv_len + 5}, {n_kv}, {hd}, "{dtype}")
gk, gv = dev.upload(inputs["k"], kind="activations"), dev.upload(inputs["v"], kind="activations")
step = step_params(dev, 0, {kv_len})
await kv_write(dev, cache, 0, gk, gv, step)
dev.write(step, __import__("struct").pack("<4I", {kv_len - 1}, 1, {kv_len}, 0))
gq = dev.upload(inputs["q"], kind="activations")
o = await attention_decode(dev, gq, cache, 0, step, {n_heads}, **{kw!r})
out("o", await dev.read(o, 0, {4 * n_heads * hd}), "float32", ({n_heads}, {hd}))
dt = "float16" if cache.f16 else "float32"
shape = ({kv_len + 5}, {n_kv}, {hd})
out("K", await dev.read(cache.k[0]), dt, shape)
out("V", await dev.read(cache.v[0]), dt, shape)
cache.destroy()
for b in (gk, gv, gq, o, step):
    dev.destroy_buffer(b)
""", {"k": k, "v": v, "q": q})
    # The reference uses the cache exactly as the GPU holds it (f16-rounded when dtype is f16).
    K = outs["K"][:kv_len].astype(np.float64)
    V = outs["V"][:kv_len].astype(np.float64)
    scale = kw.get("scale", hd ** -0.5)
    ref = attention_reference(q[None].astype(np.float64), K, V, [kv_len - 1], scale,
                              kw.get("softcap", 0.0), kw.get("window", 0))[0]
    assert np.all(np.abs(outs["o"] - ref) <= attention_tolerance(q[None], K, V, scale, kv_len))


def test_attention_prefill_after_earlier_context(harness_page):
    """Prefill of 23 tokens at positions 40..62 attending causally to rows 0..62 (rows 0..39 from
    an earlier turn), GQA 8:2, f16 KV."""
    rng = np.random.default_rng()
    hd, n_heads, n_kv, pos, n = 64, 8, 2, 40, 23
    k = rng.standard_normal((pos + n, n_kv, hd)).astype(np.float32)
    v = rng.standard_normal((pos + n, n_kv, hd)).astype(np.float32)
    q = rng.standard_normal((n, n_heads, hd)).astype(np.float32)
    outs = browser_run(harness_page, f"""
import struct
from app.kernels.attention import attention_prefill
from app.kernels.grid import step_params, write_step
from app.kernels.kv_cache import KVCache, kv_write
cache = KVCache(dev, 1, 128, {n_kv}, {hd}, "f16")
gk, gv = dev.upload(inputs["k"], kind="activations"), dev.upload(inputs["v"], kind="activations")
step = step_params(dev, 0, {pos + n})
await kv_write(dev, cache, 0, gk, gv, step)
write_step(dev, step, {pos}, {n})
gq = dev.upload(inputs["q"], kind="activations")
o = await attention_prefill(dev, gq, cache, 0, step, {n_heads})
out("o", await dev.read(o, 0, {4 * n * n_heads * hd}), "float32", ({n}, {n_heads}, {hd}))
out("K", await dev.read(cache.k[0]), "float16", (128, {n_kv}, {hd}))
out("V", await dev.read(cache.v[0]), "float16", (128, {n_kv}, {hd}))
cache.destroy()
for b in (gk, gv, gq, o, step):
    dev.destroy_buffer(b)
""", {"k": k, "v": v, "q": q})
    K = outs["K"][:pos + n].astype(np.float64)
    V = outs["V"][:pos + n].astype(np.float64)
    scale = hd ** -0.5
    ref = attention_reference(q.astype(np.float64), K, V, list(range(pos, pos + n)), scale)
    assert np.all(np.abs(outs["o"] - ref) <= attention_tolerance(q, K, V, scale, pos + n))


def test_sampling_greedy_seeded_and_top_k(harness_page):
    """Greedy equals numpy argmax on a Gemma-sized vocab; a seeded top-k/top-p run reproduces
    exactly and never emits a token outside the top k."""
    rng = np.random.default_rng()
    vocab, k = 262144, 40
    x = (rng.standard_normal(vocab) * 3).astype(np.float32)
    seed = int(rng.integers(0, 2 ** 31))
    outs = browser_run(harness_page, f"""
from app.kernels.sampling import Sampler, SamplingParams
s = await Sampler(dev, {vocab}).setup()
logits = dev.upload(inputs["x"], kind="activations")
s.configure(SamplingParams(temperature=0))
s.sample(logits)
greedy = (await s.read_result()).id
runs = []
for _ in range(2):
    s.configure(SamplingParams(temperature=1.0, top_k={k}, top_p=0.9, seed={seed}))
    ids = []
    for _ in range(10):
        s.sample(logits)
        ids.append((await s.read_result()).id)
    runs.append(ids)
import struct
out("greedy", struct.pack("<I", greedy), "uint32", (1,))
out("runs", struct.pack("<20I", *runs[0], *runs[1]), "uint32", (2, 10))
s.destroy()
dev.destroy_buffer(logits)
""", {"x": x})
    assert int(outs["greedy"][0]) == int(np.argmax(x))
    a, b = outs["runs"]
    assert list(a) == list(b)
    top_k = set(np.argsort(-x)[:k].tolist())
    assert set(a.tolist()) <= top_k and len(set(a.tolist())) > 1
