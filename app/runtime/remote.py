"""RemoteLLM: chat and complete on an OpenAI-compatible server, shaped like LocalLLM's.

    remote = RemoteLLM(RemoteConfig(enabled=True, base_url="http://127.0.0.1:8080/v1",
                                    api_key="...", model="smollm2"))
    r = await remote.chat(messages, max_tokens=64)     # {"text", "finish_reason", "usage",
                                                        #  "model", "provider": "remote"}
    async for item in await remote.chat(messages, stream=True): ...   # {"delta", "provider"};
    remote.interrupt()                                  # the last: finish_reason, usage, model

The same call shapes, options and items as LocalLLM.chat / complete (inference.py), each item
and result with "provider": "remote". Options are checked as the local engine checks them
(SamplingParams, max_tokens, stop) before anything is sent; remote_shape.py maps them onto the
wire. Streams are server-sent events (sse.py) asking for usage (stream_options.include_usage).

`await chat(..., stream=True)` returns once the server answered with its headers, so HTTP
errors (RemoteUnauthorizedError, RemoteRateLimitedError, ...) are raised by the call itself;
errors later in the stream come from the iterator. interrupt() aborts the oldest running
request: its HTTP connection is dropped (the server sees the client disconnect), no item
arrives after it, and it ends with finish_reason "abort" (a non-streamed one: text ""). Leaving
a stream early aborts its request the same way. Requests run concurrently (the server queues).

Timeouts: connect_timeout_s for the TCP connection (native), idle_timeout_s for the response
headers and then between stream chunks (a stalled server) -> RemoteTimeoutError.

usage: prompt_tokens, completion_tokens, cached_tokens as the server reports them (None when
it reports nothing: many servers omit usage in streams), time_to_first_token_s and
e2e_latency_s measured here (network included), decode_tokens_per_s from the server's
completion_tokens over the time between the first and last delta (None without them),
prefill_tokens_per_s None (not observable from here), "server_reported": whether usage came.

Privacy: the API key goes only into the Authorization header of requests to the configured
base URL. It is never logged, never in a URL, an error message or a repr (tests check).
"""
from __future__ import annotations

import asyncio
import codecs
import email.utils
import json
import logging
import time
from dataclasses import dataclass

from .prompt import check_messages, check_options
from .remote_config import RemoteConfig
from .remote_errors import (RemoteConfigError, RemoteRequestError, RemoteServerError,
                            RemoteTimeoutError, http_error, redact)
from .remote_http import HTTPResponse
from .remote_shape import StreamState, parse_reply, request_body
from .sse import parse_sse

log = logging.getLogger("app.runtime.remote")
PATHS = {"chat": "/chat/completions", "complete": "/completions"}
ERROR_BODY_MAX = 4096        # bytes of an error reply read for its reason


@dataclass
class _Call:
    """One request in flight. abort_now runs on the request's loop."""
    kind: str
    stream: bool
    t_call: float
    loop: asyncio.AbstractEventLoop
    aborted: bool = False
    resp: HTTPResponse | None = None
    waiter: asyncio.Future | None = None

    def abort_now(self) -> None:
        if self.resp is not None:
            self.resp.abort()
        elif self.waiter is not None:
            self.waiter.cancel()


def _default_transport():
    import sys
    if sys.platform == "emscripten":
        from .remote_browser import FetchTransport
        return FetchTransport()
    from .remote_http import AiohttpTransport
    return AiohttpTransport()


