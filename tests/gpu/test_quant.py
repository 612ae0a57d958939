"""Weight upload + repack (shaders/repack.wgsl), dequantization (shaders/dequant.wgsl) and the
embedding gather (shaders/embedding.wgsl) for every GGUF type, on the native backend.

Oracles: tests/quant_data.to_internal (numpy model of the repack: bytes must be identical) and
gguf-py's dequantize (tests/quant_data.reference). Tolerance: none. Every type is compared for
exact f32 equality, because every decode is exact up to one final rounding that numpy performs
identically: f16 scales carry 11 significant bits, so d * q (q8: 8 bits), d * sc * q (K-quants:
11 + 6 + 5 bits) and d * scale * (q - 32) (Q6_K: 11 + 7 + 5 bits) all fit f32's 24 bits exactly;
only the final "+ m" / "- dmin * mn" rounds, once, to nearest (a fused multiply-add rounds the
same exact product the same way). F32/F16/BF16 are exact conversions. Equality is by value, so
the only bit difference allowed is the sign of a zero (Q4_0/Q5_0 compute q*d + m = +0 where
gguf's d*(q-8) gives -0 for negative d). Embedding: expected = f32(w) * f32(scale), one rounding.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from app.kernels.dequant import dequantize
from app.kernels.embedding import embedding
from app.kernels.layouts import GGUF_BLOCK, LAYOUT_OF, row_bytes
from app.kernels.quant import UnsupportedWeightTypeError, WeightSizeError, upload_weight
from tests.quant_data import TYPES, random_weight, reference, to_internal


def shapes(t):
    """(rows, cols) with several rows and cols = 1, 2, 3, 5 blocks (F types: odd widths too)."""
    qk = GGUF_BLOCK[t][0]
    if qk == 1:
        return [(1, 1), (3, 7), (5, 64), (16, 33)]
    return [(1, qk), (3, 2 * qk), (7, 3 * qk), (4, 5 * qk)]


def internal_bytes(gpu, run, w) -> bytes:
    """The weight's chunks read back and concatenated (each chunk trimmed of its 4-byte pad)."""
    per_row = row_bytes(w.layout, w.cols)
    return b"".join(run(gpu.read(c.buffer))[:c.rows * per_row] for c in w.chunks)


def dequant_np(gpu, run, w, **kw) -> np.ndarray:
    out = run(dequantize(gpu, w, **kw))
    v = np.frombuffer(run(gpu.read(out)), np.float32)[:w.rows * w.cols].reshape(w.rows, w.cols)
    gpu.destroy_buffer(out)
    return v


# -- (a) repack bytes and (b) dequantization, random blocks ---------------------------------------
@pytest.mark.parametrize("t", TYPES)
def test_repack_and_dequantize_match_numpy_and_gguf(gpu, run, t):
    for rows, cols in shapes(t):
        raw = random_weight(t, rows, cols)
        w = run(upload_weight(gpu, "w", t, raw, rows, cols))
        assert (w.layout, w.rows, w.cols, len(w.chunks)) == (LAYOUT_OF[t], rows, cols, 1)
        assert internal_bytes(gpu, run, w) == to_internal(t, raw).tobytes(), (t, rows, cols)
        ref = reference(t, raw, rows, cols)
        assert np.count_nonzero(ref) > ref.size // 2  # real random data, not zeros
        assert np.array_equal(dequant_np(gpu, run, w), ref.astype(np.float32)), (t, rows, cols)
        w.destroy(gpu)


