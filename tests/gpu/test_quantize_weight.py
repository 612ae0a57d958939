"""Load-time quantization of F32/F16/BF16 weights on the GPU (app/kernels/quantize_weight.py,
shaders/quantize_weight.wgsl) against gguf-py's quantizers, on the native backend.

Oracle: gguf.quants.quantize(x, Q8_0 | Q4_1) then gguf.quants.dequantize, applied to the source
values converted exactly to f32 (F16 -> f32 and BF16 -> f32 are exact; gguf-py quantizes in f32).
The GPU weight is decoded with app.kernels.dequant.dequantize (the layout's own decoder, exact).

Tolerance (check_against_oracle). The shader performs gguf-py's f32 operations one for one, with
correctly rounded divisions (its div_rn) and f16 stores by an integer round-to-nearest-even, so
it is bit-identical wherever f32 +, -, * are IEEE and (x - min) * id + 0.5 is not contracted into
an fma. Measured bit-identical: lavapipe (here), SwiftShader in Chromium (2 M elements) and an H100
through wgpu-native/Vulkan (6 x 16.7 M elements). Before div_rn, SwiftShader's 2.5-ULP division
flipped 1.8e-4 .. 8e-4 of the elements (F16/BF16 sources have few mantissa bits, so x / d often
lies exactly on a rounding tie that a 1-ULP error then decides), which sizes the slack kept for a
device that contracts that fma (Q4_1 codes at ties) or divides worse than div_rn corrects:
(1) every element within STEP_SLACK * d of the oracle (one code: exactly d; plus a 1-ULP-of-f16
change of d, <= 127 * 2^-11 d = 0.062 d for Q8_0; together < 1.07 d), and (2) at most
FLIP_FRACTION = 1e-3 of the elements (plus one, for tiny tensors) differ at all: above the worst
rate an imprecise device produced, far below what a real bug produces (a wrong rounding rule,
scale or nibble order changes a large fraction; checked by breaking the shader on purpose).
Rounding rules at exact ties are checked exactly by test_rounding_rules_at_ties.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import quants

from app.kernels.dequant import dequantize
from app.kernels.grid import grid, uniform
from app.kernels.layouts import row_bytes
from app.kernels.matvec import matvec
from app.kernels.quant import UnsupportedWeightTypeError, WeightSizeError
from app.kernels.quantize_weight import (TARGET, UnsupportedQuantizationError,
                                         quantize_weight)

GGML_Q = {"q8_0": T.Q8_0, "q4": T.Q4_1}
SOURCES = ["F32", "F16", "BF16"]
STEP_SLACK = 1.07
FLIP_FRACTION = 1e-3


# -- data and oracle ---------------------------------------------------------------------------
def to_bf16_bits(x32: np.ndarray) -> np.ndarray:
    """Top 16 bits of f32 with round-to-nearest-even (finite inputs), as torch/ggml do."""
    n = x32.view(np.uint32).astype(np.uint64)
    return ((n + 0x7FFF + ((n >> 16) & 1)) >> 16).astype(np.uint16)


def encode(src: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw little-endian bytes of x in dtype src, the exact f32 values those bytes hold)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if src == "F32":
        return x32.view(np.uint8).reshape(-1), x32
    if src == "F16":
        h = x32.astype(np.float16)
        return h.view(np.uint8).reshape(-1), h.astype(np.float32)
    b = to_bf16_bits(x32)
    return b.view(np.uint8).reshape(-1), (b.astype(np.uint32) << 16).view(np.float32)


def random_values(rows: int, cols: int, rng) -> np.ndarray:
    """Normal values with per-row scales over 4 decades and ~1% outliers (x10..x50). With >= 6
    rows, row 3 is constant (Q4_1's d == 0 path) and block 0 of row 5 is zero (Q8_0's d == 0)."""
    x = rng.standard_normal((rows, cols)) * 10.0 ** rng.uniform(-3, 1, (rows, 1))
    out = rng.random((rows, cols)) < 0.01
    x[out] *= rng.uniform(10, 50, out.sum()) * rng.choice([-1, 1], out.sum())
    if rows >= 6:
        x[3] = rng.uniform(-2, 2)
        x[5, :32] = 0.0
    return x


def oracle(x32: np.ndarray, to: str) -> tuple[np.ndarray, np.ndarray]:
    """(gguf-py's quantize -> dequantize of x32 as f32 (rows, cols), each element's step d)."""
    rows, cols = x32.shape
    q = quants.quantize(x32, GGML_Q[to])
    deq = quants.dequantize(q, GGML_Q[to]).reshape(rows, cols).astype(np.float32)
    d = q.reshape(rows, cols // 32, -1)[..., :2].copy().view(np.float16).astype(np.float32)
    return deq, np.repeat(d.reshape(rows, cols // 32), 32, axis=1)


def dequant_np(gpu, run, w) -> np.ndarray:
    out = run(dequantize(gpu, w))
    v = np.frombuffer(run(gpu.read(out)), np.float32)[:w.rows * w.cols].reshape(w.rows, w.cols)
    gpu.destroy_buffer(out)
    return v


def check_against_oracle(got: np.ndarray, ref: np.ndarray, step: np.ndarray, what) -> None:
    """The tolerance rule of the module docstring."""
    diff = np.abs(got.astype(np.float64) - ref)
    assert np.all(diff <= STEP_SLACK * step), (what, float((diff / np.maximum(step, 1e-30)).max()))
    n_diff = np.count_nonzero(diff)
    assert n_diff <= FLIP_FRACTION * diff.size + 1, (what, n_diff, diff.size)


def live(gpu, kind: str) -> int:
    return gpu.ledger.live.get(kind, 0)


# -- (a) random weights, every source dtype, one chunk ------------------------------------------
@pytest.mark.parametrize("to", list(TARGET))
@pytest.mark.parametrize("src", SOURCES)
def test_matches_gguf_quantizer(gpu, run, src, to):
    rng = np.random.default_rng()
    # 1 block; 3-block rows; 536 blocks (not a multiple of the 64-block workgroup); 65 blocks.
    for rows, cols in [(1, 32), (7, 96), (67, 256), (13, 160)]:
        raw, x32 = encode(src, random_values(rows, cols, rng))
        weights0, staging0 = live(gpu, "weights"), live(gpu, "staging")
        w = run(quantize_weight(gpu, "w", src, raw, rows, cols, to))
        assert (w.layout, w.rows, w.cols, len(w.chunks)) == (TARGET[to][0], rows, cols, 1)
        assert live(gpu, "staging") == staging0
        assert live(gpu, "weights") - weights0 == w.nbytes >= rows * row_bytes(w.layout, cols)
        ref, step = oracle(x32, to)
        assert np.count_nonzero(ref) > ref.size // 2  # real data, not zeros
        check_against_oracle(dequant_np(gpu, run, w), ref, step, (src, to, rows, cols))
        if to == "q8_0":  # q8_0a: bytes 2..3 of every 36-byte block are zero
            blocks = np.frombuffer(run(gpu.read(w.chunks[0].buffer)), np.uint8)
            assert not blocks[:rows * cols // 32 * 36].reshape(-1, 36)[:, 2:4].any()
        w.destroy(gpu)


# -- (b) forced chunks: the staging copy, not the output, sets the chunk size -------------------
@pytest.mark.parametrize("to", list(TARGET))
@pytest.mark.parametrize("src", SOURCES)
def test_chunked_is_identical_to_one_chunk(gpu, run, src, to):
    rng = np.random.default_rng()
    rows, cols = 9, 128
    raw, x32 = encode(src, random_values(rows, cols, rng))
    staging0 = live(gpu, "staging")
    limit = 2 * len(raw) // rows + 5  # two source rows (+5 B) per chunk; the output would take more
    assert limit // row_bytes(TARGET[to][0], cols) > 2
    w = run(quantize_weight(gpu, "w", src, memoryview(raw), rows, cols, to, max_chunk_bytes=limit))
    assert [(c.row0, c.rows) for c in w.chunks] == [(0, 2), (2, 2), (4, 2), (6, 2), (8, 1)]
    assert live(gpu, "staging") == staging0
    whole = run(quantize_weight(gpu, "w1", src, raw.tobytes(), rows, cols, to))
    got = dequant_np(gpu, run, w)
    # Same kernel on the same values: chunking must not change a single bit.
    assert np.array_equal(got.view(np.uint32), dequant_np(gpu, run, whole).view(np.uint32))
    check_against_oracle(got, *oracle(x32, to), (src, to))
    w.destroy(gpu)
    whole.destroy(gpu)


# -- (c) rounding rules at exact ties (hand-built; random data almost never lands on a tie) ------
def test_rounding_rules_at_ties(gpu, run):
    # Q8_0 block: amax = 127 -> d = 1, id = 1, so q = roundf(x) (half away from zero):
    #   2.5 -> 3, -2.5 -> -3, 0.5 -> 1, -0.5 -> -1, 126.5 -> 127, 1.5 -> 2,
    #   0.5 - 2^-25 -> 0 (np_roundf is exact; floor(x + 0.5) would give 1), -127 -> -127.
    q8_x = [2.5, -2.5, 0.5, -0.5, 126.5, 1.5, 0.5 - 2 ** -25, -127.0] * 4
    q8_codes = [3, -3, 1, -1, 127, 2, 0, -127] * 4
    # Q4_1 block: min = 0, max = 15 -> d = 1, m = 0, q = trunc(x + 0.5) in f32:
    #   2.5 -> 3, 0.5 -> 1, 14.5 -> 15, 15 -> 15, 0 -> 0, 7.25 -> 7,
    #   0.5 - 2^-25 -> 1 (x + 0.5 = 1 - 2^-25 rounds to 1.0 in f32, as in gguf-py), 3.5 -> 4.
    q4_x = [2.5, 0.5, 14.5, 15.0, 0.0, 7.25, 0.5 - 2 ** -25, 3.5] * 4
    q4_codes = [3, 1, 15, 15, 0, 7, 1, 4] * 4
    for to, xs, codes in [("q8_0", q8_x, q8_codes), ("q4", q4_x, q4_codes)]:
        x32 = np.array([xs], np.float32)
        w = run(quantize_weight(gpu, "ties", "F32", x32, 1, 32, to))
        got = dequant_np(gpu, run, w)[0]
        assert got.tolist() == codes, (to, got)  # d = 1 (and m = 0): values are the codes
        assert np.array_equal(got, oracle(x32, to)[0][0])
        w.destroy(gpu)


# -- (c') the correctly rounded division, on a simulated imprecise divider ----------------------
@pytest.mark.parametrize("skew", ["1.0", "1.00000023841858", "0.99999976158142"])
def test_div_rn_corrects_a_few_ulp(gpu, run, skew):
    """shaders/quantize_weight.wgsl's div_rn with the device's first quotient multiplied by `skew`
    (1 +- 2^-22: up to ~2.5 ULP off, as WGSL allows) must equal numpy's correctly rounded f32
    division bit for bit, for the three divisions the quantizers make: amax / 127, range / 15
    and 1 / d. Exact comparison: a correctly rounded quotient is unique (no ties, see the
    shader)."""
    rng = np.random.default_rng()
    n = 4096
    mags = (np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-4, 2, n)).astype(np.float32)
    a = np.concatenate([mags, mags, np.ones(n, np.float32)])
    b = np.concatenate([np.full(n, 127, np.float32), np.full(n, 15, np.float32), mags / 127])
    b = b.astype(np.float32)
    pipe = run(gpu.pipeline("quantize_weight", "div_rn_probe",
                            defines={"SRC": "f32", "DIV_SKEW": skew}))
    src = gpu.upload(np.stack([a, b], axis=1), kind="staging")
    dst = gpu.create_buffer(4 * a.size, kind="activations")
    params = uniform(gpu, "<I", a.size)
    gpu.dispatch(pipe, [gpu.bind(pipe, [src, dst, params])], grid(-(-a.size // 64)))
    got = np.frombuffer(run(gpu.read(dst)), np.uint32)
    for buf in (src, dst, params):
        gpu.destroy_buffer(buf)
    want = (a / b).astype(np.float32).view(np.uint32)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(a[i], b[i], got[i], want[i]) for i in bad[:5]]


# -- (d) the quantized weight in the matvec kernel ----------------------------------------------
@pytest.mark.parametrize("to", list(TARGET))
def test_matvec_on_quantized_weight(gpu, run, to):
    """y = W x with W quantized on the GPU vs float64 numpy on gguf-py's dequantized W.
    Tolerance: f32 accumulation of cols products, bounded by 2 cols 2^-24 sum_j M_ij |x_j| with
    M = |W| for q8_0 and |W - m| + |m| for q4 (the kernel sums d * sum(q x) + m * sum(x), whose
    partial sums are as large as those parts), plus the GPU-vs-oracle weight difference allowed
    above, sum_j |W_gpu - W_ref|_ij |x_j| (zero when bit-identical)."""
    rng = np.random.default_rng()
    rows, cols = 200, 512
    raw, x32w = encode("BF16", random_values(rows, cols, rng))
    w = run(quantize_weight(gpu, "w", "BF16", raw, rows, cols, to))
    ref_w, step = oracle(x32w, to)
    got_w = dequant_np(gpu, run, w)
    check_against_oracle(got_w, ref_w, step, to)
    x = rng.standard_normal(cols).astype(np.float32)
    gx = gpu.upload(x, kind="activations")
    y = run(matvec(gpu, w, gx))
    got = np.frombuffer(run(gpu.read(y)), np.float32)[:rows].astype(np.float64)
    want = ref_w.astype(np.float64) @ x.astype(np.float64)
    mag = np.abs(ref_w.astype(np.float64))
    if to == "q4":
        m = quants.quantize(x32w, T.Q4_1).reshape(rows, cols // 32, 20)[..., 2:4].copy()
        m = np.repeat(np.abs(m.view(np.float16).astype(np.float64)).reshape(rows, -1), 32, axis=1)
        mag = np.abs(ref_w - m) + m
    ax = np.abs(x.astype(np.float64))
    tol = 2 * cols * 2.0 ** -24 * (mag @ ax) + np.abs(got_w.astype(np.float64) - ref_w) @ ax
    assert np.all(np.abs(got - want) <= tol), float(np.max(np.abs(got - want) / tol))
    for b in (gx, y):
        gpu.destroy_buffer(b)
    w.destroy(gpu)


# -- (e) named errors, nothing left allocated ---------------------------------------------------
def test_errors(gpu, run):
    raw = encode("F16", np.random.default_rng().standard_normal((4, 64)))[0]
    before = (live(gpu, "weights"), live(gpu, "staging"))
    with pytest.raises(UnsupportedWeightTypeError, match="F32, F16, BF16"):
        run(quantize_weight(gpu, "w", "I8", raw, 4, 64, "q8_0"))
    with pytest.raises(UnsupportedQuantizationError, match="q8_0, q4"):
        run(quantize_weight(gpu, "w", "F16", raw, 4, 64, "q4_k"))
    with pytest.raises(WeightSizeError, match="multiple of 32"):
        run(quantize_weight(gpu, "w", "F16", raw, 4, 48, "q4"))
    with pytest.raises(WeightSizeError, match="needs 512 bytes, got 510"):
        run(quantize_weight(gpu, "w", "F16", raw[:-2], 4, 64, "q8_0"))
    with pytest.raises(WeightSizeError, match="needs 1024 bytes, got 512"):
        run(quantize_weight(gpu, "w", "F32", raw, 4, 64, "q8_0"))  # F16 bytes declared F32
    with pytest.raises(WeightSizeError, match="exceeds the max storage binding"):
        run(quantize_weight(gpu, "w", "F16", raw, 4, 64, "q4", max_chunk_bytes=100))
    assert (live(gpu, "weights"), live(gpu, "staging")) == before
