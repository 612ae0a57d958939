"""Y (n_tokens, rows) (+)= X (n_tokens, cols) @ W^T (+ bias), f32, for a GPUWeight in any internal
layout, through shaders/matmul_q.wgsl (prefill: 64 x 64 output tiles, K steps of 32 with the
weight tile dequantized into workgroup memory)."""
from __future__ import annotations

from ..gpu import Buffer, Device
from .layouts import GPUWeight, row_bytes
from .matvec import UNIT, shape_uniform

TM = TN = 64  # output tile: weight rows x tokens (shaders/matmul_q.wgsl)


async def matmul_q(dev: Device, w: GPUWeight, x: Buffer, n_tokens: int, out: Buffer | None = None,
                   bias: Buffer | None = None, accumulate: bool = False, target=None) -> Buffer:
    """`x` is (n_tokens, w.cols) f32, `out` (n_tokens, w.rows) f32; `bias` (w.rows,) f32 is added
    when given; accumulate adds the product (and bias) to out's contents (fused residual add)."""
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
    row_words = 0 if w.layout in ("f32", "f16", "bf16") else row_bytes(w.layout, w.cols) // 4
    defines = {UNIT[w.layout][0]: True, "BIAS": bias is not None, "ACC": accumulate}
    pipe = await dev.pipeline("matmul_q", "main", None, defines)
    for ch in w.chunks:
        params = shape_uniform(dev, "<8I", ch.rows, w.cols, row_words, ch.row0, w.rows, n_tokens,
                               0, 0, label="matmul_q.params")
        bufs = [ch.buffer, x, out, params] + ([bias] if bias is not None else [])
        (target or dev).dispatch(pipe, [dev.bind(pipe, bufs)], (-(-ch.rows // TM), gy))
    return out
