"""app.formats.gguf against gguf-py (writer and reader as the oracle), and hostile files."""
from __future__ import annotations

import asyncio
import random
import struct
import time

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

from app.formats import gguf as G
from app.formats.ggml_types import GGML_TYPES
from app.formats.sources import BytesSource, FileSource
from tests.quant_data import random_weight


def read(data: bytes) -> G.GGUFFile:
    return asyncio.run(G.read_gguf(BytesSource(data)))


def write_model(path, rng, alignment=None):
    """A GGUF with metadata of every value type (nested arrays too) and tensors of many types."""
    w = GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    meta = {
        "t.u8": (rng.randrange(256), GGUFValueType.UINT8), "t.i8": (-rng.randrange(128), GGUFValueType.INT8),
        "t.u16": (rng.randrange(65536), GGUFValueType.UINT16), "t.i16": (-rng.randrange(32768), GGUFValueType.INT16),
        "t.u32": (rng.randrange(2**32), GGUFValueType.UINT32), "t.i32": (-rng.randrange(2**31), GGUFValueType.INT32),
        "t.u64": (rng.randrange(2**64), GGUFValueType.UINT64), "t.i64": (-rng.randrange(2**63), GGUFValueType.INT64),
        "t.f32": (0.5 + rng.randrange(1000), GGUFValueType.FLOAT32), "t.f64": (rng.random(), GGUFValueType.FLOAT64),
        "t.bool": (bool(rng.randrange(2)), GGUFValueType.BOOL),
        "t.str": ("héllo ✓ " + str(rng.random()), GGUFValueType.STRING),
    }
    for k, (v, t) in meta.items():
        w.add_key_value(k, v, t)
    tokens = [f"tok{i}_{rng.randrange(10**6)}" for i in range(rng.randrange(50, 300))]
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("t.scores", [rng.random() for _ in range(77)])
    w.add_array("t.ints", [rng.randrange(-1000, 1000) for _ in range(33)])
    w.add_array("t.nested", [[1, 2, 3], [4, 5], [6]])
    tensors = {}
    for i, t in enumerate(["F32", "F16", "Q4_0", "Q8_0", "Q4_K", "Q6_K", "BF16"]):
        rows, cols = rng.randrange(1, 5), 256 * rng.randrange(1, 3)
        raw = random_weight(t, rows, cols)
        name = f"blk.{i}.w"
        qtype = getattr(GGMLQuantizationType, t)
        shape = (rows, raw.size // rows) if t not in ("F32", "F16") else (rows, cols)
        arr = raw.view(np.float32 if t == "F32" else np.float16 if t == "F16" else np.uint8).reshape(shape)
        w.add_tensor(name, arr, raw_dtype=qtype if t not in ("F32", "F16") else None)
        tensors[name] = (t, rows, cols, raw.tobytes())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return meta, tokens, tensors


@pytest.mark.parametrize("alignment,first_read", [(None, G.FIRST_READ), (64, 100)])
def test_reads_what_gguf_py_writes(tmp_path, monkeypatch, alignment, first_read):
    # first_read=100 forces the header parse to restart with longer prefixes many times.
    monkeypatch.setattr(G, "FIRST_READ", first_read)
    rng = random.Random()
    path = tmp_path / "m.gguf"
    meta, tokens, tensors = write_model(path, rng, alignment)
    src = FileSource(path)
    f = asyncio.run(G.read_gguf(src))
    assert f.version == 3 and f.alignment == (alignment or 32)
    for k, (v, t) in meta.items():
        assert f.metadata[k] == pytest.approx(v) if isinstance(v, float) else f.metadata[k] == v, k
        assert f.value_types[k] == t.name
    assert f.metadata["general.architecture"] == "llama"
    assert f.metadata["tokenizer.ggml.tokens"] == tokens
    assert f.value_types["tokenizer.ggml.tokens"] == "ARRAY[STRING]"
    assert f.metadata["t.nested"] == [[1, 2, 3], [4, 5], [6]]
    assert f.metadata["t.ints"] == [int(x) for x in GGUFReader(path).fields["t.ints"].contents()]
    ref = GGUFReader(path)
    assert set(f.tensors) == {t.name for t in ref.tensors}
    for t in ref.tensors:
        mine = f.tensors[t.name]
        assert mine.offset == ref.data_offset + int(t.data_offset) or mine.offset == int(t.data_offset)
        assert mine.nbytes == int(t.n_bytes) and mine.type_id == int(t.tensor_type)
        assert list(mine.dims) == [int(d) for d in t.shape]
        kind, rows, cols, raw = tensors[t.name]
        assert mine.shape == (rows, cols) and mine.type_name == kind
        assert bytes(asyncio.run(f.tensor_data(t.name))) == raw
    src.close()


def test_ggml_type_table_matches_gguf_py():
    from gguf.constants import GGML_QUANT_SIZES
    for tid, (name, block, size) in GGML_TYPES.items():
        assert GGML_QUANT_SIZES[GGMLQuantizationType(tid)] == (block, size), name
        assert GGMLQuantizationType(tid).name == name


# -- hostile and broken files ------------------------------------------------------------------
def header(version=3, n_tensors=0, n_kv=0):
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def gstr(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "v.gguf"
    write_model(path, random.Random())
    return path.read_bytes()


def test_bad_magic_and_versions():
    with pytest.raises(G.BadMagicError):
        read(b"GGML" + bytes(40))
    with pytest.raises(G.BadMagicError):
        read(b"GG")
    for v in (1, 4, 0xFFFFFFFF):
        with pytest.raises(G.UnsupportedVersionError):
            read(header(v))
    with pytest.raises(G.UnsupportedVersionError, match="big-endian"):
        read(b"GGUF" + struct.pack(">I", 3) + bytes(16))


def test_every_truncation_is_a_named_error(valid):
    # Cut the file at many points: the reader must raise a GGUFError, never anything else.
    cuts = sorted(set(random.sample(range(1, len(valid)), 200)) | {4, 8, 16, 24, 25})
    for cut in cuts:
        try:
            read(valid[:cut])
        except G.GGUFError:
            continue
        raise AssertionError(f"truncated at {cut} of {len(valid)} bytes yet parsed")


def test_absurd_sizes_fail_fast_without_allocating():
    t0 = time.perf_counter()
    cases = [
        header(n_kv=1) + gstr(b"k") + struct.pack("<I", 8) + struct.pack("<Q", 2**60),  # huge string
        header(n_kv=1) + gstr(b"k") + struct.pack("<IIQ", 9, 4, 2**61),                # huge array
        header(n_kv=1) + gstr(b"k") + struct.pack("<IIQ", 9, 8, 2**40),                # huge string array
        header(n_kv=2**62),                                                            # huge kv count
        header(n_tensors=2**40),                                                       # huge tensor count
        struct.pack("<Q", 2**62).join([header(n_kv=1), b""]),                          # key length
    ]
    for data in cases:
        with pytest.raises((G.TruncatedFileError, G.MetadataTooLargeError)):
            read(data + bytes(64))
    assert time.perf_counter() - t0 < 2.0


def tensor_file(dims, type_id, offset, extra=b"", n_tensors=1, second=None):
    infos = gstr(b"a") + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) \
        + struct.pack("<IQ", type_id, offset)
    if second:
        infos += second
    body = header(n_tensors=n_tensors) + infos
    body += bytes(-len(body) % 32)
    return body + extra


def test_tensor_errors():
    with pytest.raises(G.DimensionOverflowError):
        read(tensor_file([2**40, 2**40], 0, 0, bytes(64)))
    with pytest.raises(G.UnknownTensorTypeError):
        read(tensor_file([32], 99, 0, bytes(256)))
    with pytest.raises(G.TensorOutOfRangeError):
        read(tensor_file([1024], 0, 0, bytes(100)))          # 4096 bytes needed
    with pytest.raises(G.GGUFFormatError, match="aligned"):
        read(tensor_file([8], 0, 4, bytes(64)))
    with pytest.raises(G.GGUFFormatError, match="dims"):
        read(tensor_file([1] * 5, 0, 0, bytes(64)))
    with pytest.raises(G.GGUFFormatError, match="block"):
        read(tensor_file([33], 2, 0, bytes(64)))               # Q4_0 row not a multiple of 32
    # a: 16 f32 (64 bytes) at 0; b: 16 f32 at 32 -> overlap
    b_info = gstr(b"b") + struct.pack("<IQ", 1, 16) + struct.pack("<IQ", 0, 32)
    with pytest.raises(G.TensorOverlapError):
        read(tensor_file([16], 0, 0, bytes(128), n_tensors=2, second=b_info))
    # b at 64 does not overlap
    ok = gstr(b"b") + struct.pack("<IQ", 1, 16) + struct.pack("<IQ", 0, 64)
    f = read(tensor_file([16], 0, 0, bytes(128), n_tensors=2, second=ok))
    assert f.tensors["b"].offset - f.tensors["a"].offset == 64


def test_empty_array_and_minimal_file():
    f = read(header(n_kv=1) + gstr(b"e") + struct.pack("<IIQ", 9, 4, 0))
    assert f.metadata == {"e": []} and f.tensors == {} and f.value_types["e"] == "ARRAY[UINT32]"


def test_format_errors():
    with pytest.raises(G.GGUFFormatError, match="value type"):
        read(header(n_kv=1) + gstr(b"k") + struct.pack("<I", 77) + bytes(16))
    dup = header(n_kv=2) + (gstr(b"k") + struct.pack("<IB", 0, 1)) * 2
    with pytest.raises(G.GGUFFormatError, match="twice"):
        read(dup + bytes(16))
    bad_align = header(n_kv=1) + gstr(b"general.alignment") + struct.pack("<II", 4, 48)
    with pytest.raises(G.GGUFFormatError, match="alignment"):
        read(bad_align + bytes(16))
    with pytest.raises(G.GGUFFormatError, match="UTF-8"):
        read(header(n_kv=1) + gstr(b"\xff\xfe") + struct.pack("<IB", 0, 1) + bytes(16))
    deep = header(n_kv=1) + gstr(b"k") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 12 + bytes(64)
    with pytest.raises(G.GGUFError):
        read(deep)


def test_real_smollm2_file_matches_gguf_py(smollm2_gguf):
    src = FileSource(smollm2_gguf)
    f = asyncio.run(G.read_gguf(src))
    ref = GGUFReader(smollm2_gguf)
    assert f.metadata["general.architecture"] == "llama"
    assert f.metadata["llama.block_count"] == 30
    assert len(f.metadata["tokenizer.ggml.tokens"]) == 49152
    assert f.metadata["tokenizer.ggml.tokens"] == [str(x) for x in ref.fields["tokenizer.ggml.tokens"].contents()]
    assert len(f.tensors) == len(ref.tensors)
    types = set()
    for t in ref.tensors:
        mine = f.tensors[t.name]
        assert (mine.nbytes, mine.type_id, list(mine.dims)) == (int(t.n_bytes), int(t.tensor_type),
                                                                 [int(d) for d in t.shape])
        assert bytes(asyncio.run(f.tensor_data(t.name))[:64]) == t.data.tobytes()[:64]
        types.add(mine.type_name)
    assert {"Q4_1", "Q8_0", "F32"} <= types
    src.close()
