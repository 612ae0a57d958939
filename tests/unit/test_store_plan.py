"""app/store's pure logic: chunk arithmetic, resume points, Content-Range parsing, what each HTTP
answer means, retry backoff, progress math and the catalog."""
from __future__ import annotations

import random

import pytest

from app.store import CatalogError, FileSpec, Progress, parse_catalog
from app.store.plan import (DEFAULT_CHUNK_SIZE, ContentRange, backoff, chunk_count, chunk_span,
                            chunks_for_range, decide, parse_content_range, range_header,
                            resume_index)

MiB = 1 << 20


def test_default_chunk_size_is_16_mib_and_hash_block_aligned():
    assert DEFAULT_CHUNK_SIZE == 16 * MiB and DEFAULT_CHUNK_SIZE % 64 == 0


def test_chunk_arithmetic_covers_every_byte_once():
    rng = random.Random()
    for _ in range(200):
        cs = rng.choice([64, 4096, 4 * MiB])
        size = rng.randrange(1, 20 * cs)
        n = chunk_count(size, cs)
        spans = [chunk_span(i, size, cs) for i in range(n)]
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert all(e - s == cs for s, e in spans[:-1]) and 0 < spans[-1][1] - spans[-1][0] <= cs
        off = rng.randrange(size)
        k = rng.randrange(0, size - off + 1)
        idx = list(chunks_for_range(off, k, cs))
        if k == 0:
            assert idx == []
        else:
            assert idx[0] == off // cs and idx[-1] == (off + k - 1) // cs
    with pytest.raises(ValueError):
        chunk_span(3, 3 * 64, 64)


def test_resume_index_is_the_complete_prefix():
    cs = 4 * MiB
    size = 25 * MiB + 17                        # 7 chunks
    assert resume_index([], size, cs) == 0
    assert resume_index([0, 1, 2], size, cs) == 3
    assert resume_index([0, 1, 3, 4], size, cs) == 2     # a gap: re-download from chunk 2
    assert resume_index([1, 2], size, cs) == 0
    assert resume_index(range(7), size, cs) == 7
    assert resume_index(range(9), size, cs) == 7         # stray chunks past the end are capped
    assert resume_index([0, 1], None, cs) == 2           # size still unknown


def test_content_range_parsing():
    assert parse_content_range("bytes 0-99/1000") == ContentRange(0, 99, 1000)
    assert parse_content_range("BYTES 5-9/*") == ContentRange(5, 9, None)
    assert parse_content_range("bytes */1000") == ContentRange(-1, -1, 1000)
    for bad in (None, "", "bytes 9-5/10", "items 0-1/2", "bytes 0-/10", "bytes=0-99/1000"):
        assert parse_content_range(bad) is None
    assert range_header(0) == "bytes=0-" and range_header(10, 19) == "bytes=10-19"


def test_decide_resume_restart_refetch_complete_retry_fail():
    size = 1000
    # A proper partial answer resumes; the size comes from Content-Range when not yet known.
    assert decide(206, "bytes 400-999/1000", "600", 400, size).action == "resume"
    assert decide(206, "bytes 400-999/1000", "600", 400, None).size == 1000
    # A server ignoring Range (200) while resuming: start over with this body.
    d = decide(200, None, "1000", 400, size)
    assert (d.action, d.size) == ("restart", 1000)
    assert decide(200, None, "1000", 0, None) .action == "resume"
    # The file changed under us: new ETag or new size -> discard and fetch again from 0.
    assert decide(206, "bytes 400-999/1000", "600", 400, size, '"b"', '"a"').action == "refetch"
    assert decide(206, "bytes 400-1199/1200", "800", 400, size).action == "refetch"
    # ... but at the start a size that contradicts the catalog is an error.
    assert decide(206, "bytes 0-1199/1200", "1200", 0, size).action == "fail"
    assert decide(200, None, "999", 0, size).action == "fail"
    # Wrong range answers are errors.
    assert decide(206, "bytes 0-999/1000", "1000", 400, size).action == "fail"
    assert decide(206, None, "600", 400, size).action == "fail"
    assert decide(206, "bytes 400-899/1000", "500", 400, size).action == "fail"
    # Everything already stored.
    assert decide(416, "bytes */1000", None, 1000, size).action == "complete"
    assert decide(416, "bytes */900", None, 950, size).action == "refetch"
    # Transient vs permanent statuses.
    for status in (500, 502, 503, 504, 429, 408):
        assert decide(status, None, None, 0, size).action == "retry"
    for status, word in ((404, "not found"), (403, "login"), (401, "login"), (418, "418")):
        d = decide(status, None, None, 0, size)
        assert d.action == "fail" and word in d.message


