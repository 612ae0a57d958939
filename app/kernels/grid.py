"""Workgroup grids: counts above the per-dimension limit (65535 by default) spill into y.

A shader given grid(n) reconstructs the linear workgroup index as
    wid = wg.x + wg.y * num_workgroups.x
and returns early when wid >= n (the last row of the grid may be partly unused).
"""
from __future__ import annotations

import struct

from ..gpu import Buffer, BufferUsage, Device


def grid(n: int, limit: int = 65535) -> tuple[int, int, int]:
    if n <= 0:
        raise ValueError(f"grid of {n} workgroups")
    if n <= limit:
        return (n, 1, 1)
    y = -(-n // limit)
    if y > limit:
        raise ValueError(f"{n} workgroups exceed {limit}^2")
    return (-(-n // y), y, 1)


def step_params(dev: Device, pos: int, n_tokens: int, kv_len: int | None = None,
                label: str = "step") -> Buffer:
    """A uniform buffer holding shaders/lib/step.wgsl's Step struct."""
    kv_len = pos + n_tokens if kv_len is None else kv_len
    return dev.upload(struct.pack("<4I", pos, n_tokens, kv_len, 0), kind="uniforms", label=label,
                      usage=BufferUsage.UNIFORM | BufferUsage.COPY_DST)


def write_step(dev: Device, buf: Buffer, pos: int, n_tokens: int, kv_len: int | None = None) -> None:
    kv_len = pos + n_tokens if kv_len is None else kv_len
    dev.write(buf, struct.pack("<4I", pos, n_tokens, kv_len, 0))


def uniform(dev: Device, fmt: str, *values, label: str = "params") -> Buffer:
    """A small uniform buffer packed with struct format `fmt` (padded to 16 bytes)."""
    data = struct.pack(fmt, *values)
    data += b"\0" * (-len(data) % 16)
    return dev.upload(data, kind="uniforms", label=label,
                      usage=BufferUsage.UNIFORM | BufferUsage.COPY_DST)
