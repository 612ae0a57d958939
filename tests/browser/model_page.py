"""Run the same model script in the harness page (browser backend, SwiftShader) and natively
(wgpu-py, lavapipe), so that the browser tier compares like with like.

    res = page_jobs(page, "models/x.gguf", JOBS, context_length=128, source="buffer")
    ref = native_jobs(run, gpu, path, JOBS, context_length=128)

JOBS is a list of ("generate", ids, n) (greedy, n tokens, no stop ids: exactly n come back; the
KV cache is kept between jobs, so a prompt sharing a prefix with the previous job's text reuses
it, as in a chat) and ("logits", ids) (model.logits from position 0). Both return

    {"load_s": float, "leaked": {kind: bytes}, "jobs": [{"kind", "s", "ids" (generate) | "logits" (np.float32 (n, vocab)),
                                "stats" (the model's stats after the job)}]}

`run_jobs` below is the one script: the page gets its source text (inspect.getsource) and runs
it under Pyodide; the native side calls it directly. It uses no numpy (the page has none).
In the page the GGUF is fetched from the test server (tests/conftest.py `server`, serving the
session's dist/) into an ArrayBuffer (JSBufferSource) or a Blob (BlobSource), as the app does.
"""
from __future__ import annotations

import base64
import inspect
import time

import numpy as np

from tests.browser.harness import run_py


async def run_jobs(dev, source, jobs, context_length, kv_dtype="f32"):
    """Load a model from `source` and run `jobs`; logits come back as bytes (f32, row-major).
    The model is destroyed before returning, even on error; `leaked` is the bytes per buffer kind
    (weights, activations, kv_cache, staging) still live afterwards that were not before (shape
    uniforms are cached per device on purpose and not counted)."""
    import time as _time
    from app.models import load_model
    kinds = ("weights", "activations", "kv_cache", "staging")
    before = {k: dev.ledger.live.get(k, 0) for k in kinds}
    t = _time.perf_counter()
    model = await load_model(dev, source, context_length=context_length, kv_dtype=kv_dtype)
    report = {"load_s": _time.perf_counter() - t, "jobs": [], "vocab": model.vocab}
    try:
        for job in jobs:
            t = _time.perf_counter()
            if job[0] == "generate":
                got = [tok async for tok in model.generate(job[1], None, max_tokens=job[2],
                                                           stop_ids=())]
                entry = {"kind": "generate", "ids": got}
            elif job[0] == "logits":
                entry = {"kind": "logits", "data": bytes(await model.logits(job[1])),
                         "n": len(job[1])}
            else:
                raise ValueError(f"unknown job {job[0]!r}")
            entry["s"] = _time.perf_counter() - t
            entry["stats"] = dict(model.stats)
            report["jobs"].append(entry)
    finally:
        model.destroy()
    report["leaked"] = {k: dev.ledger.live.get(k, 0) - before[k] for k in kinds
                        if dev.ledger.live.get(k, 0) != before[k]}
    return report


def _arrays(report: dict) -> dict:
    """Turn the logits bytes of a report into (n, vocab) float32 arrays."""
    for entry in report["jobs"]:
        if entry["kind"] == "logits":
            data = entry.pop("data")
            entry["logits"] = np.frombuffer(data, np.float32).reshape(entry["n"], report["vocab"])
    return report


# In the page: fetch the file, wrap it in the requested byte source, run the jobs, and hand the
# logits bytes back through out() (the JSON result carries the rest).
_PAGE = """
import time
from js import fetch
from app.formats.sources import BlobSource, JSBufferSource
t0 = time.perf_counter()
resp = await fetch(inputs["url"])
if not resp.ok:
    raise RuntimeError(f"fetching {inputs['url']}: HTTP {resp.status}")
if inputs["source"] == "blob":
    source = BlobSource(await resp.blob())
else:
    source = JSBufferSource(await resp.arrayBuffer())
fetch_s = time.perf_counter() - t0
report = await run_jobs(dev, source, inputs["jobs"], inputs["context_length"])
report["fetch_s"] = fetch_s
for i, entry in enumerate(report["jobs"]):
    if entry["kind"] == "logits":
        out(f"logits{i}", entry.pop("data"), "float32", (entry["n"], report["vocab"]))
result = report
"""


def page_jobs(page, url: str, jobs: list, context_length: int, source: str = "buffer") -> dict:
    """run_jobs in the harness page on the GGUF at `url` (relative to the served dist/)."""
    if source not in ("buffer", "blob"):
        raise ValueError(f"source must be 'buffer' or 'blob', got {source!r}")
    code = inspect.getsource(run_jobs) + _PAGE
    inputs = {"url": url, "jobs": [list(j) for j in jobs], "context_length": context_length,
              "source": source}
    reply = run_py(page, code, inputs)
    report = reply["result"]
    for i, entry in enumerate(report["jobs"]):
        if entry["kind"] == "logits":
            o = reply["outputs"][f"logits{i}"]
            entry["logits"] = np.frombuffer(base64.b64decode(o["b64"]),
                                            np.float32).reshape(o["shape"])
    report["stdout"] = reply["stdout"]
    return report


def native_jobs(run, dev, path, jobs: list, context_length: int) -> dict:
    """run_jobs on the native device (FileSource through load_model's path argument)."""
    t = time.perf_counter()
    report = _arrays(run(run_jobs(dev, path, [list(j) for j in jobs], context_length)))
    report["wall_s"] = time.perf_counter() - t
    return report


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|: the error relative to the logits' scale."""
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / np.max(np.abs(ref)))
