"""Kernels inside headless Chromium through the browser backend (Pyodide proxies on
navigator.gpu, SwiftShader without a GPU): same shader files and tolerances as the gpu tier.
The harness page boots once per session (tests/browser/harness.py); each test ships fresh random
numpy inputs to the page and compares what comes back with a float64 numpy reference."""
from __future__ import annotations

import numpy as np
import pytest

from tests.browser.harness import browser_run, harness_page  # noqa: F401 (fixture)
from tests.quant_data import random_weight, reference, to_internal

U = 2.0 ** -24


def matmul_bound(a, b):
    """f32 accumulation over k terms (as tests/gpu/test_matmul.py): k * 2^-23 * (|a| @ |b|)."""
    return np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) * a.shape[1] * 2.0 ** -23


def test_matmul(harness_page):
    rng = np.random.default_rng()
    m, n, k = (int(v) for v in rng.integers(1, 90, 3))  # rarely multiples of the 16 tile
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    outs = browser_run(harness_page, f"""
from app.kernels.matmul import matmul
ga = dev.upload(inputs["a"], kind="activations")
gb = dev.upload(inputs["b"], kind="activations")
gc = await matmul(dev, ga, gb, {m}, {n}, {k})
out("c", await dev.read(gc), "float32", ({m}, {n}))
for buf in (ga, gb, gc):
    dev.destroy_buffer(buf)
""", {"a": a, "b": b})
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(outs["c"] - ref) <= matmul_bound(a, b) + 1e-30), (m, n, k)


def test_plan_replay_with_new_step_data(harness_page):
    """C1 = A @ B; C2 = C1 @ D recorded once in the page, replayed twice, each time with a new A
    written as the step data; the replay goes through app/gpu/replay.js (no per-call dispatch)."""
    rng = np.random.default_rng()
    m, k, n, p = 13, 29, 21, 10
    a1, a2 = (rng.standard_normal((m, k)).astype(np.float32) for _ in range(2))
    b = rng.standard_normal((k, n)).astype(np.float32)
    d = rng.standard_normal((n, p)).astype(np.float32)
    outs = browser_run(harness_page, f"""
import struct
from app.gpu import BufferUsage
U = BufferUsage.UNIFORM | BufferUsage.COPY_DST
ga = dev.create_buffer({4 * m * k}, kind="activations")
gb, gd = dev.upload(inputs["b"], kind="weights"), dev.upload(inputs["d"], kind="weights")
c1, c2 = dev.create_buffer({4 * m * n}, kind="activations"), dev.create_buffer({4 * m * p}, kind="activations")
u1 = dev.upload(struct.pack("<4I", {m}, {n}, {k}, 0), kind="uniforms", usage=U)
u2 = dev.upload(struct.pack("<4I", {m}, {p}, {n}, 0), kind="uniforms", usage=U)
pipe = await dev.pipeline("matmul", "main", {{"TILE": 16}})
plan = dev.plan("chain")
plan.dispatch(pipe, [dev.bind(pipe, [ga, gb, c1, u1])], ({-(-n // 16)}, {-(-m // 16)}))
plan.dispatch(pipe, [dev.bind(pipe, [c1, gd, c2, u2])], ({-(-p // 16)}, {-(-m // 16)}))
def no_dispatch(*args):
    raise AssertionError("replay issued a per-call dispatch")
dev._dispatch = no_dispatch
try:
    for i in (1, 2):
        dev.replay(plan, step=ga, step_data=inputs[f"a{{i}}"])
        out(f"c1_{{i}}", await dev.read(c1), "float32", ({m}, {n}))
        out(f"c2_{{i}}", await dev.read(c2), "float32", ({m}, {p}))
    await dev.check("replay")
finally:
    del dev._dispatch
assert dev._replay_js is not None
for buf in (ga, gb, gd, c1, c2, u1, u2):
    dev.destroy_buffer(buf)
""", {"a1": a1, "a2": a2, "b": b, "d": d})
    for i, a in ((1, a1), (2, a2)):
        c1 = outs[f"c1_{i}"]
        assert np.all(np.abs(c1 - a.astype(np.float64) @ b) <= matmul_bound(a, b) + 1e-30)
        assert np.all(np.abs(outs[f"c2_{i}"] - c1.astype(np.float64) @ d)
                      <= matmul_bound(c1, d) + 1e-30)