# -- (c) forced small chunks and small output windows give the same results ---------------------
@pytest.mark.parametrize("t", TYPES)
def test_chunked_upload_and_windowed_dequant_are_identical(gpu, run, t):
    qk = GGUF_BLOCK[t][0]
    rows, cols = 7, {1: 5, 32: 96, 256: 256}[qk]
    raw = random_weight(t, rows, cols)
    per_row = row_bytes(LAYOUT_OF[t], cols)
    w = run(upload_weight(gpu, "w", t, raw, rows, cols, max_chunk_bytes=2 * per_row + 3))
    assert [(c.row0, c.rows) for c in w.chunks] == [(0, 2), (2, 2), (4, 2), (6, 1)]
    assert internal_bytes(gpu, run, w) == to_internal(t, raw).tobytes()
    ref = reference(t, raw, rows, cols).astype(np.float32)
    assert np.array_equal(dequant_np(gpu, run, w), ref)
    # Output windows of 1 row (4 for odd widths): most start at offsets that are not multiples of
    # 256 bytes, so the aligned binding offset + element offset in the uniform is exercised.
    step = 4 if cols % 2 else 1
    assert np.array_equal(dequant_np(gpu, run, w, max_binding=256 + 4 * cols * step), ref)
    w.destroy(gpu)


# -- (d) one hand-built block per type ----------------------------------------------------------
def f16(x: float) -> bytes:
    return struct.pack("<e", x)


