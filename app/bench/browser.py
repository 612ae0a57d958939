"""Headless Chromium running Python code on the page's WebGPU: the kernel harness.

The harness page (written into a built dist/ folder as harness.html, never into the product's
index.html) loads the vendored Pyodide directly (./vendor/pyodide/pyodide.mjs), unpacks
./py/localllm.zip into the FS and exposes

    window.runPy(code, payload_json) -> Promise<json>      (app/bench/pyrunner.py)

Host side (CPython, Playwright's sync API):

    write_harness(dist); boot(page, server_url)
    outs = browser_run(page, code, {"a": np_array, "m": 17})     # -> {name: np.ndarray}

Used by tests/browser/harness.py (fixtures) and by the benchmarks (`chromium()` below builds the
site into a temporary folder, serves it on 127.0.0.1 and opens the harness).
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = "harness.html"
BOOT_TIMEOUT_MS = 180_000  # Pyodide start-up on a 2-core machine without cache

HARNESS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LocalLLM kernel harness</title>
<link rel="icon" href="data:,"></head>
<body>
<pre id="log"></pre>
<script type="module">
// Kernel harness (app/bench/browser.py): Pyodide + the app zip, no PyScript, no UI.
import { loadPyodide } from "./vendor/pyodide/pyodide.mjs";
const body = document.body;
try {
  const py = await loadPyodide({ indexURL: new URL("./vendor/pyodide/", location.href).href });
  const zip = await (await fetch("./py/localllm.zip")).arrayBuffer();
  py.unpackArchive(zip, "zip", { extractDir: "/home/pyodide" });
  py.runPython("import sys; '/home/pyodide' in sys.path or sys.path.insert(0, '/home/pyodide')");
  const run = py.pyimport("app.bench.pyrunner").run;
  window.pyodide = py;
  window.runPy = (code, payload) => run(code, payload ?? "{}");
  body.dataset.ready = "1";
} catch (e) {
  body.dataset.error = String(e && e.stack || e);
  body.dataset.ready = "error";
}
</script>
</body></html>
"""

