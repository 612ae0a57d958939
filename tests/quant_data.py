"""Random GGUF weight data for kernel tests, and a numpy reference of the load-time repack.

random_weight(type, rows, cols) -> raw GGUF bytes (uint8 array) whose f16 scales are finite and of
LLM-like magnitude (quant fields are uniformly random bits); reference(type, raw, rows, cols) ->
float64 values from gguf-py's dequantizer (the oracle); to_internal(type, raw) -> the bytes of the
internal layout (app/kernels/layouts.py) that the kernels read.
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

from app.kernels.layouts import GGUF_BLOCK, LAYOUT_OF, row_bytes

GGML = {"F32": T.F32, "F16": T.F16, "BF16": T.BF16, "Q4_0": T.Q4_0, "Q4_1": T.Q4_1,
        "Q5_0": T.Q5_0, "Q5_1": T.Q5_1, "Q8_0": T.Q8_0, "Q4_K": T.Q4_K, "Q5_K": T.Q5_K,
        "Q6_K": T.Q6_K}
TYPES = list(GGML)

# Byte offsets of f16 scale fields inside each block, and the magnitude to draw them from.
_F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
               "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def random_weight(ggml_type: str, rows: int, cols: int, rng=None, scale: float = 0.02) -> np.ndarray:
    rng = rng or np.random.default_rng()
    elems, nbytes = GGUF_BLOCK[ggml_type]
    if ggml_type == "F32":
        return rng.standard_normal(rows * cols).astype(np.float32).view(np.uint8)
    if ggml_type == "F16":
        return rng.standard_normal(rows * cols).astype(np.float16).view(np.uint8)
    if ggml_type == "BF16":
        f = rng.standard_normal(rows * cols).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    assert cols % elems == 0
    nblocks = rows * cols // elems
    blocks = rng.integers(0, 256, size=(nblocks, nbytes), dtype=np.uint8)
    for off in _F16_FIELDS[ggml_type]:
        # Positive and negative scales, magnitudes spread over two decades.
        d = (rng.uniform(0.1, 1.0, nblocks) * scale * rng.choice([-1, 1], nblocks)).astype(np.float16)
        blocks[:, off:off + 2] = d.view(np.uint8).reshape(nblocks, 2)
    return blocks.reshape(-1)


def reference(ggml_type: str, raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """float64 (rows, cols) from gguf-py's dequantize (the oracle)."""
    if ggml_type == "F32":
        out = raw.view(np.float32)
    elif ggml_type == "F16":
        out = raw.view(np.float16)
    else:
        out = quants.dequantize(raw.reshape(rows, -1), GGML[ggml_type])
    return np.asarray(out, dtype=np.float64).reshape(rows, cols)


def to_internal(ggml_type: str, raw: np.ndarray) -> np.ndarray:
    """numpy model of the GPU repack: raw GGUF bytes -> internal layout bytes."""
    elems, nbytes = GGUF_BLOCK[ggml_type]
    if ggml_type in ("F32", "F16", "BF16", "Q4_1", "Q5_1", "Q4_K", "Q5_K"):
        return raw.copy()
    b = raw.reshape(-1, nbytes)
    n = b.shape[0]
    if ggml_type in ("Q4_0", "Q5_0"):
        d = b[:, 0:2].copy().view(np.float16).reshape(n)
        m = (d.astype(np.float32) * (-8 if ggml_type == "Q4_0" else -16)).astype(np.float16)
        return np.concatenate([b[:, 0:2], m.view(np.uint8).reshape(n, 2), b[:, 2:]], axis=1).reshape(-1)
    if ggml_type == "Q8_0":
        return np.concatenate([b[:, 0:2], np.zeros((n, 2), np.uint8), b[:, 2:]], axis=1).reshape(-1)
    if ggml_type == "Q6_K":
        return np.concatenate([b, np.zeros((n, 2), np.uint8)], axis=1).reshape(-1)
    raise KeyError(ggml_type)


def internal_row_bytes(ggml_type: str, cols: int) -> int:
    return row_bytes(LAYOUT_OF[ggml_type], cols)
