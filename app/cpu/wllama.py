"""The CPU backend's JS edge: every `from js import` of app/cpu is in this module.

static/cpu-engine.js (an ES module of the site, imported by URL like static/store.js) wraps
@wllama/wllama. Options and results cross as JSON text; the model crosses as a JS Blob that
Python assembles from cached chunks without touching their bytes.

    engine = await WllamaEngine.open(site, blob, n_ctx=4096, n_threads=2)
    stream = engine.start({"prompt": text, "n_predict": 64, "temperature": 0, ...})
    async for chunk in stream: ...        # llama.cpp's OAI completion chunks, as dicts
    stream.abort(); await engine.exit()
"""
from __future__ import annotations

import json

from .errors import CpuBackendError, CpuBackendUnavailableError

ENGINE_JS = "static/cpu-engine.js"
WLLAMA_PACKAGE = "@wllama/wllama"

_module = None


def in_browser() -> bool:
    import sys
    return sys.platform == "emscripten"


async def _js(site: str):
    global _module
    if not in_browser():
        raise CpuBackendUnavailableError(
            "the CPU backend (llama.cpp in WebAssembly, wllama) runs in the browser only; under "
            "CPython use a CPU Vulkan driver for WebGPU (mesa-vulkan-drivers gives lavapipe)")
    if _module is None:
        import js
        from pyodide.code import run_js
        from pyodide.ffi import JsException
        url = str(js.URL.new(ENGINE_JS, site).href)
        try:
            _module = await run_js("(url) => import(url)")(url)
        except JsException as e:
            raise CpuBackendUnavailableError(
                f"could not load {url} ({e}); the site's files are incomplete: rebuild it with "
                "build.py") from None
    return _module


def hardware_threads() -> tuple[int, bool]:
    """(navigator.hardwareConcurrency, self.crossOriginIsolated) of this worker/page."""
    import js
    n = getattr(js.navigator, "hardwareConcurrency", 1)
    try:
        n = max(1, int(n))
    except (TypeError, ValueError):
        n = 1
    return n, bool(getattr(js, "crossOriginIsolated", False))


def default_threads() -> int:
    """Threads for llama.cpp: 1 without cross-origin isolation (no SharedArrayBuffer); else the
    logical cores up to 4 (2 cores here ran best at 2 threads, design.md), half of them above
    (hyper-threads share a core's SIMD units), at most 8."""
    n, isolated = hardware_threads()
    if not isolated:
        return 1
    return n if n <= 4 else min(8, n // 2)


def blob_of(parts: list):
    """A JS Blob of JS ArrayBuffers/typed arrays, in order (no copy through Python)."""
    import js
    arr = js.Array.new()
    for p in parts:
        arr.push(p)
    return js.Blob.new(arr)


def _error(what: str, e: Exception) -> CpuBackendError:
    return CpuBackendError(f"{what} failed on the CPU backend (wllama): {e}")


class Stream:
    """One running completion: async-iterable chunks (dicts); abort() stops it."""

    def __init__(self, handle):
        self._handle = handle
        self.aborted = False

    def abort(self) -> None:
        if not self.aborted:
            self.aborted = True
            self._handle.abort()

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        from pyodide.ffi import JsException
        try:
            text = await self._handle.next()
        except JsException as e:
            if self.aborted or "AbortError" in str(e):
                raise StopAsyncIteration from None
            raise _error("a completion", e) from None
        if not isinstance(text, str):       # JS null (jsnull in Pyodide): the stream ended
            raise StopAsyncIteration
        return json.loads(text)


class WllamaEngine:
    """A model loaded into wllama. `info`: threads, multithread, n_ctx, eog ids, bos/eos/eot,
    llama_cpp (version), cross_origin_isolated."""

    def __init__(self, mod, engine, info: dict):
        self._mod, self._engine, self.info = mod, engine, info
        self.closed = False

    @classmethod
    async def open(cls, site: str, blob, *, n_ctx: int, n_threads: int,
                   n_batch: int = 512) -> "WllamaEngine":
        from pyodide.ffi import JsException
        mod = await _js(site)
        opts = {"n_ctx": int(n_ctx), "n_threads": int(n_threads), "n_batch": int(n_batch),
                "ctx_shift": False}
        try:
            res = await mod.open(site, blob, json.dumps(opts))
        except JsException as e:
            raise _error("loading the model", e) from None
        return cls(mod, res.engine, json.loads(str(res.info)))

    def start(self, options: dict) -> Stream:
        if self.closed:
            raise CpuBackendError("the CPU engine was closed; load the model again (init)")
        return Stream(self._mod.start(self._engine, json.dumps(options)))

    async def exit(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                await self._mod.exit(self._engine)
            except Exception:  # noqa: BLE001 - freeing a crashed engine must not mask the cause
                pass
