"""app.formats.safetensors against the `safetensors` package (writer as oracle), shards, bad files."""
from __future__ import annotations

import asyncio
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from app.formats import safetensors as S
from app.formats.sources import BytesSource, FileSource


def run(c):
    return asyncio.run(c)


def random_tensors(rng):
    return {
        "model.embed_tokens.weight": rng.standard_normal((rng.integers(3, 40), 64)).astype(np.float16),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((48, 64)).astype(np.float32),
        "model.norm.weight": rng.standard_normal(64).astype(np.float32),
        "scalar_like": rng.standard_normal((1,)).astype(np.float16),
    }


def test_reads_what_safetensors_writes(tmp_path):
    rng = np.random.default_rng()
    tensors = random_tensors(rng)
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    src = FileSource(path)
    f = run(S.read_safetensors(src, "model.safetensors"))
    assert f.metadata == {"format": "pt"}
    for name, arr in tensors.items():
        t = f.tensors[name]
        assert t.shape == arr.shape and t.dtype == {"float16": "F16", "float32": "F32"}[str(arr.dtype)]
        assert bytes(run(f.tensor_data(name))) == arr.tobytes()
    src.close()


def handmade(entries: dict, data: bytes, pad_header: int = 0) -> bytes:
    header = json.dumps(entries).encode() + b" " * pad_header
    return struct.pack("<Q", len(header)) + header + data


def test_bf16_tensor():
    rng = np.random.default_rng()
    f32 = rng.standard_normal(10).astype(np.float32)
    bf16 = (f32.view(np.uint32) >> 16).astype(np.uint16)
    data = handmade({"w": {"dtype": "BF16", "shape": [2, 5], "data_offsets": [0, 20]}}, bf16.tobytes())
    f = run(S.read_safetensors(BytesSource(data)))
    raw = np.frombuffer(bytes(run(f.tensor_data("w"))), np.uint16)
    assert np.array_equal((raw.astype(np.uint32) << 16).view(np.float32), (bf16.astype(np.uint32) << 16).view(np.float32))


@pytest.mark.parametrize("data,error", [
    (b"\x01\x00", S.TruncatedSafetensorsError),
    (struct.pack("<Q", 2**40) + b"{}", S.HeaderTooLargeError),
    (struct.pack("<Q", 100) + b"{}", S.TruncatedSafetensorsError),
    (struct.pack("<Q", 5) + b"{nope", S.InvalidHeaderError),
    (struct.pack("<Q", 2) + b"[]", S.InvalidHeaderError),
])
def test_bad_headers(data, error):
    with pytest.raises(error):
        run(S.read_safetensors(BytesSource(data)))


@pytest.mark.parametrize("entry,data_len,error", [
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, 16, S.InvalidHeaderError),  # size mismatch
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8, S.TruncatedSafetensorsError),
    ({"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 16]}}, 16, S.InvalidHeaderError),
    ({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, 16, S.InvalidHeaderError),
    ({"w": {"shape": [4]}}, 16, S.InvalidHeaderError),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, 24, S.InvalidHeaderError),  # overlap
])
def test_bad_tensor_entries(entry, data_len, error):
    with pytest.raises(error):
        run(S.read_safetensors(BytesSource(handmade(entry, bytes(data_len)))))


def test_sharded_checkpoint(tmp_path):
    rng = np.random.default_rng()
    tensors = random_tensors(rng)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    weight_map = {}
    for shard, members in shards.items():
        save_file({n: tensors[n] for n in members}, str(tmp_path / shard))
        weight_map.update({n: shard for n in members})
    index = json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map})
    opened = []

    async def open_source(name):
        opened.append(name)
        return BytesSource((tmp_path / name).read_bytes())

    st = run(S.read_sharded(index, open_source))
    assert sorted(opened) == sorted(shards)
    for name, arr in tensors.items():
        assert st.tensors[name].file == weight_map[name]
        assert bytes(run(st.tensor_data(name))) == arr.tobytes()
    bad = json.dumps({"weight_map": {**weight_map, "ghost.weight": names and list(shards)[0]}})
    with pytest.raises(S.ShardIndexError, match="ghost"):
        run(S.read_sharded(bad, open_source))
    with pytest.raises(S.ShardIndexError):
        run(S.read_sharded(json.dumps({"weight_map": {"x": "../etc/passwd"}}), open_source))
    with pytest.raises(S.ShardIndexError):
        run(S.read_sharded("{}", open_source))
