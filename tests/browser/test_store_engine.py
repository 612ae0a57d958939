"""The weight cache feeding the engine, in headless Chromium (app/store/load.py):

  - the bundled SmolLM2 (the session's dist/models/, same origin, catalog sha256) is downloaded
    into IndexedDB and loaded from there onto the GPU; logits of a random id prompt (and, in a
    slow test, 8 greedy ids) equal the native engine's (wgpu-py, lavapipe, FileSource); a chunk corrupted inside
    IndexedDB is re-fetched (one Range request for exactly that chunk) and the ids stay equal;
    after a reload, loading makes no network request at all;
  - a browser closed mid-download (persistent profile) resumes from its last complete chunk
    with a Range request after a restart, and the whole file's sha256 is right;
  - a sharded safetensors checkpoint (tiny random llama, config.json + index named, shards found
    through the index) loads from the cache with logits equal to the native engine's on the
    same directory.

SwiftShader is slow: the real model runs one forward pass per load; its 8-token greedy
generation (equal to native) is marked slow.
"""
from __future__ import annotations

import base64
import json
import random
import re
import time
import uuid
from urllib.parse import urlparse

import numpy as np
import pytest

from app.bench.browser import boot, write_harness
from tests import tiny_models as tiny
from tests.browser.harness import run_py
from tests.browser.model_page import rel_error
from tests.browser.test_store import CORRUPT_JS
from tests.conftest import SMOLLM2_SHA256
from tests.fault_server import Fault, FaultServer

MiB = 1 << 20
CHUNK = 16 * MiB             # the store's default: SmolLM2's 98 MB are 6 chunks
CONTEXT = 64
NEW_TOKENS = 8
VOCAB = 49152

LOAD = """
import time
from app.store import Store, FileSpec, ModelEntry
from app.store.load import load_cached_model
entry = ModelEntry("smollm2", "SmolLM2", "gguf", True,
                   (FileSpec(inputs["url"], size=inputs["size"], sha256=inputs["sha"]),))
store = await Store.open(inputs["db"])
reads = []                                   # chunk indices read from IndexedDB, in order
_read_chunk = store.idb.read_chunk

async def counting_read(key, index, verify):
    reads.append(index)
    return await _read_chunk(key, index, verify)

store.idb.read_chunk = counting_read
events = []
t = time.perf_counter()
model = await load_cached_model(dev, store, entry, progress=events.append,
                                context_length=inputs["ctx"], kv_dtype="f32")
load_s = time.perf_counter() - t
try:
    if inputs["job"] == "generate":
        ids = [tok async for tok in model.generate(inputs["ids"], None, max_tokens=inputs["n"],
                                                   stop_ids=())]
    elif inputs["job"] == "logits":
        out("logits", bytes(await model.logits(inputs["ids"])), "float32",
            (len(inputs["ids"]), model.vocab))
        ids = None
    else:
        ids = [await model.prefill(inputs["ids"])]
finally:
    model.destroy()
from app.store import browser as store_js
result = dict(ids=ids, events=events, load_s=load_s, reads=reads,
              reader=await store_js.reader_running())
"""


def _phases(events) -> list[str]:
    """The phase sequence with repeats collapsed: ["download", "cache", "upload"]."""
    out = []
    for e in events:
        if not out or out[-1] != e["phase"]:
            out.append(e["phase"])
    return out


def _check_progress(events, size):
    fractions = [e["progress"] for e in events]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    last = events[-1]
    assert last["phase"] == "upload" and last["loaded_bytes"] == last["total_bytes"] > 0.9 * size


def _logits(reply) -> np.ndarray:
    o = reply["outputs"]["logits"]
    return np.frombuffer(base64.b64decode(o["b64"]), np.float32).reshape(o["shape"])


def _model_requests(log):
    return [(r.url, r.headers.get("range")) for r in log if "/models/" in urlparse(r.url).path]


@pytest.fixture(scope="module")
def prompt():
    return [int(i) for i in np.random.default_rng().integers(0, VOCAB, 8)]


