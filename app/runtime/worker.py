"""The engine worker's message loop: Python's half of static/engine-worker.js.

    on_message = start(post, site, versions_json)   # post(json_text): one message to the page

creates LocalLLM(platform=BrowserPlatform(...)) and answers the page's requests (protocol
in static/local-llm.js). Each request runs as its own asyncio task, so a request the service
queues (it runs one generation at a time, FIFO) does not hold up the loop: `interrupt`,
`getStatus` and `cancel` are answered at once, even while a generation or a load runs.

Messages cross as JSON text both ways (the worker's JS parses/stringifies): None <-> null stays
exact and no JS proxy outlives a message. File/Blob arguments (importModelFile) cannot be JSON:
the worker's JS keeps each aside and sends {"$blob": key} in its place; take_blob(key) hands
the JS object over (once). Results are the service's dicts unchanged (snake_case);
option names arrive snake_case (the facade converts them). An exception becomes
{"name": its class name, "message": str(e)}; every reply carries the service's status() so the
page's synchronous getStatus() is current when its promise resolves.
"""
from __future__ import annotations

import asyncio
import inspect
import json

# JS op name -> LocalLLM attribute path. Calls run in a task unless listed in IMMEDIATE.
OPS = {
    "checkWebGPU": "check_webgpu", "init": "init", "chat": "chat", "complete": "complete",
    "interrupt": "interrupt", "switchModel": "switch_model", "unload": "unload",
    "getAvailableModels": "available_models", "getStatus": "status",
    "getRuntimeInfo": "runtime_info", "chatCompletionsCreate": "chat_completions.create",
    # The remote provider's settings (HybridLLM, app/runtime/hybrid.py; docs/remote.md).
    "getRemoteConfig": "remote_config", "setRemoteConfig": "set_remote_config",
    # Loads, the weight cache and the user's models (app/runtime/catalog_ops.py).
    "cancelLoad": "cancel_load", "getCache": "get_cache", "deleteCached": "delete_cached",
    "deleteCachedFile": "delete_cached_file", "addModel": "add_model",
    "removeModel": "remove_model", "importModelFile": "import_model_file",
}
IMMEDIATE = {"interrupt", "getStatus", "cancelLoad"}
BLOB = "$blob"      # {"$blob": key}: a File/Blob argument engine-worker.js kept aside


def error_payload(e: BaseException) -> dict:
    return {"name": type(e).__name__, "message": str(e) or type(e).__name__}


def _dumps(msg: dict) -> str:
    # default=str: a stray non-JSON value (a path, an enum) must not lose the whole reply.
    try:
        return json.dumps(msg, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_clean(msg), default=str)


