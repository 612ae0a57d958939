"""GPU sampling (app/kernels/sampling.py: shaders/logits_penalty.wgsl, sample.wgsl, sample_count.wgsl)
against float64 numpy references of the HF transformers / llama.cpp semantics. Every sampler test
runs with both logits_penalty.wgsl variants (the `cpu` fixture: the workgroup-tree kernel and the
barrier-free CPU-adapter one), whatever the adapter is."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from app.kernels.sampling import Sampler, SamplingParams, SamplingParamsError


def f32(a) -> bytes:
    return np.ascontiguousarray(a, np.float32).tobytes()


@pytest.fixture(params=[False, True], ids=["gpu_kernel", "cpu_kernel"])
def cpu(request):
    return request.param


def make_sampler(gpu, run, cpu, vocab, max_draws=1):
    s = run(Sampler(gpu, vocab, max_draws=max_draws, cpu=cpu).setup())
    assert dict(s._penalty.key[3])["CPU"] is cpu   # key: (shader, entry, consts, defines)
    return s


def penalize(logits, counts, rep=1.0, presence=0.0, frequency=0.0):
    """Reference: HF's repetition penalty, then OpenAI's presence / frequency penalties."""
    z = logits.astype(np.float64).copy()
    seen = counts > 0
    z[seen] = np.where(z[seen] > 0, z[seen] / rep, z[seen] * rep)
    return z - seen * presence - counts * frequency


def target_probs(z, p: SamplingParams):
    """The exact distribution the sampler must draw from: softmax(z / T), then top-k (ties at
    the k-th value kept), top-p over the top-k set (smallest descending prefix reaching top_p,
    ties with its last token kept), min-p (prob >= min_p * max prob)."""
    w = np.exp((z - z.max()) / p.temperature)
    keep = np.ones(z.size, bool)
    if 0 < p.top_k < z.size:
        keep &= z >= np.sort(z)[::-1][p.top_k - 1]
    if p.top_p < 1:
        order = np.argsort(-z, kind="stable")
        wk = np.where(keep, w, 0.0)[order]
        cum = np.cumsum(wk) / wk.sum()
        last = int(np.argmax(cum >= p.top_p))
        keep &= z >= z[order[last]]
    keep &= w >= p.min_p
    q = np.where(keep, w, 0.0)
    return q / q.sum()


def chi2_sf(x: float, dof: int) -> float:
    """P(chi^2_dof > x): the regularized upper incomplete gamma Q(dof/2, x/2) (series for
    small x, Lentz's continued fraction otherwise); no scipy here."""
    a, x = dof / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    lg = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        for n in range(1, 1000):
            term *= x / (a + n)
            total += term
            if term < total * 1e-15:
                break
        return 1.0 - total * math.exp(lg)
    b, c, d = x + 1 - a, 1e300, 1 / (x + 1 - a)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(lg) * h


def test_chi2_sf_known_values():
    # Tables: chi^2 with 1 dof exceeds 3.841 with p 0.05; 10 dof exceeds 23.209 with p 0.01.
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, rel=1e-5)
    assert chi2_sf(23.209251, 10) == pytest.approx(0.01, rel=1e-5)
    assert chi2_sf(2.0, 4) == pytest.approx(math.exp(-1) * 2, rel=1e-12)


@pytest.mark.parametrize("bad", [dict(temperature=-0.1), dict(temperature=float("nan")),
                                 dict(top_k=-1), dict(top_k=2.5), dict(top_p=0.0),
                                 dict(top_p=1.5), dict(min_p=-0.1), dict(min_p=1.1),
                                 dict(repetition_penalty=0.0), dict(presence_penalty=2.5),
                                 dict(frequency_penalty=-3.0), dict(seed=-1), dict(seed=2 ** 32),
                                 dict(logprobs=21), dict(logprobs=-1)])
def test_params_out_of_range_are_named(bad):
    with pytest.raises(SamplingParamsError, match=next(iter(bad))):
        SamplingParams(**bad)