def hand_block(t):
    """(raw GGUF bytes, expected values computed by hand, internal-layout prefix or None)."""
    if t == "F32":  # 4 values, 4 bytes each LE: 1.0 = 00 00 80 3F, -2.5 = 00 00 20 C0,
        # 0.15625 = 00 00 20 3E, largest finite f32 (2 - 2^-23) * 2^127 = FF FF 7F 7F
        raw = bytes.fromhex("0000803f 000020c0 0000203e ffff7f7f")
        return raw, [1.0, -2.5, 0.15625, (2 - 2 ** -23) * 2.0 ** 127], None
    if t == "F16":  # 5 values (odd: the tail path), 2 bytes each LE: 1.0 = 00 3C, -2.5 = 00 C1,
        # 65504 (max) = FF 7B, 2^-24 (smallest subnormal) = 01 00, -0.0 = 00 80
        raw = bytes.fromhex("003c 00c1 ff7b 0100 0080")
        return raw, [1.0, -2.5, 65504.0, 2.0 ** -24, -0.0], None
    if t == "BF16":  # the top 16 bits of an f32: 1.0 = 80 3F, -2.5 = 20 C0,
        # 3.140625 = 49 40 (0 10000000 1001001: 2 * (1 + 73/128)), -1.0 = 80 BF
        return bytes.fromhex("803f 20c0 4940 80bf"), [1.0, -2.5, 3.140625, -1.0], None
    if t == "Q4_0":  # 18 B: [0:2] d = -1.5 (00 BE); [2:18] qs[i] = i | (15 - i) << 4 (F0 E1 .. 0F)
        # w[j] = d * (q[j] - 8), q[j] = j (j < 16), 31 - j (j >= 16).
        # Repacked: d, m = -8 d = 12.0 (00 4A), qs.
        raw = f16(-1.5) + bytes(i | (15 - i) << 4 for i in range(16))
        exp = [-1.5 * ((j if j < 16 else 31 - j) - 8) for j in range(32)]
        return raw, exp, bytes.fromhex("00be 004a f0e1")
    if t == "Q4_1":  # 20 B: [0:2] d = 0.25 (00 34); [2:4] m = -2.0 (00 C0);
        # [4:20] qs[i] = (3i & 15) | ((5i + 1) & 15) << 4;  w[j] = d * q[j] + m
        raw = f16(0.25) + f16(-2.0) + bytes((3 * i & 15) | ((5 * i + 1) & 15) << 4
                                            for i in range(16))
        exp = [0.25 * (3 * j & 15 if j < 16 else (5 * (j - 16) + 1) & 15) - 2.0 for j in range(32)]
        return raw, exp, None
    if t == "Q5_0":  # 22 B: [0:2] d = 0.125 (00 30); [2:6] qh = 0xA5A5F00F (0F F0 A5 A5);
        # [6:22] qs[i] = i | (15 - i) << 4;  q[j] = nibble | ((qh >> j) & 1) << 4; w = d (q - 16)
        # Repacked: d, m = -16 d = -2.0 (00 C0), qh, qs.
        qh = 0xA5A5F00F
        raw = f16(0.125) + struct.pack("<I", qh) + bytes(i | (15 - i) << 4 for i in range(16))
        exp = [0.125 * ((j if j < 16 else 31 - j) + 16 * (qh >> j & 1) - 16) for j in range(32)]
        return raw, exp, bytes.fromhex("0030 00c0 0ff0a5a5 f0e1")
    if t == "Q5_1":  # 24 B: [0:2] d = 0.75 (00 3A); [2:4] m = 1.0 (00 3C); [4:8] qh = 0x12345678
        # (78 56 34 12); [8:24] qs[i] = (7i & 15) | (11i & 15) << 4;  w = d * q + m
        qh = 0x12345678
        raw = (f16(0.75) + f16(1.0) + struct.pack("<I", qh)
               + bytes((7 * i & 15) | (11 * i & 15) << 4 for i in range(16)))
        exp = [0.75 * ((7 * j & 15 if j < 16 else 11 * (j - 16) & 15) + 16 * (qh >> j & 1)) + 1.0
               for j in range(32)]
        return raw, exp, None
    if t == "Q8_0":  # 34 B: [0:2] d = -0.5 (00 B8); [2:34] qs[i] = int8(8i - 128) (80 88 .. 78)
        # w = d * qs.  Repacked: d, 00 00, qs.
        raw = f16(-0.5) + bytes((8 * i - 128) & 255 for i in range(32))
        return raw, [-0.5 * (8 * i - 128) for i in range(32)], bytes.fromhex("00b8 0000 8088")
    if t in ("Q4_K", "Q5_K"):
        # [0:2] d, [2:4] dmin; [4:16] scales: 41 82 C3 3F | 85 40 3F C7 | C1 31 22 D4, which packs
        # 6-bit sc = 1 2 3 63 17 33 50 4 and mn = 5 0 63 7 44 19 2 61 as (s < 4):
        #   byte s = sc[s] | (sc[s+4] >> 4) << 6, byte 4+s = mn[s] | (mn[s+4] >> 4) << 6,
        #   byte 8+s = (sc[s+4] & 15) | (mn[s+4] & 15) << 4
        # Q4_K (144 B): d = 0.5 (00 38), dmin = 0.25 (00 34); [16:144] qs[i] = (5i + 3) & 255.
        # Q5_K (176 B): d = -0.75 (00 BA), dmin = 0.125 (00 30); [16:48] qh[l] = (37l + 11) & 255;
        #   [48:176] qs[i] = (13i + 7) & 255.
        # element 64c + 32h + l, sub-block s = 2c + h: q = (qs[32c + l] >> 4h) & 15
        #   (Q5_K: | ((qh[l] >> s) & 1) << 4);  w = d * sc[s] * q - dmin * mn[s]
        sc, mn = [1, 2, 3, 63, 17, 33, 50, 4], [5, 0, 63, 7, 44, 19, 2, 61]
        scales = bytes.fromhex("4182c33f 85403fc7 c13122d4")
        k5 = t == "Q5_K"
        d, dmin = (-0.75, 0.125) if k5 else (0.5, 0.25)
        qh = bytes((37 * l + 11) & 255 for l in range(32)) if k5 else b""
        qs = bytes(((13 if k5 else 5) * i + (7 if k5 else 3)) & 255 for i in range(128))
        exp = []
        for c in range(4):
            for h in range(2):
                s = 2 * c + h
                for l in range(32):
                    q = (qs[32 * c + l] >> 4 * h) & 15 | ((qh[l] >> s & 1) << 4 if k5 else 0)
                    exp.append(d * sc[s] * q - dmin * mn[s])
        return f16(d) + f16(dmin) + scales + qh + qs, exp, None
    if t == "Q6_K":  # 210 B: [0:128] ql[i] = (7i + 3) & 255; [128:192] qh[i] = (29i + 5) & 255;
        # [192:208] scales int8 = -128 -1 1 127 5 -7 9 -11 13 -15 17 -19 21 -23 25 64;
        # [208:210] d = -0.375 (00 B6). Element 128h + 32i + l (i < 4, l < 32):
        #   q = ((ql[64h + 32(i & 1) + l] >> 4(i >> 1)) & 15) | ((qh[32h + l] >> 2i) & 3) << 4
        #   w = d * scales[(128h + 32i + l) // 16] * (q - 32).   Repacked: the 210 bytes, 00 00.
        ql = bytes((7 * i + 3) & 255 for i in range(128))
        qh = bytes((29 * i + 5) & 255 for i in range(64))
        sc = [-128, -1, 1, 127, 5, -7, 9, -11, 13, -15, 17, -19, 21, -23, 25, 64]
        exp = [0.0] * 256
        for h in range(2):
            for i in range(4):
                for l in range(32):
                    e = 128 * h + 32 * i + l
                    q = ((ql[64 * h + 32 * (i & 1) + l] >> 4 * (i >> 1)) & 15
                         | ((qh[32 * h + l] >> 2 * i) & 3) << 4)
                    exp[e] = -0.375 * sc[e // 16] * (q - 32)
        return ql + qh + bytes(s & 255 for s in sc) + f16(-0.375), exp, None
    raise KeyError(t)


@pytest.mark.parametrize("t", TYPES)
def test_hand_built_block(gpu, run, t):
    raw, exp, prefix = hand_block(t)
    elems, nbytes = GGUF_BLOCK[t]
    assert len(raw) == nbytes * (len(exp) if elems == 1 else 1)
    exp = np.array(exp, np.float64)
    assert len(set(exp.tolist())) > 3  # the fields matter: values differ
    raw_np = np.frombuffer(raw, np.uint8)
    assert np.array_equal(reference(t, raw_np, 1, len(exp)).ravel(), exp)  # gguf agrees by hand
    w = run(upload_weight(gpu, "hand", t, raw, 1, len(exp)))
    got = internal_bytes(gpu, run, w)
    assert got == to_internal(t, raw_np).tobytes()
    if prefix is not None:
        assert got.startswith(prefix)
    if t == "Q6_K":
        assert got == raw + b"\0\0"
    v = dequant_np(gpu, run, w).ravel()
    assert np.array_equal(v, exp.astype(np.float32))
    assert np.array_equal(np.signbit(v), np.signbit(exp)) or t in ("Q4_0", "Q5_0")
    w.destroy(gpu)


def test_repack_scale_edge_values(gpu, run):
    """m = -8 d / -16 d bit-exact for +-0, f16 subnormals and the largest in-range |d|."""
    ds = np.array([0.0, -0.0, 2 ** -24, -(2 ** -24), 1e-5, -3e-5, 2 ** -14, 1.0, -4093.0, 4093.0],
                  np.float16)
    for t, nbytes in (("Q4_0", 18), ("Q5_0", 22)):
        raw = random_weight(t, 1, 32 * len(ds))
        raw.reshape(len(ds), nbytes)[:, :2] = ds.view(np.uint8).reshape(-1, 2)
        w = run(upload_weight(gpu, "edge", t, raw, 1, 32 * len(ds)))
        assert internal_bytes(gpu, run, w) == to_internal(t, raw).tobytes()
        ref = reference(t, raw, 1, 32 * len(ds)).astype(np.float32)
        assert np.array_equal(dequant_np(gpu, run, w), ref)
        w.destroy(gpu)


# -- (e) embedding gather ---------------------------------------------------------------------
@pytest.mark.parametrize("t", TYPES)
def test_embedding_gathers_scaled_rows_across_chunks(gpu, run, t):
    rng = np.random.default_rng()
    qk = GGUF_BLOCK[t][0]
    rows, cols = 9, {1: 7, 32: 64, 256: 256}[qk]
    raw = random_weight(t, rows, cols)
    per_row = row_bytes(LAYOUT_OF[t], cols)
    w = run(upload_weight(gpu, "emb", t, raw, rows, cols, max_chunk_bytes=2 * per_row))
    assert len(w.chunks) == 5
    # first and last row, duplicates, random rows, and two out-of-range ids (-> zeros)
    ids = np.concatenate([[0, rows - 1, 3, 3], rng.integers(0, rows, 6), [rows, 0xFFFFFFFF],
                          [rows - 1]]).astype(np.uint32)
    rng.shuffle(ids)
    n = len(ids)
    scale = float(np.float32(rng.uniform(1.5, 30.0)))  # e.g. Gemma's sqrt(dim)
    gids = gpu.upload(ids.tobytes(), kind="activations", label="ids")
    # `out` starts as garbage, so every row, the zero rows included, must be written.
    out = gpu.upload(rng.standard_normal(n * cols).astype(np.float32).tobytes(),
                     kind="activations", label="out")
    run(embedding(gpu, w, gids, n, out=out, scale=scale))
    got = np.frombuffer(run(gpu.read(out)), np.float32).reshape(n, cols)
    table = reference(t, raw, rows, cols).astype(np.float32)
    valid = ids < rows
    exp = np.zeros((n, cols), np.float32)
    exp[valid] = table[ids[valid]] * np.float32(scale)
    assert np.array_equal(got, exp)
    assert np.all(got[~valid] == 0) and np.count_nonzero(~valid) == 2
    # scale 1 with the weight in one chunk: the plain rows
    w1 = run(upload_weight(gpu, "emb1", t, raw, rows, cols))
    e1 = run(embedding(gpu, w1, gids, n))
    got1 = np.frombuffer(run(gpu.read(e1)), np.float32).reshape(n, cols)
    assert np.array_equal(got1[valid], table[ids[valid]]) and np.all(got1[~valid] == 0)
    for b in (gids, out, e1):
        gpu.destroy_buffer(b)
    w.destroy(gpu)
    w1.destroy(gpu)


# -- (f) bad input, the JS-array path, and the ledger ------------------------------------------
def test_bad_input_raises_named_errors(gpu, run):
    raw = random_weight("Q4_0", 4, 64)
    with pytest.raises(WeightSizeError, match="'blk.0.ffn_up'.*needs 144 bytes, got 143"):
        run(upload_weight(gpu, "blk.0.ffn_up", "Q4_0", raw[:-1], 4, 64))
    with pytest.raises(WeightSizeError, match="'blk.0.ffn_up'"):
        run(upload_weight(gpu, "blk.0.ffn_up", "Q4_0", raw, 4, 48))  # not whole blocks
    with pytest.raises(UnsupportedWeightTypeError, match="'tok'.*'Q2_K'"):
        run(upload_weight(gpu, "tok", "Q2_K", raw, 4, 64))
    with pytest.raises(WeightSizeError, match="'tok'.*exceeds"):
        run(upload_weight(gpu, "tok", "Q4_0", raw, 4, 64, max_chunk_bytes=16))
    with pytest.raises(TypeError, match="'tok'"):
        run(upload_weight(gpu, "tok", "Q4_0", 12345, 4, 64))
    assert issubclass(WeightSizeError, ValueError) and issubclass(UnsupportedWeightTypeError,
                                                                  ValueError)


class FakeUint8Array:
    """Quacks like a JS Uint8Array in Pyodide: byteLength, BYTES_PER_ELEMENT, subarray views."""
    BYTES_PER_ELEMENT = 1

    def __init__(self, data: bytes):
        self.data, self.byteLength, self.views = data, len(data), []

    def subarray(self, a, b):
        self.views.append((a, b))
        return memoryview(self.data)[a:b]


def test_js_typed_array_source_is_sliced_per_chunk(gpu, run):
    raw = random_weight("Q6_K", 3, 256)
    src = FakeUint8Array(raw.tobytes())
    w = run(upload_weight(gpu, "js", "Q6_K", src, 3, 256, max_chunk_bytes=2 * 212))
    assert src.views == [(0, 420), (420, 630)]
    assert internal_bytes(gpu, run, w) == to_internal("Q6_K", raw).tobytes()
    w.destroy(gpu)


def test_ledger_has_no_weights_or_staging_left(gpu, run):
    before = dict(gpu.ledger.live)
    weights = []
    for t in TYPES:
        rows, cols = 5, GGUF_BLOCK[t][0] * 2
        per_row = row_bytes(LAYOUT_OF[t], cols)
        w = run(upload_weight(gpu, t, t, random_weight(t, rows, cols), rows, cols,
                              max_chunk_bytes=2 * per_row))
        assert gpu.ledger.live["staging"] == before.get("staging", 0)  # freed per chunk
        assert w.nbytes >= rows * per_row
        weights.append(w)
    assert gpu.ledger.live["weights"] == before.get("weights", 0) + sum(w.nbytes for w in weights)
    for w in weights:
        w.destroy(gpu)
    for kind in ("weights", "staging", "uniforms"):
        assert gpu.ledger.live[kind] == before.get(kind, 0), kind


# -- a real-size split: Gemma-3's 262144 x 640 Q8_0 embedding on a 128 MiB binding ------------
# (~4 s and ~0.6 GB of host memory on lavapipe; its repack dispatches spill into y as well.)
def test_gemma_sized_embedding_split_across_bindings(gpu, run):
    rows, cols = 262144, 640
    raw = random_weight("Q8_0", rows, cols)
    w = run(upload_weight(gpu, "token_embd.weight", "Q8_0", raw, rows, cols))
    limit = gpu.limits["maxStorageBufferBindingSize"]
    assert len(w.chunks) == -(-rows * row_bytes("q8_0a", cols) // limit)
    if len(w.chunks) == 1:
        pytest.skip("this device binds the whole table at once")
    edge = w.chunks[1].row0
    ids = np.array([0, edge - 1, edge, edge + 1, rows - 1, 12345, edge, rows], np.uint32)
    gids = gpu.upload(ids.tobytes(), kind="activations", label="ids")
    got = np.frombuffer(run(gpu.read(run(embedding(gpu, w, gids, len(ids), scale=25.3)))),
                        np.float32).reshape(len(ids), cols)
    per = GGUF_BLOCK["Q8_0"][1] * cols // 32
    for k, i in enumerate(ids[:-1]):
        row = reference("Q8_0", raw[i * per:(i + 1) * per], 1, cols).astype(np.float32)[0]
        assert np.array_equal(got[k], row * np.float32(25.3)), (k, i)
    assert np.all(got[-1] == 0)
    w.destroy(gpu)
    gpu.destroy_buffer(gids)


def test_embedding_grid_spills_into_y(gpu, run):
    """4200 tokens x 4096 columns = 17.2M invocations = 67200 workgroups > 65535: grid (x, 2)."""
    rows, cols, n = 16, 4096, 4200
    raw = random_weight("Q4_K", rows, cols)
    w = run(upload_weight(gpu, "emb", "Q4_K", raw, rows, cols))
    ids = np.random.default_rng().integers(0, rows, n).astype(np.uint32)
    ids[-1] = rows - 1
    gids = gpu.upload(ids.tobytes(), kind="activations", label="ids")
    out = run(embedding(gpu, w, gids, n))
    got = np.frombuffer(run(gpu.read(out)), np.float32).reshape(n, cols)
    assert np.array_equal(got, reference("Q4_K", raw, rows, cols).astype(np.float32)[ids])
    w.destroy(gpu)
    gpu.destroy_buffer(gids)
    gpu.destroy_buffer(out)
