"""The only module that touches WebGPU.

    dev = await open_device()          # browser backend in Pyodide, native (wgpu-py) in CPython
    a = dev.upload(data, kind="weights")
    p = await dev.pipeline("matmul", "main", {"TILE": 16})
    dev.dispatch(p, [dev.bind(p, [a, b, c, params])], (gx, gy))
    out = await dev.read(c)
"""
from __future__ import annotations

import sys

from .device import AdapterInfo, Buffer, BufferUsage, Device, Pipeline, STORAGE_RW
from .errors import (DeviceLostError, GPUError, GPUOutOfMemoryError, GPUValidationError,
                     ShaderCompileError, WebGPUUnavailableError)
from . import shaders as gpu_shaders
from .ledger import Ledger

IN_BROWSER = sys.platform == "emscripten"


async def open_device(power_preference: str = "high-performance") -> Device:
    """Request an adapter and a device with the limits and optional features the engine uses."""
    if IN_BROWSER:
        from .browser import open_browser_device
        return await open_browser_device(power_preference)
    from .native import open_native_device
    return await open_native_device(power_preference)


__all__ = ["AdapterInfo", "Buffer", "BufferUsage", "Device", "DeviceLostError", "GPUError",
           "GPUOutOfMemoryError", "GPUValidationError", "IN_BROWSER", "Ledger", "Pipeline",
           "STORAGE_RW", "ShaderCompileError", "gpu_shaders", "WebGPUUnavailableError", "open_device"]