# -- greedy -------------------------------------------------------------------------------------
@pytest.mark.parametrize("vocab", [1000, 32000, 151936, 262144])
def test_greedy_is_numpy_argmax(gpu, run, cpu, vocab):
    rng = np.random.default_rng()
    x = (rng.standard_normal(vocab) * 4).astype(np.float32)
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    for params in (SamplingParams(temperature=0), SamplingParams(temperature=0.8, top_k=1)):
        s.configure(params)
        s.sample(logits)
        r = run(s.read_result())
        assert r.id == int(np.argmax(x)) and r.n_kept == 1 and r.max_logit == x.max()
    s.destroy()
    gpu.destroy_buffer(logits)


def test_greedy_ties_go_to_the_lowest_id(gpu, run, cpu):
    vocab = 100_000
    rng = np.random.default_rng()
    x = rng.standard_normal(vocab).astype(np.float32)
    ties = rng.choice(vocab, 6, replace=False)  # spread over different 1024-entry chunks
    x[ties] = 9.5
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.configure(SamplingParams(temperature=0))
    s.sample(logits)
    assert run(s.read_result()).id == int(ties.min())
    s.destroy()
    gpu.destroy_buffer(logits)


# -- penalties ----------------------------------------------------------------------------------
def test_penalties_match_numpy_and_count_the_chosen_token(gpu, run, cpu):
    vocab = 5003
    rng = np.random.default_rng()
    x = (rng.standard_normal(vocab) * 3).astype(np.float32)
    ids = rng.integers(0, vocab, 3000)  # many tokens seen several times
    counts = np.bincount(ids, minlength=vocab)
    params = SamplingParams(temperature=0, repetition_penalty=1.3, presence_penalty=0.5,
                            frequency_penalty=0.25)
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.reset()
    s.record_tokens(ids[:1000])
    s.record_tokens(ids[1000:])
    s.configure(params)
    s.sample(logits)
    r = run(s.read_result())
    got = np.frombuffer(run(gpu.read(s.adjusted)), np.float32)[:vocab]
    ref = penalize(x, counts, 1.3, 0.5, 0.25)
    # f32: one rounded division or product, then two rounded subtractions: a few ulp of |z|.
    assert np.allclose(got, ref, rtol=4e-7, atol=4e-7 * np.abs(ref).max())
    assert r.id == int(np.argmax(got))
    # The chosen token was counted on the GPU (params.record), nothing else changed.
    after = np.frombuffer(run(gpu.read(s.counts)), np.uint32)[:vocab]
    expect = counts.copy()
    expect[r.id] += 1
    assert np.array_equal(after, expect)
    s.reset()
    assert not np.frombuffer(run(gpu.read(s.counts)), np.uint32).any()
    s.destroy()
    gpu.destroy_buffer(logits)


# -- the cut on large vocabularies: exact k-th value and top-p prefix -------------------------
EPS = 2e-5  # f32 weights exp(f32((z - max) / T)) are off by ~|z - max| / T * 2^-23 <= ~1e-6


@pytest.mark.parametrize("params", [SamplingParams(top_k=1024), SamplingParams(top_k=37),
                                    SamplingParams(top_p=0.9, temperature=0.8),
                                    SamplingParams(top_k=1000, top_p=0.5),
                                    SamplingParams(min_p=0.02, temperature=1.2)])
