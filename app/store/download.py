"""Downloading one file into the chunk store, and re-fetching one chunk.

    fetch_file(store, spec, progress)      -> the file's record, once complete and verified

Under a Web Lock named after the file (two tabs download it once: the second waits, then finds
it complete). Each attempt asks for bytes from the first missing chunk to the end of the file
(HTTP Range); plan.decide() says what the answer means; static/store.js's pump stores whole
chunks. A failed attempt that stored at least one chunk does not count against the retry budget.

When the file's sha256 is known it is checked incrementally: a JS hasher (browser.Hasher) is fed
each chunk as it is stored (and, on a resume, first the chunks already stored), so verification
needs no second pass over the file and no bytes cross into Python.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from . import browser
from .errors import DownloadError, IntegrityError, QuotaError, StoreError
from .plan import backoff, chunk_count, chunk_span, decide, resume_index


@dataclass(frozen=True)
class FileSpec:
    """A file to cache. `key` defaults to the URL; `size`/`sha256` are checked when given.
    `headers`: extra request headers as (name, value) pairs, e.g. a Hugging Face token for a
    gated repository; kept in memory only (never in IndexedDB, never part of the key), and sent
    to this file's URL only."""
    url: str
    size: int | None = None
    sha256: str | None = None
    name: str | None = None
    key: str | None = None
    headers: tuple = field(default=(), repr=False, compare=False)

    @property
    def cache_key(self) -> str:
        return self.key or self.url

    @property
    def label(self) -> str:
        return self.name or self.url.rsplit("/", 1)[-1] or self.url


async def check_quota(what: str, needed: int) -> None:
    """QuotaError (nothing written) when navigator.storage.estimate() leaves less than `needed`."""
    usage, quota = await browser.estimate()
    if needed > quota - usage:
        raise QuotaError(what, needed, max(0, quota - usage))


async def fetch_file(store, spec: FileSpec, progress) -> dict:
    if spec.headers:   # for refetch_chunk, which sees only the stored record (no secrets there)
        store.request_headers[spec.url] = dict(spec.headers)
    release = await browser.acquire_lock(f"localllm-store:{store.idb.name}:{spec.cache_key}")
    try:
        return await _fetch_locked(store, spec, progress)
    finally:
        release()


async def _fetch_locked(store, spec: FileSpec, progress) -> dict:
    idb, key, name = store.idb, spec.cache_key, spec.label
    rec = await idb.get_file(key)
    if rec and ((spec.sha256 and rec.get("sha256") not in (None, spec.sha256))
                or (spec.size is not None and rec["size"] not in (None, spec.size))):
        await idb.delete_chunks(key, 0, drop_record=True)  # a different file under the same key
        rec = None
    if rec and rec["complete"]:
        progress.set_total(name, rec["size"])
        progress.update(name, rec["size"])
        return rec
    chunk_size = rec["chunk_size"] if rec else store.chunk_size
    size = spec.size if spec.size is not None else (rec or {}).get("size")
    etag = (rec or {}).get("etag")
    quota_checked = False
    failures = 0
    hasher = None   # covers chunks 0 .. hasher.chunks - 1 when spec.sha256 is known
    await store.ask_persist()
    while True:
        index = resume_index(await idb.chunk_indices(key), size, chunk_size)
        start = index * chunk_size
        if rec is not None and size is not None and start >= size:
            break
        if size is not None and not quota_checked:
            await check_quota(name, size - start)
            quota_checked = True
        progress.set_total(name, size)
        progress.update(name, start)
        resp = await browser.open_response(spec.url, start, store.stall_ms,
                                           headers=dict(spec.headers))
        if resp.error:
            failures = await _failed(store, spec, failures, resp.error["name"], resp.error["message"])
            continue
        d = decide(resp.status, resp.content_range, resp.content_length, start, size,
                   resp.etag, etag)
        if d.action in ("retry", "fail", "refetch", "complete"):
            browser.abort(resp)
        if d.action == "complete":
            break
        if d.action == "fail":
            raise DownloadError(spec.url, d.message, status=resp.status)
        if d.action == "retry":
            failures = await _failed(store, spec, failures, None, d.message, resp.status)
            continue
        if d.action == "refetch":
            await idb.delete_chunks(key, 0, drop_record=True)
            rec, size, etag = None, spec.size, None
            failures = await _failed(store, spec, failures, None, d.message, resp.status)
            continue
        if d.action == "restart" and index > 0:
            await idb.delete_chunks(key, 0)
            index, start = 0, 0
        size = d.size
        if size is not None and not quota_checked:
            try:
                await check_quota(name, size - start)
            except QuotaError:
                browser.abort(resp)
                raise
            quota_checked = True
        etag = resp.etag
        rec = {"key": key, "url": spec.url, "name": name, "size": size, "sha256": spec.sha256,
               "etag": etag, "chunk_size": chunk_size, "complete": False, "date": time.time()}
        await idb.put_file(rec)
        progress.set_total(name, size)
        if spec.sha256:
            if hasher is None or hasher.chunks > index:     # first attempt, or a restart from 0
                hasher = await browser.Hasher.new()
            await idb.hash_stored(key, hasher, index)        # chunks stored before this attempt
        result = await idb.pump(resp, key, index, chunk_size,
                                None if size is None else size - start, store.stall_ms,
                                lambda received: progress.update(name, start + received), hasher)
        err = result.error
        if err and err["name"] == "QuotaExceededError":
            await idb.delete_chunks(key, 0, drop_record=True)
            usage, quota = await browser.estimate()
            raise QuotaError(name, size if size is not None else start + result.bytes,
                             max(0, quota - usage))
        if err and err["name"] == "IDBError":
            raise StoreError(f"IndexedDB failed while storing {name}: {err['message']}")
        if size is None and not err:
            size = rec["size"] = start + result.bytes  # no length announced: the stream's end is the end
            await idb.put_file(rec)
        if err or start + result.bytes < size:
            if result.chunks > 0:
                failures = 0
            what = err["message"] if err else f"the body ended after {result.bytes} bytes"
            failures = await _failed(store, spec, failures, err["name"] if err else "LengthError",
                                     what)
            continue
        break
    return await finish_file(store, spec, rec, hasher)


