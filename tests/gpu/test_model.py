"""The generation steps of app/models/model.py, natively: tiny random models of every family
(tests/tiny_models.py) and the real SmolLM2-135M Q4_1.

The fidelity tests (test_model_fidelity.py, test_model_real.py) compare logits through the prefill
path; these check that the decode path (fused q|k|v matvec, split-K attention, chained sampling
on the GPU) agrees with it, that a cached prefix is reused exactly, that decode replays plans
without per-dispatch calls, and the named errors."""
from __future__ import annotations

import struct

import numpy as np

import pytest

from app.kernels.sampling import SamplingParams
from app.models import ContextLengthError, ModelSourceError, load_model
from app.formats.gguf import GGUFError

# Decode and prefill read the same weights with different kernels (matvec vs matmul_q, split-K vs
# flash attention): f32 accumulation order differs, ~1e-5 relative. A greedy step may differ
# between the two only where the top-2 margin is below this.
MARGIN = 1e-3


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def _tiny_gguf(tiny_dir, family: str):
    from tests import tiny_models
    path = tiny_dir / f"{family}.gguf"
    if not path.exists():
        tm = tiny_models.build(family, tiny_dir / family)
        tiny_models.write_gguf(tm.model, path, "F32")
    return path


@pytest.fixture(scope="module")
def model(gpu, run, tiny_dir):
    """A tiny random llama (tests/tiny_models.py): the generation logic, fast on lavapipe."""
    m = run(load_model(gpu, _tiny_gguf(tiny_dir, "llama"), context_length=160, kv_dtype="f32",
                       prefill_chunk=64))
    yield m
    m.destroy()


@pytest.fixture(scope="module")
def smollm2(gpu, run, smollm2_gguf):
    m = run(load_model(gpu, smollm2_gguf, context_length=96, kv_dtype="f32", prefill_chunk=64))
    yield m
    m.destroy()


def _logits(run, model, ids) -> np.ndarray:
    return np.frombuffer(run(model.logits(ids)), np.float32).reshape(len(ids), -1)


def test_smollm2_decode_agrees_with_prefill_logits(run, smollm2):
    """Real weights through the fused q|k|v / gate|up decode path. (The tiny models take it too
    where the device's offset alignment allows: lavapipe's 64 bytes, not Chrome's 256.)"""
    assert smollm2.weights.layers[0].qkv is not None and smollm2.weights.layers[0].gate_up
    rng = np.random.default_rng()
    _check_decode(run, smollm2, [1] + rng.integers(100, 40000, size=8).tolist(), 6)


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3",
                                    "phi3"])
def test_decode_agrees_with_prefill_logits(run, gpu, tiny_dir, family):
    """Every family's decode path (matvec, split-K attention incl. sliding window and softcaps)
    against its prefill path, over 28-36 positions."""
    m = run(load_model(gpu, _tiny_gguf(tiny_dir, family), context_length=64, kv_dtype="f32",
                       prefill_chunk=16))
    try:
        rng = np.random.default_rng()
        # phi3: stay within the original context (32). Past it, longrope's table depends on the
        # length of each forward (transformers: a decode step past 32 uses the long factors, a
        # single forward over > 32 tokens uses them for every position), so one forward is not
        # the reference for a decode that crossed it.
        n_prompt, n = (8, 20) if family == "phi3" else (12, 24)
        _check_decode(run, m, rng.integers(0, m.vocab, size=n_prompt).tolist(), n)
    finally:
        m.destroy()


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "phi3"])
def test_folded_norm_decode_agrees_with_prefill_logits(run, gpu, tiny_dir, family, monkeypatch):
    """The GPU decode path's rmsnorm folding (matvec NORM/EPI, app/models/blocks.py), which CPU
    adapters like this one skip by default, forced on: same check as above."""
    from app.models import blocks
    monkeypatch.setattr(blocks, "FOLD_ON_CPU", True)
    m = run(load_model(gpu, _tiny_gguf(tiny_dir, family), context_length=64, kv_dtype="f32",
                       prefill_chunk=16))
    try:
        plan = run(m._plan(("decode",)))
        keys = [d.pipeline.key for d in plan.dispatches]
        # key = (shader, entry, constants, defines): one real rmsnorm (layer 0's attention norm)
        # plus the per-head QK-norms; every other norm is folded into a NORM matvec.
        norms = [k for k in keys if k[0] == "rmsnorm"]
        folded = [k for k in keys if k[0] == "matvec" and "'NORM', True" in str(k)]
        qk = 2 * m.config.n_layers if m.config.qk_norm else 0
        assert len(norms) == 1 + qk, keys
        assert len(folded) >= 2 * m.config.n_layers, keys
        rng = np.random.default_rng()
        n_prompt, n = (8, 20) if family == "phi3" else (12, 24)
        _check_decode(run, m, rng.integers(0, m.vocab, size=n_prompt).tolist(), n)
    finally:
        m.destroy()


