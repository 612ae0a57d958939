"""GGUF v2/v3 reader: the header, every metadata value type (nested arrays too), tensor infos and
alignment, parsed from one byte source; tensors are handed out as lazy (offset, nbytes) slices.

File layout (little-endian):
    magic "GGUF" | version u32 | n_tensors u64 | n_kv u64
    n_kv x (key: string, type: u32, value)          string = u64 length + UTF-8 bytes
    n_tensors x (name: string, n_dims u32, dims u64[n_dims], type u32, offset u64)
    padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
dims[0] is the fastest-varying axis (ggml's ne[0]): a weight of `rows x cols` has dims (cols, rows).

The header is parsed synchronously from a prefix of the file; when the prefix is too short the
parse restarts with a longer one (header sizes are a few MB at most: vocabularies). Every count
and length is checked against the bytes that can still exist before anything is allocated, so a
hostile file fails fast with a named error instead of allocating gigabytes or hanging.
"""
from __future__ import annotations

import struct
from codecs import utf_8_decode
from dataclasses import dataclass, field

from .ggml_types import GGML_TYPES, tensor_nbytes
from .sources import as_bytes

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_HEADER_BYTES = 256 << 20   # larger metadata than this is not a real model
MAX_DIMS = 4                   # GGML_MAX_DIMS
MAX_NESTING = 8                # arrays of arrays of ...
FIRST_READ = 4 << 20           # covers the vocabularies of most models (SmolLM2's header: 1.8 MB)

# Metadata value types: id -> (name, struct format or None for string/array)
VALUE_TYPES = {0: ("UINT8", "B"), 1: ("INT8", "b"), 2: ("UINT16", "H"), 3: ("INT16", "h"),
               4: ("UINT32", "I"), 5: ("INT32", "i"), 6: ("FLOAT32", "f"), 7: ("BOOL", "?"),
               8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "Q"), 11: ("INT64", "q"),
               12: ("FLOAT64", "d")}


class GGUFError(ValueError):
    """Base of every GGUF reading error; the message names the file part that is wrong."""


class BadMagicError(GGUFError):
    pass


class UnsupportedVersionError(GGUFError):
    pass


class TruncatedFileError(GGUFError):
    pass


class MetadataTooLargeError(GGUFError):
    pass


class DimensionOverflowError(GGUFError):
    pass


class UnknownTensorTypeError(GGUFError):
    pass


class TensorOutOfRangeError(GGUFError):
    pass


class TensorOverlapError(GGUFError):
    pass


class GGUFFormatError(GGUFError):
    """Any other structural problem (bad value type, duplicate key, bad alignment, bad UTF-8)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]      # GGUF order: dims[0] varies fastest
    type_id: int
    offset: int               # absolute byte offset in the file
    nbytes: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.type_id][0]

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy/PyTorch order (slowest first): (rows, cols) for a matrix."""
        return tuple(reversed(self.dims))

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass
class GGUFFile:
    version: int
    metadata: dict
    tensors: dict[str, TensorInfo]
    alignment: int
    data_offset: int
    source: object = field(repr=False)
    value_types: dict = field(default_factory=dict, repr=False)  # key -> type name (arrays: ARRAY[T])

    async def tensor_data(self, name: str):
        """The tensor's bytes from the source (a view where the source allows; no parse copy)."""
        t = self.tensors[name]
        return await self.source.read(t.offset, t.nbytes)

    def get(self, key: str, default=None):
        return self.metadata.get(key, default)


class _NeedMore(Exception):
    def __init__(self, at_least: int):
        self.at_least = at_least


class _Cursor:
    def __init__(self, buf: memoryview, file_size: int):
        self.buf, self.pos, self.file_size = buf, 0, file_size

    def need(self, n: int, what: str) -> None:
        end = self.pos + n
        if end > self.file_size:
            raise TruncatedFileError(f"file ends inside {what} (needs byte {end}, file has "
                                     f"{self.file_size})")
        if end > MAX_HEADER_BYTES:
            raise MetadataTooLargeError(f"{what} ends at byte {end}: GGUF headers over "
                                        f"{MAX_HEADER_BYTES >> 20} MiB are refused")
        if end > len(self.buf):
            raise _NeedMore(end)

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        self.need(size, what)
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return vals

    def scalar(self, fmt: str, what: str):
        return self.unpack(fmt, what)[0]

    def string(self, what: str) -> str:
        n = self.scalar("Q", f"the length of {what}")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GGUFFormatError(f"{what} is not valid UTF-8: {e}") from None

    def value(self, vtype: int, what: str, depth: int = 0):
        if vtype not in VALUE_TYPES:
            raise GGUFFormatError(f"{what} has unknown value type {vtype}")
        name, fmt = VALUE_TYPES[vtype]
        if fmt:
            return self.scalar(fmt, what)
        if name == "STRING":
            return self.string(what)
        if depth >= MAX_NESTING:
            raise GGUFFormatError(f"{what}: arrays nested deeper than {MAX_NESTING}")
        etype = self.scalar("I", f"the element type of {what}")
        count = self.scalar("Q", f"the length of {what}")
        if etype not in VALUE_TYPES:
            raise GGUFFormatError(f"{what} has unknown element type {etype}")
        efmt = VALUE_TYPES[etype][1]
        # Smallest possible bytes per element: a fixed size, 8 (string length) or 12 (array head).
        min_elem = struct.calcsize("<" + efmt) if efmt else (8 if etype == 8 else 12)
        if count * min_elem > self.file_size - self.pos:
            raise TruncatedFileError(f"{what} claims {count} elements, more than the "
                                     f"{self.file_size - self.pos} bytes left in the file")
        if efmt:
            return list(self.unpack(f"{count}{efmt}", what))
        if etype == 8:
            return self.strings(count, what, depth + 1)
        return [self.value(etype, f"{what}[{i}]", depth + 1) for i in range(count)]

    def strings(self, count: int, what: str, depth: int) -> list[str]:
        """An array's `count` strings (vocabularies: ~100k of them). A tight loop for the
        well-formed ones; from the first that is not (past the prefix or the header limit, bad
        UTF-8), the general path takes over, so errors and restarts are exactly value()'s."""
        buf, pos, out = self.buf, self.pos, []
        limit = min(len(buf), self.file_size, MAX_HEADER_BYTES)
        unpack, append = struct.unpack_from, out.append
        i = 0
        try:
            for i in range(count):
                end = pos + 8 + unpack("<Q", buf, pos)[0]
                if end > limit:
                    break
                append(utf_8_decode(buf[pos + 8:end], "strict", True)[0])
                pos = end
            else:
                self.pos = pos
                return out
        except (struct.error, UnicodeDecodeError):
            pass
        self.pos = pos
        out.extend(self.value(8, f"{what}[{j}]", depth) for j in range(i, count))
        return out


