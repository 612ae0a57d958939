"""out (rows, cols) f32 = a GPUWeight decoded from its internal layout (shaders/dequant.wgsl).

One dispatch per chunk of the weight, and more when the f32 output of a chunk (4 bytes per value,
up to 6.4x the chunk's size) does not fit one storage binding: each dispatch writes a window of
`out` bound at a 256-byte-aligned offset (WebGPU's minStorageBufferOffsetAlignment), with the
remaining element offset passed in its uniform. So `out` may exceed the binding limit; it must fit
maxBufferSize.
"""
from __future__ import annotations

from math import gcd

from ..gpu import Buffer, Device
from .grid import grid, uniform
from .layouts import GPUWeight

WORKGROUP = 256   # dequant.wgsl's workgroup size
PER_THREAD = 4    # elements per invocation
OFFSET_ALIGN = 256


def keep_or_free(dev: Device, target, buffers: list[Buffer]) -> None:
    """Per-call uniforms: freed now when the op ran directly (WebGPU keeps them alive until the
    submitted work finishes); handed to a recording plan that can own buffers (`target.keep`),
    otherwise left alive with the plan that references them."""
    if target is None:
        for b in buffers:
            dev.destroy_buffer(b)
    elif hasattr(target, "keep"):
        for b in buffers:
            target.keep(b)


async def dequantize(dev: Device, weight: GPUWeight, out: Buffer | None = None, target=None,
                     *, max_binding: int | None = None) -> Buffer:
    """max_binding lowers the output-window limit below maxStorageBufferBindingSize (tests)."""
    rows, cols = weight.rows, weight.cols
    nbytes = 4 * rows * cols
    if out is None:
        out = dev.create_buffer(nbytes, kind="activations", label=f"{weight.name}.f32")
    elif out.size < nbytes:
        raise ValueError(f"dequantize {weight.name!r}: out holds {out.size} bytes, needs {nbytes}")
    limit = max_binding or dev.limits["maxStorageBufferBindingSize"]
    # Rows per dispatch: the window (plus up to 252 bytes of alignment slack) fits one binding,
    # and e0 = r * cols stays a multiple of 4 (dq4 reads 4-element groups).
    step = 4 // gcd(cols, 4)
    part = (limit - OFFSET_ALIGN) // (4 * cols) // step * step
    if part <= 0:
        raise ValueError(f"dequantize {weight.name!r}: one row of {cols} f32 values exceeds the "
                         f"storage binding limit ({limit} B)")
    pipe = await dev.pipeline("dequant", "main", defines={"LAYOUT": weight.layout})
    params = []
    for chunk in weight.chunks:
        for r in range(0, chunk.rows, part):
            n = min(part, chunk.rows - r) * cols
            start = 4 * (chunk.row0 + r) * cols       # byte offset of this range in `out`
            window = start - start % OFFSET_ALIGN
            p = uniform(dev, "<3I", n, r * cols, (start - window) // 4,
                        label=f"{weight.name}.dequant")
            params.append(p)
            bg = dev.bind(pipe, [chunk.buffer, (out, window, start + 4 * n - window), p])
            wg = grid(-(-n // (PER_THREAD * WORKGROUP)))
            (dev if target is None else target).dispatch(pipe, [bg], wg)
    if target is None:
        await dev.check(f"dequantizing {weight.name}")
    keep_or_free(dev, target, params)
    return out
