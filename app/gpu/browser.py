"""Browser backend: the page's (or a worker's) `navigator.gpu`, driven from Pyodide.

Every `from js import` of the GPU layer lives here. Descriptors go to JS as plain objects
(`to_js(..., dict_converter=Object.fromEntries)`); data goes to `writeBuffer` as a JS typed array
viewing Python memory (no copy through Python objects); JS failures become named Python errors.

Error scopes: a "validation" and an "out-of-memory" scope are kept open at all times; `check()`
pops both, raises the first error it finds, and pushes fresh ones.
"""
from __future__ import annotations

from pathlib import Path

import js  # noqa: F401  (Pyodide only)
from js import Object, Uint8Array, Uint32Array, navigator
from pyodide.ffi import JsException, JsProxy, create_proxy, to_js

from .device import (ENGINE_LIMITS, OPTIONAL_FEATURES, AdapterInfo, BufferUsage, Device,
                     is_cpu_adapter)
from .errors import (GPUOutOfMemoryError, GPUValidationError, ShaderCompileError,
                     WebGPUUnavailableError)


_REPLAY_JS = Path(__file__).with_name("replay.js")


def _obj(d):
    return to_js(d, dict_converter=Object.fromEntries)


def _js_bytes(data):
    """(JS Uint8Array view, release callback) for bytes-like or JS data, without copying."""
    if isinstance(data, JsProxy):
        return data, (lambda: None)
    proxy = create_proxy(memoryview(data).cast("B"))
    pybuf = proxy.getBuffer("u8")

    def release():
        pybuf.release()
        proxy.destroy()
    return pybuf.data, release


class BrowserDevice(Device):
    backend = "browser"

    def __init__(self, adapter, device, info, features, limits):
        super().__init__(info, features, limits)
        self._adapter = adapter
        self._device = device
        self._queue = device.queue
        self._replay_js = None  # app/gpu/replay.js as a JS function, made on the first replay
        self._push_scopes()

    def _push_scopes(self):
        self._device.pushErrorScope("out-of-memory")
        self._device.pushErrorScope("validation")

    @staticmethod
    def _nbytes(data) -> int:
        if isinstance(data, JsProxy):
            return int(data.byteLength)
        return memoryview(data).nbytes

    def _create_buffer(self, size, usage, label):
        return self._device.createBuffer(_obj({"size": size, "usage": usage, "label": label}))

    def _write(self, buf, data, offset):
        view, release = _js_bytes(data)
        try:
            self._queue.writeBuffer(buf.handle, offset, view)
        finally:
            release()

    async def _read(self, buf, offset, size):
        staging = self._device.createBuffer(_obj({
            "size": size, "usage": BufferUsage.MAP_READ | BufferUsage.COPY_DST,
            "label": "readback"}))
        try:
            enc = self._device.createCommandEncoder()
            enc.copyBufferToBuffer(buf.handle, offset, staging, 0, size)
            self._queue.submit(to_js([enc.finish()]))
            try:
                await staging.mapAsync(BufferUsage.MAP_READ)
            except JsException as e:
                raise GPUValidationError(f"reading {buf.label!r}: {e}") from e
            # Copy out of the mapped range before unmap() detaches it.
            return Uint8Array.new(staging.getMappedRange()).to_bytes()
        finally:
            staging.destroy()

    def _destroy_buffer(self, buf):
        buf.handle.destroy()

    async def _create_pipeline(self, name, code, entry, constants):
        module = self._device.createShaderModule(_obj({"code": code, "label": name}))
        info = await module.getCompilationInfo()
        errors = [f"{m.lineNum}:{m.linePos} {m.message}" for m in info.messages
                  if m.type == "error"]
        if errors:
            raise ShaderCompileError(f"shaders/{name}.wgsl: " + "; ".join(errors))
        compute = {"module": module, "entryPoint": entry}
        if constants:
            # WebGPU override constants are numbers (GPUPipelineConstantValue = double); Chrome
            # accepts JS booleans, Dawn's Node binding does not.
            compute["constants"] = {k: float(v) if isinstance(v, bool) else v
                                    for k, v in constants.items()}
        try:
            return await self._device.createComputePipelineAsync(
                _obj({"layout": "auto", "compute": compute, "label": f"{name}:{entry}"}))
        except JsException as e:
            raise GPUValidationError(f"creating pipeline {name}:{entry}: {e}") from e

    def _bind(self, pipeline, group, entries):
        layout = pipeline.layouts.get(group)
        if layout is None:
            layout = pipeline.layouts[group] = pipeline.handle.getBindGroupLayout(group)
        return self._device.createBindGroup(_obj({
            "layout": layout,
            "entries": [{"binding": i, "resource": {"buffer": b.handle, "offset": off, "size": size}}
                        for i, b, off, size in entries]}))

    def _dispatch(self, pipeline, bind_groups, xyz):
        enc = self._device.createCommandEncoder()
        cp = enc.beginComputePass()
        cp.setPipeline(pipeline.handle)
        for i, bg in enumerate(bind_groups):
            cp.setBindGroup(i, bg)
        cp.dispatchWorkgroups(*xyz)
        cp.end()
        self._queue.submit(to_js([enc.finish()]))

    # -- dispatch plans: JS arrays built once, replayed by app/gpu/replay.js in one call ----------
    def _prepare_plan(self, dispatches):
        pipelines = to_js([d.pipeline.handle for d in dispatches])
        groups = to_js([list(d.bind_groups) for d in dispatches])
        counts = Uint32Array.new(to_js([c for d in dispatches for c in d.workgroups]))
        return pipelines, groups, counts

    def _replay(self, prepared, step, step_data, timer):
        if self._replay_js is None:
            from pyodide.code import run_js
            self._replay_js = run_js(_REPLAY_JS.read_text(encoding="utf-8"))
        pipelines, groups, counts = prepared
        timer_js = None if timer is None else _obj({"querySet": timer.handle,
                                                     "resolve": timer.resolve.handle})
        if step_data is None:
            self._replay_js(self._device, pipelines, groups, counts, None, None, timer_js)
            return
        view, release = _js_bytes(step_data)
        try:
            self._replay_js(self._device, pipelines, groups, counts, step.handle, view, timer_js)
        finally:
            release()

    def _create_timer(self):
        return self._device.createQuerySet(_obj({"type": "timestamp", "count": 2, "label": "timer"}))

    def _destroy_timer(self, timer):
        timer.handle.destroy()

    async def _check(self, what):
        validation = await self._device.popErrorScope()
        oom = await self._device.popErrorScope()
        self._push_scopes()
        if oom:
            raise GPUOutOfMemoryError(what, str(oom.message))
        if validation:
            raise GPUValidationError(f"{what}: {validation.message}")

    def _on_lost(self, info):
        self._mark_lost(str(info.reason), str(info.message))

    def destroy(self):
        self._device.destroy()


