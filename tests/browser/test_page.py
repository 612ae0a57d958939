"""The built page in headless Chromium: the page's Python (PyScript) and the engine worker's
(static/engine-worker.js) boot from local files; the worker opens WebGPU through app/gpu and runs
shaders/matmul.wgsl (the GPU self-test), the page's thread never touches the GPU, and nothing is
requested from any other host."""
from __future__ import annotations

import json
import random
from urllib.parse import urlparse

import numpy as np

from app.bench.browser import Server
from tests.browser.runtime_page import no_webgpu_launch_args

BOOT_TIMEOUT_MS = 180_000  # Pyodide start-up on a 2-core machine, first load without cache


class Recorder:
    def __init__(self, page):
        self.requests, self.failures, self.errors = [], [], []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("response", lambda r: r.status >= 400 and self.failures.append((r.status, r.url)))
        page.on("requestfailed", lambda r: self.failures.append(("failed", r.url)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def foreign(self, base: str) -> list[str]:
        host = urlparse(base).netloc
        return [u for u in self.requests
                if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).netloc != host]


def boot(page, url: str) -> str:
    page.goto(url)
    page.wait_for_function("document.body.dataset.pyReady", timeout=BOOT_TIMEOUT_MS)
    return page.evaluate("document.body.dataset.pyReady")


def check_selftest(result: dict) -> None:
    m, n, k = result["m"], result["n"], result["k"]
    a = np.array(result["a"]).reshape(m, k)
    b = np.array(result["b"]).reshape(k, n)
    c = np.array(result["c"]).reshape(m, n)
    assert np.std(a) > 0.3 and np.std(b) > 0.3  # fresh random inputs, not zeros
    bound = np.abs(a) @ np.abs(b) * k * 2.0 ** -23
    assert np.all(np.abs(c - a @ b) <= bound), np.max(np.abs(c - a @ b))


# Counts WebGPU adapter requests made by the page's own thread (the engine worker has its own
# navigator.gpu, which this does not touch).
COUNT_MAIN_THREAD_GPU = """
window.__mainThreadAdapters = 0;
if (self.GPU) {
  const request = GPU.prototype.requestAdapter;
  GPU.prototype.requestAdapter = function (...args) {
    window.__mainThreadAdapters += 1;
    return request.apply(this, args);
  };
}
"""


def test_page_boots_python_and_runs_a_wgsl_kernel(page, server):
    page.add_init_script(COUNT_MAIN_THREAD_GPU)
    rec = Recorder(page)
    assert boot(page, server.url) == "1"
    assert "Ready" in page.inner_text("#status")
    assert page.inner_text("#rt-selftest").startswith("passed")
    backend = page.inner_text("#rt-backend")
    assert "webgpu" in backend and "worker" in backend
    assert "swiftshader" in page.inner_text("#rt-adapter")
    assert page.evaluate("window.__mainThreadAdapters") == 0      # the engine is in the worker
    assert "Python 3." in page.inner_text("#rt-python")
    assert "pyodide 314.0.7" in page.inner_text("#rt-versions")
    # Re-run the kernel from the test with a shape and seed Python in the page has not seen.
    m, n, k, seed = 41, 23, 77, random.randrange(2**31)
    result = json.loads(page.evaluate(
        f"window.localLLMDiagnostics.selfTest({m}, {n}, {k}, {seed})"))
    assert (result["m"], result["n"], result["k"]) == (m, n, k) and result["ok"]
    check_selftest(result)
    assert rec.errors == [] and rec.failures == []
    assert rec.foreign(server.url) == []
    local = [urlparse(u).path for u in rec.requests]
    for expected in ("/vendor/pyodide/pyodide.asm.wasm", "/vendor/pyodide/python_stdlib.zip",
                     "/py/localllm.zip", "/pyscript.json", "/boot.py", "/static/local-llm.js",
                     "/static/engine-worker.js", "/versions.json"):
        assert expected in local


def test_missing_webgpu_says_why_and_offers_the_cpu_backend(browser_type, browser_type_launch_args,
                                                            server):
    """Chromium without --enable-unsafe-webgpu grants no adapter, in the worker too (an init
    script hiding navigator.gpu would not reach the worker). The page still comes up: a notice
    with the named error's text says chats run on the CPU backend (docs/cpu-backend.md), the
    Runtime panel says so, and the status bar is not an error."""
    browser = browser_type.launch(**no_webgpu_launch_args(browser_type_launch_args))
    try:
        page = browser.new_page()
        rec = Recorder(page)
        assert boot(page, server.url) == "1"
        banner = page.inner_text("#banner")
        assert "WebGPU is unavailable" in banner and "enable-unsafe-webgpu" in banner
        assert "CPU" in banner and "banner-info" in page.get_attribute("#banner", "class")
        assert page.inner_text("#rt-backend").startswith("cpu")
        assert "error" not in page.get_attribute("#status", "class")
        assert rec.foreign(server.url) == []
    finally:
        browser.close()


def test_service_worker_serves_the_app_offline(browser, dist):
    """First visit installs the service worker; with the server stopped, the page still boots
    Python and runs the GPU kernel from the precache."""
    srv = Server(dist).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        assert boot(page, srv.url) == "1"
        version = json.loads((dist / "precache-manifest.json").read_text())["version"]
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
        keys = page.evaluate("caches.keys()")
        assert f"localllm-{version}" in keys
        srv.stop()
        page.close()
        page = context.new_page()
        rec = Recorder(page)
        assert boot(page, srv.url) == "1"
        assert page.inner_text("#rt-selftest").startswith("passed")
        # The model catalog is precached too: the model list is available offline.
        catalog = page.evaluate("fetch('models/catalog.json').then(r => r.json())")
        assert [m["bundled"] for m in catalog["models"]] == [True]
        assert rec.errors == []
    finally:
        srv.stop()
        context.close()