def _clean(value):
    """NaN/inf (e.g. a rate over zero seconds) as null: JSON has no spelling for them."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class WorkerLoop:
    """Routes page messages to a LocalLLM-like service and posts replies, stream items and
    events back. `service` needs the attributes named in OPS."""

    def __init__(self, service, post, diagnostics=None, take_blob=None):
        self.service = service
        self.post = post                    # post(dict): one message to the page
        self.diagnostics = diagnostics      # async callable(m, n, k, seed) -> dict (selfTest)
        self.take_blob = take_blob          # key -> the JS File/Blob kept aside (or None)
        self.tasks: dict[int, asyncio.Task] = {}   # running requests (asyncio keeps weak refs)

    # -- posting ----------------------------------------------------------------------------
    def _status(self):
        try:
            return self.service.status()
        except Exception:  # noqa: BLE001 - a reply must still go out
            return None

    def reply(self, rid: int, **fields) -> None:
        self.post({"id": rid, **fields, "status": self._status()})

    # -- receiving --------------------------------------------------------------------------
    def on_message(self, text: str) -> None:
        msg = json.loads(str(text))
        rid = msg.get("id")
        try:
            self._dispatch(rid, msg)
        except Exception as e:  # noqa: BLE001 - a malformed request must not kill the worker
            self.reply(rid, error=error_payload(e))

    def _dispatch(self, rid, msg: dict) -> None:
        op, args, kwargs = msg.get("op"), msg.get("args") or [], msg.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise TypeError(f"{op}: args must be a list and kwargs an object")
        args = [self._blob(a) for a in args]
        kwargs = {k: self._blob(v) for k, v in kwargs.items()}
        if op == "cancel":
            self.cancel(int(args[0]))
            self.reply(rid, result=None)
            return
        if op in IMMEDIATE:
            self.reply(rid, result=self._call(op, args, kwargs))
            return
        task = asyncio.ensure_future(self._run(rid, op, args, kwargs))
        self.tasks[rid] = task
        task.add_done_callback(lambda _t, rid=rid: self.tasks.pop(rid, None))

    def _blob(self, value):
        """An argument, with a {"$blob": key} placeholder replaced by the File/Blob itself."""
        if not (isinstance(value, dict) and set(value) == {BLOB}):
            return value
        blob = self.take_blob(str(value[BLOB])) if self.take_blob is not None else None
        if blob is None:
            raise TypeError("a File/Blob argument did not reach the engine worker; pass the "
                            "File object itself")
        return blob

    def _call(self, op: str, args: list, kwargs: dict):
        if op == "loseDevice":
            return self._lose_device()
        if op == "selfTest":
            if self.diagnostics is None:
                raise NotImplementedError("this worker has no GPU self-test")
            return self.diagnostics(*args)
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; known: {', '.join(sorted(OPS))}")
        target = self.service
        for name in OPS[op].split("."):
            target = getattr(target, name)
        return target(*args, **kwargs)

    async def _lose_device(self) -> dict:
        """Diagnostics: destroy the engine's GPU device, as a driver reset or a lost GPU
        process would, and wait until WebGPU reports it lost. The next request then fails with
        DeviceLostError (state "error", an "error" event) and init() opens a new device."""
        dev = getattr(self.service, "_dev", None)
        if dev is None:
            raise RuntimeError("no GPU device is open yet: call init() or checkWebGPU() first")
        dev.destroy()
        for _ in range(500):            # device.lost resolves asynchronously
            if dev.lost is not None:
                return {"reason": dev.lost.reason}
            await asyncio.sleep(0.01)
        raise RuntimeError("the destroyed GPU device was not reported lost within 5 s")

    async def _run(self, rid: int, op: str, args: list, kwargs: dict) -> None:
        try:
            result = self._call(op, args, kwargs)
            if inspect.isawaitable(result):
                result = await result
            if hasattr(result, "__aiter__"):
                self.post({"id": rid, "stream": True})
                async for item in result:
                    self.post({"id": rid, "item": item})
                self.reply(rid, done=True)
            else:
                self.reply(rid, result=result)
        except asyncio.CancelledError:
            # cancel(): the page has already closed this stream; nothing more is sent for it
            # but its end, so that the page's id bookkeeping never waits on it.
            self.reply(rid, done=True)
        except Exception as e:  # noqa: BLE001 - sent to the page as a named error
            self.reply(rid, error=error_payload(e))

    def cancel(self, rid: int) -> None:
        """The page left stream `rid` early: its consuming task is cancelled, which closes the
        service's iterator; the service then aborts that request alone (the running one stops
        at its next token, finish_reason "abort"; a queued one never starts). rt.interrupt()
        would be wrong here: it stops whatever runs, which for a stream still waiting in the
        queue is another request."""
        task = self.tasks.get(rid)
        if task is not None:
            task.cancel()


def start(post, site: str, versions_json: str | None = None, take_blob=None):
    """Create the service over the browser platform and tell the page it is ready; returns
    on_message(json_text) for the worker's JS. `post(json_text)` sends one message to the page;
    `versions_json`: the site's versions.json (vendored package versions) or None;
    `take_blob(key)`: the File/Blob the worker's JS kept aside under `key` (see BLOB)."""
    from pyodide.ffi import create_proxy

    from .browser_platform import BrowserPlatform
    from .service import LocalLLM

    def send(msg: dict) -> None:
        post(_dumps(msg))

    platform = BrowserPlatform(str(site), send, json.loads(versions_json) if versions_json else {})
    # The service is the hybrid provider: LocalLLM unchanged unless the user enabled a remote
    # server (settings in this origin's IndexedDB; docs/remote.md).
    from .hybrid import HybridLLM
    from .remote import RemoteLLM
    from .remote_browser import FetchTransport, IndexedDBConfigStore
    service = HybridLLM(LocalLLM(platform=platform), store=IndexedDBConfigStore(str(site)),
                        remote=RemoteLLM(transport=FetchTransport()))
    loop = WorkerLoop(service, send, platform.self_test, take_blob)
    send({"ready": True, "status": loop._status()})
    return create_proxy(loop.on_message)
