"""out (n_tokens, cols) f32 = scale * W[ids], W a GPUWeight in any internal layout, through
shaders/embedding.wgsl.

A table split into row chunks (e.g. 262144 x 640 on a device with 128 MiB bindings) gets one
dispatch per chunk over all tokens; an invocation writes only when its token's id falls in that
chunk, so ids may land anywhere. Ids >= weight.rows produce a row of zeros (no error: the GPU
cannot raise, and a bad id from a tokenizer mismatch should not poison the state with garbage).
`scale` is f32 (Gemma passes sqrt(dim)); each value is rounded once: f32(w) * f32(scale).
"""
from __future__ import annotations

from ..gpu import Buffer, Device
from .dequant import keep_or_free
from .grid import grid, uniform
from .layouts import GPUWeight

WORKGROUP = 256  # embedding.wgsl's workgroup size


async def embedding(dev: Device, weight: GPUWeight, ids: Buffer, n_tokens: int,
                    out: Buffer | None = None, scale: float = 1.0, target=None) -> Buffer:
    cols = weight.cols
    if n_tokens <= 0:
        raise ValueError(f"embedding {weight.name!r}: n_tokens must be positive, got {n_tokens}")
    if ids.size < 4 * n_tokens:
        raise ValueError(f"embedding {weight.name!r}: ids holds {ids.size // 4} ids, needs "
                         f"{n_tokens}")
    n = n_tokens * cols
    if out is None:
        out = dev.create_buffer(4 * n, kind="activations", label=f"{weight.name}.gather")
    elif out.size < 4 * n:
        raise ValueError(f"embedding {weight.name!r}: out holds {out.size} bytes, needs {4 * n}")
    pipe = await dev.pipeline("embedding", "main", defines={"LAYOUT": weight.layout})
    params = []
    for i, chunk in enumerate(weight.chunks):
        p = uniform(dev, "<6If", n_tokens, cols, chunk.row0, chunk.rows, weight.rows, int(i == 0),
                    scale, label=f"{weight.name}.embedding")
        params.append(p)
        bg = dev.bind(pipe, [chunk.buffer, (ids, 0, 4 * n_tokens), (out, 0, 4 * n), p])
        (dev if target is None else target).dispatch(pipe, [bg], grid(-(-n // WORKGROUP)))
    if target is None:
        await dev.check(f"embedding lookup in {weight.name}")
    keep_or_free(dev, target, params)
    return out