# Chromium flags: WebGPU on (SwiftShader without a GPU), no background traffic (the machines have
# no internet; tests/conftest.py uses this list too). Developer features give the benchmarks
# unquantized GPU timestamps.
CHROMIUM_ARGS = ["--enable-unsafe-webgpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
BENCH_ARGS = CHROMIUM_ARGS + ["--enable-webgpu-developer-features"]


class BrowserPythonError(RuntimeError):
    """Python code run in the page raised; the message carries the page's traceback."""


def write_harness(dist: Path) -> str:
    """Write harness.html into a built site folder; returns its path relative to the site."""
    (Path(dist) / HARNESS).write_text(HARNESS_HTML, encoding="utf-8")
    return HARNESS


def boot(page, base_url: str, timeout_ms: int = BOOT_TIMEOUT_MS) -> None:
    page.goto(base_url.rstrip("/") + "/" + HARNESS)
    page.wait_for_function("document.body.dataset.ready", timeout=timeout_ms)
    if page.evaluate("document.body.dataset.ready") != "1":
        raise BrowserPythonError("harness failed to start: "
                                 + page.evaluate("document.body.dataset.error"))


def _encode(value):
    import numpy as np
    if isinstance(value, np.ndarray):
        return {"b64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_py(page, code: str, inputs: dict | None = None) -> dict:
    """Run async Python `code` in the page: {"outputs", "stdout", "result"}; raises on error.
    numpy arrays (and bytes) in `inputs` arrive in the page as bytes, other values as JSON."""
    payload = json.dumps({k: _encode(v) for k, v in (inputs or {}).items()})
    reply = json.loads(page.evaluate("([c, p]) => window.runPy(c, p)", [code, payload]))
    if reply["error"]:
        raise BrowserPythonError("Python in the page failed:\n" + reply["error"]
                                 + ("\n--- stdout ---\n" + reply["stdout"] if reply["stdout"] else ""))
    return reply


def browser_run(page, code: str, inputs: dict | None = None) -> dict:
    """Run `code` in the page; returns {name: np.ndarray} from its out(name, data, dtype, shape)
    calls. In `code`: `dev` (browser-backend device), `inputs[name]` (bytes for arrays),
    `await`, `import app...` all work; numpy does not exist there."""
    import numpy as np
    outs = {}
    for name, o in run_py(page, code, inputs)["outputs"].items():
        a = np.frombuffer(base64.b64decode(o["b64"]), dtype=o["dtype"])
        outs[name] = a.reshape(o["shape"]) if o["shape"] is not None else a
    return outs


# -- a self-contained browser for the benchmarks ----------------------------------------------
def chromium_executable() -> str | None:
    """None when Playwright has its own Chromium; else a system Chromium binary."""
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            if Path(p.chromium.executable_path).exists():
                return None
    except Exception:
        pass
    for cand in (shutil.which("chromium"), "/usr/lib/chromium/chromium", "/usr/bin/chromium",
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if cand and Path(cand).exists():
            return cand
    raise RuntimeError("no Chromium found: install Debian's chromium or `playwright install chromium`")


class Server:
    """build.py's server on 127.0.0.1 (a free port) for a built `dist`, in a subprocess:
    `start()` returns once it listens (`url` set); `stop()` may be called more than once.
    isolate=False: without the cross-origin isolation headers (build.ISOLATION_HEADERS)."""

    def __init__(self, dist: Path, isolate: bool = True):
        self.dist = dist
        self.isolate = isolate
        self.proc = None
        self.url = None

    def start(self) -> "Server":
        code = ("import sys, build, pathlib; sys.exit(build.serve('127.0.0.1', 0, "
                f"pathlib.Path({str(self.dist)!r}), isolate={self.isolate!r}))")
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", code], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if m:
                self.url = m.group(1)
                return self
        raise RuntimeError(f"server did not start (exit {self.proc.wait()})")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def launch_chromium(playwright, args: list[str] = BENCH_ARGS):
    """A headless Chromium (Playwright's, else the system's) with `args`."""
    launch = {"headless": True, "args": args}
    exe = chromium_executable()
    if exe:
        launch["executable_path"] = exe
    return playwright.chromium.launch(**launch)


@contextmanager
def serve(dist: Path):
    """Server(dist) for the duration of the block; yields the base URL."""
    srv = Server(dist)
    try:
        yield srv.start().url
    finally:
        srv.stop()


@contextmanager
def chromium(args: list[str] = BENCH_ARGS, files: dict | None = None):
    """Build the site into a temporary folder, serve it, open the harness in headless Chromium;
    yields a booted page. `files`: {path in the site: local file} linked into the served folder
    (e.g. a model for the page to fetch)."""
    sys.path.insert(0, str(ROOT))
    import build
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix="localllm-bench-") as tmp:
        dist = Path(tmp) / "dist"
        build.build(dist)
        write_harness(dist)
        for rel, local in (files or {}).items():
            target = dist / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:   # the server refuses symlinks that leave its folder: link or copy
                os.link(local, target)
            except OSError:
                shutil.copyfile(local, target)
        with serve(dist) as url, sync_playwright() as p:
            browser = launch_chromium(p, args)
            try:
                page = browser.new_page()
                page.on("console", lambda m: m.type == "error" and print("[page]", m.text,
                                                                         file=sys.stderr))
                boot(page, url)
                yield page
            finally:
                browser.close()


def run_with_model(model_path: str, call: str) -> dict:
    """Run `call` (Python awaited in the page, e.g. "await main([...], dev=dev, source=src)")
    in headless Chromium with `src` a JSBufferSource of `model_path`, which the page fetches
    from the bench server as a user's page would. Returns run_py's reply."""
    code = ("from js import fetch\n"
            "from app.formats.sources import JSBufferSource\n"
            "resp = await fetch('models/bench.gguf')\n"
            "assert resp.ok, f'fetching the model: HTTP {resp.status}'\n"
            "src = JSBufferSource(await resp.arrayBuffer())\n"
            f"{call}\n")
    with chromium(files={"models/bench.gguf": model_path}) as page:
        page.set_default_timeout(30 * 60 * 1000)
        return run_py(page, code)
