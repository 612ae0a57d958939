"""shaders/matvec.wgsl (app/kernels/matvec.py) against float64 numpy on gguf-py's dequantization.

Weights are built directly from tests/quant_data.py (random GGUF blocks -> internal layout bytes,
uploaded per row chunk), so these tests do not depend on the GPU repack.

Tolerance. The kernel sums in f32 terms of the form scale * sum(q * x) (+ min * sum(x)) per block,
then across blocks and a tree over threads: at most n = cols + 64 roundings on any path, each of
relative size <= 2^-24, against T @ |x|, where T holds the magnitudes of the terms the kernel adds
(T = |W| for dense, q8_0 and q6_k; |d|*q + |m| for q4_1/q5_1; |d*sc|*q + |dmin*mn| for q4_k/q5_k:
see magnitudes()). The worst case is n * 2^-24 * (T @ |x|); rounding errors of random data add
like a random walk, so we check the tighter |err| <= c * sqrt(n) * 2^-24 * (T @ |x|), c = 4
(measured max here: 0.94 * sqrt(cols) * 2^-24 * (T @ |x|), at cols = 1; far less for long rows;
for n <= 16 c * sqrt(n) >= n, so short rows meet even the worst case). Bias/accumulate add 2 more
roundings of |bias|, |out|, |y|. A wrong bit in a decoder gives errors ~ |W| |x|: >> this bound.
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.layouts import LAYOUT_OF, Chunk, GPUWeight
from app.kernels.matvec import matvec
from app.kernels.layouts import GGUF_BLOCK
from tests.quant_data import TYPES, random_weight, reference, to_internal

U = 2.0 ** -24
C = 4.0  # see the module docstring


def upload_weight(dev, t: str, raw: np.ndarray, rows: int, cols: int, splits=()) -> GPUWeight:
    """GPUWeight of raw GGUF data (internal layout), split into chunks at the row indices `splits`."""
    internal = to_internal(t, raw)
    per_row = internal.nbytes // rows
    if LAYOUT_OF[t] in ("f16", "bf16") and cols % 2:
        assert not splits, "odd-cols 16-bit rows are not word-aligned; keep one chunk"
    edges = [0, *splits, rows]
    chunks = [Chunk(dev.upload(internal[a * per_row:b * per_row].tobytes(), kind="weights",
                               label=f"w{a}"), a, b - a) for a, b in zip(edges, edges[1:])]
    return GPUWeight(f"{t}_{rows}x{cols}", LAYOUT_OF[t], rows, cols, chunks)


def magnitudes(t: str, raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """|terms| of the kernel's sums per element (see the module docstring)."""
    if t in ("Q4_0", "Q5_0"):  # internal q4_1/q5_1 = GGUF Q4_1/Q5_1 bytes with m = -8d / -16d
        raw, t = to_internal(t, raw), {"Q4_0": "Q4_1", "Q5_0": "Q5_1"}[t]
    if t in ("Q4_1", "Q5_1", "Q4_K", "Q5_K"):
        b = raw.copy().reshape(-1, GGUF_BLOCK[t][1])
        b[:, 1] &= 0x7F                                        # d >= 0
        b[:, 3] = b[:, 3] & 0x7F if t in ("Q4_1", "Q5_1") else b[:, 3] | 0x80  # m >= 0, dmin <= 0
        return np.abs(reference(t, b.reshape(-1), rows, cols))
    return np.abs(reference(t, raw, rows, cols))


def case(dev, t, rows, cols, n_vec, splits=(), rng=None):
    rng = rng or np.random.default_rng()
    raw = random_weight(t, rows, cols, rng)
    w = upload_weight(dev, t, raw, rows, cols, splits)
    x = rng.standard_normal((n_vec, cols)).astype(np.float32)
    ref = x.astype(np.float64) @ reference(t, raw, rows, cols).T
    bound = C * np.sqrt(cols + 64) * U * (np.abs(x).astype(np.float64) @ magnitudes(t, raw, rows, cols).T)
    return w, x, ref, bound


