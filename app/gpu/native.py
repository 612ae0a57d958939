"""Native backend: wgpu-py (wgpu-native) under CPython, for tests, benchmarks and the CLI.

wgpu-py raises validation and out-of-memory errors synchronously from the failing call, so this
backend maps them at the call site; `check()` has nothing left to collect.
"""
from __future__ import annotations

import re

from .device import ENGINE_LIMITS, OPTIONAL_FEATURES, AdapterInfo, Device, is_cpu_adapter
from .errors import (GPUOutOfMemoryError, GPUValidationError, ShaderCompileError,
                     WebGPUUnavailableError)

# wgpu-py names the subgroups feature "subgroup"; the engine uses the WebGPU spec's names.
_FEATURE_ALIASES = {"subgroups": "subgroup"}


def _kebab(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), name)


class NativeDevice(Device):
    backend = "native"

    def __init__(self, adapter, device, info, features, limits):
        super().__init__(info, features, limits)
        self._adapter = adapter
        self._device = device

    @staticmethod
    def _nbytes(data) -> int:
        return memoryview(data).nbytes

    def _wrap(self, what, fn, *args, **kwargs):
        import wgpu
        try:
            return fn(*args, **kwargs)
        except wgpu.GPUOutOfMemoryError as e:
            raise GPUOutOfMemoryError(what, str(e)) from e
        except wgpu.GPUValidationError as e:
            raise GPUValidationError(f"{what}: {e}") from e

    def _create_buffer(self, size, usage, label):
        return self._wrap(f"creating buffer {label!r} ({size} bytes)", self._device.create_buffer,
                          size=size, usage=usage, label=label)

    def _write(self, buf, data, offset):
        self._wrap(f"writing {buf.label!r}", self._device.queue.write_buffer, buf.handle, offset,
                   memoryview(data).cast("B"))

    async def _read(self, buf, offset, size):
        return bytes(self._wrap(f"reading {buf.label!r}", self._device.queue.read_buffer,
                                buf.handle, offset, size))

    def _destroy_buffer(self, buf):
        buf.handle.destroy()

    async def _create_pipeline(self, name, code, entry, constants):
        import wgpu
        try:
            module = self._device.create_shader_module(code=code, label=name)
        except wgpu.GPUValidationError as e:
            raise ShaderCompileError(f"shaders/{name}.wgsl: {e}") from e
        compute = {"module": module, "entry_point": entry}
        if constants:
            compute["constants"] = constants
        return self._wrap(f"creating pipeline {name}:{entry}", self._device.create_compute_pipeline,
                          layout="auto", compute=compute, label=f"{name}:{entry}")

    def _bind(self, pipeline, group, entries):
        layout = pipeline.layouts.get(group)
        if layout is None:
            layout = pipeline.layouts[group] = pipeline.handle.get_bind_group_layout(group)
        return self._wrap("creating bind group", self._device.create_bind_group, layout=layout,
                          entries=[{"binding": i, "resource": {"buffer": b.handle, "offset": off,
                                                               "size": size}}
                                   for i, b, off, size in entries])

    def _dispatch(self, pipeline, bind_groups, xyz):
        enc = self._device.create_command_encoder()
        cp = enc.begin_compute_pass()
        cp.set_pipeline(pipeline.handle)
        for i, bg in enumerate(bind_groups):
            cp.set_bind_group(i, bg)
        cp.dispatch_workgroups(*xyz)
        cp.end()
        self._wrap("submitting a dispatch", self._device.queue.submit, [enc.finish()])

    # -- dispatch plans: a tight loop over tuples built once ------------------------------------
    def _prepare_plan(self, dispatches):
        return tuple((d.pipeline.handle, tuple(enumerate(d.bind_groups)), *d.workgroups)
                     for d in dispatches)

    def _replay(self, prepared, step, step_data, timer):
        if step_data is not None:
            self._write(step, step_data, 0)
        enc = self._device.create_command_encoder()
        if timer is None:
            cp = enc.begin_compute_pass()
        else:
            cp = enc.begin_compute_pass(timestamp_writes={
                "query_set": timer.handle, "beginning_of_pass_write_index": 0,
                "end_of_pass_write_index": 1})
        set_pipeline, set_bind_group, dispatch = (cp.set_pipeline, cp.set_bind_group,
                                                  cp.dispatch_workgroups)
        last = None
        for pipe, groups, x, y, z in prepared:
            if pipe is not last:
                set_pipeline(pipe)
                last = pipe
            for i, bg in groups:
                set_bind_group(i, bg)
            dispatch(x, y, z)
        cp.end()
        if timer is not None:
            enc.resolve_query_set(timer.handle, 0, 2, timer.resolve.handle, 0)
        self._wrap("submitting a replay", self._device.queue.submit, [enc.finish()])

    def _create_timer(self):
        return self._device.create_query_set(type="timestamp", count=2, label="timer")

    def _destroy_timer(self, timer):
        timer.handle.destroy()

    async def _check(self, what):
        return None

    def destroy(self):
        """Destroy the device. wgpu-native reports no loss here, so the device marks itself lost
        (reason "destroyed", as WebGPU's device.lost does) and later calls raise DeviceLostError."""
        self._device.destroy()
        self._mark_lost("destroyed", "the device was destroyed.")


async def open_native_device(power_preference: str = "high-performance") -> NativeDevice:
    try:
        import wgpu
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise WebGPUUnavailableError("the wgpu package is not installed") from e
    try:
        adapter = await wgpu.gpu.request_adapter_async(power_preference=power_preference)
    except RuntimeError as e:
        raise WebGPUUnavailableError(f"wgpu-native found no adapter: {e}") from e
    if adapter is None:
        raise WebGPUUnavailableError("wgpu-native found no adapter")
    supported = set(adapter.features)
    features = frozenset(f for f in OPTIONAL_FEATURES if _FEATURE_ALIASES.get(f, f) in supported)
    required_limits = {_kebab(k): adapter.limits[_kebab(k)] for k in ENGINE_LIMITS
                       if _kebab(k) in adapter.limits}
    device = await adapter.request_device_async(
        required_features=[_FEATURE_ALIASES.get(f, f) for f in features],
        required_limits=required_limits, label="localllm")
    limits = {k: int(device.limits[_kebab(k)]) for k in ENGINE_LIMITS if _kebab(k) in device.limits}
    ai = adapter.info
    info = AdapterInfo(vendor=ai.get("vendor", ""), architecture=ai.get("architecture", ""),
                       device=ai.get("device", ""), description=ai.get("description", ""),
                       backend=f"native ({ai.get('backend_type', '?')})",
                       is_cpu=is_cpu_adapter(ai.get("vendor", ""), ai.get("device", ""),
                                             ai.get("description", ""),
                                             adapter_type=str(ai.get("adapter_type", ""))))
    return NativeDevice(adapter, device, info, features, limits)