# One matvec per internal layout: f32, f16, bf16, q4_1 (Q4_0 repacked), q5_1, q8_0a, q4_k, q5_k,
# q6_ka; rows not a multiple of the rows per workgroup.
@pytest.mark.parametrize("t,rows,cols", [("F32", 29, 96), ("F16", 33, 64), ("BF16", 45, 200),
                                         ("Q4_0", 37, 96), ("Q5_1", 21, 64), ("Q8_0", 50, 160),
                                         ("Q4_K", 17, 512), ("Q5_K", 9, 256), ("Q6_K", 19, 512)])
def test_matvec(harness_page, t, rows, cols):
    """app.kernels.matvec on an internal-layout weight (tests/quant_data.py's numpy repack model).
    Tolerance as tests/gpu/test_matvec.py: (cols + 64) * 2^-24 * (T @ |x|), T = |terms|; here T is
    bounded by |W| + |block min| <= 2 max|W| per element, so 2 * |W| is used."""
    from app.kernels.layouts import LAYOUT_OF
    rng = np.random.default_rng()
    raw = random_weight(t, rows, cols, rng)
    x = rng.standard_normal(cols).astype(np.float32)
    w = reference(t, raw, rows, cols)
    outs = browser_run(harness_page, f"""
from app.kernels.layouts import Chunk, GPUWeight
from app.kernels.matvec import matvec
buf = dev.upload(inputs["w"], kind="weights")
w = GPUWeight("w", "{LAYOUT_OF[t]}", {rows}, {cols}, [Chunk(buf, 0, {rows})])
gx = dev.upload(inputs["x"], kind="activations")
gy = await matvec(dev, w, gx)
out("y", await dev.read(gy, 0, {4 * rows}), "float32", ({rows},))
for b in (buf, gx, gy):
    dev.destroy_buffer(b)
""", {"w": to_internal(t, raw), "x": x})
    bound = (cols + 64) * U * (2 * np.abs(w) @ np.abs(x).astype(np.float64))
    assert np.all(np.abs(outs["y"] - w @ x) <= bound + 1e-30)


# The GPU decode variants (what an H100 runs; SwiftShader would pick the CPU ones): q4_1 FINE
# units, vec4 loads of dense layouts, the folded rmsnorm (NORM: x = xr * g, scale 1 / rms(xr))
# with the EPI epilogue (ex = y * (1 + g2)), subgroup reductions, ACC and BIAS, compiled by
# Chrome's WGSL compiler (Tint) instead of naga. Bound as tests/gpu/test_matvec.py's
# test_matvec_norm_and_epilogue; ex must be y * (1 + g2) exactly.
@pytest.mark.parametrize("t", ["Q4_0", "F16", "Q4_K"])
def test_matvec_gpu_variants_with_folded_norm(harness_page, t):
    rng = np.random.default_rng()
    rows, cols = 45, 512
    raw = random_weight(t, rows, cols, rng)
    W = reference(t, raw, rows, cols)
    xr = (rng.standard_normal(cols) * 3).astype(np.float32)
    g = (rng.standard_normal(cols) * 0.5 + 1).astype(np.float32)
    xg = (xr * g).astype(np.float32)
    g2 = (rng.standard_normal(rows) * 0.5).astype(np.float32)
    b = rng.standard_normal(rows).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32)
    eps = 1e-6
    from app.kernels.layouts import LAYOUT_OF
    outs = browser_run(harness_page, f"""
from app.kernels.layouts import Chunk, GPUWeight
from app.kernels.matvec import matvec
buf = dev.upload(inputs["w"], kind="weights")
w = GPUWeight("w", "{LAYOUT_OF[t]}", {rows}, {cols}, [Chunk(buf, 0, {rows})])
bufs = [dev.upload(inputs[n], kind="activations") for n in ("xg", "xr", "y0", "g2", "b")]
gx, gr, gy, gg2, gb = bufs
gex = dev.create_buffer({4 * rows}, kind="activations")
await matvec(dev, w, gx, out=gy, bias=gb, accumulate=True, norm=(gr, {eps}),
             epilogue=(gg2, True, gex), cpu=False, fine=True, v4=True, subgroups=True)
out("y", await dev.read(gy, 0, {4 * rows}), "float32", ({rows},))
out("ex", await dev.read(gex, 0, {4 * rows}), "float32", ({rows},))
for x in bufs + [buf, gex]:
    dev.destroy_buffer(x)
""", {"w": to_internal(t, raw), "xg": xg, "xr": xr, "y0": y0, "g2": g2, "b": b})
    x64 = xr.astype(np.float64)
    xn = x64 / np.sqrt(np.mean(x64 ** 2) + eps) * g.astype(np.float64)
    ref = W @ xn + b + y0
    bound = (4 * np.sqrt(cols + 64) + 64) * U * (2 * np.abs(W) @ np.abs(xn) + np.abs(b) + np.abs(y0))
    assert np.all(np.abs(outs["y"] - ref) <= bound), np.max(np.abs(outs["y"] - ref) / bound)
    assert np.array_equal(outs["ex"], outs["y"] * (g2 + np.float32(1)))


