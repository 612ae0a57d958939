"""The model engine (app/models) in headless Chromium: the same code as natively, through app.gpu's
browser backend (WebGPU on SwiftShader here), with the GGUF bytes fetched by the page from the
test server into an ArrayBuffer (JSBufferSource) or a Blob (BlobSource), as the app loads them.

  - SmolLM2-135M-Instruct Q4_1 (the bundled real model, served from the session's dist/models/):
    greedy ids of two chat prompts equal the native engine's (wgpu-py on lavapipe) on the same
    file, and model.logits of a short random sequence agree with native ones.
  - gemma-3-270m Q4_K_M (real weights, 262k vocabulary): greedy ids of a short completion and
    logits of a random sequence equal the native engine's.
  - tiny random llama / qwen3 / gemma3 (tests/tiny_models.py, F32 GGUF written into dist/models/):
    model.logits of a 40-token random sequence match transformers' float64 reference.

Page and native run one script (tests/browser/model_page.py run_jobs). SwiftShader is slow (see
the report for timings: SmolLM2 decodes at seconds per token on this 2-core machine), so the real
model generates a few tokens per prompt, not a long reply.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from app.formats.gguf import read_gguf
from app.formats.sources import FileSource
from app.tokenizer import ChatFormat, Tokenizer
from tests.browser.harness import harness_page  # noqa: F401 (fixture)
from tests import tiny_models as tiny
from tests.browser.model_page import native_jobs, page_jobs, rel_error
from tests.fixtures_tokenizer import gemma_gguf  # noqa: F401 (fixture)

SMOLLM2_URL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"   # build.py bundles it into dist/models/
CONTEXT = 128
# Per prompt: the prefill's token + decode_n(4) batches (4 steps chained on the GPU each).
# SwiftShader decodes SmolLM2 at ~4 tok/s here with the CPU-adapter kernels.
NEW_TOKENS = 16
LOGIT_TOKENS = 8        # the short random sequence whose logits page and native compare

QUESTIONS = ["What is the capital of France?", "Name three primary colors.",
             "How many legs does a spider have?", "Write a haiku about rain.",
             "What is 7 times 8?", "Why is the sky blue?", "Say hello in Spanish.",
             "What does a GPU do?"]


# -- SmolLM2: page vs native --------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2_jobs(smollm2_gguf, dist, run):
    """Two chat prompts (picked at random from QUESTIONS, tokenized natively with the GGUF's own
    vocabulary and chat template) and a random id sequence. The second prompt shares the first's
    system-prompt prefix, so its prefill reuses the cached prefix in both engines."""
    assert (dist / SMOLLM2_URL).is_file(), f"the build did not place {SMOLLM2_URL} in dist/"

    async def prompts():
        src = FileSource(smollm2_gguf)
        try:
            g = await read_gguf(src)
            chat = await ChatFormat.load(await Tokenizer.from_gguf(g))
        finally:
            src.close()
        return [chat.prompt_ids([{"role": "user", "content": q}])
                for q in random.sample(QUESTIONS, 2)]

    a, b = run(prompts())
    logit_ids = [int(i) for i in np.random.default_rng().integers(0, 49152, LOGIT_TOKENS)]
    return [("generate", a, NEW_TOKENS), ("generate", b, NEW_TOKENS), ("logits", logit_ids)]


@pytest.fixture(scope="module")
def smollm2_native(smollm2_jobs, smollm2_gguf, gpu, run):
    return native_jobs(run, gpu, smollm2_gguf, smollm2_jobs, CONTEXT)


@pytest.fixture(scope="module")
def smollm2_page(smollm2_jobs, harness_page):
    return page_jobs(harness_page, SMOLLM2_URL, smollm2_jobs, CONTEXT, source="buffer")


def _timings(report: dict) -> str:
    parts = [f"load {report['load_s']:.1f}s"]
    for j in report["jobs"]:
        parts.append(f"{j['kind']} {j['s']:.1f}s")
    st = report["jobs"][-1]["stats"]
    if st["decode_tokens"]:
        parts.append(f"prefill {st['prefill_tokens']} tok in {st['prefill_s']:.1f}s, decode "
                     f"{st['decode_tokens'] / st['decode_s']:.2f} tok/s")
    return ", ".join(parts)


@pytest.mark.slow
def test_smollm2_greedy_ids_equal_native(smollm2_jobs, smollm2_page, smollm2_native):
    """Greedy decoding is an argmax per step; page and native run the same WGSL on f32 logits
    whose differences are ~1e-6 of their scale (next test), far below the top-1/top-2 gaps of a
    confident 135M chat model, so every id must be equal."""
    print("page:", _timings(smollm2_page))
    print("native:", _timings(smollm2_native))
    for i in range(2):
        got, ref = smollm2_page["jobs"][i]["ids"], smollm2_native["jobs"][i]["ids"]
        assert len(got) == NEW_TOKENS
        assert got == ref, f"prompt {i} ({smollm2_jobs[i][1]}): page {got} != native {ref}"
    # The second prompt reused the shared system-prompt prefix in the page, as natively.
    assert smollm2_page["jobs"][1]["stats"]["prefill_reused"] > 0
    # destroy() gave back every buffer the model allocated in the page.
    assert smollm2_page["leaked"] == {}, smollm2_page["leaked"]


@pytest.mark.slow
def test_smollm2_logits_match_native(smollm2_page, smollm2_native):
    """Both f32 with the same shaders and the same Q4_1 weights: the adapters (SwiftShader vs
    lavapipe) differ only in how they order and fuse f32 operations (FMA contraction, exp/tanh
    approximations, reduction order where a kernel adapts to the adapter's limits). Rounding
    differences of ~1e-7 relative per op, through 30 layers of RMSNorm-renormalised residuals
    (which keeps them from compounding geometrically) stay around 1e-6..1e-5 of max|logit|;
    1e-4 leaves headroom while a real bug (a wrong row, a skipped block, a mis-read quant block)
    moves logits by >1e-2 of their scale."""
    got, ref = smollm2_page["jobs"][2]["logits"], smollm2_native["jobs"][2]["logits"]
    assert got.shape == ref.shape == (LOGIT_TOKENS, 49152)
    assert np.all(np.isfinite(got))
    err = rel_error(got, ref)
    print(f"SmolLM2 logits page vs native: max|diff| / max|ref| = {err:.2e}")
    assert err <= 1e-4
    assert np.array_equal(got.argmax(-1), ref.argmax(-1))


# -- tiny random models: page vs transformers --------------------------------------------------
@pytest.mark.parametrize("family,source", [("llama", "buffer"), ("qwen3", "blob"),
                                           ("gemma3", "buffer")])
def test_tiny_model_logits_match_transformers(harness_page, dist, tmp_path, family, source):
    """A random tiny model (tests/tiny_models.py: llama3 rope scaling + permuted q/k, qwen3
    QK-norm + tied embeddings, gemma3 local/global layers with windows shorter than the
    sequence) written as an F32 GGUF, fetched and loaded in the page: logits of a fresh random
    40-token sequence within 1e-4 of max|ref| of transformers' float64 forward. The engine runs in
    f32 (weights exact in F32): the gpu tier measures 3e-7..9e-7 on lavapipe for these models
    (tests/gpu/test_model_fidelity.py), and a wrong RoPE base, window or scaling moves them by
    1.7e-2..0.7. Bound 1e-4 (the gpu tier's; issue 4 asks for 1e-3): measured 2e-7..6e-7 in
    the page, so it leaves >100x room for SwiftShader's own exp/rsqrt rounding."""
    tm = tiny.build(family, tmp_path / "hf")
    name = f"tiny-{family}-{tm.seed}.gguf"
    path = tiny.write_gguf(tm.model, dist / "models" / name, "F32")
    try:
        ids = tiny.random_ids()
        res = page_jobs(harness_page, f"models/{name}", [("logits", ids)], 64, source=source)
    finally:
        path.unlink()
    assert res["leaked"] == {}, res["leaked"]
    got = res["jobs"][0]["logits"]
    ref = tiny.reference_logits(tm.model, ids)
    assert got.shape == ref.shape == (len(ids), tiny.VOCAB)
    err = rel_error(got, ref)
    print(f"{family} (seed {tm.seed}) page vs transformers: {err:.2e}; load {res['load_s']:.1f}s,"
          f" logits {res['jobs'][0]['s']:.1f}s")
    assert err <= 1e-4, f"{family} seed {tm.seed}: rel. error {err:.2e}"


# -- gemma-3-270m Q4_K_M (real weights, 262k vocabulary): page vs native ------------------------
@pytest.mark.slow
def test_gemma3_real_weights_page_equals_native(dist, harness_page, gpu, run, gemma_gguf):
    """The second real model of issue 4 (Q4_K, Q5_0, Q6_K and Q8_0 tensors, sliding-window
    layers, a 262144 x 640 embedding) in the page: the greedy ids of a short completion equal the
    native engine's, and the logits of a random sequence agree within 1e-4 of max|ref| (the same
    f32 argument as the SmolLM2 test above). Native itself matches transformers token for token
    (tests/gpu/test_model_real.py). Few tokens: SwiftShader decodes this model at ~1 tok/s."""
    import os
    import shutil
    path = gemma_gguf
    target = dist / "models" / "gemma-3-270m-q4_k_m.gguf"
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)

    async def prompt():
        src = FileSource(path)
        try:
            tok = await Tokenizer.from_gguf(await read_gguf(src))
        finally:
            src.close()
        return tok.encode(random.choice(["The capital of France is", "Once upon a time",
                                         "def fibonacci(n):"]), add_special_tokens=True)

    ids = run(prompt())
    jobs = [("generate", ids, 3),
            ("logits", [int(i) for i in np.random.default_rng().integers(0, 262144, 6)])]
    try:
        page = page_jobs(harness_page, "models/gemma-3-270m-q4_k_m.gguf", jobs, 64)
    finally:
        target.unlink()
    native = native_jobs(run, gpu, path, jobs, 64)
    print("page:", _timings(page))
    assert page["jobs"][0]["ids"] == native["jobs"][0]["ids"], (ids, page["jobs"][0]["ids"],
                                                                native["jobs"][0]["ids"])
    got, ref = page["jobs"][1]["logits"], native["jobs"][1]["logits"]
    assert got.shape == ref.shape == (6, 262144) and np.all(np.isfinite(got))
    err = rel_error(got, ref)
    print(f"gemma-3-270m logits page vs native: {err:.2e}")
    assert err <= 1e-4
    assert page["leaked"] == {}, page["leaked"]
