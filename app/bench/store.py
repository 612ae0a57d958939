"""Weight store benchmark (docs/benchmarks.md, section "Weight store"), in headless Chromium:

    python -m app.bench.store [--repeats 3]

The bundled model (dist/models/, served by build.py's server on 127.0.0.1) is
(a) fetched plainly (fetch + read the body, nothing kept)  vs  (b) Store.download into a fresh
    IndexedDB database (16 MiB chunks, sha256 each, whole-file sha256 against the catalog);
(c) read plainly from that database (one get per chunk record, no hashing)  vs
(d) a cached load: IDBChunkSource.chunk(i) (read and sha256-verified in the store's reader
    worker, app.store.load.READAHEAD chunks ahead) written into one GPU buffer, timed until the
    queue is drained; (e) is (c) plus the same GPU writes, to split the cost of the upload from
    the cost of verification.
Median of `repeats` rounds; each round uses a fresh database for (b) and a fresh source for (d).

    python -m app.bench.store --mode engine [--repeats 3]

The model into the engine, GPU ready (app/store/load.py; the model is destroyed after each):
(c) the same plain IndexedDB read  vs  (f) load_cached_model from the cache (each chunk read and
sha256-verified in static/store-reader.js's worker, READAHEAD chunks ahead, tensors uploaded and
repacked, KV cache allocated; timed until the queue is drained)  vs  (g) load_model from the
whole file already in memory (JSBufferSource; the engine's own cost, no cache at all);
(h) is (f) with the chunk reads on the page's own thread (store.js without its worker: the A/B
of that change, and what a context that cannot start a worker gets).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

PLAIN_FETCH_JS = """async (url) => {
  const reader = (await fetch(url, { cache: "no-store" })).body.getReader();
  let n = 0;
  for (;;) { const { done, value } = await reader.read(); if (done) return n; n += value.byteLength; }
}"""

PLAIN_READ_JS = """async (db, key, n) => {
  const req = indexedDB.open(db);
  await new Promise((ok) => { req.onsuccess = ok; });
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const get = req.result.transaction("chunks").objectStore("chunks").get([key, i]);
    await new Promise((ok) => { get.onsuccess = ok; });
    bytes += get.result.data.byteLength;      // the deserialized bytes, not copied again
  }
  req.result.close();
  return bytes;
}"""

PLAIN_READ_UPLOAD_JS = """async (db, key, n, device, buffer, chunkSize) => {
  const req = indexedDB.open(db);
  await new Promise((ok) => { req.onsuccess = ok; });
  for (let i = 0; i < n; i++) {
    const get = req.result.transaction("chunks").objectStore("chunks").get([key, i]);
    await new Promise((ok) => { get.onsuccess = ok; });
    const d = get.result.data;                // a Uint8Array (or an ArrayBuffer): view it
    const data = ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
                                       : new Uint8Array(d);
    device.queue.writeBuffer(buffer, i * chunkSize, data, 0, data.byteLength & ~3);
  }
  await device.queue.onSubmittedWorkDone();
  req.result.close();
}"""


async def measure(dev, url: str, repeats: int = 3) -> dict:
    """Runs in the page (`dev`: app.gpu's browser device). Seconds per phase, medians."""
    import uuid

    from pyodide.code import run_js

    from app.store import FileSpec, Store
    from app.store.load import READAHEAD

    plain_fetch, plain_read, plain_upload = (run_js(PLAIN_FETCH_JS), run_js(PLAIN_READ_JS),
                                             run_js(PLAIN_READ_UPLOAD_JS))
    times = {k: [] for k in ("fetch", "download", "read", "read_upload", "cached_load")}
    size = None
    for _ in range(repeats):
        t = time.perf_counter()
        size = int(await plain_fetch(url))
        times["fetch"].append(time.perf_counter() - t)

        name = f"bench-{uuid.uuid4().hex[:8]}"
        store = await Store.open(name)
        t = time.perf_counter()
        (rec,) = await store.download(FileSpec(url, size=size))
        times["download"].append(time.perf_counter() - t)
        n, cs = rec["chunks"], rec["chunk_size"]

        t = time.perf_counter()
        await plain_read(name, url, n)
        times["read"].append(time.perf_counter() - t)

        buf = dev.create_buffer(size, kind="weights", label="bench")
        t = time.perf_counter()
        await plain_upload(name, url, n, dev._device, buf.handle, cs)
        times["read_upload"].append(time.perf_counter() - t)

        t = time.perf_counter()
        src = await store.source(url, readahead=READAHEAD)       # as load_cached_model reads
        for i in range(n):
            data = await src.chunk(i)
            dev.write(buf, data.subarray(0, int(data.byteLength) & ~3), i * cs)
        await dev._device.queue.onSubmittedWorkDone()
        times["cached_load"].append(time.perf_counter() - t)
        dev.destroy_buffer(buf)
        await store.delete_all()
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"bytes": size, "chunks": n, "chunk_size": cs, "seconds": med, "all": times}