def test_rmsnorm_register_variant(harness_page):
    """rmsnorm's REG variant (row in registers, subgroupAdd, one barrier; Dawn needs the
    `enable subgroups` directive) against float64, rows of 2048 and 3000 (NPT 8 and 12, a
    partial last slot), (1 + w) form. Tolerance: the f32 sum of squares rounds at most
    NPT (serial per invocation) + log2(subgroup size) + WG / subgroup size (the partials, 64 with
    SwiftShader's subgroups of 4) times, plus a few roundings for the scale and products:
    |err| <= (dim / 256 + 64 + 16) * 2^-24 * |y|."""
    rng = np.random.default_rng()
    for rows, dim in ((1, 2048), (3, 3000)):
        x = rng.standard_normal((rows, dim)).astype(np.float32)
        w = (rng.standard_normal(dim) * 0.5).astype(np.float32)
        outs = browser_run(harness_page, f"""
from app.kernels.norm import rmsnorm
gx = dev.upload(inputs["x"], kind="activations")
gw = dev.upload(inputs["w"], kind="weights")
gy = await rmsnorm(dev, gx, gw, {rows}, {dim}, 1e-6, add_one=True, cpu=False, reg=True)
out("y", await dev.read(gy), "float32", ({rows}, {dim}))
for b in (gx, gw, gy):
    dev.destroy_buffer(b)
""", {"x": x, "w": w})
        x64 = x.astype(np.float64)
        ref = x64 / np.sqrt(np.mean(x64 ** 2, axis=1, keepdims=True) + 1e-6) * (1 + w)
        tol = np.abs(ref) * U * (dim / 256 + 64 + 16)
        assert np.all(np.abs(outs["y"] - ref) <= tol + 1e-38)