def _native(run, gpu, path, prompt, job):
    from app.models import load_model

    async def go():
        model = await load_model(gpu, path, context_length=CONTEXT, kv_dtype="f32")
        try:
            if job == "logits":
                logits = np.frombuffer(bytes(await model.logits(prompt)), np.float32)
                return logits.reshape(len(prompt), -1)
            return [t async for t in model.generate(prompt, None, max_tokens=NEW_TOKENS,
                                                     stop_ids=())]
        finally:
            model.destroy()
    return run(go())


@pytest.fixture(scope="module")
def native_logits(prompt, smollm2_gguf, gpu, run):
    """The native engine's logits (len(prompt), vocab) on the same file (FileSource)."""
    return _native(run, gpu, smollm2_gguf, prompt, "logits")


def test_bundled_model_downloads_loads_repairs_and_reloads_offline(browser, server, dist, prompt,
                                                                   native_logits, smollm2_gguf):
    """Page and native compute the prompt's f32 logits with the same shaders and weights: within
    1e-4 of max|ref| (test_model_browser's page-vs-native bound, see its reasoning; measured
    ~1e-6), while one wrong Q4_1 block read from the cache moves them far more. One forward pass
    per load (SwiftShader decodes at seconds per token; the 8-token generation is the slow test
    below). After the repair the whole file's sha256 is checked too."""
    size = smollm2_gguf.stat().st_size
    url = server.url + "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    inputs = dict(db=f"test-{uuid.uuid4().hex[:8]}", url=url, size=size, sha=SMOLLM2_SHA256,
                  ctx=CONTEXT, ids=prompt, n=NEW_TOKENS)
    write_harness(dist)
    context = browser.new_context()
    try:
        page = context.new_page()
        boot(page, server.url)
        log = []
        page.on("request", lambda req: log.append(req))
        # 1. Not cached: downloaded (one plain GET), verified, loaded, logits of the prompt.
        reply = run_py(page, LOAD, {**inputs, "job": "logits"})
        first, first_logits = reply["result"], _logits(reply)
        first_requests = _model_requests(log)
        # 2. One chunk corrupted inside IndexedDB (a flipped byte, its recorded sha256 kept).
        page.evaluate(CORRUPT_JS, [inputs["db"], url, 3])
        log.clear()
        reply = run_py(page, LOAD + """
from app.store.download import file_sha256
result["sha"] = await file_sha256(store.idb, inputs["url"], 6)
""", {**inputs, "job": "logits"})
        second, logits = reply["result"], _logits(reply)
        second_requests = _model_requests(log)
        # 3. After a reload (store.js and its reader worker loaded first: app code, not model
        # bytes), no request.
        page.reload()
        page.wait_for_function("document.body.dataset.ready", timeout=180_000)
        assert run_py(page, "from app.store import browser\nawait browser._js()\n"
                            "result = await browser.start_reader()")["result"] is True
        log.clear()
        third = run_py(page, LOAD, {**inputs, "job": "prefill"})["result"]
        third_requests = [r.url for r in log]
    finally:
        context.close()
    print(f"load: downloading {first['load_s']:.1f}s, repairing {second['load_s']:.1f}s, "
          f"cached {third['load_s']:.1f}s")
    for got in (first_logits, logits):
        err = rel_error(got, native_logits)
        print(f"page logits vs native: {err:.2e}")
        assert got.shape == native_logits.shape and err <= 1e-4
        assert np.array_equal(got.argmax(-1), native_logits.argmax(-1))
    assert first_requests == [(url, None)]
    # Streamed chunk by chunk, each read once and in order (the engine uploads tensors in file
    # order, though this file lists layers in name order: blk.0, blk.1, blk.10, ...), by the
    # store's reader worker (static/store-reader.js).
    for r in (first, second, third):
        assert r["reads"] == list(range(6)) and r["reader"] is True
    assert _phases(first["events"]) == ["download", "cache", "upload"]
    downloads = [e for e in first["events"] if e["phase"] == "download"]
    assert downloads[-1]["loaded_bytes"] == downloads[-1]["total_bytes"] == size
    _check_progress(first["events"], size)
    # The corrupt chunk was detected and fetched again with a Range request for exactly its
    # bytes; the output did not change and the stored file is whole again.
    assert second_requests == [(url, f"bytes={3 * CHUNK}-{4 * CHUNK - 1}")]
    assert second["sha"] == SMOLLM2_SHA256
    assert _phases(second["events"]) == ["cache", "upload"]
    _check_progress(second["events"], size)
    assert third["ids"] == [int(native_logits[-1].argmax())]
    assert third_requests == []
    _check_progress(third["events"], size)


