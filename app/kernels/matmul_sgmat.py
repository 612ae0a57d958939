"""Prefill matrix product on the matrix units (tensor cores) through WebGPU subgroup matrices
(shaders/matmul_sgmat.wgsl): Y (n_tokens, rows) (+)= X (n_tokens, cols) @ W^T (+ bias), with X
quantized per 32-element block to int8 by quantize_x (app/kernels/matvec.py) and the integer
block sums done by subgroupMatrixMultiplyAccumulate in the i8 x i8 -> i32, 16 x 16 x 32 config.

Only Dawn's experimental feature "chromium-experimental-subgroup-matrix" offers this (Dawn with
the allow_unsafe_apis toggle, i.e. Chrome with --enable-unsafe-webgpu; on an H100 through Vulkan
it lists int8 configs only, no f16 ones: there is no shader-f16 there). `plan(dev, w)` says
whether a weight can take this path; everything else (CPU adapters, SwiftShader, lavapipe,
wgpu-py, other layouts) keeps matmul_q.

Error: the activations are rounded to int8 per block (|x q d - x| <= d / 2 with d = max|x| / 127),
the integer products are exact, the scaling is f32: |Y - Y_exact| <= sum_blocks d_x / 2 *
sum_k |w| plus f32 rounding (tests/gpu/test_matmul_sgmat.py checks that bound)."""
from __future__ import annotations

import os

from ..gpu import Buffer, Device
from .layouts import GPUWeight, row_bytes
from .matvec import QuantX, shape_uniform

FEATURE = "chromium-experimental-subgroup-matrix"
CONFIG = ("i8", "i32", 16, 16, 32)   # (component, result, M, N, K) the shader is written for
SUBGROUP = 32                        # invocations per subgroup the shader assumes
TT = TR = 32                         # output tile: tokens x weight rows (one subgroup)
DEFINE = {"q4_1": "Q4_1", "q8_0a": "Q8_0A"}
KB = int(os.environ.get("LOCALLLM_SGMAT_KB", "1"))   # 32-element blocks per barrier round
# Off by default: on an H100 (Dawn) it was no faster than matmul_q (docs/benchmarks.md, "Prefill
# on tensor cores") and rounds activations to int8. LOCALLLM_SGMAT=1 turns it on (A/B runs).
ENABLED = os.environ.get("LOCALLLM_SGMAT", "0") == "1"


def available(features, configs, subgroup_sizes) -> bool:
    """Pure check on a device's description: the feature was granted, the adapter lists the
    config the shader uses, and its subgroups are exactly SUBGROUP wide (the shader maps
    subgroup s to invocations 32s .. 32s + 31)."""
    return (FEATURE in features and tuple(CONFIG) in {tuple(c) for c in configs}
            and tuple(subgroup_sizes) == (SUBGROUP, SUBGROUP))


def fits(layout: str, cols: int) -> bool:
    """A weight this kernel can read: its layout has a 32-element block the shader decodes."""
    return layout in DEFINE and cols % 32 == 0


def plan(dev: Device, w: GPUWeight) -> bool:
    """True when `w` takes matmul_sgmat on `dev` (never on CPU adapters)."""
    info = dev.info
    return (ENABLED and not dev.is_cpu and fits(w.layout, w.cols)
            and available(dev.features, getattr(info, "subgroup_matrix", ()),
                          getattr(info, "subgroup_sizes", (0, 0))))


async def matmul_sgmat(dev: Device, w: GPUWeight, xq: QuantX, n_tokens: int,
                       out: Buffer | None = None, bias: Buffer | None = None,
                       accumulate: bool = False, target=None) -> Buffer:
    """`xq` is quantize_x of X (n_tokens, w.cols); `out` (n_tokens, w.rows) f32 as matmul_q's."""
    if not fits(w.layout, w.cols):
        raise ValueError(f"matmul_sgmat {w.name}: layout {w.layout!r} with {w.cols} columns is "
                         f"not supported (layouts {sorted(DEFINE)}, cols % 32 == 0)")
    if FEATURE not in dev.features:
        raise ValueError(f"matmul_sgmat: the device lacks {FEATURE}")
    if n_tokens < 1 or xq.n_vec < n_tokens or xq.cols != w.cols:
        raise ValueError(f"matmul_sgmat {w.name}: xq is ({xq.n_vec}, {xq.cols}), needs "
                         f"({n_tokens}, {w.cols})")
    if accumulate and out is None:
        raise ValueError("matmul_sgmat: accumulate=True needs the out buffer to add into")
    if out is None:
        out = dev.create_buffer(4 * n_tokens * w.rows, kind="activations", label=f"{w.name}.Y")
    if out.size < 4 * n_tokens * w.rows:
        raise ValueError(f"matmul_sgmat {w.name}: out holds {out.size} B, needs "
                         f"({n_tokens}, {w.rows})")
    cap = dev.limits.get("maxComputeWorkgroupsPerDimension", 65535)
    gy = -(-n_tokens // TT)
    if gy > cap or -(-max(c.rows for c in w.chunks) // TR) > cap:
        raise ValueError(f"matmul_sgmat {w.name}: {n_tokens} tokens x {w.rows} rows exceed the "
                         "grid; split the prompt")
    defines = {DEFINE[w.layout]: True, "BIAS": bias is not None, "ACC": accumulate, "KB": KB}
    pipe = await dev.pipeline("matmul_sgmat", "main", None, defines)
    stride = row_bytes(w.layout, w.cols) // 4
    for ch in w.chunks:
        params = shape_uniform(dev, "<8I", ch.rows, w.cols, stride, ch.row0, w.rows, n_tokens,
                               0, 0, label="matmul_sgmat.params")
        bufs = [ch.buffer, xq.q, xq.ds, out, params] + ([bias] if bias is not None else [])
        (target or dev).dispatch(pipe, [dev.bind(pipe, bufs)], (-(-ch.rows // TR), gy))
    return out
