"""safetensors reader: single files and sharded checkpoints (model.safetensors.index.json), parsed
from byte sources (sources.py); tensors are lazy (offset, nbytes) slices.

File layout: header_len u64 LE | header JSON (header_len bytes) | data.
Header: {"name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
         "__metadata__": {str: str}}; offsets are relative to the data start (8 + header_len).
Shapes are numpy order (slowest first). The engine runs F32, F16 and BF16 tensors; other dtypes
are listed (so a loader can say which tensor is unsupported) but never converted here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .sources import as_bytes

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
SUPPORTED_DTYPES = ("F32", "F16", "BF16")
MAX_HEADER_BYTES = 100 << 20  # the reference implementation's own limit


class SafetensorsError(ValueError):
    """Base of every safetensors reading error."""


class HeaderTooLargeError(SafetensorsError):
    pass


class TruncatedSafetensorsError(SafetensorsError):
    pass


class InvalidHeaderError(SafetensorsError):
    pass


class ShardIndexError(SafetensorsError):
    pass


@dataclass(frozen=True)
class SafeTensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int   # absolute offset in its file
    nbytes: int
    file: str = ""

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class SafetensorsFile:
    tensors: dict[str, SafeTensorInfo]
    metadata: dict
    source: object = field(repr=False)

    async def tensor_data(self, name: str):
        t = self.tensors[name]
        return await self.source.read(t.offset, t.nbytes)


async def read_safetensors(source, file_name: str = "") -> SafetensorsFile:
    where = file_name or "safetensors file"
    if source.size < 8:
        raise TruncatedSafetensorsError(f"{where} is {source.size} bytes: too short for a header")
    n = int.from_bytes(bytes(as_bytes(await source.read(0, 8))), "little")
    if n > MAX_HEADER_BYTES:
        raise HeaderTooLargeError(f"{where}: header of {n} bytes exceeds {MAX_HEADER_BYTES}")
    if 8 + n > source.size:
        raise TruncatedSafetensorsError(f"{where}: header of {n} bytes runs past the end of the "
                                        f"file ({source.size} bytes)")
    try:
        header = json.loads(bytes(as_bytes(await source.read(8, n))).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidHeaderError(f"{where}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise InvalidHeaderError(f"{where}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict):
        raise InvalidHeaderError(f"{where}: __metadata__ is not an object")
    data_start = 8 + n
    tensors, spans = {}, []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise InvalidHeaderError(f"{where}: tensor {name!r} lacks dtype/shape/data_offsets") from None
        if dtype not in DTYPE_SIZES:
            raise InvalidHeaderError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and 0 <= d < 1 << 40
                                                 for d in shape)):
            raise InvalidHeaderError(f"{where}: tensor {name!r} has invalid shape {shape!r}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
            raise InvalidHeaderError(f"{where}: tensor {name!r} has invalid offsets {begin}, {end}")
        count = 1
        for d in shape:
            count *= d
        if count * DTYPE_SIZES[dtype] != end - begin:
            raise InvalidHeaderError(f"{where}: tensor {name!r} {dtype}{shape} needs "
                                     f"{count * DTYPE_SIZES[dtype]} bytes, offsets give {end - begin}")
        if data_start + end > source.size:
            raise TruncatedSafetensorsError(f"{where}: tensor {name!r} runs past the end of the "
                                            f"file: truncated download?")
        tensors[name] = SafeTensorInfo(name, dtype, tuple(shape), data_start + begin, end - begin,
                                       file_name)
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise InvalidHeaderError(f"{where}: tensors {n0!r} and {n1!r} overlap")
    return SafetensorsFile(tensors, metadata, source)


@dataclass
class ShardedSafetensors:
    """Several shard files behaving as one: tensors map to their shard's file and source."""
    files: dict[str, SafetensorsFile]
    tensors: dict[str, SafeTensorInfo]
    metadata: dict

    async def tensor_data(self, name: str):
        t = self.tensors[name]
        return await self.files[t.file].source.read(t.offset, t.nbytes)


async def read_sharded(index_json: bytes | str, open_source) -> ShardedSafetensors:
    """`index_json`: model.safetensors.index.json; `open_source(file_name)` -> awaitable source."""
    try:
        index = json.loads(index_json)
        weight_map = index["weight_map"]
    except (ValueError, KeyError, TypeError):
        raise ShardIndexError("model.safetensors.index.json has no weight_map") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ShardIndexError("model.safetensors.index.json has an empty weight_map")
    files = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or "/" in shard or shard.startswith("."):
            raise ShardIndexError(f"shard name {shard!r} is not a plain file name")
        files[shard] = await read_safetensors(await open_source(shard), shard)
    tensors = {}
    for name, shard in weight_map.items():
        if name not in files[shard].tensors:
            raise ShardIndexError(f"index maps {name!r} to {shard}, which does not contain it")
        tensors[name] = files[shard].tensors[name]
    return ShardedSafetensors(files, tensors, index.get("metadata", {}))