async def _failed(store, spec: FileSpec, failures: int, cause: str | None, message: str,
                  status: int | None = None) -> int:
    failures += 1
    if failures > store.max_retries:
        raise DownloadError(spec.url, f"{message} (gave up after {failures} attempts; the partial "
                            "download is kept and resumes next time)", status=status, cause=cause,
                            retryable=True)
    await asyncio.sleep(backoff(failures, store.backoff_base))
    return failures


async def file_sha256(idb, key: str, n_chunks: int, hasher=None) -> str:
    """sha256 of a stored file, hashed in JS chunk by chunk (one chunk in memory at a time);
    `hasher` (already covering the first hasher.chunks chunks) is continued when given."""
    hasher = hasher or await browser.Hasher.new()
    try:
        await idb.hash_stored(key, hasher, n_chunks)
    except StoreError as e:
        raise IntegrityError(f"{key}: {e}") from None
    return hasher.hexdigest()


async def finish_file(store, spec: FileSpec, rec: dict, hasher=None) -> dict:
    """Check that every chunk is there (and the whole file's sha256 when the spec has one:
    `hasher` is the download's, continued over any chunks it has not seen), mark it complete."""
    idb, key, size, cs = store.idb, rec["key"], rec["size"], rec["chunk_size"]
    n = chunk_count(size, cs)
    present = await idb.chunk_indices(key)
    if resume_index(present, size, cs) != n or len(present) != n:
        await idb.delete_chunks(key, n)
        if resume_index(await idb.chunk_indices(key), size, cs) != n:
            raise IntegrityError(f"{spec.label}: chunks are missing after the download")
    if spec.sha256:
        got = await file_sha256(idb, key, n, hasher if hasher and hasher.chunks <= n else None)
        if got != spec.sha256:
            await idb.delete_chunks(key, 0, drop_record=True)
            raise IntegrityError(f"{spec.label}: downloaded file has sha256 {got}, the catalog "
                                 f"says {spec.sha256}; the download was discarded")
    rec = {**rec, "complete": True, "date": time.time(), "chunks": n}
    await idb.put_file(rec)
    return rec


async def refetch_chunk(store, rec: dict, index: int, expected_sha256: str):
    """Download chunk `index` of a cached file again (Range request), check it against the
    sha256 recorded when it was first stored, and put it back. Returns its bytes (Uint8Array)."""
    url = rec["url"]
    start, end = chunk_span(index, rec["size"], rec["chunk_size"])
    resp = await browser.open_response(url, start, store.stall_ms, end=end - 1,
                                       headers=store.request_headers.get(url))
    if resp.error:
        raise DownloadError(url, resp.error["message"], cause=resp.error["name"], retryable=True)
    if resp.status != 206 and not (resp.status == 200 and start == 0 and end == rec["size"]):
        browser.abort(resp)
        raise DownloadError(url, f"re-fetching chunk {index} needs a Range answer (206), got "
                            f"{resp.status}", status=resp.status)
    data, err = await browser.read_all(resp, end - start, store.stall_ms)
    if err or int(data.byteLength) != end - start:
        raise DownloadError(url, f"re-fetch of chunk {index} was cut short",
                            cause=err["name"] if err else "LengthError", retryable=True)
    got = await browser.sha256(data)
    if got != expected_sha256:
        raise IntegrityError(f"chunk {index} of {rec['name']} differs from the copy first "
                             f"downloaded (the file changed on the server?); delete the model "
                             f"and download it again")
    await store.idb.put_chunk(rec["key"], index, data)
    return data