def check_case(gpu, run, c, n_vec, **kw):
    """Run matvec (keyword arguments kw) on case() c, check y against its bound, free it all."""
    w, x, ref, bound = c
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gy = run(matvec(gpu, w, gx, n_vec=n_vec, **kw))
    rows = w.rows
    y = np.frombuffer(run(gpu.read(gy)), np.float32)[:n_vec * rows].reshape(n_vec, rows)
    assert np.all(np.abs(y - ref) <= bound + 1e-30), \
        f"max err/bound {np.max(np.abs(y - ref) / (bound + 1e-30)):.3g}"
    for b in (gx, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


def blocks_cols(t, nblocks):
    return GGUF_BLOCK[t][0] * nblocks


# (rows, blocks per row, n_vec): rows not multiples of the rows per workgroup; 1, 2, 3 blocks;
# dense 40 and 1000 columns take the vector path, 1..3 the scalar one.
SHAPES = [(1, 1, 1), (37, 2, 2), (300, 3, 1), (67, 40, 3), (5, 1000, 8)]


def need_subgroups(gpu, subgroups):
    if subgroups and "subgroups" not in gpu.features:
        pytest.skip("the adapter lacks the subgroups feature (the SUBGROUPS variant is untestable)")


# The GPU parameters (choose()) with the SUBGROUPS reduction (shuffles, the default where the
# device has the feature) and with the workgroup-memory tree (always available), and the CPU
# adapters' barrier-free parameters (choose_cpu()), whatever this device would pick.
@pytest.mark.parametrize("cpu,subgroups", [(False, False), (False, True), (True, None)])
@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("rows,nb,n_vec", SHAPES)
def test_matvec_matches_reference(gpu, run, t, rows, nb, n_vec, cpu, subgroups):
    if subgroups:
        need_subgroups(gpu, subgroups)
    cols = blocks_cols(t, nb)
    check_case(gpu, run, case(gpu, t, rows, cols, n_vec), n_vec=n_vec, subgroups=subgroups,
               cpu=cpu)


@pytest.mark.parametrize("t", TYPES)
def test_chunks_bias_accumulate(gpu, run, t):
    """Three uneven row chunks, f32 bias, and accumulate into an existing out (residual add)."""
    rng = np.random.default_rng()
    rows, n_vec = 203, 2
    cols = blocks_cols(t, 3) if GGUF_BLOCK[t][0] > 1 else 96
    w, x, ref, bound = case(gpu, t, rows, cols, n_vec, splits=(50, 51), rng=rng)
    assert len(w.chunks) == 3
    bias = rng.standard_normal(rows).astype(np.float32)
    prev = rng.standard_normal((n_vec, rows)).astype(np.float32)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gb = gpu.upload(bias.tobytes(), kind="activations", label="bias")
    gy = gpu.upload(prev.tobytes(), kind="activations", label="y")
    run(matvec(gpu, w, gx, out=gy, n_vec=n_vec, bias=gb, accumulate=True))
    y = np.frombuffer(run(gpu.read(gy)), np.float32).reshape(n_vec, rows)
    want = ref + bias + prev
    slack = 4 * U * (np.abs(bias) + np.abs(prev) + np.abs(want))
    assert np.all(np.abs(y - want) <= bound + slack)
    # bias without accumulate, into a fresh buffer
    gy2 = run(matvec(gpu, w, gx, n_vec=n_vec, bias=gb))
    y2 = np.frombuffer(run(gpu.read(gy2)), np.float32).reshape(n_vec, rows)
    assert np.all(np.abs(y2 - (ref + bias)) <= bound + 4 * U * (np.abs(bias) + np.abs(ref + bias)))
    for b in (gx, gb, gy, gy2):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


@pytest.mark.parametrize("t,tpr", [("Q8_0", 256), ("F32", None)])
def test_many_workgroups_spill_into_y(gpu, run, t, tpr):
    """262145 rows (a Gemma-3-sized lm_head plus one): with 256 threads per row, 4 rows per
    workgroup, the grid needs 65537 workgroups and spills into y (grid (32769, 2), one
    workgroup unused); F32 uses its default mapping."""
    rows, cols = 262145, 32
    w, x, ref, bound = case(gpu, t, rows, cols, 1)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    gy = run(matvec(gpu, w, gx, tpr=tpr))
    y = np.frombuffer(run(gpu.read(gy)), np.float32)[:rows]
    assert np.all(np.abs(y - ref[0]) <= bound[0] + 1e-30)
    for b in (gx, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


# Reduction shapes: TPR 1 (no reduction), 4 (within every subgroup: no barrier), 16 and 256
# (more lanes than lavapipe's / NVIDIA's subgroups: the cross-subgroup step), with 1, 2 and 4
# rows per thread, 1 and 3 vectors; 70 rows leave a partial last row group (clamped rows).
@pytest.mark.parametrize("subgroups", [False, True])
@pytest.mark.parametrize("tpr,rpt,n_vec", [(1, 4, 1), (4, 2, 3), (16, 1, 1), (16, 4, 3),
                                           (256, 4, 1), (256, 2, 3)])
@pytest.mark.parametrize("t", ["Q4_0", "Q6_K"])
def test_reduction_shapes(gpu, run, t, tpr, rpt, n_vec, subgroups):
    need_subgroups(gpu, subgroups)
    rows, cols = 70, blocks_cols(t, 9 if t == "Q4_0" else 2)
    check_case(gpu, run, case(gpu, t, rows, cols, n_vec), n_vec=n_vec, tpr=tpr, rpt=rpt,
               subgroups=subgroups)


def test_choose_spreads_small_matrices():
    """choose(): few rows -> fewer rows per thread, then more threads per row, until FEW_WG
    workgroups (or one unit per thread); large matrices keep the defaults."""
    from app.kernels.matvec import FEW_WG, MIN_RPT, choose, workgroups
    assert choose(64, 16384, 1) == (32, 4)                      # 512 workgroups already
    tpr, rpt = choose(64, 2048, 1)
    assert (tpr, rpt) == (64, MIN_RPT) and workgroups(2048, tpr, rpt) >= FEW_WG
    assert choose(4, 10, 1) == (4, MIN_RPT)                     # stops at one unit per thread
    assert choose(4096, 8, 8)[0] == 256                         # stops at 256 threads per row


def test_rejects_bad_arguments(gpu, run):
    w, x, _, _ = case(gpu, "Q8_0", 4, 32, 1)
    gx = gpu.upload(x.tobytes(), kind="activations", label="x")
    with pytest.raises(ValueError, match="n_vec"):
        run(matvec(gpu, w, gx, n_vec=9))
    with pytest.raises(ValueError, match="accumulate"):
        run(matvec(gpu, w, gx, accumulate=True))
    with pytest.raises(ValueError, match="x holds"):
        run(matvec(gpu, w, gx, n_vec=2))
    with pytest.raises(ValueError, match="rpt"):
        run(matvec(gpu, w, gx, rpt=8))
    with pytest.raises(ValueError, match="tpr"):
        run(matvec(gpu, w, gx, tpr=3))
    gpu.destroy_buffer(gx)
    w.destroy(gpu)


# -- GLU input (glu=(act, ffn)): x = act(gate) * up formed on load from the fused gate | up -------
def ref_act(kind, g):
    """float64 activation and the exp argument a (g / (1 + exp(a))) of shaders/lib/glu_act.wgsl."""
    if kind == "silu":
        a = -g
    else:
        c = np.clip(g, -20.0, 20.0)
        a = -2.0 * np.sqrt(2.0 / np.pi) * (c + 0.044715 * c ** 3)
    return np.where(a > 80.0, 0.0, g / (1.0 + np.exp(np.minimum(a, 80.0)))), a


# (type, activation, rows, blocks per row, n_vec): every layout, both activations; dense 3-column
# rows take the SCALAR path, where up starts cols elements (not vec4s) after the gate.
GLU_CASES = [(t, act, rows, nb, n_vec) for i, t in enumerate(TYPES)
             for act, (rows, nb, n_vec) in ((("silu", "gelu_tanh")[i % 2], (37, 3, 1)),
                                            (("gelu_tanh", "silu")[i % 2], (67, 40, 2)))]
GLU_CASES += [("F32", "silu", 5, 3, 1), ("F16", "gelu_tanh", 5, 3, 2)]


@pytest.mark.parametrize("cpu,subgroups", [(False, False), (False, True), (True, None)])
@pytest.mark.parametrize("t,act,rows,nb,n_vec", GLU_CASES)
def test_matvec_glu_input(gpu, run, t, act, rows, nb, n_vec, cpu, subgroups):
    """y = (act(g) * u) @ W^T (+ accumulate) with gu = g | u per vector, against float64 numpy.
    Tolerance: the matvec bound of the module docstring on x = act(g) * u, plus the activation's
    own f32 error carried through |W|: per element |x| (32 + 4 |a|) 2^-24, a = the exp argument
    (WGSL's exp is within 3 + 2|a| ulp; the division, 1 +, the product and a's own rounding add
    a few ulp of relative error, times |a| for a's: 32 + 4|a| covers them with ~2x room). A wrong
    activation, up offset or vector stride errs by ~|g u| |W|: far above."""
    if subgroups:
        need_subgroups(gpu, subgroups)
    rng = np.random.default_rng()
    cols = blocks_cols(t, nb)
    raw = random_weight(t, rows, cols, rng)
    w = upload_weight(gpu, t, raw, rows, cols)
    # gates past +-20 (and past gelu's zero cut at g ~ -8.1) occur at this scale
    g = (rng.standard_normal((n_vec, cols)) * 6).astype(np.float32)
    u = rng.standard_normal((n_vec, cols)).astype(np.float32)
    gu = np.concatenate([g, u], axis=1)                     # (n_vec, 2 cols): gate | up per row
    xa, a = ref_act(act, g.astype(np.float64))
    x = xa * u
    W = reference(t, raw, rows, cols)
    prev = rng.standard_normal((n_vec, rows)).astype(np.float32)
    ref = x @ W.T + prev
    x_err = np.abs(x) * (32 + 4 * np.abs(a)) * U
    bound = (C * np.sqrt(cols + 64) * U * (np.abs(x) @ magnitudes(t, raw, rows, cols).T)
             + x_err @ np.abs(W).T + 2 * U * (np.abs(prev) + np.abs(ref)))
    ggu = gpu.upload(gu.tobytes(), kind="activations", label="gu")
    gy = gpu.upload(prev.tobytes(), kind="activations", label="y")
    run(matvec(gpu, w, ggu, out=gy, n_vec=n_vec, accumulate=True, subgroups=subgroups, cpu=cpu,
               glu=(act, cols)))
    y = np.frombuffer(run(gpu.read(gy)), np.float32).reshape(n_vec, rows)
    err = np.abs(y - ref)
    assert np.all(err <= bound), f"max err/bound {np.max(err / bound):.3g}"
    for b in (ggu, gy):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


def test_matvec_glu_rejects_bad_arguments(gpu, run):
    w, x, _, _ = case(gpu, "Q8_0", 4, 32, 1)
    gx = gpu.upload(np.tile(x, 2).tobytes(), kind="activations", label="gu")
    with pytest.raises(ValueError, match="activation"):
        run(matvec(gpu, w, gx, glu=("relu", 32)))
    with pytest.raises(ValueError, match="cols"):
        run(matvec(gpu, w, gx, glu=("silu", 64)))
    with pytest.raises(ValueError, match="x holds"):
        run(matvec(gpu, w, gx, n_vec=2, glu=("silu", 32)))
    gpu.destroy_buffer(gx)
    w.destroy(gpu)


# The vec4-load variant (V4: dense layouts read each unit with one 16-byte load, q4_k / q5_k
# their header and quant runs) and the FINE units (q4_1: one quant word per unit; q8_0a: two),
# same sums, so the same bound. Rows per thread 1/2/4, 1 and 3 vectors, chunked weights, partial
# row groups, GLU-free; K-quants with all 8 sub-blocks of 2 super-blocks (every scale branch).
@pytest.mark.parametrize("tpr,rpt,n_vec", [(None, None, 1), (4, 1, 1), (8, 2, 3), (32, 4, 1),
                                           (2, 4, 2)])
@pytest.mark.parametrize("t", ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K"])
def test_matvec_v4_fine(gpu, run, t, tpr, rpt, n_vec):
    rows = 53
    cols = 512 if t.endswith("_K") else 384
    check_case(gpu, run, case(gpu, t, rows, cols, n_vec, splits=(17,)), n_vec=n_vec, tpr=tpr,
               rpt=rpt, v4=True, fine=True, cpu=False)


# NORM: rmsnorm folded into the matvec (decode's qkv / gate_up / lm_head): x = xr * g' (as the
# producing matvec's EPI epilogue writes it), xr the raw residual stream. Oracle: float64
# rmsnorm(xr) * g' then the product. Bound: the matvec bound on |x_n| plus the scale's own
# rounding (the f32 sum of squares over <= cols / WG + log2 WG + WG / 4 serial additions and
# inverseSqrt's few ulp): a relative 2^-24 * (C sqrt(cols) + 64) of the magnitude term.
# EPI: the written ex must equal y * g'' exactly (one f32 multiply of the stored y).
@pytest.mark.parametrize("cpu,subgroups", [(False, False), (False, True), (True, None)])
@pytest.mark.parametrize("t,bias,add_one,acc", [("Q4_0", False, False, True),
                                                 ("Q4_K", True, True, False),
                                                 ("F16", False, True, True),
                                                 ("Q6_K", False, False, False),
                                                 ("Q8_0", True, False, True)])
def test_matvec_norm_and_epilogue(gpu, run, t, bias, add_one, acc, cpu, subgroups):
    if subgroups:
        need_subgroups(gpu, subgroups)
    rng = np.random.default_rng()
    rows, cols = 67, 512
    raw = random_weight(t, rows, cols, rng)
    w = upload_weight(gpu, t, raw, rows, cols, splits=(30,))
    xr = (rng.standard_normal(cols) * 3).astype(np.float32)
    g = (rng.standard_normal(cols) * 0.5 + 1).astype(np.float32)
    gp = g + np.float32(1 if add_one else 0)
    xg = (xr * gp).astype(np.float32)                      # what an EPI epilogue would write
    eps = 1e-6
    x64 = xr.astype(np.float64)
    xn = x64 / np.sqrt(np.mean(x64 ** 2) + eps) * gp.astype(np.float64)
    W = reference(t, raw, rows, cols)
    b = rng.standard_normal(rows).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32)
    ref = W @ xn + (b if bias else 0) + (y0 if acc else 0)
    mag = magnitudes(t, raw, rows, cols) @ np.abs(xn) + (np.abs(b) if bias else 0) + \
        (np.abs(y0) if acc else 0)
    bound = (C * np.sqrt(cols + 64) + 64) * U * mag
    g2 = (rng.standard_normal(rows) * 0.5 + 1).astype(np.float32)   # the next norm's weight
    gx = gpu.upload(xg.tobytes(), kind="activations", label="x")
    gr = gpu.upload(xr.tobytes(), kind="activations", label="xr")
    gy = gpu.upload(y0.tobytes(), kind="activations", label="y")
    gg2 = gpu.upload(g2.tobytes(), kind="weights", label="g2")
    gex = gpu.create_buffer(4 * rows, kind="activations", label="ex")
    gb = gpu.upload(b.tobytes(), kind="weights", label="b") if bias else None
    run(matvec(gpu, w, gx, out=gy, bias=gb, accumulate=acc, norm=(gr, eps),
               epilogue=(gg2, add_one, gex), subgroups=subgroups, cpu=cpu))
    y = np.frombuffer(run(gpu.read(gy)), np.float32)[:rows]
    assert np.all(np.abs(y - ref) <= bound), f"max err/bound {np.max(np.abs(y - ref) / bound):.3g}"
    ex = np.frombuffer(run(gpu.read(gex)), np.float32)[:rows]
    assert np.array_equal(ex, y * (g2 + np.float32(1 if add_one else 0)))
    for buf in (gx, gr, gy, gg2, gex, gb):
        if buf is not None:
            gpu.destroy_buffer(buf)
    w.destroy(gpu)
