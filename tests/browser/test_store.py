"""app/store in headless Chromium against a real model server (tests/fault_server.py: HTTP Range,
CORS, injected faults) on another port: download, resume, integrity, quota, locks, cache.

Each test uses its own IndexedDB database name, so tests sharing the harness page do not see each
other's files. The random file is fresh random bytes each session and not a multiple of the
chunk size, so the last chunk is short."""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from urllib.parse import urlparse

import pytest

from app.bench.browser import boot, write_harness
from tests.browser.harness import run_py
from tests.fault_server import Fault, FaultServer

MiB = 1 << 20
CHUNK = 4 * MiB                       # small chunks in tests: several resume points per file
RANDOM_SIZE = 24 * MiB + 12345        # 7 chunks of 4 MiB, the last one 12,345 bytes

PRELUDE = """
import json
from app.store import Store, FileSpec, QuotaError, DownloadError, IntegrityError, StoreError
from app.store.download import file_sha256

async def open_store(**kw):
    opts = dict(chunk_size=inputs.get("chunk", 4 << 20), stall_ms=1500, backoff_base=0.02)
    opts.update(kw)
    return await Store.open(inputs["db"], **opts)

def listing(files):
    return [dict(key=f.key, size=f.size, stored=f.stored_bytes, complete=f.complete,
                 chunks=f.chunks, date=f.date) for f in files]
"""