class RemoteLLM:
    """See the module doc. `config`: a RemoteConfig (base_url and model set); `transport`:
    an HTTPTransport (default: aiohttp natively, fetch in Pyodide)."""

    def __init__(self, config: RemoteConfig | None = None, transport=None, *,
                 connect_timeout_s: float = 10.0, idle_timeout_s: float = 120.0):
        self.config = config or RemoteConfig()
        self.transport = transport if transport is not None else _default_transport()
        self.connect_timeout_s, self.idle_timeout_s = connect_timeout_s, idle_timeout_s
        self._active: list[_Call] = []

    def __repr__(self) -> str:
        return f"RemoteLLM({self.config!r})"

    # -- requests -----------------------------------------------------------------------------
    async def chat(self, messages, *, stream: bool = False, temperature: float = 0.7,
                   top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, max_tokens: int = 256,
                   stop=None, seed: int | None = None, repetition_penalty: float = 1.0,
                   presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                   logprobs: int = 0, truncate: str = "error"):
        """As LocalLLM.chat, on the server's chat template (POST <base_url>/chat/completions)."""
        o = dict(locals())
        del o["self"], o["messages"], o["stream"]
        return await self._request("chat", check_messages(messages), o, stream)

    async def complete(self, prompt: str, *, stream: bool = False, temperature: float = 0.7,
                       top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0,
                       max_tokens: int = 256, stop=None, seed: int | None = None,
                       repetition_penalty: float = 1.0, presence_penalty: float = 0.0,
                       frequency_penalty: float = 0.0, logprobs: int = 0,
                       truncate: str = "error"):
        """As LocalLLM.complete: a raw prompt, no template (POST <base_url>/completions)."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        o = dict(locals())
        del o["self"], o["prompt"], o["stream"]
        return await self._request("complete", prompt, o, stream)

    def interrupt(self) -> bool:
        """Abort the oldest running request; True if one was aborted. Safe from any thread."""
        for call in list(self._active):
            if not call.aborted:
                self._abort(call)
                return True
        return False

    def abort_all(self) -> None:
        for call in list(self._active):
            if not call.aborted:
                self._abort(call)

    @staticmethod
    def _abort(call: _Call) -> None:
        call.aborted = True
        call.loop.call_soon_threadsafe(call.abort_now)

    # -- the request --------------------------------------------------------------------------
    def _check(self, o: dict) -> None:
        """The options as LocalLLM checks them (stop made a list); then the configuration."""
        _, o["max_tokens"], o["stop"], o["truncate"] = check_options(o)
        cfg = self.config
        if not cfg.base_url or not cfg.model:
            raise RemoteConfigError("the remote provider is not configured: set base_url and "
                                    "model (setRemoteConfig / set_remote_config)")

    async def _request(self, kind: str, payload, o: dict, stream: bool):
        self._check(o)
        cfg = self.config
        body = request_body(kind, payload, o, cfg.model, stream)
        call = _Call(kind, stream, time.perf_counter(), asyncio.get_running_loop())
        self._active.append(call)
        log.info("remote %s request to %s (model %s, stream=%s)", kind, cfg.host, cfg.model,
                 stream)
        try:
            resp = await self._open(call, cfg, body)
        except BaseException:
            self._active.remove(call)
            raise
        if stream:
            return self._items(call, cfg, resp)
        try:
            return await self._reply(call, cfg, resp)
        finally:
            self._active.remove(call)

    async def _open(self, call: _Call, cfg: RemoteConfig, body: dict) -> HTTPResponse | None:
        """POST and wait for the headers; None when interrupted before they came."""
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if call.stream else "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        post = self.transport.post(cfg.base_url + PATHS[call.kind], headers,
                                   json.dumps(body).encode(), host=cfg.host,
                                   connect_timeout=self.connect_timeout_s)
        call.waiter = asyncio.ensure_future(asyncio.wait_for(post, self.idle_timeout_s))
        try:
            resp = await call.waiter
        except asyncio.CancelledError:
            if call.aborted:
                return None
            raise
        except asyncio.TimeoutError:
            raise RemoteTimeoutError(
                f"the remote server {cfg.host} did not answer within {self.idle_timeout_s:g} s. "
                "Try again; if it persists, check the server (it may be overloaded).",
                cfg.host) from None
        finally:
            call.waiter = None
        if call.aborted:
            resp.abort()
            await resp.close()
            return None
        if resp.status != 200:
            try:
                raise await self._http_error(resp, cfg)
            finally:
                await resp.close()
        call.resp = resp
        return resp

    async def _http_error(self, resp: HTTPResponse, cfg: RemoteConfig):
        if 300 <= resp.status < 400:
            return RemoteRequestError(
                f"the remote server {cfg.host} redirects (HTTP {resp.status}); set base_url to "
                "the address it redirects to (redirects are not followed, so the key goes only "
                "to the configured server).", cfg.host)
        raw = b""
        try:
            async def read():
                nonlocal raw
                async for chunk in resp.chunks():
                    raw += chunk
                    if len(raw) >= ERROR_BODY_MAX:
                        return
            await asyncio.wait_for(read(), min(self.idle_timeout_s, 10.0))
        except Exception:  # noqa: BLE001 - the status alone still names the error
            pass
        detail = redact(_reason(raw[:ERROR_BODY_MAX]), cfg.api_key)
        return http_error(resp.status, cfg.host, detail, _retry_after(resp.header("retry-after")))

    async def _next_chunk(self, call: _Call, cfg: RemoteConfig, chunks) -> bytes | None:
        """The next body chunk; None at the end of the body or when interrupted."""
        try:
            return await asyncio.wait_for(chunks.__anext__(), self.idle_timeout_s)
        except StopAsyncIteration:
            return None
        except asyncio.TimeoutError:
            if call.aborted:
                return None
            raise RemoteTimeoutError(
                f"the remote server {cfg.host} sent nothing for {self.idle_timeout_s:g} s in "
                "the middle of a reply. Try again; if it persists, check the server.",
                cfg.host) from None
        except asyncio.CancelledError:
            if call.aborted:
                return None
            raise
        except Exception as e:  # noqa: BLE001 - a dropped connection
            if call.aborted:
                return None
            raise RemoteServerError(f"the connection to the remote server {cfg.host} broke "
                                    f"mid-reply ({type(e).__name__}). Try again.",
                                    cfg.host) from None

    async def _items(self, call: _Call, cfg: RemoteConfig, resp: HTTPResponse | None):
        state = StreamState(call.kind)
        t_first = t_last = None
        try:
            if resp is not None:
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                chunks, rest = resp.chunks().__aiter__(), ""
                while not call.aborted and not state.done:
                    chunk = await self._next_chunk(call, cfg, chunks)
                    final = chunk is None
                    events, rest = parse_sse(rest + decoder.decode(chunk or b"", final), final)
                    for ev in events:
                        for item in state.event(ev):
                            if call.aborted:
                                break
                            t_last = time.perf_counter()
                            t_first = t_first or t_last
                            yield {**item, "provider": "remote"}
                    if final:
                        break
            if call.aborted:
                finish = "abort"
            elif state.finish is None and not state.done:
                raise RemoteServerError(f"the remote server {cfg.host} ended the stream before "
                                        "the reply finished. Try again.", cfg.host)
            else:
                finish = state.finish or "stop"
            t_end = time.perf_counter()
            yield {"delta": "", "finish_reason": finish,
                   "usage": _usage(state.counts, call.t_call, t_first, t_last, t_end),
                   "model": state.model or cfg.model, "provider": "remote"}
            log.info("remote request to %s ended: %s", cfg.host, finish)
        finally:
            if call in self._active:
                self._active.remove(call)
            if resp is not None:
                if not state.done:
                    resp.abort()          # left early or failed: drop the connection
                await resp.close()

    async def _reply(self, call: _Call, cfg: RemoteConfig, resp: HTTPResponse | None) -> dict:
        raw = b""
        if resp is not None:
            try:
                chunks = resp.chunks().__aiter__()
                while not call.aborted:
                    chunk = await self._next_chunk(call, cfg, chunks)
                    if chunk is None:
                        break
                    raw += chunk
            finally:
                if call.aborted:
                    resp.abort()
                await resp.close()
        t_end = time.perf_counter()
        if call.aborted:
            return {"text": "", "finish_reason": "abort",
                    "usage": _usage(None, call.t_call, None, None, t_end), "model": cfg.model,
                    "provider": "remote"}
        text, finish, counts, model, lps = parse_reply(call.kind, raw)
        out = {"text": text, "finish_reason": finish,
               "usage": _usage(counts, call.t_call, None, None, t_end),
               "model": model or cfg.model, "provider": "remote"}
        if lps:
            out["logprobs"] = lps
        log.info("remote request to %s ended: %s", cfg.host, finish)
        return out


def _usage(counts: dict | None, t_call: float, t_first: float | None, t_last: float | None,
           t_end: float) -> dict:
    c = counts or {}
    n = c.get("completion_tokens")
    decode = None
    if n and n > 1 and t_first is not None and t_last is not None and t_last > t_first:
        decode = (n - 1) / (t_last - t_first)
    return {"prompt_tokens": c.get("prompt_tokens"), "completion_tokens": n,
            "cached_tokens": c.get("cached_tokens"), "prefill_tokens_per_s": None,
            "decode_tokens_per_s": decode,
            "time_to_first_token_s": None if t_first is None else t_first - t_call,
            "e2e_latency_s": t_end - t_call, "server_reported": counts is not None}


def _reason(raw: bytes) -> str:
    """The server's reason in an error body: OpenAI {"error": {"message"}}, FastAPI
    {"detail"}, {"message"}, or the start of the text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(body, dict):
        err = body.get("error")
        for v in (err.get("message") if isinstance(err, dict) else err, body.get("detail"),
                  body.get("message")):
            if isinstance(v, str) and v:
                return v[:200]
    return text[:200]


def _retry_after(value: str | None) -> float | None:
    """Retry-After: seconds, or an HTTP date (-> seconds from now, at least 0)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
