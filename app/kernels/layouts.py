"""Weight layouts on the GPU: which GGUF/safetensors types map to which internal layout.

Kernels read a small set of 4-byte-aligned layouts. Most are the GGUF block layouts themselves;
the types whose blocks are not a multiple of 4 bytes are repacked once at load, on the GPU
(shaders/repack.wgsl), into an aligned sibling. Every repack is exact (no value changes).

    GGUF type  block (elements, bytes)  internal layout   block bytes  repack
    F32        (1, 4)                   f32               4            none
    F16        (1, 2)                   f16               2            none (pairs in u32 words)
    BF16       (1, 2)                   bf16              2            none (pairs in u32 words)
    Q4_0       (32, 18)                 q4_1              20           m = -8 d   (exact in f16 for |d| < 8188)
    Q4_1       (32, 20)                 q4_1              20           none
    Q5_0       (32, 22)                 q5_1              24           m = -16 d  (exact in f16 for |d| < 4094)
    Q5_1       (32, 24)                 q5_1              24           none
    Q8_0       (32, 34)                 q8_0a             36           2 zero bytes after d
    Q4_K       (256, 144)               q4_k              144          none
    Q5_K       (256, 176)               q5_k              176          none
    Q6_K       (256, 210)               q6_ka             212          2 zero bytes appended

Internal block layouts (byte offsets; f16 little-endian; a weight matrix is N rows x K columns,
row-major, each row K / block_elements consecutive blocks):

    q4_1   [0] d f16  [2] m f16  [4] qs[16]                      w[j] = q[j] * d + m
           q[j] = qs[j] & 0xF for j < 16, qs[j - 16] >> 4 for j >= 16
    q5_1   [0] d f16  [2] m f16  [4] qh u32  [8] qs[16]           w[j] = q[j] * d + m
           q[j] = (4 low bits as in q4_1) | ((qh >> j) & 1) << 4
    q8_0a  [0] d f16  [2] zero u16  [4] qs[32] int8               w[j] = qs[j] * d
    q4_k   [0] d f16  [2] dmin f16  [4] scales[12]  [16] qs[128]
           8 sub-blocks of 32; (sc, mn) = 6-bit pairs unpacked from scales (get_scale_min_k4);
           element 64c + l (l < 32): q = qs[32c + l] & 0xF, sub-block 2c;
           element 64c + 32 + l:     q = qs[32c + l] >> 4,  sub-block 2c + 1;
           w = d * sc * q - dmin * mn
    q5_k   [0] d  [2] dmin  [4] scales[12]  [16] qh[32]  [48] qs[128]
           as q4_k, plus bit 4 of q: element 64c + l takes (qh[l] >> 2c) & 1,
           element 64c + 32 + l takes (qh[l] >> (2c + 1)) & 1
    q6_ka  [0] ql[128]  [128] qh[64]  [192] scales[16] int8  [208] d f16  [210] zero u16
           two halves h of 128 elements (ql += 64h, qh += 32h, scales += 8h); for l < 32:
           element 128h + l      : (ql[l] & 0xF)    | ((qh[l] >> 0) & 3) << 4, scale[l/16 + 0]
           element 128h + l + 32 : (ql[l+32] & 0xF) | ((qh[l] >> 2) & 3) << 4, scale[l/16 + 2]
           element 128h + l + 64 : (ql[l] >> 4)     | ((qh[l] >> 4) & 3) << 4, scale[l/16 + 4]
           element 128h + l + 96 : (ql[l+32] >> 4)  | ((qh[l] >> 6) & 3) << 4, scale[l/16 + 6]
           w = d * scale * (q - 32)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..gpu import Buffer

# GGUF tensor type ids (ggml_type) of the types the engine reads.
GGML_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
              "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}

# GGUF type -> (elements per block, bytes per block): the on-disk layout.
GGUF_BLOCK = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q4_1": (32, 20),
              "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34), "Q4_K": (256, 144),
              "Q5_K": (256, 176), "Q6_K": (256, 210)}

# GGUF type -> internal layout name.
LAYOUT_OF = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q4_0": "q4_1", "Q4_1": "q4_1",
             "Q5_0": "q5_1", "Q5_1": "q5_1", "Q8_0": "q8_0a", "Q4_K": "q4_k", "Q5_K": "q5_k",
             "Q6_K": "q6_ka"}

# Internal layout -> (elements per block, bytes per block).
LAYOUT_BLOCK = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q4_1": (32, 20), "q5_1": (32, 24),
                "q8_0a": (32, 36), "q4_k": (256, 144), "q5_k": (256, 176), "q6_ka": (256, 212)}

# GGUF types whose blocks are repacked (shaders/repack.wgsl entry point per type).
NEEDS_REPACK = {"Q4_0", "Q5_0", "Q8_0", "Q6_K"}


def row_bytes(layout: str, k: int) -> int:
    elems, nbytes = LAYOUT_BLOCK[layout]
    if k % elems:
        raise ValueError(f"row length {k} is not a multiple of the {layout} block ({elems})")
    return k // elems * nbytes


@dataclass
class Chunk:
    """Rows [row0, row0 + rows) of a weight, in their own buffer (starting at byte 0), or in a
    (Buffer, byte offset, byte size) view of a buffer another weight owns (GPUWeight.view)."""
    buffer: Buffer | tuple
    row0: int
    rows: int


@dataclass
class GPUWeight:
    """A 2-D weight (rows x cols, row-major) on the GPU in an internal layout.

    A tensor larger than the device's max storage binding is split by rows into chunks that each
    fit in one binding; kernels are dispatched once per chunk."""
    name: str
    layout: str
    rows: int
    cols: int
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(c.buffer.size for c in self.chunks)

    def view(self, name: str, row0: int, rows: int, align: int = 256) -> "GPUWeight | None":
        """Rows [row0, row0 + rows) as a weight of their own that shares this one's buffer (a
        fused q|k|v matrix read as q, k and v by prefill), or None when this weight is split into
        several chunks or the rows do not start at a multiple of `align` bytes (WebGPU's
        minStorageBufferOffsetAlignment). Views own nothing: destroy the parent."""
        if len(self.chunks) != 1 or not isinstance(self.chunks[0].buffer, Buffer):
            return None
        rb = row_bytes(self.layout, self.cols)
        if (row0 * rb) % align or row0 + rows > self.rows:
            return None
        view = (self.chunks[0].buffer, row0 * rb, rows * rb)
        return GPUWeight(name, self.layout, rows, self.cols, [Chunk(view, 0, rows)])

    def destroy(self, dev) -> None:
        for c in self.chunks:
            dev.destroy_buffer(c.buffer)
        self.chunks.clear()


def rows_per_chunk(layout: str, cols: int, max_binding: int) -> int:
    """Most rows that fit in one storage binding."""
    per_row = row_bytes(layout, cols)
    rows = max_binding // per_row
    if rows == 0:
        raise ValueError(f"one row of {cols} {layout} values ({per_row} B) exceeds the max "
                         f"storage binding ({max_binding} B)")
    return rows
