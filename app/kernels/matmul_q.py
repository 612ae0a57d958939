"""Y (n_tokens, rows) (+)= X (n_tokens, cols) @ W^T (+ bias) for a GPUWeight in any internal layout,
through shaders/matmul_q.wgsl (prefill: 128 x 128 output tiles, the weight tile dequantized into
workgroup memory). X, Y and bias are f32 buffers on both paths.

Two variants: the f32 path (f32 tiles, f32 math; needs no optional feature) and, where the device
has shader-f16, the f16-compute variant (define SHADER_F16: tiles of f16 weights and activations,
f16 products summed in f16 over F16_FLUSH consecutive k, then added into f32 accumulators).
The f32 path is the default: on an H100 (native Vulkan) the f16 variant was only 0-25% faster at
512 x 4096 x 4096 and slower at 14336 rows (docs/benchmarks.md), while its error is ~0.5% of
T @ |x| against ~1e-6 for the f32 path. `f16=True` asks for it (GPUError without shader-f16);
`f16=None` picks it when the device has "shader-f16" (for devices where it pays).
The f16 variant rounds both operands to f16 (relative 2^-11 each; values beyond 65504 overflow),
see tests/gpu/test_matmul_q.py for the error bound."""
from __future__ import annotations

from ..gpu import Buffer, Device
from .layouts import GPUWeight, row_bytes
from .matvec import UNIT, shape_uniform

TM = TN = 128   # output tile: weight rows x tokens (shaders/matmul_q.wgsl)
F16_FLUSH = 8   # SHADER_F16: k steps summed in f16 before the f32 add (override constant FLUSH)
DENSE = ("f32", "f16", "bf16")


async def matmul_q(dev: Device, w: GPUWeight, x: Buffer, n_tokens: int, out: Buffer | None = None,
                   bias: Buffer | None = None, accumulate: bool = False, target=None,
                   f16: bool | None = False) -> Buffer:
    """`x` is (n_tokens, w.cols) f32, `out` (n_tokens, w.rows) f32; `bias` (w.rows,) f32 is added
    when given; accumulate adds the product (and bias) to out's contents (fused residual add).
    f16: False (default) = f32 path; True = the f16-compute variant; None = f16 when the device
    has shader-f16."""
    if w.layout not in UNIT:
        raise ValueError(f"matmul_q: unknown layout {w.layout!r}")
    if n_tokens < 1:
        raise ValueError(f"matmul_q: n_tokens must be >= 1, got {n_tokens}")
    if x.size < 4 * n_tokens * w.cols:
        raise ValueError(f"matmul_q {w.name}: x holds {x.size} B, needs ({n_tokens}, {w.cols}) f32")
    if accumulate and out is None:
        raise ValueError("matmul_q: accumulate=True needs the out buffer to add into")
    if out is None:
        out = dev.create_buffer(4 * n_tokens * w.rows, kind="activations", label=f"{w.name}.Y")
    if out.size < 4 * n_tokens * w.rows:
        raise ValueError(f"matmul_q {w.name}: out holds {out.size} B, needs ({n_tokens}, {w.rows})")
    cap = dev.limits.get("maxComputeWorkgroupsPerDimension", 65535)
    gy = -(-n_tokens // TN)
    if gy > cap or -(-max(c.rows for c in w.chunks) // TM) > cap:
        raise ValueError(f"matmul_q {w.name}: {n_tokens} tokens x {w.rows} rows exceed the grid; "
                         "split the prompt")
    if f16 is None:
        f16 = "shader-f16" in dev.features
    # row stride: elements per row for dense layouts, u32 words per row for quantized ones
    stride = w.cols if w.layout in DENSE else row_bytes(w.layout, w.cols) // 4
    defines = {UNIT[w.layout][0]: True, "BIAS": bias is not None, "ACC": accumulate,
               "X4": w.cols % 4 == 0,  # x as vec4 (rows 16-byte aligned)
               "SHADER_F16": bool(f16)}
    pipe = await dev.pipeline("matmul_q", "main", {"FLUSH": F16_FLUSH} if f16 else None, defines)
    for ch in w.chunks:
        params = shape_uniform(dev, "<8I", ch.rows, w.cols, stride, ch.row0, w.rows, n_tokens,
                               0, 0, label="matmul_q.params")
        bufs = [ch.buffer, x, out, params] + ([bias] if bias is not None else [])
        (target or dev).dispatch(pipe, [dev.bind(pipe, bufs)], (-(-ch.rows // TM), gy))
    return out
