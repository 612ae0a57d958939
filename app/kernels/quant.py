"""Upload a GGUF weight tensor to the GPU in its internal layout (app/kernels/layouts.py).

    w = await upload_weight(dev, "blk.0.attn_q.weight", "Q4_0", raw, rows, cols)

`raw` is the tensor's GGUF data (rows x cols, row-major): bytes, memoryview, a numpy array, or in
the page a JS Uint8Array (sliced with subarray, never copied through Python). The rows are split
into chunks that each fit one storage binding (layouts.rows_per_chunk); each chunk is uploaded
directly when its GGUF blocks already are the internal layout, or through a temporary "staging"
buffer and shaders/repack.wgsl otherwise (Q4_0, Q5_0, Q8_0, Q6_K). Only one chunk's staging
buffer exists at a time; the staging of a chunk is smaller than its weights buffer, so it fits the
binding limit too.
"""
from __future__ import annotations

from .grid import grid, uniform
from .layouts import (GGUF_BLOCK, LAYOUT_OF, NEEDS_REPACK, Chunk, GPUWeight, row_bytes,
                      rows_per_chunk)

# GGUF type -> shaders/repack.wgsl entry point.
REPACK_ENTRY = {"Q4_0": "repack_q4_0", "Q5_0": "repack_q5_0", "Q8_0": "repack_q8_0",
                "Q6_K": "repack_q6_k"}
WORKGROUP = 256  # repack.wgsl's workgroup size


class UnsupportedWeightTypeError(ValueError):
    """A tensor's GGUF type has no kernel (e.g. Q2_K, IQ4_XS)."""


class WeightSizeError(ValueError):
    """A tensor's data length does not match its type and shape (a truncated or corrupt file)."""


def gguf_row_bytes(ggml_type: str, cols: int) -> int:
    """Bytes of one row of `cols` values in the GGUF (on-disk) layout."""
    elems, nbytes = GGUF_BLOCK[ggml_type]
    if cols % elems:
        raise ValueError(f"row length {cols} is not a multiple of the {ggml_type} block ({elems})")
    return cols // elems * nbytes


def _byte_source(name: str, raw):
    """(length in bytes, slice(a, b) -> bytes-like of raw[a:b]) without copying."""
    try:
        mv = memoryview(raw).cast("B")
        return mv.nbytes, lambda a, b: mv[a:b]
    except TypeError:
        # A JS Uint8Array in the page: it has no buffer protocol, but subarray() is a view.
        if getattr(raw, "BYTES_PER_ELEMENT", None) == 1 and hasattr(raw, "subarray"):
            return int(raw.byteLength), lambda a, b: raw.subarray(a, b)
        raise TypeError(f"tensor {name!r}: raw data must be bytes-like or a Uint8Array, "
                        f"got {type(raw).__name__}") from None


async def upload_weight(dev, name: str, ggml_type: str, raw, rows: int, cols: int,
                        max_chunk_bytes: int | None = None, check: bool = True) -> GPUWeight:
    """GPUWeight (kind="weights" buffers) holding `raw` in its internal layout.

    max_chunk_bytes lowers the per-chunk limit below the device's maxStorageBufferBindingSize
    (tests use it to exercise splitting on small tensors). check=False skips the error-scope
    round trip after each repack (a model loader checks once after all its tensors)."""
    if ggml_type not in LAYOUT_OF:
        raise UnsupportedWeightTypeError(
            f"tensor {name!r} has GGUF type {ggml_type!r}, which this engine cannot run; supported "
            f"types: {', '.join(LAYOUT_OF)}. Pick a model file quantized to one of them.")
    if rows <= 0 or cols <= 0:
        raise WeightSizeError(f"tensor {name!r}: shape {rows} x {cols} is empty")
    layout = LAYOUT_OF[ggml_type]
    try:
        src_row = gguf_row_bytes(ggml_type, cols)
        limit = dev.limits["maxStorageBufferBindingSize"]
        if max_chunk_bytes is not None:
            limit = min(limit, max_chunk_bytes)
        per_chunk = rows_per_chunk(layout, cols, limit)
    except ValueError as e:
        raise WeightSizeError(f"tensor {name!r} ({ggml_type}, {rows} x {cols}): {e}") from None
    nbytes, piece = _byte_source(name, raw)
    if nbytes != rows * src_row:
        raise WeightSizeError(
            f"tensor {name!r}: {ggml_type} {rows} x {cols} needs {rows * src_row} bytes, got "
            f"{nbytes}; the model file is truncated or corrupt")
    dst_row = row_bytes(layout, cols)
    assert src_row <= dst_row  # so a chunk's padded staging fits wherever its weights fit

    weight = GPUWeight(name, layout, rows, cols)
    try:
        for r0 in range(0, rows, per_chunk):
            n = min(per_chunk, rows - r0)
            data = piece(r0 * src_row, (r0 + n) * src_row)
            label = f"{name}[{r0}:{r0 + n}]"
            if ggml_type in NEEDS_REPACK:
                buf = await _repack(dev, ggml_type, data, n * dst_row, label, check)
            else:
                buf = dev.upload(data, kind="weights", label=label)
            weight.chunks.append(Chunk(buf, r0, n))
    except BaseException:
        weight.destroy(dev)
        raise
    return weight


async def _repack(dev, ggml_type: str, data, out_bytes: int, label: str, check: bool = True):
    """Upload one chunk's raw blocks to a staging buffer and repack them into a weights buffer."""
    n_words = out_bytes // 4
    pipe = await dev.pipeline("repack", REPACK_ENTRY[ggml_type])
    return await staged_pass(dev, pipe, data, out_bytes, n_words,
                             grid(-(-n_words // WORKGROUP)), label, "repacking", check,
                             suffix=".raw")


async def staged_pass(dev, pipe, data, out_bytes: int, count: int, groups: tuple, label: str,
                      what: str, check: bool = True, suffix: str = ".src"):
    """One load-time pass from host bytes to a new weights buffer: `data` goes to a temporary
    staging buffer, `pipe` (bindings: staging, out, params = {count: u32}) runs on `groups`
    workgroups and writes out (out_bytes, kind="weights"), staging and params are freed. With
    `check`, GPU errors are raised here ("<what> <label>"); on any error out is freed too. Used
    by the repack (here) and quantize-at-load (quantize_weight.py) uploads."""
    staging = dev.upload(data, kind="staging", label=label + suffix)
    params = out = None
    try:
        out = dev.create_buffer(out_bytes, kind="weights", label=label)
        params = uniform(dev, "<I", count, label=label + ".params")
        dev.dispatch(pipe, [dev.bind(pipe, [staging, out, params])], groups)
        if check:
            await dev.check(f"{what} {label}")
    except BaseException:
        if out is not None:
            dev.destroy_buffer(out)
        raise
    finally:
        # WebGPU frees a destroyed buffer only after the submitted work using it has finished.
        dev.destroy_buffer(staging)
        if params is not None:
            dev.destroy_buffer(params)
    return out