def _check_decode(run, model, prompt, n):
    out = run(_collect(model.generate(prompt, None, max_tokens=n, batch=3)))
    assert len(out) == n
    ref = _logits(run, model, prompt + out[:-1])
    for i, tok in enumerate(out):
        row = ref[len(prompt) - 1 + i]
        top2 = np.sort(row)[-2:]
        if tok != int(row.argmax()):
            # only a near-tie may flip between the two paths
            assert top2[1] - top2[0] < MARGIN * np.abs(row).max(), (i, tok, int(row.argmax()))
            break


def test_cached_prefix_gives_same_tokens(run, model):
    rng = np.random.default_rng()
    first = rng.integers(0, model.vocab, size=10).tolist()
    reply = run(_collect(model.generate(first, None, max_tokens=6)))
    follow = first + reply + rng.integers(0, model.vocab, size=7).tolist()
    warm = run(_collect(model.generate(follow, None, max_tokens=8)))
    reused = model.stats["prefill_reused"]
    # K/V rows exist for the prompt and all replies but the last token (never fed)
    assert reused == len(first) + len(reply) - 1
    model.reset()
    cold = run(_collect(model.generate(follow, None, max_tokens=8)))
    assert model.stats["prefill_reused"] == 0
    assert warm == cold


def test_seeded_sampling_reproduces(run, model):
    prompt = [1, 54, 150, 314]
    p = SamplingParams(temperature=0.9, top_p=0.95, seed=1234)
    a = run(_collect(model.generate(prompt, p, max_tokens=8)))
    b = run(_collect(model.generate(prompt, p, max_tokens=8)))
    assert a == b
    c = run(_collect(model.generate(prompt, SamplingParams(temperature=0.9, top_p=0.95, seed=99),
                                    max_tokens=8)))
    assert c != a or pytest.fail("two seeds gave the same 8 sampled tokens")


def test_decode_is_replayed_not_redescribed(run, model, monkeypatch):
    run(model.prefill([1, 54, 150], None))
    calls = {"replay": 0, "dispatch": 0, "write": 0}
    dev = model.dev
    for name in calls:
        orig = getattr(dev, name)

        def wrap(*a, _orig=orig, _name=name, **k):
            calls[_name] += 1
            return _orig(*a, **k)
        monkeypatch.setattr(dev, name, wrap)
    run(model.decode_n(5))
    assert calls == {"replay": 5, "dispatch": 0, "write": 0}, calls


def test_generate_with_logprobs(run, model):
    """with_logprobs yields each step's SampleResult: the same ids as plain generation (seeded),
    and logprobs equal to float64 log_softmax(z / T) of the prefill path's logits at each
    position (the oracle: model.logits over prompt + the tokens fed). Tolerance 2e-4 absolute:
    the two paths' f32 logits differ by ~1e-5 relative (decode vs prefill kernels), and the
    sampler's log-sum-exp is f32 over the vocab."""
    rng = np.random.default_rng()
    prompt = [1] + [int(t) for t in rng.integers(2, model.vocab, 5)]
    temp = 0.8
    p = SamplingParams(temperature=temp, seed=int(rng.integers(0, 2**32)), logprobs=5)
    plain = run(_collect(model.generate(prompt, p, max_tokens=7)))
    results = run(_collect(model.generate(prompt, p, max_tokens=7, with_logprobs=True)))
    assert [r.id for r in results] == plain
    z = _logits(run, model, prompt + plain[:-1]).astype(np.float64) / temp
    lsm = z - z.max(axis=1, keepdims=True)
    lsm -= np.log(np.exp(lsm).sum(axis=1, keepdims=True))
    for i, r in enumerate(results):
        row = lsm[len(prompt) - 1 + i]
        assert abs(r.logprob - row[r.id]) < 2e-4, (i, r.logprob, row[r.id])
        want = np.argsort(-row)[:5]
        assert [t for t, _ in r.top] == [int(t) for t in want]
        assert np.allclose([lp for _, lp in r.top], row[want], atol=2e-4)


def test_stop_ids_and_max_tokens(run, model):
    prompt = [1, 54, 150, 314]
    free = run(_collect(model.generate(prompt, None, max_tokens=6)))
    stop = free[2]
    cut = run(_collect(model.generate(prompt, None, max_tokens=6, stop_ids={stop})))
    assert cut == free[:free.index(stop) + 1]