@pytest.mark.slow
def test_cached_model_generates_like_native(browser, server, dist, prompt, smollm2_gguf, gpu, run):
    """8 greedy tokens from the cached SmolLM2 equal the native engine's: greedy decoding is an
    argmax per step over f32 logits ~1e-6 of their scale apart, far below top-1/top-2 gaps."""
    native_ids = _native(run, gpu, smollm2_gguf, prompt, "generate")
    url = server.url + "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    inputs = dict(db=f"test-{uuid.uuid4().hex[:8]}", url=url, size=None, sha=SMOLLM2_SHA256,
                  ctx=CONTEXT, ids=prompt, n=NEW_TOKENS, job="generate")
    write_harness(dist)
    context = browser.new_context()
    try:
        page = context.new_page()
        boot(page, server.url)
        r = run_py(page, LOAD, inputs)["result"]
    finally:
        context.close()
    assert r["ids"] == native_ids, f"page {r['ids']} != native {native_ids}"


COUNT_CHUNKS_JS = """async ([db, key]) => {
  // Opening a database that store.js has not created yet would create it without its stores.
  if (!(await indexedDB.databases()).some((d) => d.name === db)) return 0;
  const req = indexedDB.open(db);
  await new Promise((ok) => { req.onsuccess = ok; });
  const get = req.result.transaction("chunks").objectStore("chunks")
    .count(IDBKeyRange.bound([key, 0], [key, Infinity]));
  await new Promise((ok) => { get.onsuccess = ok; });
  req.result.close();
  return get.result;
}"""

DOWNLOAD = """
from app.store import Store, FileSpec
from app.store.download import file_sha256
store = await Store.open(inputs["db"], stall_ms=60_000)
before = [dict(complete=f.complete, chunks=f.chunks) for f in await store.list()]
(rec,) = await store.download(FileSpec(inputs["url"], size=inputs["size"], sha256=inputs["sha"]))
result = dict(before=before, rec=rec, sha=await file_sha256(store.idb, rec["key"], rec["chunks"]))
"""


def test_browser_restart_mid_download_resumes_from_the_last_complete_chunk(
        browser_type, browser_type_launch_args, server, dist, tmp_path, smollm2_gguf):
    size = smollm2_gguf.stat().st_size
    models = FaultServer({"smollm2.gguf": smollm2_gguf}).start()
    profile = tmp_path / "profile"
    db = f"test-{uuid.uuid4().hex[:8]}"
    url = models.url("smollm2.gguf")
    inputs = json.dumps(dict(db=db, url=url, size=size, sha=SMOLLM2_SHA256))
    write_harness(dist)
    cut = 2 * CHUNK + random.randrange(1, CHUNK)         # somewhere inside chunk 2
    # The first browser gets `cut` bytes, then the connection hangs; it is closed long before
    # the server gives up (12 s: the server's stop() waits for that handler to end).
    models.inject("smollm2.gguf", Fault("stall", after=cut, seconds=12))
    try:
        ctx = browser_type.launch_persistent_context(profile, **browser_type_launch_args)
        try:
            page = ctx.new_page()
            boot(page, server.url)
            page.evaluate("([c, p]) => { window.pending = window.runPy(c, p); }", [DOWNLOAD, inputs])
            deadline = time.monotonic() + 120
            while page.evaluate(COUNT_CHUNKS_JS, [db, url]) < 2:
                assert time.monotonic() < deadline, "the first two chunks were never stored"
                page.wait_for_timeout(200)
            page.wait_for_timeout(500)          # the rest of `cut` is in flight, never stored
        finally:
            ctx.close()                          # the browser goes away mid-download
        ctx = browser_type.launch_persistent_context(profile, **browser_type_launch_args)
        try:
            page = ctx.new_page()
            boot(page, server.url)
            r = run_py(page, DOWNLOAD, json.loads(inputs))["result"]
        finally:
            ctx.close()
        hits = models.gets("smollm2.gguf")
    finally:
        models.stop()
    assert r["before"] == [dict(complete=False, chunks=2)]
    assert [(h.range, h.status) for h in hits] == [(None, 200), (f"bytes={2 * CHUNK}-", 206)]
    assert hits[0].sent == cut and hits[1].sent == size - 2 * CHUNK
    assert r["rec"]["complete"] and r["rec"]["size"] == size and r["rec"]["chunks"] == 6
    assert r["rec"]["sha256"] == r["sha"] == SMOLLM2_SHA256