@pytest.fixture(scope="module")
def random_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "random.bin"
    data = os.urandom(RANDOM_SIZE)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def model_server(random_file, smollm2_gguf):
    srv = FaultServer({"random.bin": random_file[0], "smollm2.gguf": smollm2_gguf}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def store_context(browser, dist, server):
    """Our own browser context (the shared harness page must not talk to other hosts)."""
    write_harness(dist)
    context = browser.new_context()
    yield context
    context.close()


def new_page(context, server):
    write_harness(server.dist)
    page = context.new_page()
    boot(page, server.url)
    return page


@pytest.fixture(scope="module")
def store_page(store_context, server):
    return new_page(store_context, server)


@pytest.fixture
def models(model_server):
    model_server.reset()
    yield model_server
    model_server.reset()


def store_py(page, code: str, **inputs):
    inputs.setdefault("db", f"test-{uuid.uuid4().hex[:8]}")
    return run_py(page, PRELUDE + code, inputs)["result"]


def test_interrupted_download_resumes_from_the_last_complete_chunk(store_page, models, random_file):
    name, (_, sha) = "random.bin", random_file
    models.inject(name,
                  Fault("drop", after=5 * MiB),          # chunk 0 stored, then the connection dies
                  Fault("status", status=500),
                  Fault("drop", after=9 * MiB),          # chunks 1 and 2 stored
                  Fault("stall", after=1 * MiB, seconds=4),   # client gives up after 1.5 s
                  Fault("length", delta=-1 * MiB),       # short body, ends cleanly: chunks 3, 4
                  Fault("length", delta=+1000))          # body then a cut: chunk 5, not the tail
    r = store_py(store_page, """
store = await open_store()
events = []
(rec,) = await store.download(FileSpec(inputs["url"]), events.append)
result = dict(rec=rec, sha=await file_sha256(store.idb, rec["key"], rec["chunks"]),
              listing=listing(await store.list()), last=events[-1],
              loaded=[e["loaded_bytes"] for e in events])
""", url=models.url(name))
    hits = models.gets(name)
    assert len(hits) == 7 and hits[0].range is None
    starts = [0] + [int(re.fullmatch(r"bytes=(\d+)-", h.range).group(1)) for h in hits[1:]]
    for start, hit, next_start in zip(starts, hits, starts[1:]):
        # Resume at a chunk boundary, never past what the previous attempt delivered.
        assert next_start % CHUNK == 0 and start <= next_start <= start + hit.sent
    assert starts[1] > 0 and starts[2] == starts[1]      # the 500 is retried from the same point
    assert starts[-1] >= 3 * CHUNK and hits[-1].status == 206
    assert starts[-1] + hits[-1].sent == RANDOM_SIZE     # the last attempt fetched only the rest
    assert r["sha"] == sha
    assert r["rec"]["complete"] and r["rec"]["size"] == RANDOM_SIZE and r["rec"]["chunks"] == 7
    assert r["listing"] == [dict(key=models.url(name), size=RANDOM_SIZE, stored=RANDOM_SIZE,
                                 complete=True, chunks=7, date=r["rec"]["date"])]
    assert r["last"]["loaded_bytes"] == r["last"]["total_bytes"] == RANDOM_SIZE
    assert r["last"]["overall"]["loaded_bytes"] == RANDOM_SIZE and r["last"]["eta"] == 0
    # Each attempt restarts the count at its resume point, never below what is stored.
    assert min(r["loaded"]) == 0 and max(r["loaded"]) == RANDOM_SIZE


def test_server_ignoring_range_restarts_cleanly_and_http_errors_are_named(store_page, models,
                                                                          random_file):
    name, (_, sha) = "random.bin", random_file
    models.inject(name, Fault("drop", after=6 * MiB), Fault("ignore_range"))
    r = store_py(store_page, """
store = await open_store()
(rec,) = await store.download(FileSpec(inputs["url"], size=inputs["size"], sha256=inputs["sha"]))
try:
    await store.download(FileSpec(inputs["missing"]))
    missing = None
except DownloadError as e:
    missing = dict(status=e.status, retryable=e.retryable, message=str(e))
result = dict(rec=rec, indices=await store.idb.chunk_indices(rec["key"]), missing=missing,
              listing=listing(await store.list()))
""", url=models.url(name), size=RANDOM_SIZE, sha=sha, missing=models.url("nothing.gguf"))
    hits = models.gets(name)
    assert [(h.range, h.status) for h in hits] == [(None, 200), (f"bytes={CHUNK}-", 200)]
    assert hits[1].sent == RANDOM_SIZE                   # the whole file again, stored from chunk 0
    assert r["rec"]["complete"] and r["rec"]["sha256"] == sha and r["indices"] == list(range(7))
    assert r["missing"]["status"] == 404 and not r["missing"]["retryable"]
    assert "404" in r["missing"]["message"] and "check the URL" in r["missing"]["message"]
    assert [f["key"] for f in r["listing"]] == [models.url(name)]   # nothing left of the 404


def test_quota_too_small_is_a_named_error_and_leaves_nothing(browser, store_page, models, server):
    """Three ways to run out of room, each a QuotaError that leaves no chunk and no record:
    - the catalog's size exceeds what navigator.storage.estimate() leaves: refused before any
      request;
    - the server's Content-Length does: refused before the body is read;
    - the origin's quota lowered through CDP (Storage.overrideQuotaForOrigin) below the file's
      size: IndexedDB raises QuotaExceededError mid-download, the stored chunks are removed.
      (In Playwright's off-the-record contexts Chromium enforces the override on writes but
      estimate() keeps reporting the default quota, so this case is caught at write time.)"""
    name = "random.bin"
    models.inject(name, Fault("length", delta=1 << 40))       # claims a 1 TiB body
    code = """
from app.store import browser
store = await open_store()
usage, quota = await browser.estimate()
cases = {"catalog size": FileSpec(inputs["url"], key="catalog", size=quota - usage + (1 << 30)),
         "header size": FileSpec(inputs["url"], key="header"),
         "cdp quota": FileSpec(inputs["url"], key="cdp")}
out = {}
for case in inputs["cases"]:
    try:
        await store.download(cases[case])
        out[case] = None
    except QuotaError as e:
        out[case] = dict(needed=e.needed, available=e.available, message=str(e),
                         chunks=len(await store.idb.chunk_indices(cases[case].cache_key)))
result = dict(out=out, listing=listing(await store.list()))
"""
    db = f"test-{uuid.uuid4().hex[:8]}"
    first = store_py(store_page, code, db=db, url=models.url(name),
                     cases=["catalog size", "header size"])
    assert len(models.gets(name)) == 1                          # the catalog case asked nothing
    # A fresh profile, so the origin's usage is small and known: 10 MiB of room for 24 MiB.
    context = browser.new_context()
    try:
        page = new_page(context, server)
        cdp = context.new_cdp_session(page)
        origin = server.url.rstrip("/")
        usage = cdp.send("Storage.getUsageAndQuota", {"origin": origin})["usage"]
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": origin, "quotaSize": usage + 10 * MiB})
        second = store_py(page, code, db=db, url=models.url(name), cases=["cdp quota"])
    finally:
        context.close()
    out = {**first["out"], **second["out"]}
    assert set(out) == {"catalog size", "header size", "cdp quota"}
    for case in out.values():
        assert case is not None and case["chunks"] == 0
        assert "not enough storage" in case["message"] and "Delete cached models" in case["message"]
    assert out["catalog size"]["needed"] > out["catalog size"]["available"]
    assert out["header size"]["needed"] == RANDOM_SIZE + (1 << 40)
    assert out["cdp quota"]["needed"] == RANDOM_SIZE
    assert first["listing"] == [] and second["listing"] == []
    hits = models.gets(name)
    assert len(hits) == 2 and hits[1].status == 200
    assert 0 < hits[1].sent                # the body was flowing when IndexedDB said no


CORRUPT_JS = """async ([db, key, index]) => {
  const req = indexedDB.open(db);
  await new Promise((ok) => { req.onsuccess = ok; });
  const tx = req.result.transaction("chunks", "readwrite");
  const store = tx.objectStore("chunks");
  const get = store.get([key, index]);
  await new Promise((ok) => { get.onsuccess = ok; });
  const rec = get.result;
  const bytes = new Uint8Array(rec.data);
  bytes[12345] ^= 0x5a;                        // one flipped byte; the recorded sha256 is kept
  rec.data = bytes.buffer;
  store.put(rec);
  await new Promise((ok) => { tx.oncomplete = ok; });
  req.result.close();
}"""


@pytest.mark.parametrize("worker", [True, False], ids=["reader-worker", "page-thread"])
def test_a_corrupted_chunk_is_detected_and_fetched_again(store_page, models, random_file, worker):
    """Both read paths of static/store.js: chunks read and hashed in its reader worker (the
    default), and on the page's own thread (where no worker can be started)."""
    name, (path, _) = "random.bin", random_file
    db = f"test-{uuid.uuid4().hex[:8]}"
    store_py(store_page, """
store = await open_store()
await store.download(FileSpec(inputs["url"]))
""", db=db, url=models.url(name))
    store_page.evaluate(CORRUPT_JS, [db, models.url(name), 2])
    models.reset()
    off, n = 2 * CHUNK - 1000, CHUNK + 2000                # spans chunks 1, 2 and 3
    r = store_py(store_page, """
from app.store import browser
await browser.use_reader(inputs["worker"])
try:
    store = await open_store()
    src = await store.source(inputs["url"])
    data = await src.read(inputs["off"], inputs["n"])
    first = dict(sha=await browser.sha256(data), repaired=src.repaired,
                 verified=sorted(src.verified))
    again = await store.source(inputs["url"])              # a fresh source verifies again
    data = await again.read(inputs["off"], inputs["n"])
    result = dict(first=first, again=await browser.sha256(data), repaired_again=again.repaired,
                  reader=await browser.reader_running())
finally:
    await browser.use_reader(True)
""", db=db, url=models.url(name), off=off, n=n, worker=worker)
    expected = hashlib.sha256(path.read_bytes()[off:off + n]).hexdigest()
    assert r["reader"] is worker
    assert r["first"]["repaired"] == [2] and r["first"]["verified"] == [1, 2, 3]
    assert r["first"]["sha"] == expected and r["again"] == expected
    assert r["repaired_again"] == []
    # Exactly the corrupt chunk was fetched again, with a Range request.
    assert [(h.range, h.status) for h in models.gets()] == [(f"bytes={2 * CHUNK}-{3 * CHUNK - 1}", 206)]


STORED_BUFFER_JS = """async ([db, key, index]) => {
  const req = indexedDB.open(db);
  await new Promise((ok) => { req.onsuccess = ok; });
  const get = req.result.transaction("chunks").objectStore("chunks").get([key, index]);
  await new Promise((ok) => { get.onsuccess = ok; });
  const d = get.result.data;
  req.result.close();
  return [get.result.size, (d.buffer || d).byteLength];
}"""


def test_the_short_last_chunk_is_stored_without_the_chunk_buffer_behind_it(store_page, models,
                                                                          random_file):
    """A download fills one chunk-sized buffer; the last, short chunk must not be stored as a
    view of it (IndexedDB would serialize the whole 4 MiB buffer behind 12,345 bytes)."""
    db = f"test-{uuid.uuid4().hex[:8]}"
    url = models.url("random.bin")
    store_py(store_page, """
store = await open_store()
await store.download(FileSpec(inputs["url"]))
""", db=db, url=url)
    last = RANDOM_SIZE // CHUNK
    assert store_page.evaluate(STORED_BUFFER_JS, [db, url, last]) == [RANDOM_SIZE % CHUNK] * 2
    assert store_page.evaluate(STORED_BUFFER_JS, [db, url, 0]) == [CHUNK] * 2


def test_request_headers_reach_the_server_and_stay_out_of_indexeddb(store_page, models,
                                                                    random_file):
    """FileSpec.headers (a gated repository's token): every GET of the download carries it, the
    chunk re-fetch of a corrupted chunk too (the store keeps it in memory for the file's URL),
    and the IndexedDB record holds no trace of it."""
    name, (_, sha) = "random.bin", random_file
    db = f"test-{uuid.uuid4().hex[:8]}"
    token = f"hf_{uuid.uuid4().hex}"
    models.reset()
    models.inject(name, Fault("drop", after=5 * MiB))      # one resume: two GETs
    r = store_py(store_page, """
store = await open_store()
spec = FileSpec(inputs["url"], sha256=inputs["sha"], headers=(("Authorization", "Bearer " + inputs["token"]),))
(rec,) = await store.download(spec)
result = dict(rec=json.dumps(rec), stored=json.dumps(await store.idb.get_file(rec["key"])))
""", db=db, url=models.url(name), sha=sha, token=token)
    gets = models.gets(name)
    assert len(gets) == 2 and gets[1].range is not None
    assert all(h.authorization == f"Bearer {token}" for h in gets)
    assert token not in r["rec"] and token not in r["stored"]
    # A corrupted chunk is fetched again with the same header by the same store.
    store_page.evaluate(CORRUPT_JS, [db, models.url(name), 1])
    models.reset()
    store_py(store_page, """
store = await open_store()
spec = FileSpec(inputs["url"], headers=(("Authorization", "Bearer " + inputs["token"]),))
await store.download(spec)                     # complete already: no request, header remembered
src = await store.source(inputs["url"])
await src.read(inputs["off"], 16)
""", db=db, url=models.url(name), token=token, off=CHUNK + 5)
    again = models.gets(name)
    assert [h.range for h in again] == [f"bytes={CHUNK}-{2 * CHUNK - 1}"]
    assert again[0].authorization == f"Bearer {token}"


def test_local_file_saved_into_the_cache_and_corruption_without_url_is_an_error(store_page):
    db = f"test-{uuid.uuid4().hex[:8]}"
    r = store_py(store_page, """
from js import Blob, Uint8Array, crypto
from pyodide.ffi import to_js
from app.formats.sources import BlobSource
from app.store import browser
parts = []
for _ in range(9 * 16 + 3):                          # 9 MiB + 3 x 64 KiB of fresh random bytes
    parts.append(crypto.getRandomValues(Uint8Array.new(65536)))
blob = Blob.new(to_js(parts))
want = await browser.sha256(Uint8Array.new(await blob.arrayBuffer()))
# Read directly (no copy into the cache): a few bytes across what would be chunk boundaries.
direct = await BlobSource(blob).read((4 << 20) - 7, 14)
store = await open_store()
rec = await store.save_blob(blob, "local:my-model.gguf", name="my-model.gguf", sha256=want)
src = await store.source("local:my-model.gguf")
cached = await src.read((4 << 20) - 7, 14)
result = dict(want=want, rec=rec, same=direct.to_bytes() == cached.to_bytes(),
              stored=await file_sha256(store.idb, rec["key"], rec["chunks"]))
""", db=db)
    assert r["rec"]["complete"] and r["rec"]["size"] == 9 * MiB + 3 * 65536 and r["rec"]["chunks"] == 3
    assert r["stored"] == r["want"] and r["same"]
    store_page.evaluate(CORRUPT_JS, [db, "local:my-model.gguf", 1])
    r = store_py(store_page, """
store = await open_store()
src = await store.source("local:my-model.gguf")
await src.read(0, 100)                                 # chunk 0 is fine
try:
    await src.read(5 << 20, 100)
    result = None
except IntegrityError as e:
    result = str(e)
""", db=db)
    assert r is not None and "chunk 1" in r and "cannot be re-downloaded" in r


def test_delete_removes_every_chunk_and_the_listing_follows(store_page, models):
    name = "random.bin"
    models.inject(name, Fault("none"), Fault("none"), Fault("drop", after=10 * MiB))
    r = store_py(store_page, """
store = await open_store()
url = inputs["url"]
await store.download([FileSpec(url, key="a"), FileSpec(url, key="b")])
partial = await open_store(max_retries=0)
try:
    await partial.download(FileSpec(url, key="c"))
except DownloadError as e:
    pass
out = dict(before=listing(await store.list()), usage=(await store.usage()).cached_bytes)
await store.delete("a")
out["after_one"] = listing(await store.list())
out["chunks_a"] = await store.idb.chunk_indices("a")
out["chunks_b"] = len(await store.idb.chunk_indices("b"))
await store.delete_all()
out["after_all"] = listing(await store.list())
out["chunks_left"] = sum([len(await store.idb.chunk_indices(k)) for k in "abc"])
out["usage_after"] = (await store.usage()).cached_bytes
result = out
""", url=models.url(name))
    before = {f["key"]: f for f in r["before"]}
    assert before["a"]["complete"] and before["b"]["complete"]
    assert before["a"]["stored"] == RANDOM_SIZE and before["a"]["chunks"] == 7
    assert not before["c"]["complete"] and 0 < before["c"]["chunks"] < 7
    assert before["c"]["stored"] == before["c"]["chunks"] * CHUNK
    assert r["usage"] == 2 * RANDOM_SIZE + before["c"]["stored"]
    assert {f["key"] for f in r["after_one"]} == {"b", "c"}
    assert r["chunks_a"] == [] and r["chunks_b"] == 7
    assert r["after_all"] == [] and r["chunks_left"] == 0 and r["usage_after"] == 0


def test_two_tabs_download_a_file_once(store_context, store_page, server, models, random_file):
    name, (_, sha) = "random.bin", random_file
    other = new_page(store_context, server)
    db = f"test-{uuid.uuid4().hex[:8]}"
    models.inject(name, Fault("slow", seconds=3))
    code = PRELUDE + """
import time
store = await open_store()
t0 = time.time()
(rec,) = await store.download(FileSpec(inputs["url"], sha256=inputs["sha"]))
result = dict(complete=rec["complete"], seconds=time.time() - t0)
"""
    payload = f'{{"db": "{db}", "url": "{models.url(name)}", "sha": "{sha}"}}'
    other.evaluate("([c, p]) => { window.pending = window.runPy(c, p); }", [code, payload])
    other.wait_for_timeout(800)                                 # the other tab holds the lock
    mine = run_py(store_page, code, {"db": db, "url": models.url(name), "sha": sha})["result"]
    theirs = __import__("json").loads(other.evaluate("window.pending"))
    other.close()
    assert theirs["error"] is None and theirs["result"]["complete"] and mine["complete"]
    assert mine["seconds"] > 1.0                                # it waited for the other tab
    assert len(models.gets(name)) == 1


def test_bundled_model_is_cached_then_loads_after_reload_with_no_model_request(browser, server, run,
                                                                               smollm2_gguf):
    """The catalog's bundled SmolLM2 (same origin, default 16 MiB chunks, whole-file sha256
    checked); after a reload its GGUF header parses from the cache through IDBChunkSource, with
    no request for any model file."""
    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource

    context = browser.new_context()
    try:
        page = new_page(context, server)
        first = store_py(page, """
from js import URL, document
from pyodide.http import pyfetch
from app.store import CATALOG_PATH, parse_catalog
catalog_url = str(URL.new(CATALOG_PATH, document.baseURI).href)
(entry,) = parse_catalog(await (await pyfetch(catalog_url)).json(), catalog_url)
store = await Store.open("weights")
events = []
(rec,) = await store.download(entry.files, events.append)
result = dict(bundled=entry.bundled, url=entry.files[0].url, rec=rec, last=events[-1],
              chunk_size=store.chunk_size)
""")
        requests = []
        page.on("request", lambda req: requests.append(req.url))
        page.reload()
        page.wait_for_function("document.body.dataset.ready", timeout=180_000)
        after = store_py(page, """
from app.formats.gguf import read_gguf
store = await Store.open("weights")
src = await store.source(inputs["url"])
g = await read_gguf(src)
result = dict(version=g.version, alignment=g.alignment, data_offset=g.data_offset,
              scalars={k: v for k, v in g.metadata.items() if not isinstance(v, list)},
              lists={k: len(v) for k, v in g.metadata.items() if isinstance(v, list)},
              tensors=[[t.name, list(t.dims), t.type_id, t.offset, t.nbytes] for t in g.tensors.values()],
              verified=sorted(src.verified), listing=listing(await store.list()))
""", url=first["url"])
    finally:
        context.close()
    size = smollm2_gguf.stat().st_size
    assert first["bundled"] and urlparse(first["url"]).path == "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert first["rec"]["complete"] and first["rec"]["size"] == size
    assert first["rec"]["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert first["chunk_size"] == 16 * MiB and first["rec"]["chunks"] == -(-size // (16 * MiB))
    assert first["last"]["overall"]["loaded_bytes"] == size == first["last"]["overall"]["total_bytes"]
    # After the reload: nothing but the harness itself was requested; no model bytes.
    assert requests and not [u for u in requests if "/models/" in urlparse(u).path]
    assert all(urlparse(u).netloc == urlparse(server.url).netloc for u in requests)
    src = FileSource(smollm2_gguf)
    try:
        host = run(read_gguf(src))
        assert after["version"] == host.version and after["alignment"] == host.alignment
        assert after["data_offset"] == host.data_offset
        assert after["scalars"] == {k: v for k, v in host.metadata.items() if not isinstance(v, list)}
        assert after["lists"] == {k: len(v) for k, v in host.metadata.items() if isinstance(v, list)}
        assert after["tensors"] == [[t.name, list(t.dims), t.type_id, t.offset, t.nbytes]
                                    for t in host.tensors.values()]
    finally:
        src.close()
    assert after["verified"] == [0]                  # the header came from the first chunk only
    assert [f["complete"] for f in after["listing"]] == [True]
