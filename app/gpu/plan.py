"""Dispatch plans: record a step's dispatches once, replay them every step.

    plan = dev.plan("decode")
    await matvec(dev, w, x, out=y, target=plan)     # ops call plan.dispatch(...) instead of dev's
    ...
    dev.replay(plan, step=step_buf, step_data=struct.pack("<4I", pos, 1, pos + 1, 0))

A replay performs at most one writeBuffer (step_data into the step buffer, at offset 0), then
encodes every recorded dispatch, in recording order, in ONE compute pass and submits it. The
backend turns the recording into its own form once (`Device._prepare_plan`): natively a tuple of
(pipeline, bind groups, x, y, z) tuples walked by a tight loop; in the browser JS arrays handed to
app/gpu/replay.js, so a replay is one call from Python into JS however many dispatches it holds.

Buffers bound by a plan must outlive it: the plan keeps bind groups, not buffers, and WebGPU
rejects a submit that uses a destroyed buffer (raised by the next `dev.check()`).
"""
from __future__ import annotations

import struct
from typing import NamedTuple


class Dispatch(NamedTuple):
    pipeline: object      # app.gpu.Pipeline
    bind_groups: tuple    # backend bind-group handles, group i at index i
    workgroups: tuple     # (x, y, z), validated against the device's per-dimension limit


class Plan:
    """A recorded sequence of dispatches on one device. Create with `dev.plan(name)`."""

    def __init__(self, device, name: str = "plan"):
        self.device = device
        self.name = name
        self.dispatches: list[Dispatch] = []
        self.kept: list = []   # buffers ops created for this plan (shape uniforms)
        self._prepared = None  # the backend's form, rebuilt after new dispatches are recorded

    def dispatch(self, pipeline, bind_groups: list, workgroups: tuple[int, ...]) -> None:
        """Record one dispatch; same signature and checks as Device.dispatch, nothing is run."""
        self.device._check_alive()
        xyz = self.device._workgroups(workgroups)
        self.dispatches.append(Dispatch(pipeline, tuple(bind_groups), xyz))
        self._prepared = None

    def keep(self, buf) -> None:
        """Keep a buffer an op created for this plan alive until `destroy()`."""
        self.kept.append(buf)

    def destroy(self) -> None:
        """Free the buffers the plan kept; the plan must not be replayed afterwards."""
        for buf in self.kept:
            self.device.destroy_buffer(buf)
        self.kept.clear()
        self.dispatches.clear()
        self._prepared = None

    def prepared(self):
        if self._prepared is None:
            self._prepared = self.device._prepare_plan(self.dispatches)
        return self._prepared

    def __len__(self) -> int:
        return len(self.dispatches)

    def __bool__(self) -> bool:
        # Ops dispatch with `(target or dev).dispatch(...)`: an empty plan must not be falsy.
        return True

    def __repr__(self) -> str:
        return f"<Plan {self.name!r}: {len(self.dispatches)} dispatches>"


class Timer:
    """GPU timestamps at the start and end of a replay's compute pass (needs timestamp-query).

        t = dev.timer()
        dev.replay(plan, timer=t)
        seconds = await t.seconds()

    `handle` is the backend's query set; `resolve` a 16-byte Buffer the two u64 nanosecond
    stamps are resolved into (usage QUERY_RESOLVE | COPY_SRC)."""

    def __init__(self, device, handle, resolve):
        self.device = device
        self.handle = handle
        self.resolve = resolve

    async def seconds(self) -> float:
        begin, end = struct.unpack("<2Q", await self.device.read(self.resolve))
        return (end - begin) * 1e-9

    def destroy(self) -> None:
        self.device.destroy_buffer(self.resolve)
        self.device._destroy_timer(self)
