"""Native model downloads: one URL -> one file in the cache, with HTTP Range resume (stdlib only).

    path = fetch(url, dest, size=..., sha256=..., token=..., progress=cb, stop=event)

Blocking: the native platform runs it in a thread. Bytes go to `dest` + ".part"; a sidecar
".part.json" remembers the URL, the server's ETag and the size, so a later call (after a dropped
connection, a stall or a killed process) asks for `Range: bytes=<part size>-` and appends. What an
answer means is app.store.plan.decide's (the browser store's rules): 206 from the asked offset
resumes; a 200 to a Range request is the whole file, so the part restarts from 0; a new ETag or
size means the file changed, so the part is discarded; 408/429/5xx and network errors are retried
with backoff (attempts that received bytes do not count against the budget).

When complete, the size and (when known) the sha256 are checked; a mismatch removes the file and
raises app.store.IntegrityError. The file is then renamed to `dest`: a file at `dest` is always
complete. The token, when given, is sent as `Authorization: Bearer` to `url` only (an
unredirected header: a redirect to a CDN does not carry it) and never logged.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..store.errors import DownloadError, IntegrityError
from ..store.plan import backoff, decide

BLOCK = 1 << 20
USER_AGENT = "LocalLLM (native)"


class DownloadCancelled(Exception):
    """The caller stopped the download (its load was cancelled); the part file stays."""


def part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


def _read_meta(meta: Path, url: str) -> dict:
    try:
        m = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return m if m.get("url") == url else {}


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _open(url: str, start: int, token: str | None, timeout: float):
    """(status, headers, response or None) of a GET for bytes start.. of url."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                               "Range": f"bytes={start}-"})
    if token:
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code, e.headers, None
    return resp.status, resp.headers, resp


def fetch(url: str, dest: Path, *, size: int | None = None, sha256: str | None = None,
          token: str | None = None, progress: Callable[[int, int | None], None] | None = None,
          stop=None, retries: int = 5, timeout: float = 30.0) -> Path:
    """Download `url` to `dest` (see the module doc). progress(done_bytes, total_bytes or None);
    `stop`: a threading.Event, set to cancel (DownloadCancelled)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, meta = part_paths(dest)
    known = _read_meta(meta, url)
    if not known:
        _remove(part, meta)                  # a part of another URL (or without its sidecar)
    etag, total = known.get("etag"), size if size is not None else known.get("size")
    failures = 0

    def failed(message: str, status=None, cause=None, counts=True) -> None:
        nonlocal failures
        failures += counts
        if failures > retries:
            raise DownloadError(url, f"{message} (gave up after {retries} retries)", status=status,
                                cause=cause, retryable=True)
        time.sleep(backoff(max(failures, 1)))

    while True:
        if stop is not None and stop.is_set():
            raise DownloadCancelled(url)
        start = part.stat().st_size if part.exists() else 0
        if total is not None and start > total:
            _remove(part, meta)
            start = 0
        try:
            status, headers, resp = _open(url, start, token, timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            failed(f"could not connect: {getattr(e, 'reason', e)}", cause=type(e).__name__)
            continue
        d = decide(status, headers.get("Content-Range"), headers.get("Content-Length"), start,
                   total, headers.get("ETag"), etag)
        if d.action != "resume" and d.action != "restart" and resp is not None:
            resp.close()
        if d.action == "complete":
            break
        if d.action == "fail":
            raise DownloadError(url, d.message, status=status)
        if d.action == "retry":
            failed(d.message, status=status)
            continue
        if d.action == "refetch":
            _remove(part, meta)
            etag, total = None, size
            failed(d.message, status=status)
            continue
        if d.action == "restart":
            start = 0
        total, etag = d.size, headers.get("ETag")
        meta.write_text(json.dumps({"url": url, "etag": etag, "size": total}))
        expected = int(headers.get("Content-Length") or -1)
        got = 0
        try:
            with resp, open(part, "ab" if start else "wb") as out:
                while True:
                    if stop is not None and stop.is_set():
                        raise DownloadCancelled(url)
                    block = resp.read1(BLOCK)     # what has arrived: prompt progress, stop
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    if progress is not None:
                        progress(start + got, total)
        except (OSError, socket.timeout, http.client.HTTPException) as e:
            failed(f"the connection broke after {start + got} bytes ({type(e).__name__})",
                   cause=type(e).__name__, counts=got == 0)
            continue
        if 0 <= expected != got or (total is not None and start + got != total):
            failed(f"the body ended after {start + got} of {total} bytes", cause="LengthError",
                   counts=got == 0)
            continue
        break
    return _verify(url, part, meta, dest, size, sha256)


def _verify(url: str, part: Path, meta: Path, dest: Path, size, sha256) -> Path:
    actual = part.stat().st_size if part.exists() else 0
    if size is not None and actual != size:
        _remove(part, meta)
        raise IntegrityError(f"{url}: downloaded {actual} bytes, the catalog says {size}; the file "
                             "was removed. Try again; if it happens again, the catalog entry or "
                             "the server's file is wrong.")
    if sha256:
        digest = sha256_file(part)
        if digest != sha256.lower():
            _remove(part, meta)
            raise IntegrityError(f"{url}: sha256 {digest} does not match the expected {sha256}; "
                                 "the file was removed. Try again; if it happens again, the "
                                 "catalog entry or the server's file is wrong.")
    os.replace(part, dest)
    _remove(meta)
    return dest