def ref_rope(x, pos, theta, rot, neox):
    """float64 RoPE of x (T, H, D) at positions pos + t, default scaling; (a, b) pairs are
    (2j, 2j+1) interleaved or (j, j + rot/2) half split; dims from rot on are unchanged.
    Returns (rotated, |a| + |b| per element) for the tolerance."""
    inv = 1.0 / theta ** (np.arange(0, rot, 2, dtype=np.float64) / rot)
    ang = (pos + np.arange(x.shape[0], dtype=np.float64))[:, None, None] * inv
    c, s = np.cos(ang), np.sin(ang)
    i = np.arange(rot // 2)
    ia, ib = (i, i + rot // 2) if neox else (2 * i, 2 * i + 1)
    y, mag = x.astype(np.float64), np.zeros(x.shape)
    a, b = y[..., ia].copy(), y[..., ib].copy()
    y[..., ia], y[..., ib] = a * c - b * s, a * s + b * c
    mag[..., ia] = mag[..., ib] = np.abs(a) + np.abs(b)
    return y, mag


@pytest.mark.parametrize("neox,rot", [(False, 64), (True, 32)])
def test_rope_replayed_at_new_positions(harness_page, neox, rot):
    """app.kernels.rope recorded once into a Plan, replayed at two positions given only as step
    data (shaders/lib/step.wgsl). Tolerance: the gpu tier's (|a| + |b|) * 2^-20
    (tests/gpu/test_rope.py): the kernel reduces the angle exactly in integers and evaluates its
    own cos/sin polynomials, so it does not inherit SwiftShader's coarse built-in sin/cos
    (measured 2^-12.4 relative, within WGSL's 2^-11 promise). An off-by-one position moves the
    fastest pair by ~1 rad: far outside this bound."""
    rng = np.random.default_rng()
    t, h, d, theta = 3, 5, 64, float(rng.choice([10000.0, 500000.0]))
    x = rng.standard_normal((t, h, d)).astype(np.float32)
    positions = [int(rng.integers(0, 100)), int(rng.integers(30000, 40000))]
    outs = browser_run(harness_page, f"""
import struct
from app.kernels.grid import step_params
from app.kernels.rope import rope, rope_table
gx = dev.upload(inputs["x"], kind="activations")
step = step_params(dev, 0, {t})
table = rope_table(dev, {rot}, {theta})
plan = dev.plan("rope")
await rope(dev, gx, table, step, {t}, {h}, {d}, neox={neox}, target=plan)
for i, pos in enumerate(inputs["positions"]):
    dev.write(gx, inputs["x"])
    dev.replay(plan, step, struct.pack("<4I", pos, {t}, pos + {t}, 0))
    out(f"y{{i}}", await dev.read(gx), "float32", ({t}, {h}, {d}))
for b in (gx, step, table.buffer):
    dev.destroy_buffer(b)
""", {"x": x, "positions": positions})
    for i, pos in enumerate(positions):
        ref, mag = ref_rope(x, pos, theta, rot, neox)
        assert np.all(np.abs(outs[f"y{i}"] - ref) <= mag * 2.0 ** -20), pos


@pytest.mark.parametrize("t", ["Q4_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"])
def test_matvec_q8_path(harness_page, t):
    """The opt-in int8-dot decode path (quantize_x + matvec(xq=); dot4I8Packed) through Chrome's
    shader compiler and SwiftShader: xq bit-exact against the numpy rebuild, y within the gpu
    tier's bounds (tests/gpu/test_matvec_q8.py) against both the same-quantized-x and the exact
    references."""
    from app.kernels.layouts import GGUF_BLOCK, LAYOUT_OF
    from tests.gpu.test_matvec_q8 import U as U8
    from tests.gpu.test_matvec_q8 import check_quantize, split
    rng = np.random.default_rng()
    rows, nb = 45, 3
    cols = GGUF_BLOCK[t][0] * nb
    raw = random_weight(t, rows, cols, rng)
    x = (rng.standard_normal(cols) * rng.uniform(0.1, 10, cols // 32).repeat(32)).astype(np.float32)
    outs = browser_run(harness_page, f"""
from app.kernels.layouts import Chunk, GPUWeight
from app.kernels.matvec import matvec, quantize_x
buf = dev.upload(inputs["w"], kind="weights")
w = GPUWeight("w", "{LAYOUT_OF[t]}", {rows}, {cols}, [Chunk(buf, 0, {rows})])
gx = dev.upload(inputs["x"], kind="activations")
xq = await quantize_x(dev, gx, {cols})
gy = await matvec(dev, w, gx, xq=xq)
out("y", await dev.read(gy, 0, {4 * rows}), "float32", ({rows},))
out("q", await dev.read(xq.q), "int8", (-1,))
out("ds", await dev.read(xq.ds), "float32", (-1, 2))
out("s", await dev.read(xq.inv), "float32", (-1,))
xq.destroy(dev)
for b in (buf, gx, gy):
    dev.destroy_buffer(b)
""", {"w": to_internal(t, raw), "x": x})
    q, d, sx, s = outs["q"][:cols], outs["ds"][:, 0], outs["ds"][:, 1], outs["s"]
    check_quantize(x, q, d, sx, s)
    W, M = split(t, raw, rows, cols)
    S = W - M
    xh = (q.astype(np.float64).reshape(-1, 32) * d[:, None].astype(np.float64)).reshape(cols)
    x64 = x.astype(np.float64)
    bound = ((cols // 32 + 16) * U8 * (np.abs(S) @ np.abs(xh) + np.abs(M) @ np.abs(x64))
             + 32 * U8 * (np.abs(M) @ np.abs(x64)))
    assert np.all(np.abs(outs["y"] - (S @ xh + M @ x64)) <= bound + 1e-30)
    bound2 = bound + np.abs(S) @ (np.repeat(d.astype(np.float64), 32) / 2 * (1 + 1e-5))
    assert np.all(np.abs(outs["y"] - W @ x64) <= bound2 + 1e-30)
