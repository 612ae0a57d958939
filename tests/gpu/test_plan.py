"""Dispatch plans (app/gpu/plan.py) on the native backend: record once, replay with new step data,
validation at record and replay time, GPU timers. Kernels: shaders/matmul.wgsl dispatched by hand
(its op, app.kernels.matmul, dispatches and checks by itself)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from app.gpu import BufferUsage, GPUError
from app.gpu.plan import Plan

TILE = 16
UNIFORM = BufferUsage.UNIFORM | BufferUsage.COPY_DST


def f32(a) -> bytes:
    return np.ascontiguousarray(a, np.float32).tobytes()


def record_matmul(gpu, run, plan, a, b, c, params, m, n):
    pipe = run(gpu.pipeline("matmul", "main", {"TILE": TILE}))
    plan.dispatch(pipe, [gpu.bind(pipe, [a, b, c, params])], (-(-n // TILE), -(-m // TILE)))


def close(got, a, b):
    """f32 accumulation bound of test_matmul: k * 2^-23 * (|a| @ |b|)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    bound = np.abs(a) @ np.abs(b) * a.shape[1] * 2.0 ** -23
    return np.all(np.abs(got - a @ b) <= bound + 1e-30)


def test_replay_chain_with_new_step_data(gpu, run, monkeypatch):
    """C1 = A @ B; C2 = C1 @ D recorded once; replayed twice with a new A written as step data.
    The second dispatch reads the first one's output: order within the one pass is kept."""
    rng = np.random.default_rng()
    m, k, n, p = 19, 37, 23, 11  # not multiples of TILE
    b, d = rng.standard_normal((k, n)), rng.standard_normal((n, p))
    ga = gpu.create_buffer(4 * m * k, kind="activations", label="a")
    gb, gd = gpu.upload(f32(b), kind="weights", label="b"), gpu.upload(f32(d), kind="weights", label="d")
    c1 = gpu.create_buffer(4 * m * n, kind="activations", label="c1")
    c2 = gpu.create_buffer(4 * m * p, kind="activations", label="c2")
    u1 = gpu.upload(struct.pack("<4I", m, n, k, 0), kind="uniforms", usage=UNIFORM)
    u2 = gpu.upload(struct.pack("<4I", m, p, n, 0), kind="uniforms", usage=UNIFORM)
    plan = gpu.plan("chain")
    record_matmul(gpu, run, plan, ga, gb, c1, u1, m, n)
    record_matmul(gpu, run, plan, c1, gd, c2, u2, m, p)
    assert len(plan) == 2
    writes = []
    real_write = gpu._write
    monkeypatch.setattr(gpu, "_write", lambda *a: (writes.append(a), real_write(*a)))
    monkeypatch.setattr(gpu, "_dispatch", lambda *a: pytest.fail("replay issued a per-call dispatch"))
    for _ in range(2):
        a = rng.standard_normal((m, k)).astype(np.float32)
        gpu.replay(plan, step=ga, step_data=f32(a))
        got1 = np.frombuffer(run(gpu.read(c1)), np.float32).reshape(m, n)
        got2 = np.frombuffer(run(gpu.read(c2)), np.float32).reshape(m, p)
        assert close(got1, a, b)
        assert close(got2, got1, d)  # c2 checked against the c1 the GPU actually produced
    assert len(writes) == 2  # one writeBuffer per replay
    run(gpu.check("plan replay"))
    for buf in (ga, gb, gd, c1, c2, u1, u2):
        gpu.destroy_buffer(buf)


def test_step_uniform_changes_what_a_replay_computes(gpu, run):
    """The step buffer is the dispatch's uniform: new (M, N, K) per replay, same recorded plan.
    A and B are read as (M, K) and (K, N) from the first M*K and K*N values of the buffers."""
    rng = np.random.default_rng()
    m, n, kmax = 21, 18, 70
    a = rng.standard_normal(m * kmax).astype(np.float32)
    b = rng.standard_normal(kmax * n).astype(np.float32)
    ga, gb = gpu.upload(f32(a), kind="activations"), gpu.upload(f32(b), kind="weights")
    gc = gpu.create_buffer(4 * m * n, kind="activations", label="c")
    step = gpu.create_buffer(16, kind="uniforms", label="step", usage=UNIFORM)
    plan = gpu.plan("step")
    record_matmul(gpu, run, plan, ga, gb, gc, step, m, n)
    for k in (int(rng.integers(1, kmax + 1)), kmax, 1):
        gpu.replay(plan, step, struct.pack("<4I", m, n, k, 0))
        got = np.frombuffer(run(gpu.read(gc)), np.float32).reshape(m, n)
        assert close(got, a[:m * k].reshape(m, k), b[:k * n].reshape(k, n)), k
    for buf in (ga, gb, gc, step):
        gpu.destroy_buffer(buf)


