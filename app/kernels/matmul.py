"""C (M, N) = A (M, K) @ B (K, N), f32, through shaders/matmul.wgsl."""
from __future__ import annotations

import struct

from ..gpu import Buffer, BufferUsage, Device

TILE = 16


async def matmul(dev: Device, a: Buffer, b: Buffer, m: int, n: int, k: int,
                 out: Buffer | None = None) -> Buffer:
    if a.size < 4 * m * k or b.size < 4 * k * n:
        raise ValueError(f"matmul: buffers too small for ({m},{k}) @ ({k},{n})")
    out = out or dev.create_buffer(4 * m * n, kind="activations", label="matmul.out")
    params = dev.upload(struct.pack("<4I", m, n, k, 0), kind="uniforms", label="matmul.params",
                        usage=BufferUsage.UNIFORM | BufferUsage.COPY_DST)
    pipe = await dev.pipeline("matmul", "main", {"TILE": TILE})
    dev.dispatch(pipe, [dev.bind(pipe, [a, b, out, params])], (-(-n // TILE), -(-m // TILE)))
    await dev.check("matmul")
    dev.destroy_buffer(params)
    return out
