"""Byte sources: where model bytes come from. The readers parse headers and slice tensors through
this one small interface, so nothing holds a whole model in Python memory.

    size: int                                  total bytes
    async read(offset, n) -> bytes-like        exactly n bytes (a short read is an error)

Implementations: FileSource (CPython: mmap, zero-copy memoryviews), BytesSource (any bytes-like,
for tests and small files), and in the page JSBufferSource (an ArrayBuffer/typed array) and
BlobSource (a File/Blob the user picked; each read is one Blob.slice().arrayBuffer()). The
IndexedDB chunk store adds its own source with the same two members.
"""
from __future__ import annotations

import mmap
import os


class SourceError(IOError):
    """A byte source could not deliver the requested range."""


def _check(offset: int, n: int, size: int) -> None:
    if offset < 0 or n < 0 or offset + n > size:
        raise SourceError(f"read of {n} bytes at {offset} is outside the source ({size} bytes)")


class BytesSource:
    def __init__(self, data):
        self._view = memoryview(data).cast("B")
        self.size = self._view.nbytes

    async def read(self, offset: int, n: int) -> memoryview:
        _check(offset, n, self.size)
        return self._view[offset:offset + n]


class FileSource:
    """A local file, memory-mapped read-only (pages load lazily; views copy nothing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = open(self.path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        self._view = memoryview(self._map) if self._map else memoryview(b"")

    async def read(self, offset: int, n: int) -> memoryview:
        _check(offset, n, self.size)
        return self._view[offset:offset + n]

    def close(self) -> None:
        """Unmap and close. Views still exported (e.g. held by an exception's traceback) keep
        the mapping alive; it is then unmapped when the last one is garbage-collected."""
        try:
            self._view.release()
            if self._map:
                self._map.close()
        except BufferError:
            pass
        self._file.close()


class JSBufferSource:
    """An ArrayBuffer or typed array in the page. read() returns JS Uint8Array views (no copy),
    which app.gpu uploads directly; call .to_bytes() on one only for small header reads."""

    def __init__(self, buffer):
        from js import Uint8Array
        if hasattr(buffer, "byteOffset"):      # a typed array or DataView: keep its window
            self._u8 = Uint8Array.new(buffer.buffer, buffer.byteOffset, buffer.byteLength)
        else:                                  # an ArrayBuffer
            self._u8 = Uint8Array.new(buffer)
        self.size = int(self._u8.byteLength)

    async def read(self, offset: int, n: int):
        _check(offset, n, self.size)
        return self._u8.subarray(offset, offset + n)


class BlobSource:
    """A File/Blob (user-picked or dropped). Reads resolve Blob.slice(...).arrayBuffer()."""

    def __init__(self, blob):
        self._blob = blob
        self.size = int(blob.size)

    async def read(self, offset: int, n: int):
        from js import Uint8Array
        _check(offset, n, self.size)
        return Uint8Array.new(await self._blob.slice(offset, offset + n).arrayBuffer())


def as_bytes(chunk) -> bytes | memoryview:
    """Host bytes for parsing (copies JS arrays once; Python views pass through)."""
    if hasattr(chunk, "to_bytes"):
        return chunk.to_bytes()
    return chunk
