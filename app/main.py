"""Page start-up (PyScript): connect to the engine worker, show the runtime, run the GPU self-test.

The engine (Pyodide + WebGPU) runs in a Web Worker (static/engine-worker.js) behind the JS facade
window.LocalLLM (static/local-llm.js); this page's Python only renders. It talks to the worker
through app.runtime.client and never opens the GPU itself.

Exposes `window.localLLMDiagnostics.selfTest(m, n, k, seed)` (a Promise of a JSON string with the
inputs, outputs and error of a matmul run in the worker) so that tests and curious users can
re-run the GPU check. `document.body.dataset.pyReady` is "1" once the page is up (without
WebGPU too, when the CPU backend can run models: a notice says so), "error" when the engine, or
both WebGPU and the CPU backend, are unavailable.
"""
from __future__ import annotations

import json

from .runtime.client import LocalLLMClient, RuntimeAPIError
from .ui.dashboard import Dashboard


async def start() -> None:
    from js import Object, document, window
    from pyodide.ffi import create_proxy, to_js

    ui = Dashboard(document)
    ui.status("Starting the engine…")
    try:
        llm = await LocalLLMClient.connect()
    except RuntimeAPIError as e:
        ui.error("The engine could not start", str(e.args[0]))
        document.body.dataset.pyReady = "error"
        return
    info = await llm.runtime_info()
    versions = dict(info.get("versions") or {})
    ui.python(f"Pyodide {versions.get('pyodide', '?')}, Python {versions.get('python', '?')} "
              "(engine worker)")
    ui.versions({k: v for k, v in versions.items() if k != "python"})
    # Every later state change (loads, generation, errors) comes as an event from the worker.
    llm.on("status", ui.engine_status)
    llm.on("progress", ui.progress)
    llm.on("ready", lambda _detail: _refresh_memory(llm, ui))
    llm.on("backend", ui.backend)
    # Remote fallback settings and the "text left this device" badge (docs/remote.md).
    from .ui.remote_settings import RemoteSettings
    try:
        await RemoteSettings(document, llm).load()
    except RuntimeAPIError as e:
        ui.error("Remote fallback settings could not be read", str(e.args[0]))
    ui.status("Opening the GPU…")
    try:
        ui.runtime(await llm.check_webgpu())
    except RuntimeAPIError as e:
        if not info.get("cpu_available"):
            ui.error("WebGPU is unavailable", str(e.args[0]))
            document.body.dataset.pyReady = "error"
            return
        # Models still run, on the CPU backend (init's backend="auto" picks it).
        ui.notice("WebGPU is unavailable — chats run on the CPU (slower)", str(e.args[0]))
        ui.backend({"backend": "cpu", "reason": "WebGPU is unavailable"})
        ui.engine_status(llm.status())
        document.body.dataset.pyReady = "1"
        return

    async def self_test(m=37, n=29, k=45, seed=None):
        result = await llm.self_test(int(m), int(n), int(k), None if seed is None else int(seed))
        ui.selftest(result)
        ui.memory((await llm.runtime_info()).get("memory"))
        return json.dumps(result)

    window.localLLMDiagnostics = to_js({"selfTest": create_proxy(self_test)},
                                       dict_converter=Object.fromEntries)
    ui.status("Checking the GPU…")
    result = json.loads(await self_test())
    if result["ok"]:
        ui.engine_status(llm.status())
    else:
        ui.error("GPU self-test failed", "The GPU returned wrong results for a matrix product; "
                 "this browser's WebGPU implementation cannot run the engine correctly.")
    document.body.dataset.pyReady = "1"


def _refresh_memory(llm, ui) -> None:
    import asyncio

    async def refresh():
        ui.memory((await llm.runtime_info()).get("memory"))
    asyncio.ensure_future(refresh())
