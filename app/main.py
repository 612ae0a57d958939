"""Page start-up (PyScript): show the runtime, open the GPU, run the GPU self-test.

Exposes `window.localLLMDiagnostics.selfTest(m, n, k, seed)` (a Promise of a JSON string with the
inputs, outputs and error) so that tests and curious users can re-run the GPU check.
"""
from __future__ import annotations

import json
import sys

from .gpu import GPUError, open_device
from .selftest import matmul_selftest
from .ui.dashboard import Dashboard


async def start() -> None:
    from js import Object, document, window
    from pyodide.ffi import create_proxy, to_js
    from pyodide.http import pyfetch

    ui = Dashboard(document)
    ui.python(f"Pyodide, Python {sys.version.split()[0]}")
    try:
        ui.versions(await (await pyfetch("./versions.json")).json())
    except Exception as e:  # a missing versions file must not stop the page
        ui.versions({"unknown": str(e)})
    ui.status("Opening the GPU…")
    try:
        dev = await open_device()
    except GPUError as e:
        ui.error("WebGPU is unavailable", str(e))
        document.body.dataset.pyReady = "error"
        return
    ui.runtime(dev)

    async def self_test(m=37, n=29, k=45, seed=None):
        result = await matmul_selftest(dev, int(m), int(n), int(k),
                                       None if seed is None else int(seed))
        ui.selftest(result)
        ui.runtime(dev)
        return json.dumps(result)

    window.localLLMDiagnostics = to_js({"selfTest": create_proxy(self_test)},
                                       dict_converter=Object.fromEntries)
    ui.status("Checking the GPU…")
    result = json.loads(await self_test())
    if result["ok"]:
        ui.status("Ready — no model loaded", "ok")
    else:
        ui.error("GPU self-test failed", "The GPU returned wrong results for a matrix product; "
                 "this browser's WebGPU implementation cannot run the engine correctly.")
    document.body.dataset.pyReady = "1"
