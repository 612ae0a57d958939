"""Repack on the host, for CPU adapters: the sibling of app/kernels/quant.upload_weight's GPU
repack (shaders/repack.wgsl), producing the same bytes.

    if host_repack.applies(dev, ggml_type, parts):
        w = await host_repack.upload(dev, name, ggml_type, [(raw, rows), ...], cols)

Why: on a software adapter (SwiftShader, dev.is_cpu) a "GPU" pass runs on the same CPU cores,
and slowly: repack.wgsl took ~350 ms for SmolLM2's 30 MB Q8_0 token_embd in headless Chromium on
the 2-core VM, a JS loop over the same blocks ~30 ms (docs/benchmarks.md, "Weight store"). On a
real GPU the shader is the faster path and stays the only one. Page only (JS Uint8Array data);
the native backend keeps the shader.

Parts are stacked by rows (a fused q|k|v or gate|up) and repacked straight into the weight's
buffer, piece by piece through one small scratch array: nothing is joined or held whole.
"""
from __future__ import annotations

from pathlib import Path

from ..kernels.layouts import LAYOUT_OF, NEEDS_REPACK, Chunk, GPUWeight, row_bytes, rows_per_chunk
from ..kernels.quant import WeightSizeError, gguf_row_bytes

PIECE_BYTES = 1 << 20          # repacked bytes per JS call and writeBuffer (stays in cache)
_JS = Path(__file__).with_name("host_repack.js")
_repack_js = None


def applies(dev, ggml_type: str, parts) -> bool:
    """The page's CPU adapter, a type repack.wgsl handles, JS byte arrays (not Python memory)."""
    return (getattr(dev, "backend", None) == "browser" and getattr(dev, "is_cpu", False)
            and ggml_type in NEEDS_REPACK
            and all(hasattr(raw, "subarray") and hasattr(raw, "byteLength") for raw, _ in parts))


def _js():
    global _repack_js
    if _repack_js is None:
        from pyodide.code import run_js
        _repack_js = run_js(_JS.read_text(encoding="utf-8"))
    return _repack_js


async def upload(dev, name: str, ggml_type: str, parts: list, cols: int,
                 max_chunk_bytes: int | None = None) -> GPUWeight:
    """GPUWeight `name` of the raw tensors `parts` = [(JS Uint8Array, rows), ...] stacked by
    rows, repacked here; split by rows into chunks that fit one storage binding, as
    upload_weight does (max_chunk_bytes lowers that limit, for tests)."""
    from js import Uint8Array
    layout = LAYOUT_OF[ggml_type]
    src_row, dst_row = gguf_row_bytes(ggml_type, cols), row_bytes(layout, cols)
    for raw, n in parts:
        if int(raw.byteLength) != n * src_row:
            raise WeightSizeError(
                f"tensor {name!r}: {ggml_type} {n} x {cols} needs {n * src_row} bytes, got "
                f"{int(raw.byteLength)}; the model file is truncated or corrupt")
    rows = sum(n for _, n in parts)
    limit = dev.limits["maxStorageBufferBindingSize"]
    if max_chunk_bytes is not None:
        limit = min(limit, max_chunk_bytes)
    try:
        per_chunk = rows_per_chunk(layout, cols, limit)
    except ValueError as e:
        raise WeightSizeError(f"tensor {name!r} ({ggml_type}, {rows} x {cols}): {e}") from None
    piece = max(1, PIECE_BYTES // dst_row)
    scratch = Uint8Array.new(min(piece, rows) * dst_row)
    repack = _js()
    weight = GPUWeight(name, layout, rows, cols)
    at = [0, 0]                       # [part index, row within that part]
    try:
        for r0 in range(0, rows, per_chunk):
            n = min(per_chunk, rows - r0)
            buf = dev.create_buffer(n * dst_row, kind="weights", label=f"{name}[{r0}:{r0 + n}]")
            weight.chunks.append(Chunk(buf, r0, n))
            done = 0
            while done < n:
                raw, part_rows = parts[at[0]]
                k = min(piece, n - done, part_rows - at[1])
                out = scratch.subarray(0, k * dst_row)
                repack(ggml_type, raw.subarray(at[1] * src_row, (at[1] + k) * src_row), out)
                dev.write(buf, out, done * dst_row)      # writeBuffer copies: scratch is reused
                done += k
                at[1] += k
                if at[1] == part_rows:
                    at[0], at[1] = at[0] + 1, 0
    except BaseException:
        weight.destroy(dev)
        raise
    return weight
