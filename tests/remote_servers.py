"""Servers for the remote provider's tests (tests/*/test_remote*.py, test_hybrid*.py).

    srv = LlamaServer(smollm2_gguf, api_key="k").start()   # llama.cpp's OpenAI-compatible server
    srv.base_url                                           # http://127.0.0.1:<port>/v1
    srv.requests()                                         # ["POST /v1/chat/completions 200", ...]
    srv.wait_for_log("disconnected", timeout=30)           # the server saw the client leave
    srv.stop()

    err = ErrorServer().start()                            # HTTP failures on demand
    err.base_url("unauthorized")                           # http://127.0.0.1:<port>/unauthorized/v1

LlamaServer is the real thing: llama-cpp-python's server (llama.cpp built from source, ./test
installs the cached wheel) generating with the SmolLM2 GGUF on the CPU. Its request log is
uvicorn's access log (one line per request, written when the response starts); its CORS
middleware answers any origin, as deployed OpenAI-compatible servers do.

The `llama` fixture (tests/conftest.py) is one LlamaServer for the session, with LLAMA_KEY.

ErrorServer answers /<case>/v1/chat/completions with one failure each (see CASES); it stands in
only for failures a healthy server cannot be made to produce on demand (429, 500, a stall, a
malformed or cut stream). Every request it gets is recorded in `hits` (case, Authorization).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.fault_server import ServerThread

LLAMA_KEY = "llama-test-key-5d1e"     # the session server's API key (the `llama` fixture)

ACCESS = re.compile(r'"(GET|POST|OPTIONS) (\S+) HTTP/[\d.]+" (\d+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    return free_port()


class LlamaServer:
    def __init__(self, model: Path, api_key: str | None = None, alias: str = "smollm2",
                 n_ctx: int = 2048):
        self.model, self.api_key, self.alias, self.n_ctx = Path(model), api_key, alias, n_ctx
        self.port = free_port()
        self.proc = None
        self.log_path = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, log_dir: Path | None = None, timeout: float = 120) -> "LlamaServer":
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError:
            pytest.fail("llama-cpp-python[server]==0.3.36 is not installed; ./test builds it "
                        "from source once (cached in ~/.cache/localllm-tests/wheels)")
        log_dir = Path(log_dir or os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
               "--host", "127.0.0.1", "--port", str(self.port), "--model_alias", self.alias,
               "--n_ctx", str(self.n_ctx), "--n_threads", "2", "--verbose", "false",
               # a new request must not cut a running stream short (llama-cpp-python's default)
               "--interrupt_requests", "false"]
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        # Readiness: uvicorn logs this line once the socket listens (no other signal exists
        # across processes, so the log is polled).
        self.wait_for_log("Uvicorn running on", timeout)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def wait_for_log(self, text: str, timeout: float = 30, start: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_text()[start:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited ({self.proc.returncode}):\n"
                                   + self.log_text()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the server log after {timeout} s:\n"
                                   + self.log_text()[-3000:])
            time.sleep(0.05)

    def requests(self) -> list[str]:
        """The access log: "METHOD path status" per request so far."""
        return [f"{m} {p} {s}" for m, p, s in ACCESS.findall(self.log_text())]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self._log.close()


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _chunk(content=None, finish=None) -> dict:
    delta = {} if content is None else {"content": content}
    return {"object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class ErrorServer:
    """One failure per case (the path's first segment):
        unauthorized  401 {"error": {"message": "Incorrect API key provided: <the key>"}}
                      (the key echoed back, as some providers do: messages must redact it)
        forbidden     403 {"detail": "Forbidden"}
        ratelimit     429, Retry-After: 7
        ratelimit_date 429, Retry-After: an HTTP date ~30 s ahead
        server        500 {"error": {"message": "model crashed"}}
        notfound      404 {"error": {"message": "model 'x' not found"}}
        redirect      307 to another host
        stall_headers no response at all (the handler waits until the client leaves)
        stall_body    200 event stream: one delta, then nothing
        malformed     200 event stream whose data is not JSON
        truncated     200 event stream: one delta, then the connection ends (no finish)
        notjson       200 with a non-JSON body (stream=false)
    """

    def __init__(self):
        self.hits: list[tuple[str, str | None]] = []
        self.left = threading.Event()          # a stalled request's client went away
        self.port = None
        self._server: ServerThread | None = None

    def base_url(self, case: str) -> str:
        return f"http://127.0.0.1:{self.port}/{case}/v1"

    def start(self) -> "ErrorServer":
        app = web.Application()
        app.router.add_route("*", "/{case}/v1/{path:.*}", self._handle)
        self._server = ServerThread(app, "remote-error-server", handler_cancellation=True,
                                    shutdown_timeout=1)
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        case = request.match_info["case"]
        auth = request.headers.get("Authorization")
        self.hits.append((case, auth))
        await request.read()
        key = (auth or "").removeprefix("Bearer ")
        if case == "unauthorized":
            return web.json_response({"error": {"message": f"Incorrect API key provided: {key}",
                                                "type": "invalid_request_error"}}, status=401)
        if case == "forbidden":
            return web.json_response({"detail": "Forbidden"}, status=403)
        if case == "ratelimit":
            return web.json_response({"error": {"message": "Rate limit reached"}}, status=429,
                                     headers={"Retry-After": "7"})
        if case == "ratelimit_date":
            when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"Retry-After": when})
        if case == "server":
            return web.json_response({"error": {"message": "model crashed"}}, status=500)
        if case == "notfound":
            return web.json_response({"error": {"message": "model 'x' not found"}}, status=404)
        if case == "redirect":
            raise web.HTTPTemporaryRedirect("http://127.0.0.2:9/v1/chat/completions")
        if case == "notjson":
            return web.Response(text="<html>not an API</html>", content_type="text/html")
        if case == "stall_headers":
            try:
                await asyncio.sleep(60)
            finally:
                self.left.set()
            return web.Response(status=204)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if case == "malformed":
            await resp.write(b"data: {not json\n\n")
            return resp
        await resp.write(_sse(_chunk("Hello")))
        if case == "truncated":
            return resp                      # ends the body: no finish_reason, no [DONE]
        try:                                 # stall_body
            await asyncio.sleep(60)
        finally:
            self.left.set()
        return resp
