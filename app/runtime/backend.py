"""Which backend runs a model: init(..., backend="auto" | "webgpu" | "cpu").

    webgpu  our WGSL kernels on navigator.gpu (wgpu-py natively)
    cpu     llama.cpp in WebAssembly (app/cpu, browser only), from the same cached GGUF bytes
    auto    WebGPU when a device opens and the model fits it (CatalogModel.runnable: features,
            binding limits, the memory budget); otherwise the CPU, with the reason recorded in
            status()/runtime_info() ("backend_reason") and a "backend" event. Without a usable
            CPU backend either, the WebGPU error is raised as before.

A GPU device lost in the middle of a conversation moves the model to the CPU for the next
request only when init was called with cpu_fallback=True (the user allowed it).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..gpu import WebGPUUnavailableError

BACKENDS = ("auto", "webgpu", "cpu")


@dataclass(frozen=True)
class BackendChoice:
    name: str                   # "webgpu" | "cpu"
    reason: str | None = None   # why the CPU was chosen ("backend='cpu' was asked for", ...)


def check_backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


async def choose_backend(rt, entry, backend: str, context_length, kv_dtype: str) -> BackendChoice:
    """The backend for loading `entry` on `rt` (a LocalLLM). Raises WebGPUUnavailableError
    (webgpu, or auto without a CPU backend) and CpuBackendUnavailableError (cpu)."""
    from ..cpu import CpuBackendUnavailableError
    cpu_missing = rt.platform.cpu_unavailable()
    is_gguf = getattr(entry, "format", "gguf") == "gguf"
    if backend == "cpu":
        if cpu_missing:
            raise CpuBackendUnavailableError(cpu_missing)
        return BackendChoice("cpu", "backend='cpu' was asked for")
    try:
        dev = await rt._device()
    except WebGPUUnavailableError as e:
        if backend == "webgpu" or cpu_missing or not is_gguf:
            raise
        return BackendChoice("cpu", f"WebGPU is unavailable: {e}")
    if backend == "auto" and not cpu_missing and is_gguf and hasattr(entry, "runnable"):
        reason = entry.runnable(rt._device_info(dev), rt.platform.memory_budget(dev),
                                context_length=context_length, kv_dtype=kv_dtype)
        if reason:
            return BackendChoice("cpu", f"the model does not fit this GPU: {reason}")
    return BackendChoice("webgpu")
