"""Pure download planning: chunk arithmetic, where to resume, what an HTTP answer means, retries.
No JS here, so all of it is unit-tested under CPython (tests/unit/test_store_plan.py).

Chunk size: 16 MiB. Reasons, in order:
- Memory peak: a download holds one chunk being filled plus the copy IndexedDB's put() takes
  (structured clone), ~2 chunks = 32 MiB, whatever the model size. 64 MiB chunks would mean
  ~128 MiB transient on phones and in workers.
- Resume granularity: an interruption loses at most one chunk (16 MiB, a few seconds at typical
  broadband speeds); progress and retries are decided per chunk.
- IndexedDB value size: values of tens of MB are stored as blob files by Chromium and cost about
  the same per byte as larger ones (design.md measured 64 MB in ~0.35 s); much smaller chunks (1 MiB)
  multiply transactions and records (a 4 GB model = 4,000 records instead of 250).
- Verification: each chunk's sha256 is checked on first read; 16 MiB hashes in ~30-60 ms with
  SubtleCrypto, small next to uploading it to the GPU.
It is a multiple of 64 (SHA-256's block) and of every GGUF alignment, though nothing relies on that.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

DEFAULT_CHUNK_SIZE = 16 << 20
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def chunk_span(index: int, size: int, chunk_size: int) -> tuple[int, int]:
    """[start, end) of chunk `index` in a file of `size` bytes."""
    start = index * chunk_size
    if index < 0 or start >= size:
        raise ValueError(f"chunk {index} is outside a file of {size} bytes")
    return start, min(start + chunk_size, size)


def chunks_for_range(offset: int, n: int, chunk_size: int) -> range:
    """Indices of the chunks that hold bytes [offset, offset + n)."""
    if n <= 0:
        return range(0)
    return range(offset // chunk_size, (offset + n - 1) // chunk_size + 1)


def resume_index(present: Iterable[int], size: int | None, chunk_size: int) -> int:
    """First chunk to download: the length of the complete prefix 0, 1, 2, ... of stored chunks.
    Chunks after a gap are downloaded again (they are overwritten in place)."""
    have = set(present)
    i = 0
    while i in have:
        i += 1
    return min(i, chunk_count(size, chunk_size)) if size is not None else i


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int            # inclusive, as in the header
    total: int | None   # None for "*"


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_UNSATISFIED = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


def parse_content_range(value: str | None) -> ContentRange | None:
    """'bytes 0-99/1000' -> ContentRange(0, 99, 1000); 'bytes */1000' (416) -> (-1, -1, 1000);
    anything else -> None."""
    if not value:
        return None
    m = _CONTENT_RANGE.match(value)
    if m:
        start, end = int(m.group(1)), int(m.group(2))
        if end < start:
            return None
        return ContentRange(start, end, None if m.group(3) == "*" else int(m.group(3)))
    m = _UNSATISFIED.match(value)
    return ContentRange(-1, -1, int(m.group(1))) if m else None


def range_header(start: int, end: int | None = None) -> str:
    return f"bytes={start}-{'' if end is None else end}"


@dataclass(frozen=True)
class Decision:
    """What to do with a response to a request for bytes [start, end of file).
    action: resume (read the body from `start`), restart (this body is the whole file: discard
    stored chunks, read it from 0), refetch (the file changed: discard everything, ask again from
    0), complete (nothing left to fetch), retry (transient: ask again later), fail."""
    action: str
    size: int | None = None
    message: str = ""


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def decide(status: int, content_range: str | None, content_length, start: int,
           known_size: int | None, etag: str | None = None,
           known_etag: str | None = None) -> Decision:
    length = _int(content_length)
    if status in RETRYABLE_STATUS:
        return Decision("retry", known_size, f"the server answered {status}; trying again")
    if status == 206:
        cr = parse_content_range(content_range)
        if cr is None or cr.start < 0:
            return Decision("fail", known_size, f"206 with an unusable Content-Range {content_range!r}")
        total = cr.total if cr.total is not None else known_size
        if cr.start != start:
            return Decision("fail", total, f"asked for bytes from {start}, got {content_range}")
        if start > 0 and known_etag and etag and etag != known_etag:
            return Decision("refetch", None, "the file changed on the server (new ETag)")
        if known_size is not None and total is not None and total != known_size:
            if start > 0:
                return Decision("refetch", None, f"the file is now {total} bytes, was {known_size}")
            return Decision("fail", total, f"the file has {total} bytes, expected {known_size}")
        if total is not None and cr.end != total - 1:
            return Decision("fail", total, f"asked for bytes {start}- to the end, got {content_range}")
        return Decision("resume", total)
    if status == 200:
        if known_size is not None and length is not None and length != known_size:
            return Decision("fail", length, f"the file has {length} bytes, expected {known_size}")
        size = length if length is not None else known_size
        if start > 0:
            return Decision("restart", size, "the server ignored the Range request; starting over")
        return Decision("resume", size)
    if status == 416:
        cr = parse_content_range(content_range)
        total = cr.total if cr else None
        if known_size is not None and start >= known_size and total in (None, known_size):
            return Decision("complete", known_size)
        return Decision("refetch", None, "stored bytes run past the file's end on the server")
    if status in (401, 403):
        return Decision("fail", known_size, f"the server refused access ({status}); the model may "
                                            "need a login or accepting its license on its page")
    if status == 404:
        return Decision("fail", known_size, "not found (404); check the URL")
    return Decision("fail", known_size, f"unexpected HTTP status {status}")


def backoff(failures: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait before retry number `failures` (1, 2, ...): base * 2^(failures-1), capped."""
    return min(cap, base * (2 ** max(0, failures - 1)))