def _parse(buf: memoryview, file_size: int) -> tuple:
    c = _Cursor(buf, file_size)
    magic = bytes(buf[:4]) if len(buf) >= 4 else b""
    if file_size < 4 or (len(buf) >= 4 and magic != MAGIC):
        raise BadMagicError(f"not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    c.pos = 4
    version = c.scalar("I", "the version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        hint = " (a big-endian GGUF: convert it to little-endian)" if swapped in (2, 3) else ""
        raise UnsupportedVersionError(f"GGUF version {version} is not supported (2 and 3 are)"
                                      + hint)
    n_tensors, n_kv = c.unpack("QQ", "the header counts")
    if n_kv * 13 > file_size or n_tensors * 29 > file_size:  # minimal kv / tensor-info sizes
        raise TruncatedFileError(f"header claims {n_kv} metadata entries and {n_tensors} "
                                 f"tensors, more than a {file_size}-byte file can hold")
    metadata, vtypes = {}, {}
    for i in range(n_kv):
        key = c.string(f"metadata key #{i}")
        vtype = c.scalar("I", f"the type of {key!r}")
        if key in metadata:
            raise GGUFFormatError(f"metadata key {key!r} appears twice")
        pos = c.pos
        metadata[key] = c.value(vtype, f"metadata {key!r}")
        vtypes[key] = VALUE_TYPES.get(vtype, ("?",))[0]
        if vtype == 9:
            etype = struct.unpack_from("<I", buf, pos)[0]
            vtypes[key] = f"ARRAY[{VALUE_TYPES[etype][0]}]"
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0
            or alignment & (alignment - 1) or alignment > 1 << 20):
        raise GGUFFormatError(f"general.alignment {alignment!r} is not a power of two <= 1 MiB")
    infos = []
    names = set()
    for i in range(n_tensors):
        name = c.string(f"tensor name #{i}")
        if name in names:
            raise GGUFFormatError(f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = c.scalar("I", f"the rank of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFFormatError(f"tensor {name!r} has {n_dims} dims (1..{MAX_DIMS} allowed)")
        dims = c.unpack(f"{n_dims}Q", f"the dims of tensor {name!r}")
        n = 1
        for d in dims:
            n *= d
            if n >= 1 << 62:
                raise DimensionOverflowError(f"tensor {name!r} dims {dims} overflow")
        type_id, offset = c.unpack("IQ", f"the type and offset of tensor {name!r}")
        if type_id not in GGML_TYPES:
            raise UnknownTensorTypeError(f"tensor {name!r} has unknown ggml type {type_id}")
        tname, block, _ = GGML_TYPES[type_id]
        if dims[0] % block:
            raise GGUFFormatError(f"tensor {name!r}: row length {dims[0]} is not a multiple of "
                                  f"the {tname} block ({block})")
        if offset % alignment:
            raise GGUFFormatError(f"tensor {name!r} offset {offset} is not aligned to {alignment}")
        infos.append((name, tuple(dims), type_id, offset, tensor_nbytes(type_id, n)))
    data_offset = -(-c.pos // alignment) * alignment
    return version, metadata, vtypes, infos, alignment, data_offset


async def read_gguf(source) -> GGUFFile:
    """Parse the header of a GGUF byte source (see sources.py) and bounds-check every tensor."""
    size = source.size
    want = min(size, FIRST_READ)
    while True:
        buf = memoryview(as_bytes(await source.read(0, want))).cast("B")
        try:
            version, metadata, vtypes, infos, alignment, data_offset = _parse(buf, size)
            break
        except _NeedMore as more:
            want = min(size, max(more.at_least, want * 4))
    tensors = {}
    spans = []
    for name, dims, type_id, rel, nbytes in infos:
        start = data_offset + rel
        if start + nbytes > size:
            raise TensorOutOfRangeError(f"tensor {name!r} ({nbytes} bytes at {start}) runs past "
                                        f"the end of the file ({size} bytes): truncated download?")
        tensors[name] = TensorInfo(name, dims, type_id, start, nbytes)
        spans.append((start, start + nbytes, name))
    spans.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise TensorOverlapError(f"tensors {n0!r} and {n1!r} overlap at byte {s1}")
    return GGUFFile(version, metadata, tensors, alignment, data_offset, source, vtypes)
