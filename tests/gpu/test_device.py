"""app.gpu native backend: adapter facts, buffers and the ledger, pipeline cache, named errors."""
from __future__ import annotations

import os

import pytest

from app.gpu import (BufferUsage, GPUError, GPUValidationError, ShaderCompileError, gpu_shaders)


def test_adapter_limits_and_features(gpu):
    assert gpu.backend == "native"
    for key in ("maxStorageBufferBindingSize", "maxBufferSize", "maxStorageBuffersPerShaderStage",
                "maxComputeWorkgroupStorageSize"):
        assert gpu.limits[key] > 0
    assert gpu.features <= {"shader-f16", "subgroups", "timestamp-query"}


def test_upload_read_roundtrip_and_ledger(gpu, run):
    before = gpu.ledger.snapshot()
    data = os.urandom(4096 + 12)
    buf = gpu.upload(data, kind="weights", label="roundtrip")
    assert gpu.ledger.live["weights"] == before["live"].get("weights", 0) + len(data)
    assert run(gpu.read(buf)) == data
    assert run(gpu.read(buf, 1024, 2048)) == data[1024:3072]
    gpu.write(buf, b"\x01\x02\x03\x04", offset=8)
    assert run(gpu.read(buf, 8, 4)) == b"\x01\x02\x03\x04"
    gpu.destroy_buffer(buf)
    assert gpu.ledger.snapshot()["live"] == before["live"]
    assert gpu.ledger.peak >= len(data)


def test_bad_sizes_are_named_errors(gpu, run):
    buf = gpu.create_buffer(64, kind="activations", label="small")
    with pytest.raises(ValueError, match="overflows"):
        gpu.write(buf, b"\0" * 68)
    with pytest.raises(ValueError):
        run(gpu.read(buf, 0, 128))
    with pytest.raises(GPUError, match="maxBufferSize"):
        gpu.create_buffer(gpu.limits["maxBufferSize"] + 4, kind="weights", label="huge")
    gpu.destroy_buffer(buf)


def test_pipeline_cache_keys_on_constants(gpu, run):
    p1 = run(gpu.pipeline("matmul", "main", {"TILE": 16}))
    p2 = run(gpu.pipeline("matmul", "main", {"TILE": 16}))
    p3 = run(gpu.pipeline("matmul", "main", {"TILE": 8}))
    assert p1 is p2 and p3 is not p1


def test_shader_errors_are_named(gpu, run, tmp_path, monkeypatch):
    (tmp_path / "matmul.wgsl").write_text(gpu_shaders.shader_source("matmul"))
    monkeypatch.setattr(gpu_shaders, "SHADER_DIR", tmp_path)
    gpu_shaders.shader_source.cache_clear()
    (tmp_path / "broken.wgsl").write_text("@compute @workgroup_size(1) fn main( { }")
    try:
        with pytest.raises(ShaderCompileError, match="broken.wgsl"):
            run(gpu.pipeline("broken"))
        with pytest.raises(GPUValidationError):
            run(gpu.pipeline("matmul", "no_such_entry"))
    finally:
        gpu_shaders.shader_source.cache_clear()


def test_uniform_and_dispatch_limits(gpu, run):
    p = run(gpu.pipeline("matmul"))
    with pytest.raises(GPUError, match="workgroups per dimension"):
        gpu.dispatch(p, [], (gpu.limits["maxComputeWorkgroupsPerDimension"] + 1, 1, 1))
    u = gpu.create_buffer(16, kind="uniforms", usage=BufferUsage.UNIFORM | BufferUsage.COPY_DST)
    gpu.destroy_buffer(u)


def test_cpu_adapter_detection(gpu):
    """is_cpu: wgpu-native's adapter type CPU, or SwiftShader / llvmpipe by name (Chrome reports
    SwiftShader's architecture "swiftshader" and no adapter type)."""
    from app.gpu.device import is_cpu_adapter
    import wgpu
    kind = wgpu.gpu.request_adapter_sync().info.get("adapter_type", "")
    assert gpu.is_cpu == (kind == "CPU" or "llvmpipe" in gpu.info.device.lower())
    assert is_cpu_adapter("google", "swiftshader", "", "")
    assert is_cpu_adapter("llvmpipe", "", "llvmpipe (LLVM 15.0.6, 256 bits)", "Mesa 22.3.6")
    assert is_cpu_adapter("", "", "", "", adapter_type="CPU")
    assert not is_cpu_adapter("nvidia", "hopper", "NVIDIA H100", "", adapter_type="DiscreteGPU")
    assert not is_cpu_adapter("google", "", "", "", adapter_type="")
