"""A model-file server with HTTP Range and fault injection, for the store's browser tests.

    srv = FaultServer({"random.bin": path, ...}).start()      # 127.0.0.1, a free port, own thread
    srv.url("random.bin")
    srv.inject("random.bin", Fault("drop", after=5 << 20))     # faults apply to the next GETs, in order
    srv.log                                                    # [Hit(method, name, range, status, sent)]
    srv.stop()

It is a different origin (port) than the app server, as Hugging Face is, so it sends the CORS
headers a real model host sends (ACAO *, exposed Content-Range/Content-Length/ETag/Accept-Ranges)
and answers preflights. Fault kinds, each for one GET:
    drop          send `after` body bytes, then cut the TCP connection
    status        answer `status` (e.g. 500) with no body
    stall         send `after` bytes, then send nothing for `seconds`, then cut the connection
    length        declare Content-Length + `delta`: delta < 0 sends only the declared (short) body
                  and ends cleanly; delta > 0 sends the real body, then cuts the connection
    ignore_range  answer 200 with the whole file whatever the Range header says
    no_length     like ignore_range, with chunked transfer encoding (no Content-Length)
    slow          the normal answer, its body spread over `seconds`
    none          the normal answer (a placeholder so that a later request gets the fault)
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Content-Range, Content-Length, ETag, Accept-Ranges"}
PIECE = 256 << 10


@dataclass
class Fault:
    kind: str
    after: int = 0
    status: int = 500
    seconds: float = 5.0
    delta: int = 0


@dataclass
class Hit:
    method: str
    name: str
    range: str | None
    authorization: str | None = None
    status: int = 0
    sent: int = 0



class ServerThread:
    """An aiohttp application on 127.0.0.1 (a free port) served from its own thread and event
    loop, so that synchronous tests (and Playwright's loop) can use it. start() -> the port."""

    def __init__(self, app, name: str, **runner_options):
        self.app, self.name, self.options = app, name, runner_options
        self.port = None
        self._loop = self._runner = self._thread = None

    def start(self) -> int:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self.app, access_log=None, **self.options)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.name} did not start listening within 10 s")
        return self.port

    def stop(self) -> None:
        if self._loop:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

class FaultServer:
    def __init__(self, files: dict[str, Path]):
        self.files = {name: Path(p) for name, p in files.items()}
        self.etags = {name: '"' + hashlib.sha256(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                                                  .encode()).hexdigest()[:16] + '"'
                      for name, p in self.files.items()}
        self.faults: dict[str, deque] = defaultdict(deque)
        self.log: list[Hit] = []
        self.base = None
        self._server: ServerThread | None = None

    # -- control (from the test thread) ---------------------------------------------------------
    def url(self, name: str) -> str:
        return f"{self.base}files/{name}"

    def inject(self, name: str, *faults: Fault) -> None:
        self.faults[name].extend(faults)

    def reset(self) -> None:
        self.faults.clear()
        self.log.clear()

    def gets(self, name: str | None = None) -> list[Hit]:
        return [h for h in self.log if h.method == "GET" and (name is None or h.name == name)]

    def start(self) -> "FaultServer":
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # cut connections are the point
        app = web.Application()
        app.router.add_route("*", "/files/{name}", self._handle)
        self._server = ServerThread(app, "fault-server")
        self.base = f"http://127.0.0.1:{self._server.start()}/"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    # -- serving ----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hit = Hit(request.method, name, request.headers.get("Range"),
                  request.headers.get("Authorization"))
        self.log.append(hit)
        if request.method == "OPTIONS":
            hit.status = 204
            return web.Response(status=204, headers={**CORS, "Access-Control-Allow-Headers": "Range, Authorization",
                                                     "Access-Control-Allow-Methods": "GET, HEAD"})
        path = self.files.get(name)
        if path is None:
            hit.status = 404
            return web.Response(status=404, headers=CORS)
        fault = self.faults[name].popleft() if self.faults[name] and request.method == "GET" else None
        if fault and fault.kind == "status":
            hit.status = fault.status
            return web.Response(status=fault.status, headers=CORS, text="injected failure")
        size = path.stat().st_size
        start, end = 0, size - 1
        headers = {**CORS, "ETag": self.etags[name]}
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if m and not (fault and fault.kind in ("ignore_range", "no_length")):
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if start >= size:
                hit.status = 416
                return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if not (fault and fault.kind in ("ignore_range", "no_length")):
            headers["Accept-Ranges"] = "bytes"
        hit.status = 206 if "Content-Range" in headers else 200
        length = end - start + 1
        resp = web.StreamResponse(status=hit.status, headers=headers)
        resp.content_type = "application/octet-stream"
        limit = length
        if fault and fault.kind == "no_length":
            resp.enable_chunked_encoding()
        else:
            declared = length + (fault.delta if fault and fault.kind == "length" else 0)
            resp.content_length = declared
            limit = min(length, declared)
        if fault and fault.kind in ("drop", "stall"):
            limit = min(length, fault.after)
        if request.method == "HEAD":
            await resp.prepare(request)
            return resp
        await resp.prepare(request)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                while hit.sent < limit:
                    piece = f.read(min(PIECE, limit - hit.sent))
                    await resp.write(piece)
                    hit.sent += len(piece)
                    if fault and fault.kind == "slow":
                        await asyncio.sleep(fault.seconds * len(piece) / limit)
            cut = fault and (fault.kind in ("drop", "stall") or (fault.kind == "length" and fault.delta > 0))
            if fault and fault.kind == "stall":
                await asyncio.sleep(fault.seconds)
            if cut:
                request.transport.close()
                return resp
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, RuntimeError):
            pass
        return resp