async def measure_engine(dev, url: str, repeats: int = 3, context_length: int = 256) -> dict:
    """Runs in the page. Seconds of (c) plain read, (f) cached load, (g) in-memory load."""
    import uuid

    from js import fetch
    from pyodide.code import run_js

    from app.formats.sources import JSBufferSource
    from app.models import load_model
    from app.store import FileSpec, Store
    from app.store import browser as store_js
    from app.store.load import load_cached_model

    plain_read = run_js(PLAIN_READ_JS)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    store = await Store.open(name)
    (rec,) = await store.download(FileSpec(url))
    n, size = rec["chunks"], rec["size"]
    times = {k: [] for k in ("read", "cached_load", "memory_load", "cached_load_page")}
    kw = dict(context_length=context_length, kv_dtype="f16")
    # Warm-up, not timed: the engine's pipelines compile on a first load (~1 s here), which is
    # no cost of the cache; then the reader worker's start, timed on its own.
    buf = await (await fetch(url)).arrayBuffer()
    (await load_model(dev, JSBufferSource(buf), **kw)).destroy()
    del buf
    t = time.perf_counter()
    await store_js.start_reader()
    reader_start = time.perf_counter() - t
    for _ in range(repeats):
        t = time.perf_counter()
        await plain_read(name, url, n)
        times["read"].append(time.perf_counter() - t)

        for key, worker in (("cached_load", True), ("cached_load_page", False)):
            await store_js.use_reader(worker)
            if worker:
                await store_js.start_reader()      # restarted after (h): its start is timed above
            t = time.perf_counter()
            model = await load_cached_model(dev, store, FileSpec(url, size=size), **kw)
            await dev._device.queue.onSubmittedWorkDone()
            times[key].append(time.perf_counter() - t)
            model.destroy()
            assert await store_js.reader_running() is worker
        await store_js.use_reader(True)

        buf = await (await fetch(url)).arrayBuffer()
        t = time.perf_counter()
        model = await load_model(dev, JSBufferSource(buf), **kw)
        await dev._device.queue.onSubmittedWorkDone()
        times["memory_load"].append(time.perf_counter() - t)
        model.destroy()
        del buf
    await store.delete_all()
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"bytes": size, "chunks": n, "chunk_size": rec["chunk_size"], "seconds": med,
            "all": times, "reader_start": reader_start}


def report_engine(r: dict) -> str:
    mb, s = r["bytes"] / 1e6, r["seconds"]
    rows = [("(c) plain IndexedDB read", s["read"]),
            ("(f) load_cached_model (IndexedDB -> GPU ready)", s["cached_load"]),
            ("(g) load_model from memory (JSBufferSource)", s["memory_load"]),
            ("(h) (f) with chunk reads on the page thread (no worker)", s["cached_load_page"])]
    lines = [f"{r['bytes']:,} bytes, {r['chunks']} chunks of {r['chunk_size'] >> 20} MiB",
             "| phase | s | MB/s |", "|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {mb / t:,.0f} |" for name, t in rows]
    lines.append(f"cached load/plain read {s['cached_load'] / s['read']:.2f}x (target <= 1.5x); "
                 f"cached load/in-memory load {s['cached_load'] / s['memory_load']:.2f}x; without "
                 f"the reader worker {s['cached_load_page'] / s['read']:.2f}x; the worker "
                 f"started in {r['reader_start'] * 1e3:.0f} ms (once per page)")
    return "\n".join(lines)


def report(r: dict) -> str:
    mb, s = r["bytes"] / 1e6, r["seconds"]
    rows = [("(a) plain fetch", s["fetch"]), ("(b) Store.download", s["download"]),
            ("(c) plain IndexedDB read", s["read"]), ("(e) plain read + GPU writes", s["read_upload"]),
            ("(d) cached load (verify + GPU writes)", s["cached_load"])]
    lines = [f"{r['bytes']:,} bytes, {r['chunks']} chunks of {r['chunk_size'] >> 20} MiB",
             "| phase | s | MB/s |", "|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {mb / t:,.0f} |" for name, t in rows]
    lines.append(f"download/fetch {s['download'] / s['fetch']:.2f}x; cached load/plain read "
                 f"{s['cached_load'] / s['read']:.2f}x; cached load/(plain read + GPU writes) "
                 f"{s['cached_load'] / s['read_upload']:.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.bench.store")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", choices=("transfer", "engine"), default="transfer",
                    help="transfer: download/read/GPU-write phases; engine: the model GPU ready")
    args = ap.parse_args(argv)
    from .browser import chromium, run_py
    fn, fmt = {"transfer": ("measure", report), "engine": ("measure_engine", report_engine)}[args.mode]
    with chromium() as page:
        url = page.evaluate("new URL('models/SmolLM2-135M-Instruct.Q4_1.gguf', location.href).href")
        code = (f"from app.bench.store import {fn}\n"
                f"result = await {fn}(dev, {url!r}, {args.repeats})")
        r = run_py(page, code)["result"]
    print(fmt(r))
    print(json.dumps(r["all"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
