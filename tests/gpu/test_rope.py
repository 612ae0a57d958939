"""shaders/rope.wgsl (app/kernels/rope.py) against float64 numpy.

The inverse frequencies of the reference are written here from transformers' formulas
(modeling_rope_utils: default, linear, llama3, longrope) in numpy float64, not taken from the
module under test. Positions come from the Step uniform, up to and past 32768.

Tolerance, per rotated element (a', b' from the pair (a, b), attention factor m):
    |err| <= (|a| + |b|) * m * 2^-20   (9.5e-7)
The kernel reduces pos * inv_freq modulo one turn exactly in integers (64-bit fixed point), so the
angle error does not grow with the position: < 2^-32 turn dropped, then the remainder after the
nearest quarter turn is converted to f32 radians in [-pi/4, pi/4] (two roundings: < 1e-7 rad).
cos/sin come from the kernel's own polynomials there (truncation < 2e-9, f32 evaluation a few
ulp), not from the built-ins, which WGSL only bounds by 2^-11 and SwiftShader's really are that
coarse (2^-12.4 measured); a cos - b sin adds two or three roundings of 2^-24 relative. 2^-20
leaves ~4x over the measured worst case, 2^-22.7 * (|a| + |b|) on lavapipe and on Chromium's
SwiftShader alike (positions 0..40000, 2^20, 2^24). A plain f32 angle (pos * inv_freq in f32, then
cos/sin) is off by up to ~2e-3 at pos 32768, ~2000x this bound: see
test_plain_f32_angles_would_fail_this_tolerance.
"""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from app.kernels.grid import step_params, write_step
from app.kernels.rope import rope, rope_frequencies, rope_table


# -- reference ------------------------------------------------------------------------------------
def ref_inv_freq(rotary_dim, theta, scaling=None, n_ctx=0):
    """float64 inverse frequencies, transformers' semantics; n_ctx = pos + n_tokens (longrope)."""
    inv = 1.0 / theta ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    scaling = scaling or {}
    kind = scaling.get("rope_type", "default")
    if kind == "linear":
        return inv / scaling["factor"], 1.0
    if kind == "llama3":
        factor, low = scaling["factor"], scaling["low_freq_factor"]
        high = scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * np.pi / inv
        scaled = np.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        return np.where(medium, smoothed, scaled), 1.0
    if kind == "longrope":
        orig = scaling["original_max_position_embeddings"]
        ext = np.array(scaling["long_factor" if n_ctx > orig else "short_factor"], np.float64)
        s = scaling["max_position_embeddings"] / orig
        return inv / ext, (np.sqrt(1 + np.log(s) / np.log(orig)) if s > 1 else 1.0)
    return inv, 1.0


def ref_rope(x, pos, inv, attn, rotary_dim, neox):
    """x (T, H, D) f32 -> float64 rotated copy, positions pos + t."""
    t = x.shape[0]
    ang = (pos + np.arange(t, dtype=np.float64))[:, None, None] * inv[None, None, :]
    c, s = np.cos(ang) * attn, np.sin(ang) * attn
    y = x.astype(np.float64)
    half = rotary_dim // 2
    ia = np.arange(half) if neox else 2 * np.arange(half)
    ib = ia + half if neox else ia + 1
    a, b = y[..., ia].copy(), y[..., ib].copy()
    y[..., ia], y[..., ib] = a * c - b * s, a * s + b * c
    return y, np.abs(x[..., ia].astype(np.float64)) + np.abs(x[..., ib]), ia, ib


def check(got, x, pos, inv, attn, rotary_dim, neox):
    ref, mag, ia, ib = ref_rope(x, pos, inv, attn, rotary_dim, neox)
    tol = mag * attn * 2.0 ** -20
    for idx in (ia, ib):
        err = np.abs(got[..., idx] - ref[..., idx])
        assert np.all(err <= tol), f"pos {pos}: max err {err.max():.3g} (tol {tol.min():.3g}+)"
    rest = np.setdiff1d(np.arange(x.shape[-1]), np.concatenate([ia, ib]))
    assert np.array_equal(got[..., rest], x[..., rest])  # dims past rotary_dim pass through


# -- cases -------------------------------------------------------------------------------------
LLAMA3 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}
LINEAR8 = {"rope_type": "linear", "factor": 8.0}


def longrope(half, rng):
    """Phi-3-like: short factors near 1, long ones growing to ~40; 4096 -> 131072 positions."""
    short = (1.0 + rng.random(half) * 0.2).tolist()
    long = np.sort(1.0 + rng.random(half) * 40.0).tolist()
    return {"rope_type": "longrope", "short_factor": short, "long_factor": long,
            "original_max_position_embeddings": 4096, "max_position_embeddings": 131072}