def test_cut_is_exact_on_a_large_vocab(gpu, run, cpu, params):
    """top-k: the cut is exactly the k-th largest logit. top-p / min-p: the kept count lies
    between the float64 reference's counts for top_p -/+ EPS and min_p * (1 +/- EPS), since a
    boundary token within f32 rounding of the threshold may go either way."""
    vocab = 151936
    rng = np.random.default_rng()
    x = (rng.standard_normal(vocab) * 2).astype(np.float32)
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.configure(params)
    s.sample(logits)
    r = run(s.read_result())
    z = x.astype(np.float64)
    w = np.exp((z - z.max()) / params.temperature)
    kept = (z >= r.cut) & (w >= params.min_p)
    tight = replace(params, top_p=max(params.top_p - EPS, 1e-9), min_p=params.min_p * (1 + EPS))
    loose = replace(params, top_p=min(params.top_p + EPS, 1.0), min_p=params.min_p * (1 - EPS))
    lo, hi = (np.count_nonzero(target_probs(z, p)) for p in (tight, loose))
    assert lo <= r.n_kept <= hi and r.n_kept == kept.sum() and kept[r.id]
    if params.top_p == 1 and params.min_p == 0:
        assert r.n_kept == params.top_k and r.cut == np.sort(x)[::-1][params.top_k - 1]
    # Kept mass, in units of the top token's weight: f32 sums of up to V terms (relative 1e-5).
    assert r.kept_mass == pytest.approx(w[kept].sum(), rel=1e-5)
    s.destroy()
    gpu.destroy_buffer(logits)


def test_top_k_keeps_ties_at_the_kth_value(gpu, run, cpu):
    vocab = 3000
    rng = np.random.default_rng()
    x = rng.integers(-20, 20, vocab).astype(np.float32)  # ~75 tokens share each value
    params = SamplingParams(top_k=100)
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.configure(params)
    s.sample(logits)
    r = run(s.read_result())
    kth = np.sort(x)[::-1][99]
    assert r.cut == kth and r.n_kept == int((x >= kth).sum()) > 100
    s.destroy()
    gpu.destroy_buffer(logits)


# -- seeded RNG ---------------------------------------------------------------------------------
def test_same_seed_same_tokens_other_seed_other_tokens(gpu, run, cpu):
    vocab = 32000
    rng = np.random.default_rng()
    x = rng.standard_normal(vocab).astype(np.float32)  # flat: thousands of likely tokens
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")

    def tokens(seed, steps=12):
        s.configure(SamplingParams(temperature=1.0, top_p=0.95, seed=seed))
        out = []
        for _ in range(steps):
            s.sample(logits)
            out.append(run(s.read_result()).id)
        return out

    seed = int(rng.integers(0, 2 ** 32))
    a, b, c = tokens(seed), tokens(seed), tokens(seed ^ 1)
    assert a == b
    assert a != c and len(set(a)) > 6  # the step counter moves the RNG on
    s.destroy()
    gpu.destroy_buffer(logits)


# -- distributions ------------------------------------------------------------------------------
DRAWS = 4000
CONFIGS = [SamplingParams(temperature=0.7), SamplingParams(temperature=1.0, top_k=7),
           SamplingParams(temperature=1.0, top_p=0.8), SamplingParams(temperature=1.0, min_p=0.1),
           SamplingParams(temperature=1.3, top_k=20, top_p=0.9, min_p=0.05),
           SamplingParams(temperature=0.9, repetition_penalty=1.5, presence_penalty=0.4,
                          frequency_penalty=0.3, top_p=0.95)]


@pytest.mark.parametrize("params", CONFIGS)
def test_draws_follow_the_target_distribution(gpu, run, cpu, params):
    """4000 draws on a 50-token vocab; chi-square goodness of fit against the exact target
    (cells with expected count < 5 merged) must have p > 1e-4, so a correct sampler fails
    this test once in 10^4 runs. Tokens outside the kept set must never appear."""
    vocab = 50
    rng = np.random.default_rng()
    x = (rng.standard_normal(vocab) * 1.5).astype(np.float32)
    ids = rng.integers(0, vocab, 30)
    counts = np.bincount(ids, minlength=vocab)
    s = make_sampler(gpu, run, cpu, vocab, max_draws=DRAWS)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.reset()
    s.record_tokens(ids)
    s.configure(params)
    draws = np.array(run(s.sample_many(logits, DRAWS)))
    z = penalize(x, counts, params.repetition_penalty, params.presence_penalty,
                 params.frequency_penalty)
    q = target_probs(z, params)
    seen = np.bincount(draws, minlength=vocab)
    assert seen[q == 0].sum() == 0, "excluded tokens were drawn"
    expected = q * DRAWS
    big = expected >= 5
    obs = np.append(seen[big], seen[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    stat = float(((obs - exp) ** 2 / exp).sum())
    assert chi2_sf(stat, len(exp) - 1) > 1e-4, (stat, len(exp))
    s.destroy()
    gpu.destroy_buffer(logits)


def test_draw_zero_is_the_sampled_token(gpu, run, cpu):
    vocab = 50
    x = (np.random.default_rng().standard_normal(vocab) * 2).astype(np.float32)
    s = make_sampler(gpu, run, cpu, vocab, max_draws=64)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.configure(SamplingParams(top_k=30, seed=7))
    many = run(s.sample_many(logits, 64))
    s.configure(SamplingParams(top_k=30, seed=7))
    s.sample(logits)
    assert run(s.read_result()).id == many[0] and len(set(many)) > 3
    s.destroy()
    gpu.destroy_buffer(logits)


# -- logprobs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("vocab,params", [
    (1000, SamplingParams(temperature=0, logprobs=5)),
    (32000, SamplingParams(temperature=0.6, top_k=50, logprobs=20)),
    (151936, SamplingParams(temperature=1.0, top_p=0.9, logprobs=8, repetition_penalty=1.2))])