def test_backoff_doubles_and_is_capped():
    assert [backoff(i, 0.5, 8) for i in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_speed_eta_per_file_and_overall():
    clock, events = Clock(), []
    p = Progress({"a": 1000, "b": 3000}, events.append, clock=clock, window=3.0)
    p.update("a", 200)                  # resumed: 200 bytes were already cached
    for _ in range(4):
        clock.t += 1.0
        e = p.update("a", p.loaded["a"] + 100)
    assert e["file"] == "a" and e["phase"] == "download"
    assert e["loaded_bytes"] == 600 and e["total_bytes"] == 1000
    assert e["speed"] == pytest.approx(100.0)          # cached bytes never count as speed
    assert e["eta"] == pytest.approx(4.0)
    assert e["overall"]["loaded_bytes"] == 600 and e["overall"]["total_bytes"] == 4000
    assert e["overall"]["eta"] == pytest.approx(3400 / e["overall"]["speed"])
    clock.t += 1.0
    e = p.update("a", 400)              # a retry dropped an incomplete chunk: window restarts
    assert e["speed"] == 0 and e["eta"] is None
    clock.t += 2.0
    e = p.update("a", 1000)
    assert e["speed"] == pytest.approx(300.0) and e["eta"] == 0.0
    assert len(events) == 7


def test_progress_with_unknown_total():
    clock = Clock()
    p = Progress({"x": None}, clock=clock)
    p.update("x", 0)
    clock.t += 2
    e = p.update("x", 500)
    assert e["total_bytes"] is None and e["eta"] is None and e["speed"] == 250
    assert e["overall"]["total_bytes"] is None
    p.set_total("x", 1000)
    clock.t += 1
    assert p.update("x", 750)["eta"] == pytest.approx(1.0)


def test_catalog_entries_resolve_against_the_catalog_url():
    data = {"models": [{"id": "m", "name": "M", "format": "gguf", "bundled": True,
                        "files": [{"url": "m.gguf", "size": 10, "sha256": "AB"},
                                  {"url": "https://h.example/x/y.gguf", "size": 5, "sha256": "cd"}]}]}
    (m,) = parse_catalog(data, "http://127.0.0.1:8000/app/models/catalog.json")
    assert m.bundled and m.size == 15
    assert m.files[0] == FileSpec("http://127.0.0.1:8000/app/models/m.gguf", 10, "ab", "m.gguf")
    assert m.files[1].url == "https://h.example/x/y.gguf" and m.files[1].cache_key == m.files[1].url
    for bad in ({}, {"models": [{"id": "x"}]}, {"models": [{"id": "x", "files": []}]},
                {"models": [{"id": "x", "files": [{"url": "a", "size": "big", "sha256": ""}]}]}):
        with pytest.raises(CatalogError):
            parse_catalog(bad, "http://h/")


# -- load_cached_model's pure parts (app/store/load.py) -----------------------------------------
def test_model_files_accepts_gguf_and_hf_file_lists_and_names_bad_ones():
    from app.store import ModelEntry
    from app.store.load import ModelFilesError, model_files
    gguf = FileSpec("https://h/m.Q4_0.gguf", size=10)
    assert model_files(gguf) == ("gguf", [gguf])
    assert model_files("https://h/x.gguf") == ("gguf", [FileSpec("https://h/x.gguf")])
    assert model_files(ModelEntry("m", "M", "gguf", False, (gguf,))) == ("gguf", [gguf])
    hf = [FileSpec("https://h/config.json"), FileSpec("https://h/model.safetensors.index.json")]
    assert model_files(hf) == ("safetensors", hf)
    single = [FileSpec("https://h/config.json"), FileSpec("https://h/model.safetensors")]
    assert model_files(single)[0] == "safetensors"
    for bad in ([gguf, gguf], [FileSpec("https://h/config.json")], [], [1, 2],
                [FileSpec("https://h/model.safetensors")]):
        with pytest.raises(ModelFilesError):
            model_files(bad)


def test_load_progress_is_monotonic_and_splits_download_and_upload_by_bytes():
    from app.store.load import LoadProgress
    rng = random.Random()
    for _ in range(50):
        total = rng.randrange(1, 10 ** 9)
        missing = rng.choice([0, rng.randrange(1, total + 1)])
        already = total - missing
        events = []
        lp = LoadProgress(events.append, missing, total)
        assert lp.download_share == pytest.approx(missing / (missing + total))
        loaded = already
        while missing and loaded < total:
            # A retry can step back (an incomplete chunk discarded): the fraction must not.
            loaded = max(already, min(total, loaded + rng.randrange(-total // 20, total // 5)))
            lp.download({"file": "f", "loaded_bytes": loaded, "total_bytes": total,
                         "overall": {"loaded_bytes": loaded, "total_bytes": total}}, already)
        lp.cache("f", 100, total)
        up_total, done = rng.randrange(1, total + 1), 0
        while done < up_total:
            done = min(up_total, done + rng.randrange(1, up_total // 3 + 2))
            lp.upload(done, up_total)
        f = [e["progress"] for e in events]
        assert f == sorted(f) and f[-1] == 1.0 and all(0 <= x <= 1 for x in f)
        if missing:
            downloads = [e for e in events if e["phase"] == "download"]
            # At the end of the download exactly the download's share is reached.
            assert downloads[-1]["progress"] == pytest.approx(lp.download_share)
        assert [e["phase"] for e in events][-1] == "upload"
