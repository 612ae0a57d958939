"""Browser-tier kernel harness: fixtures that open the harness page (app/bench/browser.py) once per
session in headless Chromium, and `browser_run` to run kernel code there on the page's WebGPU.

A kernel test (tests/browser/test_kernels_browser.py) is then:

    from tests.browser.harness import browser_run, harness_page  # noqa: F401 (fixture)

    def test_my_op(harness_page):
        x = rng.standard_normal(n).astype(np.float32)
        outs = browser_run(harness_page, '''
    from app.kernels.my_op import my_op
    gx = dev.upload(inputs["x"], kind="activations")
    gy = await my_op(dev, gx, n)
    out("y", await dev.read(gy), "float32", (n,))
    ''', {"x": x, "n": n})        # also available in the code as inputs["n"]
        assert np.allclose(outs["y"], reference(x), ...)

In the page `dev` is app.gpu's browser-backend device (opened once per page), `inputs[name]` holds
bytes for numpy arrays and the JSON value otherwise, and `out(name, data, dtype, shape)` returns an
array. numpy does not exist in the page. A Python error in the page fails the test with the page's
traceback (BrowserPythonError).
"""
from __future__ import annotations

from urllib.parse import urlparse

import pytest

from app.bench.browser import BrowserPythonError, boot, browser_run, run_py, write_harness

__all__ = ["BrowserPythonError", "browser_run", "harness_page", "run_py"]


@pytest.fixture(scope="session")
def harness_page(browser, dist, server):
    """A page with Pyodide and the app loaded (booted once per session, shared by kernel tests).
    Every request it makes must stay on the test server (127.0.0.1)."""
    write_harness(dist)
    context = browser.new_context()
    page = context.new_page()
    foreign = []
    host = urlparse(server.url).netloc
    page.on("request", lambda r: urlparse(r.url).scheme in ("http", "https", "ws", "wss")
            and urlparse(r.url).netloc != host and foreign.append(r.url))
    boot(page, server.url)
    assert run_py(page, "result = dev.backend")["result"] == "browser"
    yield page
    context.close()
    assert foreign == [], f"the harness page requested other hosts: {foreign}"