def test_dispatches_recorded_after_a_replay_are_replayed_next_time(gpu, run):
    rng = np.random.default_rng()
    m = n = k = 9
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    ga, gb = gpu.upload(f32(a), kind="activations"), gpu.upload(f32(b), kind="weights")
    c1, c2 = (gpu.create_buffer(4 * m * n, kind="activations") for _ in range(2))
    u = gpu.upload(struct.pack("<4I", m, n, k, 0), kind="uniforms", usage=UNIFORM)
    plan = gpu.plan()
    assert plan and (plan or gpu) is plan  # ops write `(target or dev).dispatch(...)`
    gpu.replay(plan)  # an empty plan submits an empty pass
    record_matmul(gpu, run, plan, ga, gb, c1, u, m, n)
    gpu.replay(plan)
    assert close(np.frombuffer(run(gpu.read(c1)), np.float32).reshape(m, n), a, b)
    record_matmul(gpu, run, plan, c1, gb, c2, u, m, n)
    gpu.replay(plan)
    got1 = np.frombuffer(run(gpu.read(c1)), np.float32).reshape(m, n)
    assert close(np.frombuffer(run(gpu.read(c2)), np.float32).reshape(m, n), got1, b)
    for buf in (ga, gb, c1, c2, u):
        gpu.destroy_buffer(buf)


def test_validation_at_record_and_replay(gpu, run):
    pipe = run(gpu.pipeline("matmul", "main", {"TILE": TILE}))
    plan = gpu.plan("bad")
    cap = gpu.limits["maxComputeWorkgroupsPerDimension"]
    with pytest.raises(GPUError, match="spill into y"):
        plan.dispatch(pipe, [], (cap + 1, 1, 1))
    with pytest.raises(GPUError, match="spill into y"):
        plan.dispatch(pipe, [], (1, cap + 1))
    assert len(plan) == 0  # nothing recorded by a rejected dispatch
    step = gpu.create_buffer(16, kind="uniforms", label="step", usage=UNIFORM)
    with pytest.raises(ValueError, match="without a step buffer"):
        gpu.replay(plan, step_data=b"\0" * 16)
    with pytest.raises(ValueError, match="overflow"):
        gpu.replay(plan, step, b"\0" * 20)
    no_dst = gpu.create_buffer(16, kind="uniforms", usage=BufferUsage.UNIFORM)
    with pytest.raises(ValueError, match="COPY_DST"):
        gpu.replay(plan, no_dst, b"\0" * 16)
    with pytest.raises(ValueError, match="another device"):
        gpu.replay(Plan(object(), "foreign"))
    gpu.destroy_buffer(step)
    with pytest.raises(ValueError, match="destroyed"):
        gpu.replay(plan, step, b"\0" * 16)
    gpu.destroy_buffer(no_dst)


def test_timer_measures_a_replay(gpu, run):
    if "timestamp-query" not in gpu.features:
        with pytest.raises(GPUError, match="timestamp-query"):
            gpu.timer()
        return
    m = n = k = 64
    rng = np.random.default_rng()
    ga = gpu.upload(f32(rng.standard_normal((m, k))), kind="activations")
    gc = gpu.create_buffer(4 * m * n, kind="activations")
    u = gpu.upload(struct.pack("<4I", m, n, k, 0), kind="uniforms", usage=UNIFORM)
    plan = gpu.plan("timed")
    for _ in range(4):
        record_matmul(gpu, run, plan, ga, ga, gc, u, m, n)
    timer = gpu.timer()
    gpu.replay(plan, timer=timer)
    seconds = run(timer.seconds())
    assert 0 < seconds < 10
    timer.destroy()
    for buf in (ga, gc, u):
        gpu.destroy_buffer(buf)
