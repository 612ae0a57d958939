"""Store: the model weight cache in IndexedDB (download, list, delete, read back).

    store = await Store.open()                              # database "localllm-weights"
    recs = await store.download([FileSpec(url, size, sha256), ...], on_progress)
    src = await store.source(url)                           # IDBChunkSource: size + read()
    await store.list(); await store.delete(url); await store.delete_all(); await store.usage()
    await store.save_blob(file, key)                        # a picked File into the cache

Files are keyed by URL unless FileSpec.key says otherwise. A model made of several files
(sharded checkpoints, GGUF + tokenizer) is downloaded with one call: progress covers each file
and the whole.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import browser
from .download import FileSpec, check_quota, fetch_file, finish_file
from .errors import NotCachedError, QuotaError
from .plan import DEFAULT_CHUNK_SIZE, chunk_count
from .progress import Progress
from .source import IDBChunkSource

DEFAULT_DB = "localllm-weights"


@dataclass(frozen=True)
class CachedFile:
    key: str
    url: str | None
    name: str
    size: int | None
    stored_bytes: int       # bytes in stored chunks
    complete: bool
    date: float             # seconds since the epoch: completion (or start of a partial)
    sha256: str | None
    chunks: int             # stored chunks


@dataclass(frozen=True)
class Usage:
    cached_bytes: int       # sum of stored chunk bytes of every file
    origin_usage: int       # navigator.storage.estimate().usage (all storage of this site)
    quota: int


class Store:
    def __init__(self, idb, chunk_size: int = DEFAULT_CHUNK_SIZE, stall_ms: int = 30_000,
                 max_retries: int = 5, backoff_base: float = 0.5):
        if chunk_size <= 0 or chunk_size % 64:
            raise ValueError("chunk_size must be a positive multiple of 64")
        self.idb, self.chunk_size, self.stall_ms = idb, chunk_size, stall_ms
        self.max_retries, self.backoff_base = max_retries, backoff_base
        self.persisted: bool | None = None
        self.request_headers: dict[str, dict] = {}   # url -> extra headers (FileSpec.headers)

    @classmethod
    async def open(cls, name: str = DEFAULT_DB, **options) -> "Store":
        return cls(await browser.IDB.open(name), **options)

    async def ask_persist(self) -> bool:
        """navigator.storage.persist(), asked once per store (browsers may say no)."""
        if self.persisted is None:
            self.persisted = await browser.persist()
        return self.persisted

    async def download(self, specs, on_progress=None) -> list[dict]:
        specs = [specs] if isinstance(specs, FileSpec) else list(specs)
        progress = Progress({s.label: s.size for s in specs}, on_progress)
        return [await fetch_file(self, s, progress) for s in specs]

    async def record(self, key: str) -> dict | None:
        return await self.idb.get_file(key)

    async def source(self, key: str, readahead: int = 0) -> IDBChunkSource:
        """A complete cached file as a byte source (readahead: see IDBChunkSource)."""
        rec = await self.idb.get_file(key)
        if rec is None or not rec["complete"]:
            raise NotCachedError(f"{key} is not in the cache" if rec is None else
                                 f"{key} is only partly downloaded; download it to resume")
        return IDBChunkSource(self, rec, readahead=readahead)

    async def list(self) -> list[CachedFile]:
        out = []
        for r in await self.idb.list_files():
            n, size, cs = r["chunks_stored"], r["size"], r["chunk_size"]
            stored = min(n * cs, size) if size is not None else n * cs
            if size is not None and n == chunk_count(size, cs):
                stored = size
            out.append(CachedFile(r["key"], r.get("url"), r.get("name") or r["key"], size, stored,
                                  bool(r["complete"]), r["date"], r.get("sha256"), n))
        return sorted(out, key=lambda f: f.date)

    async def delete(self, key: str) -> None:
        await self.idb.delete_chunks(key, 0, drop_record=True)

    async def delete_all(self) -> None:
        await self.idb.clear()

    async def usage(self) -> Usage:
        usage, quota = await browser.estimate()
        return Usage(sum(f.stored_bytes for f in await self.list()), usage, quota)

    async def save_blob(self, blob, key: str, name: str | None = None, sha256: str | None = None,
                        on_progress=None) -> dict:
        """Copy a File/Blob into the cache chunk by chunk (each slice read and stored in JS).
        To use a local file without caching it, wrap it in app.formats.sources.BlobSource."""
        size = int(blob.size)
        name = name or str(getattr(blob, "name", "") or key)
        await check_quota(name, size)
        await self.delete(key)
        progress = Progress({name: size}, on_progress)
        rec = {"key": key, "url": None, "name": name, "size": size, "sha256": sha256, "etag": None,
               "chunk_size": self.chunk_size, "complete": False, "date": time.time()}
        await self.idb.put_file(rec)
        n = chunk_count(size, self.chunk_size)
        hasher = await browser.Hasher.new() if sha256 else None
        try:
            for i in range(n):
                start = i * self.chunk_size
                data = await browser.blob_slice(blob, start, min(size, start + self.chunk_size))
                await self.idb.put_chunk(key, i, data)
                if hasher:
                    hasher.update(data)
                progress.update(name, min(size, start + self.chunk_size))
        except QuotaError as e:
            await self.delete(key)
            raise QuotaError(name, size, e.available) from None
        spec = FileSpec(url="", size=size, sha256=sha256, name=name, key=key)
        return await finish_file(self, spec, rec, hasher)