def test_context_errors(run, model):
    with pytest.raises(ContextLengthError, match="context of 160 tokens"):
        run(model.prefill([1] * 160))
    # generation stops at the end of the context instead of overflowing the cache
    out = run(_collect(model.generate([1] * 150, None, max_tokens=50)))
    assert model.pos <= 160 and len(out) == 160 - 150 + 1
    with pytest.raises(ValueError, match="outside the vocabulary"):
        run(model.prefill([1, 10 ** 6]))


def test_bad_sources(run, gpu, tmp_path):
    with pytest.raises(ModelSourceError):
        run(load_model(gpu, tmp_path / "missing.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 99) + bytes(64))
    with pytest.raises(GGUFError):
        run(load_model(gpu, bad))
    with pytest.raises(ModelSourceError, match="config.json"):
        run(load_model(gpu, tmp_path))


async def _collect(agen) -> list[int]:
    return [t async for t in agen]


def test_context_too_large_for_the_gpu(run, gpu, tiny_dir):
    from app.models import ModelMemoryError
    limit = gpu.limits["maxStorageBufferBindingSize"]
    # tiny llama: 2 kv heads x 16 dims x 4 bytes = 128 bytes of K per token and layer
    too_many = limit // 128 + 1
    before = gpu.memory()["total"]
    with pytest.raises(ModelMemoryError, match="shorter context"):
        run(load_model(gpu, _tiny_gguf(tiny_dir, "llama"), context_length=too_many,
                       kv_dtype="f32"))
    assert gpu.memory()["total"] == before   # nothing left allocated


def test_safetensors_quantized_at_load(run, gpu, tiny_dir):
    """An F32 safetensors checkpoint quantized on the GPU at load (q8_0 -> Q8_0 rules, q4 ->
    Q4_1 rules): logits match transformers running on the same weights quantized and
    dequantized by gguf-py (the kernel is bit-identical to gguf-py's quantizers, see
    tests/gpu/test_quantize_weight.py), so the bound is the fidelity bound, not the quantization
    loss; and the weights shrink."""
    import copy
    import gguf
    import torch
    from tests import tiny_models
    tm = tiny_models.build("qwen2", tiny_dir / "qwen2_st")
    ids = tiny_models.random_ids(20)
    sizes = {}
    for q, qt in ((None, None), ("q8_0", gguf.GGMLQuantizationType.Q8_0),
                  ("q4", gguf.GGMLQuantizationType.Q4_1)):
        ref_model = copy.deepcopy(tm.model)
        if qt is not None:   # every matrix (embedding and lm_head included); vectors stay f32
            with torch.no_grad():
                for p in ref_model.parameters():
                    if p.dim() == 2:
                        w = p.detach().numpy().astype(np.float32)
                        p.copy_(torch.from_numpy(gguf.quants.dequantize(
                            gguf.quants.quantize(w, qt), qt).reshape(w.shape)))
        ref = tiny_models.reference_logits(ref_model, ids)
        m = run(load_model(gpu, tm.hf_dir, context_length=32, kv_dtype="f32", quantize=q))
        try:
            got = np.frombuffer(run(m.logits(ids)), np.float32).reshape(len(ids), -1)
            sizes[q] = m.weights.nbytes
        finally:
            m.destroy()
        # 1e-4 of max|logit| as in test_model_fidelity.py (measured ~1e-6); a q4 model
        # differs from the f32 one by ~25% of max|logit|, so a mix-up cannot pass
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert err < 1e-4, (q, err)
    assert sizes["q8_0"] < 0.4 * sizes[None] and sizes["q4"] < 0.25 * sizes[None]


def test_chunked_prefill_matches_one_forward(run, gpu, tiny_dir):
    """A prompt prefilled in chunks of 16 gives transformers' single-forward logits. Phi-3's
    longrope must pick its table from the whole prompt's length (40 > original 32), not from
    each chunk's end (step.seq_end); gemma3's sliding window spans chunk borders."""
    from tests import tiny_models
    for family in ("phi3", "gemma3"):
        tm = tiny_models.build(family, tiny_dir / f"{family}_chunks")
        ids = tiny_models.random_ids()
        ref = tiny_models.reference_logits(tm.model, ids)
        m = run(load_model(gpu, tm.hf_dir, context_length=64, kv_dtype="f32", prefill_chunk=16))
        try:
            got = np.frombuffer(run(m.logits(ids)), np.float32).reshape(len(ids), -1)
        finally:
            m.destroy()
        # same bound as tests/gpu/test_model_fidelity.py (measured ~1e-6)
        assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-4, family