def test_logprobs_match_numpy_log_softmax(gpu, run, cpu, vocab, params):
    rng = np.random.default_rng()
    x = (rng.standard_normal(vocab) * 3).astype(np.float32)
    ids = rng.integers(0, vocab, 200)
    counts = np.bincount(ids, minlength=vocab)
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")
    s.reset()
    s.record_tokens(ids)
    s.configure(params)
    s.sample(logits)
    r = run(s.read_result())
    z = penalize(x, counts, params.repetition_penalty) / (params.temperature or 1.0)
    lp = z - z.max() - np.log(np.exp(z - z.max()).sum())  # log_softmax, full vocab
    order = np.argsort(-lp, kind="stable")[:params.logprobs]
    assert [i for i, _ in r.top] == order.tolist()
    # f32: (z - max) / T is exact to ~1 ulp of |z|; log of the f32 sum of V terms is off by at
    # most ~V * 2^-24 relative in the sum -> absolute 1e-4 for V <= 151936 in the worst case.
    assert np.allclose([v for _, v in r.top], lp[order], atol=1e-4)
    assert r.logprob == pytest.approx(lp[r.id], abs=1e-4)
    s.destroy()
    gpu.destroy_buffer(logits)


def test_recorded_plan_replays_like_direct_sampling(gpu, run, cpu):
    """sample(target=plan) once; per step only a replay: no buffer write at all (the RNG step
    counter and the penalty counts advance on the GPU). Same seed -> the same ids as direct
    calls, and the chosen tokens are counted on the GPU between replays (the repetition penalty
    sees them without a host round trip)."""
    vocab = 2000
    rng = np.random.default_rng()
    x = (rng.standard_normal(vocab) * 2).astype(np.float32)
    params = SamplingParams(temperature=0.9, top_k=50, repetition_penalty=3.0, seed=11)
    s = make_sampler(gpu, run, cpu, vocab)
    logits = gpu.upload(f32(x), kind="activations", label="logits")

    def direct(steps=8):
        s.reset()
        s.configure(params)
        out = []
        for _ in range(steps):
            s.sample(logits)
            out.append(run(s.read_result()).id)
        return out

    plan = gpu.plan("sample")
    s.sample(logits, target=plan)
    s.reset()
    s.configure(params)
    replayed = []
    writes = []
    real_write = gpu.write
    gpu.write = lambda *a, **k: (writes.append(a[0].label), real_write(*a, **k))
    try:
        for _ in range(8):
            gpu.replay(plan)
            replayed.append(run(s.read_result()).id)
    finally:
        del gpu.write
    assert writes == []
    counts = np.frombuffer(run(gpu.read(s.counts)), np.uint32)[:vocab]
    assert replayed == direct()
    assert np.array_equal(counts, np.bincount(replayed, minlength=vocab))
    s.destroy()
    gpu.destroy_buffer(logits)
