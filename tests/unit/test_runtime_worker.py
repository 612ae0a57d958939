"""app/runtime/worker.py's WorkerLoop under CPython, with a small scripted service in place of
LocalLLM: routing, replies with status, named errors, streams (items, done, cancel before and
after the first item), and that interrupt/getStatus are answered while a request is running.

Coroutines run on conftest's `run` loop (its own thread: Playwright's sync API may hold a loop
on the main thread when browser tests share the process). The real service in the real worker is tested in tests/browser/test_runtime_browser.py; this
file pins the loop's own rules, which the browser test cannot provoke deterministically (a
stream cancelled while still queued behind another generation)."""
from __future__ import annotations

import asyncio
import json

import pytest

from app.runtime.worker import WorkerLoop, _dumps


class NotLoadedError(RuntimeError):
    pass


class FakeService:
    """One generation at a time (a lock, like the service's FIFO queue); interrupt() ends the
    running one after its current token."""

    def __init__(self):
        self.lock = asyncio.Lock()
        self.state = "idle"
        self.interrupts = 0
        self.abort = False
        self.gate = asyncio.Event()          # tokens flow while set

    def status(self):
        return {"state": self.state, "model": None, "progress": 0.0, "error": None}

    def interrupt(self):
        self.interrupts += 1
        self.abort = True

    async def init(self, model_id=None, *, context_length=None):
        return {"model": model_id or "default", "load_s": 0.5, "ctx": context_length}

    async def chat(self, messages, *, stream=False, max_tokens=3):
        if not messages:
            raise NotLoadedError("call init() first")
        gen = self._gen(max_tokens)
        if stream:
            return gen
        text = "".join([item["delta"] async for item in gen])
        return {"text": text, "finish_reason": "stop"}

    async def _gen(self, n):
        async with self.lock:
            self.state, self.abort = "generating", False
            try:
                for i in range(n):
                    await self.gate.wait()
                    await asyncio.sleep(0)
                    if self.abort:
                        yield {"delta": "", "finish_reason": "abort"}
                        return
                    last = i == n - 1
                    yield {"delta": f"t{i}", **({"finish_reason": "length"} if last else {})}
            finally:
                self.state = "idle"


class Page:
    """Collects what the loop posts; send() delivers a request as the worker's JS would."""

    def __init__(self, service):
        self.msgs = []
        self.loop = WorkerLoop(service, lambda m: self.msgs.append(json.loads(_dumps(m))))
        self.next = 1

    def send(self, op, *args, **kwargs) -> int:
        rid, self.next = self.next, self.next + 1
        self.loop.on_message(json.dumps({"id": rid, "op": op, "args": list(args), "kwargs": kwargs}))
        return rid

    def of(self, rid):
        return [m for m in self.msgs if m.get("id") == rid]

    async def until(self, cond, steps=200):
        for _ in range(steps):
            if cond():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"condition never held; messages: {self.msgs}")


def test_replies_carry_results_status_and_named_errors(run):
    async def go():
        svc = FakeService()
        svc.gate.set()
        page = Page(svc)
        a = page.send("init", "m1", context_length=128)
        b = page.send("chat", [])
        c = page.send("nope")
        d = page.send("getStatus")               # answered synchronously, before the others
        assert page.of(d) == [{"id": d, "result": svc.status(), "status": svc.status()}]
        await page.until(lambda: page.of(a) and page.of(b) and page.of(c))
        assert page.of(a)[0]["result"] == {"model": "m1", "load_s": 0.5, "ctx": 128}
        assert page.of(a)[0]["status"]["state"] == "idle"
        assert page.of(b)[0]["error"] == {"name": "NotLoadedError", "message": "call init() first"}
        assert page.of(c)[0]["error"]["name"] == "ValueError" and "nope" in page.of(c)[0]["error"]["message"]
    run(go())


def test_stream_items_then_done_and_nan_becomes_null(run):
    async def go():
        svc = FakeService()
        svc.gate.set()
        page = Page(svc)
        rid = page.send("chat", [{"role": "user", "content": "x"}], stream=True, max_tokens=3)
        await page.until(lambda: any(m.get("done") for m in page.of(rid)))
        msgs = page.of(rid)
        assert msgs[0] == {"id": rid, "stream": True}
        assert [m["item"]["delta"] for m in msgs[1:-1]] == ["t0", "t1", "t2"]
        assert msgs[-2]["item"]["finish_reason"] == "length" and msgs[-1]["done"] is True
        assert json.loads(_dumps({"x": float("nan"), "y": [float("inf")]})) == {"x": None, "y": [None]}
    run(go())


def test_interrupt_is_answered_while_a_generation_runs(run):
    async def go():
        svc = FakeService()
        page = Page(svc)
        rid = page.send("chat", [{"role": "user", "content": "x"}], max_tokens=50)
        await page.until(lambda: svc.state == "generating")
        i = page.send("interrupt")
        assert page.of(i)[0]["result"] is None and svc.interrupts == 1
        svc.gate.set()
        await page.until(lambda: page.of(rid))
        assert page.of(rid)[0]["result"] == {"text": "", "finish_reason": "stop"}
    run(go())


@pytest.mark.parametrize("when", ["after-first-item", "while-queued"])
def test_cancelled_stream_stops_only_itself(when, run):
    """Leaving a stream early cancels its consuming task, which closes the service's iterator:
    a running stream stops producing (nothing more is posted), a queued one never starts, and
    the other request is untouched (no interrupt(), which would stop whatever runs)."""
    async def go():
        svc = FakeService()
        page = Page(svc)
        first = page.send("chat", [{"role": "user", "content": "a"}], stream=True, max_tokens=4)
        second = page.send("chat", [{"role": "user", "content": "b"}], stream=True, max_tokens=4)
        await page.until(lambda: page.of(first) and page.of(second))   # both streams posted
        if when == "after-first-item":
            svc.gate.set()
            await page.until(lambda: len(page.of(first)) >= 2)
            svc.gate.clear()
            page.send("cancel", first)
            svc.gate.set()
        else:
            page.send("cancel", second)
            svc.gate.set()
        await page.until(lambda: any(m.get("done") for m in page.of(first))
                         and any(m.get("done") for m in page.of(second)))
        items = {rid: [m["item"]["delta"] for m in page.of(rid) if "item" in m]
                 for rid in (first, second)}
        full = ["t0", "t1", "t2", "t3"]
        if when == "after-first-item":
            assert items == {first: ["t0"], second: full}
        else:
            assert items == {first: full, second: []}
        assert svc.interrupts == 0 and svc.state == "idle" and not svc.lock.locked()
    run(go())
