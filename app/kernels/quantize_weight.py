"""Quantize an unquantized (safetensors) weight at load time, on the GPU, so a model whose F16/BF16
checkpoint would not fit the device's memory fits in Q8_0 or 4-bit form.

    w = await quantize_weight(dev, "model.layers.0.mlp.up_proj.weight", "BF16", raw, rows, cols,
                              to="q4")

src_type is the safetensors dtype ("F32", "F16", "BF16"); `raw` the tensor's bytes (rows x cols,
row-major): bytes, memoryview, a numpy array, or in the page a JS Uint8Array (sliced with subarray,
never copied through Python; app/kernels/quant._byte_source). `to`:

    "q8_0" -> layout q8_0a (36 B / 32 values, 1.125 B per value)   gguf-py's Q8_0 quantizer
    "q4"   -> layout q4_1  (20 B / 32 values, 0.625 B per value)   gguf-py's Q4_1 quantizer

4-bit is Q4_1 (per 32 values a scale d = (max - min) / 15 and an offset m = min, q = round((x - m)
/ d) in 0..15) rather than symmetric Q4_0 (d = max / -8, q - 8): the same kernels and bytes per
value (Q4_0 is itself repacked to q4_1 on load), but all 16 levels span the block's actual range,
so a block whose values are lopsided (e.g. all positive) loses no levels; the error is at most d/2
per value with d <= Q4_0's.

The rows are split into chunks (app/kernels/layouts.rows_per_chunk on the output layout); since
the source takes more bytes per value than the output (F32 4, F16/BF16 2), the chunk is also cut
so its staging copy fits one storage binding and maxBufferSize. Per chunk: upload the source to a
temporary "staging" buffer, run shaders/quantize_weight.wgsl (one invocation per 32-value block)
writing a "weights" buffer, destroy the staging. Only one staging buffer exists at a time.
"""
from __future__ import annotations

from .grid import grid
from .layouts import Chunk, GPUWeight, row_bytes, rows_per_chunk
from .quant import UnsupportedWeightTypeError, WeightSizeError, _byte_source, staged_pass

# safetensors dtype -> (bytes per value, shaders/quantize_weight.wgsl SRC define)
SOURCE = {"F32": (4, "f32"), "F16": (2, "f16"), "BF16": (2, "bf16")}
# quantize= value -> (internal layout, entry point)
TARGET = {"q8_0": ("q8_0a", "quantize_q8_0"), "q4": ("q4_1", "quantize_q4_1")}
BLOCK = 32       # values per quantized block
WORKGROUP = 64   # quantize_weight.wgsl's workgroup size (one block per invocation)


class UnsupportedQuantizationError(ValueError):
    """quantize= names a format this engine cannot produce at load."""


async def quantize_weight(dev, name: str, src_type: str, raw, rows: int, cols: int, to: str,
                          max_chunk_bytes: int | None = None, check: bool = True) -> GPUWeight:
    """GPUWeight (kind="weights" buffers) holding `raw` quantized to `to` ("q8_0" | "q4").
    check=False skips the error-scope round trip per chunk (a loader checks once at the end).

    max_chunk_bytes lowers the per-chunk limit (for the output and the staging copy alike) below
    the device's limits (tests use it to exercise splitting on small tensors)."""
    if to not in TARGET:
        raise UnsupportedQuantizationError(
            f"tensor {name!r}: cannot quantize to {to!r}; choose one of {', '.join(TARGET)} "
            "(or load without quantize=)")
    if src_type not in SOURCE:
        raise UnsupportedWeightTypeError(
            f"tensor {name!r} has dtype {src_type!r}; load-time quantization reads "
            f"{', '.join(SOURCE)} only. Load it without quantize=, or convert the checkpoint.")
    if rows <= 0 or cols <= 0:
        raise WeightSizeError(f"tensor {name!r}: shape {rows} x {cols} is empty")
    if cols % BLOCK:
        raise WeightSizeError(
            f"tensor {name!r} ({rows} x {cols}): its row length is not a multiple of {BLOCK}, so "
            f"it cannot be quantized to {to}; keep this tensor unquantized")
    layout, entry = TARGET[to]
    elem_bytes, src_define = SOURCE[src_type]
    src_row = elem_bytes * cols
    dst_row = row_bytes(layout, cols)
    nbytes, piece = _byte_source(name, raw)
    if nbytes != rows * src_row:
        raise WeightSizeError(
            f"tensor {name!r}: {src_type} {rows} x {cols} needs {rows * src_row} bytes, got "
            f"{nbytes}; the checkpoint is truncated or corrupt")
    limit = min(dev.limits["maxStorageBufferBindingSize"], dev.limits["maxBufferSize"])
    if max_chunk_bytes is not None:
        limit = min(limit, max_chunk_bytes)
    if src_row > limit:
        raise WeightSizeError(f"tensor {name!r}: one row of {cols} {src_type} values ({src_row} B) "
                              f"exceeds the max storage binding ({limit} B)")
    per_chunk = min(rows_per_chunk(layout, cols, limit), limit // src_row)

    pipe = await dev.pipeline("quantize_weight", entry, defines={"SRC": src_define})
    weight = GPUWeight(name, layout, rows, cols)
    try:
        for r0 in range(0, rows, per_chunk):
            n = min(per_chunk, rows - r0)
            label = f"{name}[{r0}:{r0 + n}]"
            buf = await _quantize_chunk(dev, pipe, piece(r0 * src_row, (r0 + n) * src_row),
                                        n * cols // BLOCK, n * dst_row, label, check)
            weight.chunks.append(Chunk(buf, r0, n))
    except BaseException:
        weight.destroy(dev)
        raise
    return weight


async def _quantize_chunk(dev, pipe, data, n_blocks: int, out_bytes: int, label: str,
                          check: bool = True):
    """Upload one chunk's source values to a staging buffer and quantize them into a weights
    buffer of out_bytes (n_blocks blocks)."""
    groups = grid(-(-n_blocks // WORKGROUP), dev.limits["maxComputeWorkgroupsPerDimension"])
    return await staged_pass(dev, pipe, data, out_bytes, n_blocks, groups, label, "quantizing",
                             check)