def _subgroup_info(ai, features) -> dict:
    """Subgroup sizes and, when the subgroup-matrix feature was granted, the adapter's
    subgroupMatrixConfigs (absent attributes read as none)."""
    sizes = (int(getattr(ai, "subgroupMinSize", 0) or 0), int(getattr(ai, "subgroupMaxSize", 0) or 0))
    configs = ()
    if "chromium-experimental-subgroup-matrix" in features:
        configs = tuple((str(c.componentType), str(c.resultComponentType), int(c.M), int(c.N),
                         int(c.K)) for c in js.Array.from_(ai.subgroupMatrixConfigs or []))
    return {"subgroup_matrix": configs, "subgroup_sizes": sizes}


async def open_browser_device(power_preference: str = "high-performance") -> BrowserDevice:
    gpu = getattr(navigator, "gpu", None)
    if not gpu:
        raise WebGPUUnavailableError("navigator.gpu is missing in this browser")
    try:
        adapter = await gpu.requestAdapter(_obj({"powerPreference": power_preference}))
    except JsException as e:
        raise WebGPUUnavailableError(f"requestAdapter failed: {e}") from e
    if not adapter:
        raise WebGPUUnavailableError("the browser granted no GPU adapter")
    supported = set(js.Array.from_(adapter.features).to_py())
    features = [f for f in OPTIONAL_FEATURES if f in supported]
    required_limits = {k: getattr(adapter.limits, k) for k in ENGINE_LIMITS}
    try:
        device = await adapter.requestDevice(_obj({
            "requiredFeatures": features, "requiredLimits": required_limits, "label": "localllm"}))
    except JsException as e:
        raise WebGPUUnavailableError(f"requestDevice failed: {e}") from e
    limits = {k: int(getattr(device.limits, k)) for k in ENGINE_LIMITS}
    ai = adapter.info
    names = dict(vendor=str(ai.vendor), architecture=str(ai.architecture), device=str(ai.device),
                 description=str(ai.description))
    # SwiftShader reports architecture "swiftshader"; the browser exposes no adapter type
    info = AdapterInfo(**names, backend="browser", is_cpu=is_cpu_adapter(*names.values()),
                       **_subgroup_info(ai, features))
    dev = BrowserDevice(adapter, device, info, frozenset(features), limits)
    dev._lost_proxy = create_proxy(dev._on_lost)  # kept alive as long as the device
    device.lost.then(dev._lost_proxy)
    return dev