# (n_tokens, n_heads, head_dim, rotary_dim, neox, theta, scaling)
CASES = [
    (1, 9, 64, 64, False, 10000.0, None),          # SmolLM2-135M q, decode
    (5, 3, 64, 64, False, 100000.0, None),         # its k (3 kv heads), prefill
    (4, 14, 64, 64, True, 1000000.0, None),        # Qwen2.5-0.5B
    (3, 8, 128, 128, False, 500000.0, LLAMA3),     # Llama-3.2
    (2, 4, 256, 256, True, 1000000.0, LINEAR8),    # Gemma-3 global layers
    (3, 5, 80, 32, True, 10000.0, None),           # partial rotary, half split
    (2, 3, 100, 50, False, 10000.0, None),         # partial rotary, interleaved, odd pair count
    (7, 1, 128, 128, True, 10000.0, None),         # one head (MQA k), more tokens than heads
]
POSITIONS = [0, 17, 4093, 32768 - 7, 32768, 200_000]


@pytest.mark.parametrize("t,h,d,rot,neox,theta,scaling", CASES)
def test_rope_matches_numpy_at_positions(gpu, run, t, h, d, rot, neox, theta, scaling):
    rng = np.random.default_rng()
    table = rope_table(gpu, rot, theta, scaling)
    inv, attn = ref_inv_freq(rot, theta, scaling)
    x = rng.standard_normal((t, h, d)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    step = step_params(gpu, 0, t)
    for pos in POSITIONS:
        x = rng.standard_normal((t, h, d)).astype(np.float32)
        gpu.write(gx, x.tobytes())
        write_step(gpu, step, pos, t)
        assert run(rope(gpu, gx, table, step, t, h, d, neox=neox)) is gx
        got = np.frombuffer(run(gpu.read(gx)), np.float32).reshape(t, h, d)
        check(got, x, pos, inv, attn, rot, neox)
    for b in (gx, step, table.buffer):
        gpu.destroy_buffer(b)


def test_gguf_freq_factors(gpu, run):
    """GGUF rope_freqs.weight (Llama-3.1 files): inv_freq[j] / freq_factors[j]."""
    rng = np.random.default_rng()
    t, h, d = 2, 4, 128
    ff = (1.0 + rng.random(d // 2) * 31).astype(np.float32)
    table = rope_table(gpu, d, 500000.0, freq_factors=ff.tolist())
    inv = ref_inv_freq(d, 500000.0)[0] / ff.astype(np.float64)
    x = rng.standard_normal((t, h, d)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    step = step_params(gpu, 30000, t)
    run(rope(gpu, gx, table, step, t, h, d))
    got = np.frombuffer(run(gpu.read(gx)), np.float32).reshape(t, h, d)
    check(got, x, 30000, inv, 1.0, d, False)
    for b in (gx, step, table.buffer):
        gpu.destroy_buffer(b)


def record_target(gpu):
    """The engine's dispatch plan when app.gpu has one, else a list replayed one by one."""
    if hasattr(gpu, "plan") and hasattr(gpu, "replay"):
        plan = gpu.plan("rope-test")
        return plan, lambda: gpu.replay(plan)
    calls = []

    class Recorder:
        def dispatch(self, *args):
            calls.append(args)
    return Recorder(), lambda: [gpu.dispatch(*c) for c in calls]


@pytest.mark.parametrize("neox", [False, True])
def test_longrope_switches_tables_on_replay(gpu, run, neox):
    """Phi-3 longrope: one recorded plan (q and k), replayed after write_step at positions below,
    at and past original_max_position_embeddings: short factors while pos + n_tokens <= 4096,
    long factors after, attention factor always."""
    rng = np.random.default_rng()
    t, hq, hk, d = 3, 4, 2, 96
    scaling = longrope(d // 2, rng)
    table = rope_table(gpu, d, 10000.0, scaling)
    gq = gpu.create_buffer(4 * t * hq * d, kind="activations", label="q")
    gk = gpu.create_buffer(4 * t * hk * d, kind="activations", label="k")
    step = step_params(gpu, 0, t)
    target, replay = record_target(gpu)
    run(rope(gpu, gq, table, step, t, hq, d, neox=neox, target=target))
    run(rope(gpu, gk, table, step, t, hk, d, neox=neox, target=target))
    for pos in (0, 4096 - t - 1, 4096 - t, 4096 - t + 1, 20000, 131071 - t):
        q = rng.standard_normal((t, hq, d)).astype(np.float32)
        k = rng.standard_normal((t, hk, d)).astype(np.float32)
        gpu.write(gq, q.tobytes())
        gpu.write(gk, k.tobytes())
        write_step(gpu, step, pos, t)
        replay()
        run(gpu.check("rope replay"))
        inv, attn = ref_inv_freq(d, 10000.0, scaling, n_ctx=pos + t)
        assert attn > 1.1
        for buf, x, h in ((gq, q, hq), (gk, k, hk)):
            got = np.frombuffer(run(gpu.read(buf)), np.float32).reshape(t, h, d)
            check(got, x, pos, inv, attn, d, neox)
    for b in (gq, gk, step, table.buffer):
        gpu.destroy_buffer(b)


def test_replay_at_new_position_changes_result(gpu, run):
    """Same pipeline and bind group; only the Step uniform changes between two replays."""
    rng = np.random.default_rng()
    t, h, d = 2, 8, 64
    table = rope_table(gpu, d, 10000.0)
    x = rng.standard_normal((t, h, d)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    step = step_params(gpu, 5, t)
    target, replay = record_target(gpu)
    run(rope(gpu, gx, table, step, t, h, d, target=target))
    inv = ref_inv_freq(d, 10000.0)[0]
    outs = []
    for pos in (5, 12345):
        gpu.write(gx, x.tobytes())
        write_step(gpu, step, pos, t)
        replay()
        outs.append(np.frombuffer(run(gpu.read(gx)), np.float32).reshape(t, h, d))
        check(outs[-1], x, pos, inv, 1.0, d, False)
    assert np.abs(outs[0] - outs[1]).max() > 0.1
    for b in (gx, step, table.buffer):
        gpu.destroy_buffer(b)


def test_rope_grid_spills_into_y(gpu, run):
    """2^24 pairs need 65536 workgroups of 256, one more than a grid dimension holds. (x is then
    exactly 128 MiB, lavapipe's max storage binding: a smaller pair count cannot spill.)"""
    rng = np.random.default_rng()
    t, h, d = 4096, 64, 128
    table = rope_table(gpu, d, 10000.0)
    x = rng.standard_normal((t, h, d)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    step = step_params(gpu, 100, t)
    run(rope(gpu, gx, table, step, t, h, d, neox=True))
    got = np.frombuffer(run(gpu.read(gx)), np.float32).reshape(t, h, d)
    check(got[-40:], x[-40:], 100 + t - 40, ref_inv_freq(d, 10000.0)[0], 1.0, d, True)
    check(got[:3], x[:3], 100, ref_inv_freq(d, 10000.0)[0], 1.0, d, True)
    for b in (gx, step, table.buffer):
        gpu.destroy_buffer(b)


# -- the tables themselves (pure Python, no GPU) ------------------------------------------------
@pytest.mark.parametrize("rot,theta,scaling", [(64, 10000.0, None), (128, 500000.0, LLAMA3),
                                               (256, 1e6, LINEAR8), (96, 10000.0, "longrope")])
def test_frequency_tables_match_transformers_formulas(rot, theta, scaling):
    rng = np.random.default_rng()
    if scaling == "longrope":
        scaling = longrope(rot // 2, rng)
    fr = rope_frequencies(rot, theta, scaling)
    inv, attn = ref_inv_freq(rot, theta, scaling)
    np.testing.assert_allclose(fr.inv_freq, inv, rtol=1e-14)
    assert fr.attention_factor == pytest.approx(attn, rel=1e-14)
    if fr.long_inv_freq is not None:
        np.testing.assert_allclose(fr.long_inv_freq, ref_inv_freq(rot, theta, scaling, 10**6)[0],
                                   rtol=1e-14)
    if scaling and scaling.get("rope_type") == "llama3":  # all three regimes occur at these values
        wavelen = 2 * np.pi / ref_inv_freq(rot, theta)[0]
        assert (wavelen < 2048).any() and (wavelen > 8192).any()
        assert ((wavelen >= 2048) & (wavelen <= 8192)).any()


def test_table_words_are_turns_per_position(gpu, run):
    """The uploaded (hi, lo) words are inv_freq / 2pi as a 64-bit fraction of a turn."""
    table = rope_table(gpu, 64, 10000.0)
    words = struct.unpack("<64I", run(gpu.read(table.buffer)))
    inv = ref_inv_freq(64, 10000.0)[0]
    for j in range(32):
        frac = (words[2 * j] * 2.0 ** 32 + words[2 * j + 1]) * 2.0 ** -64
        assert frac == pytest.approx(inv[j] / (2 * math.pi) % 1.0, rel=1e-15, abs=1e-19)
    gpu.destroy_buffer(table.buffer)


def test_plain_f32_angles_would_fail_this_tolerance():
    """Why the kernel reduces angles in integers: the straightforward f32 computation misses the
    tolerance above by far at pos ~32768 (so the tolerance does test the range reduction)."""
    inv = ref_inv_freq(128, 500000.0)[0]
    pos = np.arange(32760, 32769, dtype=np.float64)[:, None]
    naive = np.cos(pos.astype(np.float32) * inv.astype(np.float32))  # f32 product, f32 cos
    err = np.abs(naive.astype(np.float64) - np.cos(pos * inv)).max()
    assert err > 100 * 2.0 ** -20
