"""LocalLLMClient: the runtime API for Python in the page (PyScript), over the JS facade
(static/local-llm.js, window.LocalLLM), which talks to the engine worker. The page's Python never
touches the GPU: every call is a message to the worker.

    from app.runtime.client import LocalLLMClient
    llm = await LocalLLMClient.connect()                # waits until the worker takes calls
    await llm.init()                                    # the catalog's default model
    reply = await llm.chat([{"role": "user", "content": "Hi"}], max_tokens=32)
    stream = await llm.chat(messages, stream=True)
    async for item in stream:                           # {"delta": str}; the last one also
        show(item["delta"])                             # has finish_reason and usage
    await stream.aclose()                               # leaving early: stops the generation
    unsubscribe = llm.on("progress", lambda detail: ...)

Method names and options are the Python service's (snake_case); they are sent as the facade's
camelCase names. Results are plain Python values (dicts, lists, str, None). A failure raises
RuntimeAPIError whose `name` is the Python error's class name in the worker
(WebGPUUnavailableError, NotLoadedError, ...) and whose message is that error's.
"""
from __future__ import annotations

import json


class RuntimeAPIError(RuntimeError):
    """An error raised by the engine worker; `name` is its class name there."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:
        return f"{self.name}: {self.args[0]}"


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _to_js(value):
    """A JSON-shaped Python value as a plain JS value (objects, arrays, null)."""
    from js import JSON
    return JSON.parse(json.dumps(value))


def _to_py(value):
    """A JSON-shaped JS value as Python. A JSON round trip keeps null as None (to_py would give
    jsnull) and copies the value, so no proxy outlives the call."""
    from js import JSON
    if value is None:
        return None
    text = JSON.stringify(value)
    return None if text is None else json.loads(text)


def _options(kwargs: dict):
    return _to_js({_camel(k): v for k, v in kwargs.items()})


async def _call(promise):
    from pyodide.ffi import JsException
    try:
        return await promise
    except JsException as e:
        # JsException proxies the JS Error: the facade set .name to the Python class name.
        raise RuntimeAPIError(str(getattr(e, "name", "Error")),
                              str(getattr(e, "message", e))) from None


class ChatStream:
    """A Python async iterator over a facade stream (JS async iterable). Leaving early: await
    aclose() (or `async with`), which stops the generation in the worker."""

    def __init__(self, js_stream):
        self._it = js_stream
        self._closed = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._closed:
            raise StopAsyncIteration
        step = await _call(self._it.next())
        if step.done:
            self._closed = True
            raise StopAsyncIteration
        return _to_py(step.value)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await getattr(self._it, "return")()   # `return` is a Python keyword

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class _Completions:
    def __init__(self, facade):
        self._facade = facade

    async def create(self, **params):
        """OpenAI-shaped chat.completion dict, or (stream=True) a ChatStream of chunks."""
        return await _result(self._facade.chat.completions.create(_options(params)),
                             params.get("stream"))


class _Chat:
    def __init__(self, facade):
        self.completions = _Completions(facade)


async def _result(promise, stream: bool):
    value = await _call(promise)
    return ChatStream(value) if stream else _to_py(value)


class LocalLLMClient:
    def __init__(self, facade):
        self._js = facade
        self._proxies: list = []            # event callbacks kept alive while subscribed
        self.chat_completions = _Chat(facade).completions

    @classmethod
    async def connect(cls, facade=None) -> "LocalLLMClient":
        """Wait for window.LocalLLM (static/local-llm.js) and its worker. Raises
        RuntimeAPIError(EngineStartError) when the worker could not start."""
        if facade is None:
            from js import window
            facade = getattr(window, "LocalLLM", None)
            if not facade:
                raise RuntimeAPIError("EngineStartError", "window.LocalLLM is missing: the page "
                                      "must load static/local-llm.js as a module")
        await _call(facade.ready())
        return cls(facade)

    # -- calls ------------------------------------------------------------------------------
    async def check_webgpu(self) -> dict:
        return _to_py(await _call(self._js.checkWebGPU()))

    async def init(self, model_id: str | None = None, **options) -> dict:
        return _to_py(await _call(self._js.init(model_id, _options(options))))

    async def chat(self, messages: list, **options):
        """A reply dict, or (stream=True) a ChatStream of {"delta", ...} items."""
        return await _result(self._js.chat(_to_js(messages), _options(options)),
                             options.get("stream"))

    async def complete(self, prompt: str, **options):
        return await _result(self._js.complete(prompt, _options(options)), options.get("stream"))

    async def interrupt(self) -> None:
        await _call(self._js.interrupt())

    async def switch_model(self, model_id: str, **options) -> dict:
        return _to_py(await _call(self._js.switchModel(model_id, _options(options))))

    async def unload(self) -> None:
        await _call(self._js.unload())

    async def available_models(self) -> list[dict]:
        return _to_py(await _call(self._js.getAvailableModels()))

    def status(self) -> dict:
        """The last status the worker reported (synchronous, like the facade's getStatus)."""
        return _to_py(self._js.getStatus())

    async def runtime_info(self) -> dict:
        return _to_py(await _call(self._js.getRuntimeInfo()))

    async def cancel_load(self) -> bool:
        """Stop the running and queued loads (they raise RuntimeAPIError LoadCancelledError);
        True if one was stopped. Downloaded chunks stay; the next init resumes."""
        return bool(_to_py(await _call(self._js.cancelLoad())))

    async def get_cache(self) -> dict:
        """{"models": [...], "other": [...], "usage", "quota", "persisted"} (catalog_ops.py)."""
        return _to_py(await _call(self._js.getCache()))

    async def delete_cached(self, model_id: str) -> dict:
        """Delete a model's stored files; the new get_cache() (ModelBusyError while loading)."""
        return _to_py(await _call(self._js.deleteCached(model_id)))

    async def delete_cached_file(self, key: str) -> dict:
        return _to_py(await _call(self._js.deleteCachedFile(key)))

    async def add_model(self, urls, **options) -> dict:
        """A user model by URL (or a safetensors set's URLs), kept across visits (name, gated)."""
        return _to_py(await _call(self._js.addModel(_to_js(urls), _options(options))))

    async def remove_model(self, model_id: str) -> dict:
        return _to_py(await _call(self._js.removeModel(model_id)))

    async def import_model_file(self, file, **options) -> dict:
        """`file`: a JS File/Blob (e.g. from an <input type=file> or a drop event)."""
        return _to_py(await _call(self._js.importModelFile(file, _options(options))))

    async def remote_config(self) -> dict:
        """The remote fallback's settings without the key (docs/remote.md)."""
        return _to_py(await _call(self._js.getRemoteConfig()))

    async def set_remote_config(self, **config) -> dict:
        """Change the given remote settings (enabled, base_url, api_key, model, mode)."""
        return _to_py(await _call(self._js.setRemoteConfig(_options(config))))

    async def self_test(self, m: int = 37, n: int = 29, k: int = 45, seed: int | None = None) -> dict:
        """The GPU self-test in the worker (app/selftest.py's result dict)."""
        return _to_py(await _call(self._js.selfTest(m, n, k, seed)))

    # -- events -----------------------------------------------------------------------------
    def on(self, name: str, callback):
        """callback(detail: dict) for each event `name`; returns unsubscribe()."""
        from pyodide.ffi import create_proxy
        proxy = create_proxy(lambda detail, *_: callback(_to_py(detail)))
        self._proxies.append(proxy)
        off = self._js.on(name, proxy)

        def unsubscribe() -> None:
            off()
            if proxy in self._proxies:
                self._proxies.remove(proxy)
                proxy.destroy()
        return unsubscribe
