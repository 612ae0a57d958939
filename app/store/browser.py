"""The weight store's JS edge: every `from js import` of app/store is in this module.

static/store.js (an ES module served by the page's origin) moves the bytes: fetch + reader loop,
SubtleCrypto, IndexedDB. It is loaded with a dynamic import() of a URL resolved against the page
(or, in a worker, the worker's location); set_base() overrides that base. Functions here return
Python types (dicts, ints, str) or opaque JS handles (Uint8Array chunks, responses) that Python
passes back without touching their bytes. JS failures become app.store.errors exceptions here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import QuotaError, StoreError

STORE_JS = "static/store.js"

_base: str | None = None
_module = None


def set_base(url: str) -> None:
    """Base URL that static/store.js is resolved against (default: the page's base URI)."""
    global _base, _module
    _base, _module = url, None


async def _js():
    global _module
    if _module is None:
        import js
        from pyodide.code import run_js
        from pyodide.ffi import JsException
        base = _base
        if base is None:
            doc = getattr(js, "document", None)
            base = str(doc.baseURI) if doc else str(js.location.href)
        url = str(js.URL.new(STORE_JS, base).href)
        try:
            _module = await run_js("(url) => import(url)")(url)
        except JsException as e:
            raise StoreError(f"could not load {url} (is dist/ built with build.py?): {e}") from None
    return _module


def _to_js(value):
    from js import JSON
    return JSON.parse(json.dumps(value))


async def _call(what: str, promise):
    from pyodide.ffi import JsException
    try:
        return await promise
    except JsException as e:
        if "QuotaExceededError" in str(e):
            raise QuotaError(what, 0, None) from None
        raise StoreError(f"IndexedDB failed ({what}): {e}") from None


@dataclass
class Chunk:
    data: object          # JS Uint8Array (the stored bytes; never copied into Python here)
    size: int
    sha256: str           # recorded when stored
    actual: str | None    # recomputed now (when asked to verify)


@dataclass
class Response:
    status: int           # 0: no response (see error)
    content_length: str | None
    content_range: str | None
    etag: str | None
    handle: object        # opaque, for pump/read_all/abort
    error: dict | None    # {"name", "message"}


@dataclass
class PumpResult:
    chunks: int           # chunks stored by this call
    bytes: int            # body bytes received
    stored: int           # bytes stored in those chunks
    error: dict | None


class IDB:
    """One IndexedDB database of files and chunks (layout in static/store.js)."""

    def __init__(self, name: str, mod, db):
        self.name, self._mod, self._db = name, mod, db

    @classmethod
    async def open(cls, name: str) -> "IDB":
        mod = await _js()
        return cls(name, mod, await _call("open", mod.openDB(name)))

    async def close(self) -> None:
        await self._mod.closeDB(self.name)

    async def get_file(self, key: str) -> dict | None:
        return json.loads(await _call("get file", self._mod.getFile(self._db, key)))

    async def put_file(self, record: dict) -> None:
        await _call("put file", self._mod.putFile(self._db, _to_js(record)))

    async def list_files(self) -> list[dict]:
        return json.loads(await _call("list", self._mod.listFiles(self._db)))

    async def chunk_indices(self, key: str) -> list[int]:
        return json.loads(await _call("chunk keys", self._mod.chunkIndices(self._db, key)))

    async def delete_chunks(self, key: str, from_index: int = 0, drop_record: bool = False) -> None:
        await _call("delete", self._mod.deleteChunks(self._db, key, from_index, drop_record))

    async def clear(self) -> None:
        await _call("clear", self._mod.clearAll(self._db))

    async def put_chunk(self, key: str, index: int, data) -> str:
        r = json.loads(await _call("put chunk", self._mod.putChunk(self._db, key, index, data)))
        if r["error"]:
            if r["error"]["name"] == "QuotaExceededError":
                raise QuotaError(key, int(data.byteLength), None)
            raise StoreError(f"IndexedDB put of chunk {index} of {key} failed: {r['error']['message']}")
        return r["sha256"]

    async def read_chunk(self, key: str, index: int, verify: bool) -> Chunk | None:
        r = await _call("read chunk", self._mod.readChunk(self._db, key, index, verify))
        meta = json.loads(r.meta)
        if meta is None:
            return None
        return Chunk(r.data, meta["size"], meta["sha256"], meta["actual"])

    async def pump(self, resp: Response, key: str, first_index: int, chunk_size: int,
                   expected: int | None, stall_ms: int, on_progress,
                   hasher: "Hasher | None" = None) -> PumpResult:
        """Store the body as chunks first_index, ...; `hasher` (which must cover chunks
        0 .. first_index - 1) is fed each stored chunk and then covers all stored ones."""
        from pyodide.ffi import create_proxy
        if hasher is not None and hasher.chunks != first_index:
            raise StoreError(f"hasher covers {hasher.chunks} chunks, the body starts at {first_index}")
        cb = create_proxy(lambda received: on_progress(int(received)))
        try:
            r = json.loads(await self._mod.pump(self._db, resp.handle, key, first_index, chunk_size,
                                                expected, stall_ms, cb,
                                                None if hasher is None else hasher.handle))
        except BaseException:
            # Cancelled (LocalLLM.cancel_load): stop the fetch, or the JS loop would go on
            # storing chunks. Whole chunks already stored stay, so a later download resumes.
            abort(resp)
            raise
        finally:
            cb.destroy()
        if hasher is not None:
            hasher.chunks += r["chunks"]
        return PumpResult(r["chunks"], r["bytes"], r["stored"], r["error"])

    async def hash_stored(self, key: str, hasher: "Hasher", to: int) -> None:
        """Feed stored chunks hasher.chunks .. to - 1 of `key` to `hasher` (read in JS)."""
        r = json.loads(await _call("hash", self._mod.hashStored(self._db, key, hasher.handle,
                                                                 hasher.chunks, to)))
        if r["error"]:
            raise StoreError(r["error"]["message"])
        hasher.chunks = to


class Hasher:
    """Incremental SHA-256 of a stored file, kept in JS (hash-wasm, vendored): Python holds the
    handle and `chunks`, the number of leading chunks (0, 1, ...) fed so far."""

    def __init__(self, handle):
        self.handle, self.chunks = handle, 0

    @classmethod
    async def new(cls) -> "Hasher":
        from pyodide.ffi import JsException
        mod = await _js()
        try:
            return cls(await mod.hasherNew())
        except JsException as e:
            raise StoreError(f"could not load the SHA-256 module (vendor/hash-wasm; is dist/ built "
                             f"with build.py?): {e}") from None

    def update(self, data) -> None:
        """Feed one more chunk (a JS Uint8Array; hashed in JS)."""
        _module.hasherUpdate(self.handle, data)
        self.chunks += 1

    def hexdigest(self) -> str:
        """The digest of everything fed (ends the hasher)."""
        return str(_module.hasherDigest(self.handle))


async def use_reader(enabled: bool) -> None:
    """Whether chunk reads run in static/store-reader.js's worker (the default) or on this
    thread (static/store.js explains the difference; for tests and the benchmark's A/B)."""
    (await _js()).useReader(enabled)


async def start_reader() -> bool:
    """Start the reader worker now (else the first chunk read does) and wait until its scripts
    are loaded, e.g. before the network goes away. Whether it runs."""
    return bool(await (await _js()).startReader())


async def reader_running() -> bool:
    """Whether the reader worker runs (it starts with the first chunk read)."""
    return bool((await _js()).readerRunning())


def concat(parts: list):
    """One JS Uint8Array from several (copied in JS)."""
    from pyodide.ffi import to_js
    return _module.concat(to_js(parts))


def empty():
    from js import Uint8Array
    return Uint8Array.new(0)


async def sha256(data) -> str:
    return str(await (await _js()).sha256(data))


async def open_response(url: str, start: int, stall_ms: int, end: int | None = None,
                        headers: dict | None = None) -> Response:
    """GET bytes [start, end] (end None: to the end of the file), with extra request `headers`
    (e.g. Authorization); resolves once the response headers are in."""
    mod = await _js()
    r = await mod.open(url, start, end, stall_ms, json.dumps(headers or {}))
    m = json.loads(r.meta)
    return Response(m["status"], m.get("content_length"), m.get("content_range"), m.get("etag"),
                    r.handle if m["status"] else None, m["error"])


def abort(resp: Response) -> None:
    if resp.handle is not None:
        _module.abort(resp.handle)


async def read_all(resp: Response, max_bytes: int, stall_ms: int):
    """(Uint8Array | None, error dict | None)"""
    r = await (await _js()).readAll(resp.handle, max_bytes, stall_ms)
    error = json.loads(r.error)
    return (None if error else r.data), error


async def estimate() -> tuple[int, int]:
    """(usage, quota) of this origin in bytes, from navigator.storage.estimate()."""
    r = json.loads(await (await _js()).estimate())
    return int(r["usage"]), int(r["quota"])


async def persist() -> bool:
    from pyodide.ffi import JsException
    try:
        return bool(await (await _js()).persist())
    except JsException:
        return False


async def acquire_lock(name: str):
    """Hold the Web Lock `name`; returns a release() callable."""
    release = await (await _js()).acquireLock(name)
    return lambda: release()


async def blob_slice(blob, start: int, end: int):
    """Bytes [start, end) of a File/Blob as a JS Uint8Array (read in JS, not copied to Python)."""
    from js import Uint8Array
    return Uint8Array.new(await blob.slice(start, end).arrayBuffer())
