"""Host cost per dispatch: Python issuing each dispatch vs replaying a recorded Plan.

    (a) per call   N x dev.dispatch(...): each encodes a pass with one dispatch and submits it
                   (in the page: ~9 Python -> JS proxy calls per dispatch)
    (b) replay     dev.replay(plan, step, step_data) of a plan of the same N dispatches: one
                   writeBuffer + one pass (in the page: ONE call into app/gpu/replay.js)

Only host time is measured: the clock stops when the calls return; the GPU work is then drained
(a 4-byte readback) outside the timed region. Each round issues `batch` x N dispatches so that
the browser's coarse performance.now() (100 us without cross-origin isolation) stays small next
to the interval; the median of `rounds` rounds is reported. The dispatches are tiny: one
workgroup of shaders/probe_read.wgsl over 4 KiB, so the GPU side is negligible.
Plain Python (no numpy): runs natively and in the page alike.
"""
from __future__ import annotations

import statistics
import struct
import time

from ..gpu import BufferUsage, Device


async def measure(dev: Device, n: int = 300, rounds: int = 7, batch: int = 5) -> dict:
    pipe = await dev.pipeline("probe_read", "main")
    data = dev.create_buffer(4096, kind="activations", label="bench.data")
    sink = dev.create_buffer(1024, kind="activations", label="bench.sink")
    step = dev.create_buffer(16, kind="uniforms", label="bench.step",
                             usage=BufferUsage.UNIFORM | BufferUsage.COPY_DST)
    bg = dev.bind(pipe, [data, sink])

    async def drain():
        await dev.read(sink, 0, 4)

    per_call = []
    for r in range(rounds + 1):  # round 0 warms up
        t0 = time.perf_counter()
        for _ in range(batch * n):
            dev.dispatch(pipe, [bg], (1, 1, 1))
        t1 = time.perf_counter()
        await drain()
        if r:
            per_call.append((t1 - t0) / (batch * n))

    plan = dev.plan("bench")
    for _ in range(n):
        plan.dispatch(pipe, [bg], (1, 1, 1))
    replay = []
    for r in range(rounds + 1):  # round 0 also builds the plan's backend form
        t0 = time.perf_counter()
        for i in range(batch):
            dev.replay(plan, step, struct.pack("<4I", r * batch + i, 1, r * batch + i + 1, 0))
        t1 = time.perf_counter()
        await drain()
        if r:
            replay.append((t1 - t0) / (batch * n))
    gpu = await gpu_cost(dev, plan, pipe, data, n, rounds)
    await dev.check("dispatch benchmark")
    for buf in (data, sink, step):
        dev.destroy_buffer(buf)
    a, b = statistics.median(per_call), statistics.median(replay)
    return {"backend": dev.backend, "adapter": describe(dev), "n": n, "rounds": rounds,
            "batch": batch, "per_call_us": a * 1e6, "replay_us": b * 1e6, "ratio": a / b, **gpu}


async def gpu_cost(dev: Device, plan, pipe, data, n: int, rounds: int) -> dict:
    """GPU time per tiny dispatch inside one replayed pass (timestamps around the pass / n):
    the fixed cost each dispatch adds on the GPU (launch + the barrier the implementation puts
    between dispatches). Measured twice: every dispatch writing the same sink (a true
    dependency) and each writing its own sink (no hazard between them)."""
    if "timestamp-query" not in dev.features:
        return {}
    sinks = [dev.create_buffer(256, kind="activations", label=f"bench.sink{i}") for i in range(n)]
    independent = dev.plan("bench.independent")
    for s in sinks:
        independent.dispatch(pipe, [dev.bind(pipe, [data, s])], (1, 1, 1))
    out = {}
    for name, p in (("gpu_same_sink_us", plan), ("gpu_own_sink_us", independent)):
        timer = dev.timer()
        times = []
        for _ in range(rounds + 1):
            dev.replay(p, timer=timer)
            times.append(await timer.seconds())
        out[name] = statistics.median(times[1:]) / n * 1e6
        timer.destroy()
    for s in sinks:
        dev.destroy_buffer(s)
    return out


def describe(dev: Device) -> str:
    i = dev.info
    parts = [i.vendor, i.architecture, i.device, i.description]
    return f"{dev.info.backend}: " + " / ".join(p for p in parts if p)


def report(r: dict) -> str:
    return (f"{r['backend']:8s} {r['adapter']}\n"
            f"  (a) per-call dispatch: {r['per_call_us']:8.2f} us/dispatch\n"
            f"  (b) plan replay:       {r['replay_us']:8.2f} us/dispatch "
            f"(plan of {r['n']}, {r['batch']} replays per round, median of {r['rounds']})\n"
            f"  ratio (a)/(b):         {r['ratio']:8.1f}x"
            + (f"\n  GPU time per dispatch in a replayed pass: {r['gpu_same_sink_us']:.2f} us "
               f"(same output buffer), {r['gpu_own_sink_us']:.2f} us (own output buffers)"
               if "gpu_same_sink_us" in r else ""))