SHARDED = """
import struct
from app.store import Store, FileSpec
from app.store.load import load_cached_model
store = await Store.open(inputs["db"], chunk_size=64 << 10)
events = []
model = await load_cached_model(dev, store, [FileSpec(u) for u in inputs["urls"]],
                                progress=events.append, context_length=64, kv_dtype="f32")
try:
    out("logits", bytes(await model.logits(inputs["ids"])), "float32", (len(inputs["ids"]), model.vocab))
finally:
    model.destroy()
result = dict(events=events, files=sorted(f.name for f in await store.list() if f.complete))
"""


@pytest.fixture(scope="module")
def page(browser, dist, server):
    """A booted harness page in its own context (it talks to the model server's other port)."""
    write_harness(dist)
    context = browser.new_context()
    page = context.new_page()
    boot(page, server.url)
    yield page
    context.close()


def test_sharded_safetensors_checkpoint_loads_from_the_cache(page, tmp_path, gpu, run):
    """Page and native run the same f32 shaders on the same F32 weights: logits within 1e-4 of
    max|ref| (test_model_browser's page-vs-native bound; measured ~1e-7 for tiny models), while a
    tensor read from a wrong shard or offset moves them by O(1)."""
    from app.models import load_model
    tm = tiny.build("llama", tmp_path / "hf", sharded=True)
    files = {p.name: p for p in tm.hf_dir.iterdir() if p.is_file()}
    shards = sorted(n for n in files if re.fullmatch(r"model-\d+-of-\d+\.safetensors", n))
    assert len(shards) >= 2
    ids = tiny.random_ids()

    async def native():
        model = await load_model(gpu, tm.hf_dir, context_length=64, kv_dtype="f32")
        try:
            return np.frombuffer(bytes(await model.logits(ids)), np.float32).reshape(len(ids), -1)
        finally:
            model.destroy()
    ref = run(native())
    models = FaultServer(files).start()
    try:
        urls = [models.url("config.json"), models.url("model.safetensors.index.json")]
        reply = run_py(page, SHARDED, dict(db=f"test-{uuid.uuid4().hex[:8]}", urls=urls,
                                                   ids=ids))
        hits = sorted(h.name for h in models.gets())
    finally:
        models.stop()
    o = reply["outputs"]["logits"]
    got = np.frombuffer(base64.b64decode(o["b64"]), np.float32).reshape(o["shape"])
    r = reply["result"]
    assert r["files"] == sorted(["config.json", "model.safetensors.index.json", *shards])
    assert hits == sorted(["config.json", "model.safetensors.index.json", *shards])
    assert _phases(r["events"])[-2:] == ["cache", "upload"] and r["events"][-1]["progress"] == 1.0
    fractions = [e["progress"] for e in r["events"]]
    assert fractions == sorted(fractions)
    err = rel_error(got, ref)
    print(f"sharded tiny llama page vs native: {err:.2e}")
    assert got.shape == ref.shape and err <= 1e-4
