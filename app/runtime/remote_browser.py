"""The remote provider's JS edge in the engine worker (Pyodide): every `from js import` of the
remote provider is in this module.

FetchTransport (remote_http.py's seam): fetch() with an AbortController, the body read chunk by
chunk through response.body.getReader(). abort() calls controller.abort(): the browser drops
the connection and the pending read rejects. A fetch that rejects (TypeError "Failed to fetch")
is a refused connection, an unknown host, or a CORS refusal (the server must allow this page's
origin, as OpenAI-compatible servers do with Access-Control-Allow-Origin) -> RemoteUnreachableError;
the browser does not tell which.

IndexedDBConfigStore: the remote settings in IndexedDB (database "localllm-settings", object
store "settings", key "remote"), through static/settings-store.js, resolved against the site's
base URL. IndexedDB is this origin's, on this device; nothing here is sent anywhere.
"""
from __future__ import annotations

import json

from .remote_errors import RemoteUnreachableError
from .remote_http import HTTPResponse, HTTPTransport

SETTINGS_JS = "static/settings-store.js"


class _FetchResponse(HTTPResponse):
    def __init__(self, resp, controller):
        self._resp, self._controller = resp, controller
        # redirect "manual": an opaque redirect (status 0); reported as the redirect it is
        self.status = 302 if str(resp.type) == "opaqueredirect" else int(resp.status)
        self._reader = None

    def header(self, name: str) -> str | None:
        value = self._resp.headers.get(name)
        return None if value is None else str(value)

    async def chunks(self):
        from pyodide.ffi import JsException
        body = self._resp.body
        if not body:                     # JS null: an empty body
            return
        self._reader = body.getReader()
        while True:
            try:
                r = await self._reader.read()
            except JsException as e:
                raise ConnectionError(f"the response body failed: {e}") from None
            if r.done:
                return
            yield r.value.to_bytes()

    def abort(self) -> None:
        self._controller.abort()

    async def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.releaseLock()
            except Exception:  # noqa: BLE001 - already released or errored: nothing to free
                pass


class FetchTransport(HTTPTransport):
    """The worker's fetch(). `connect_timeout` is not separable from the browser's own
    connection handling; the caller's idle timeout bounds the wait for the headers."""

    async def post(self, url, headers, body, *, host, connect_timeout):
        from js import AbortController, Object, fetch
        from pyodide.ffi import JsException, to_js
        controller = AbortController.new()
        init = to_js({"method": "POST", "headers": headers, "body": body.decode(),
                      "signal": controller.signal, "redirect": "manual",
                      "credentials": "omit", "cache": "no-store"},
                     dict_converter=Object.fromEntries)
        try:
            resp = await fetch(url, init)
        except JsException as e:
            if "AbortError" in str(e):
                raise ConnectionAbortedError("aborted") from None
            raise RemoteUnreachableError(
                f"could not reach the remote server {host} ({_js_message(e)}). Check the base "
                "URL in the remote provider settings, that the server is running, and that it "
                "allows this page's origin (CORS: Access-Control-Allow-Origin).", host) from None
        except BaseException:
            controller.abort()           # cancelled (interrupt, timeout): drop the request
            raise
        return _FetchResponse(resp, controller)


def _js_message(e) -> str:
    text = str(e)
    return text.split(": ", 1)[-1][:120] if text else type(e).__name__


class IndexedDBConfigStore:
    """The remote settings in this origin's IndexedDB (see the module doc)."""

    KEY = "remote"

    def __init__(self, site: str):
        self.site = site
        self._module = None

    async def _js(self):
        if self._module is None:
            import js
            from pyodide.code import run_js
            url = str(js.URL.new(SETTINGS_JS, self.site).href)
            self._module = await run_js("(url) => import(url)")(url)
        return self._module

    async def load(self) -> dict | None:
        # JSON text both ways: a missing record is "null" (JS null would arrive as jsnull)
        return json.loads(str(await (await self._js()).getSetting(self.KEY)))

    async def save(self, data: dict) -> None:
        await (await self._js()).putSetting(self.KEY, json.dumps(data))
