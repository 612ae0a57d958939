"""IDBChunkSource: a cached file as a byte source (app/formats/sources.py's interface).

    size: int
    async read(offset, n) -> JS Uint8Array      a view into one chunk, or a copy when the range
                                                spans chunks (both made in JS)
    async chunk(index) -> JS Uint8Array         a whole verified chunk: loaders stream these

Each chunk's sha256 is recomputed (SubtleCrypto) the first time this source reads it and
compared with the one recorded when it was stored. A mismatch is re-fetched from the file's URL
with a Range request when the file came from one (and checked against the recorded hash);
otherwise IntegrityError. A corrupt chunk is never handed out. The last `keep` chunks read stay
referenced so that the many small reads of a header parse cost one IndexedDB get.

readahead=k (app/store/load.py streams a model with READAHEAD = 3): asking for chunk i starts
the IndexedDB gets and sha256s of chunks i+1 .. i+k too, at once, behind chunk i's, so they
overlap with the parse and GPU upload of chunk i's tensors. The gets and hashes run in
static/store.js's reader worker (off the thread that uploads; see there), so read-ahead overlaps
for real. Memory: at most keep + readahead chunks (16 MiB each) are referenced.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict

from . import browser
from .download import refetch_chunk
from .errors import IntegrityError, NotCachedError
from .plan import chunk_count, chunk_span, chunks_for_range


class IDBChunkSource:
    def __init__(self, store, record: dict, keep: int = 2, readahead: int = 0):
        if not record.get("complete"):
            raise NotCachedError(f"{record['key']} is not completely downloaded")
        self.store, self.record = store, record
        self.key, self.size, self.chunk_size = record["key"], record["size"], record["chunk_size"]
        self.n_chunks = chunk_count(self.size, self.chunk_size)
        self.verified: set[int] = set()
        self.repaired: list[int] = []
        self._keep, self._readahead = keep, readahead
        self._recent: OrderedDict = OrderedDict()
        self._pending: dict = {}     # index -> asyncio.Task of _load (readahead)

    async def chunk(self, index: int):
        if index in self._recent:
            self._recent.move_to_end(index)
            return self._recent[index]
        task = self._pending.pop(index, None)
        if task is None:
            task = asyncio.ensure_future(self._load(index))
        # The next chunks' reads start now, behind this one's, not after it arrives.
        for i in range(index + 1, min(index + 1 + self._readahead, self.n_chunks)):
            if i not in self._recent and i not in self._pending:
                self._pending[i] = asyncio.ensure_future(self._load(i))
        data = await task
        self._recent[index] = data
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
        return data

    def close(self) -> None:
        """Drop read-ahead work and the chunks kept (the source stays usable)."""
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()
        self._recent.clear()

    async def _load(self, index: int):
        start, end = chunk_span(index, self.size, self.chunk_size)
        verify = index not in self.verified
        c = await self.store.idb.read_chunk(self.key, index, verify)
        if c is None:
            problem, expected = "is missing", None
        elif c.size != end - start or int(c.data.byteLength) != end - start:
            problem, expected = f"has {int(c.data.byteLength)} bytes, not {end - start}", c.sha256
        elif verify and c.actual != c.sha256:
            problem, expected = "does not match its sha256", c.sha256
        else:
            self.verified.add(index)
            return c.data
        if expected is None or not self.record.get("url"):
            raise IntegrityError(f"chunk {index} of {self.record.get('name', self.key)} {problem} "
                                 "and cannot be re-downloaded; delete the model and add it again")
        data = await refetch_chunk(self.store, self.record, index, expected)
        self.verified.add(index)
        self.repaired.append(index)
        return data

    async def read(self, offset: int, n: int):
        if offset < 0 or n < 0 or offset + n > self.size:
            from app.formats.sources import SourceError
            raise SourceError(f"read of {n} bytes at {offset} is outside the source "
                              f"({self.size} bytes)")
        parts = []
        for i in chunks_for_range(offset, n, self.chunk_size):
            base = i * self.chunk_size
            lo, hi = max(offset, base) - base, min(offset + n, base + self.chunk_size) - base
            parts.append((await self.chunk(i)).subarray(lo, hi))
        if not parts:
            return browser.empty()
        return parts[0] if len(parts) == 1 else browser.concat(parts)
