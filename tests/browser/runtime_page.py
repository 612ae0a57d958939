"""Helpers for browser tests of the runtime API on the real page (index.html): the JS facade
(window.LocalLLM, static/local-llm.js) over the engine worker, and Python in the page's own
PyScript interpreter through app.runtime.client.

    page, log = open_app(context, server.url)     # booted: api-ready fired, dashboard up
    js_events(page)                               # every local-llm:* window event so far
    py(page, "result = await llm.chat(...)")      # Python in the page; `llm` is connected
    foreign_requests(log, server.url)             # requests to any other host

The recorders are installed before the page's scripts run (an init script): window events
(CustomEvent "local-llm:<name>"), the same events through LocalLLM.on (whose second argument
carries the worker's GPU ledger snapshot), and, from api-ready on, a PerformanceObserver for
main-thread long tasks (buffered, so nothing between registration and its first callback is
lost).
"""
from __future__ import annotations

import json
from urllib.parse import urlparse

BOOT_TIMEOUT_MS = 240_000       # two Pyodides (worker + PyScript) start on a 2-core machine
EVENTS = ("loading", "progress", "ready", "error", "memory-warning", "status", "backend")

RECORDERS = """
(() => {
  const names = %s;
  window.__win = [];                 // {name, detail, t} from window CustomEvents
  window.__on = [];                  // {name, detail, memory, t} from LocalLLM.on
  window.__longTasks = [];           // {start, duration} of main-thread tasks > 50 ms
  window.__apiReady = null;          // performance.now() at local-llm:api-ready
  for (const name of names) {
    window.addEventListener(`local-llm:${name}`,
      (e) => window.__win.push({ name, detail: e.detail, t: performance.now() }));
  }
  window.addEventListener("local-llm:api-ready", () => {
    window.__apiReady = performance.now();
    for (const name of names) {
      window.LocalLLM.on(name, (detail, meta) =>
        window.__on.push({ name, detail, memory: meta.memory, t: performance.now() }));
    }
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: "longtask", buffered: true });
  }, { once: true });
})();
""" % json.dumps(list(EVENTS))

# Python in the page's PyScript interpreter: a <script type="py"> added to the page runs there
# (PyScript picks up new script elements), defines window.__runPy(code) -> JSON text, and
# connects one LocalLLMClient. Test code runs with eval_code_async in one namespace kept across
# calls (`llm`, anything a test stores); it sets `result` (JSON-able).
PY_RUNNER = """
import json, traceback
from js import window
from pyodide.code import eval_code_async
from pyodide.ffi import create_proxy
from app.runtime.client import LocalLLMClient

_ns = {"__name__": "__runtime_test__"}

async def _run(code):
    _ns["result"] = None
    try:
        if "llm" not in _ns:
            _ns["llm"] = await LocalLLMClient.connect()
        await eval_code_async(code, globals=_ns, filename="<runtime-test>")
        return json.dumps({"result": _ns["result"], "error": None})
    except BaseException:
        return json.dumps({"result": None, "error": traceback.format_exc()})

window.__runPy = create_proxy(_run)
"""

INSTALL_PY = """(code) => new Promise((resolve) => {
  const s = document.createElement("script");
  s.type = "py";
  s.textContent = code;
  document.body.appendChild(s);
  const poll = () => (window.__runPy ? resolve(true) : setTimeout(poll, 50));
  poll();
})"""


class PagePythonError(AssertionError):
    """Python run in the page raised; the message is its traceback."""


def open_app(context, base_url: str):
    """Open index.html in `context` with the recorders; wait for api-ready and the dashboard.
    Returns (page, request log: list of URLs, including the engine worker's requests)."""
    context.add_init_script(RECORDERS)
    page = context.new_page()
    log: list[str] = []
    page.on("request", lambda r: log.append(r.url))
    page.goto(base_url)
    page.wait_for_function("window.__apiReady !== null && document.body.dataset.pyReady",
                           timeout=BOOT_TIMEOUT_MS)
    return page, log


def js_events(page, since: int = 0, source: str = "__win") -> list[dict]:
    """Recorded events (window CustomEvents, or "__on" for LocalLLM.on with `memory`)."""
    return page.evaluate(f"window.{source}.slice({int(since)})")


def event_count(page) -> int:
    return page.evaluate("window.__win.length")


def long_tasks(page) -> list[dict]:
    return page.evaluate("window.__longTasks")


def now(page) -> float:
    """The page's performance.now() (ms), the clock of events and long tasks."""
    return page.evaluate("performance.now()")


def py(page, code: str):
    """Run async Python `code` in the page's PyScript interpreter (with `llm`, a connected
    LocalLLMClient); returns its `result`. Raises PagePythonError with the page's traceback."""
    if not page.evaluate("!!window.__runPy"):
        page.evaluate(INSTALL_PY, PY_RUNNER)
    reply = json.loads(page.evaluate("(code) => window.__runPy(code)", code))
    if reply["error"]:
        raise PagePythonError("Python in the page failed:\n" + reply["error"])
    return reply["result"]


def foreign_requests(log: list[str], base_url: str) -> list[str]:
    host = urlparse(base_url).netloc
    return [u for u in log if urlparse(u).scheme in ("http", "https", "ws", "wss")
            and urlparse(u).netloc != host]


def no_webgpu_launch_args(launch_args: dict) -> dict:
    """Chromium's launch arguments without --enable-unsafe-webgpu: headless Linux Chromium then
    grants no WebGPU adapter (navigator.gpu exists, requestAdapter() resolves null), in the
    page and in its workers alike."""
    return {**launch_args, "args": [a for a in launch_args.get("args", [])
                                    if a != "--enable-unsafe-webgpu"]}


# -- page-side code of tests/browser/test_runtime_browser.py ------------------------------------
# JS run with page.evaluate (through window.LocalLLM), Python run with py() (through `llm`).

STREAM_JS = """async ([msgs, opts]) => {
  const items = [], t0 = performance.now();
  for await (const item of await LocalLLM.chat(msgs, {...opts, stream: true})) items.push(item);
  return {items, t: [t0, performance.now()]};
}"""


INTERRUPT_JS = """async ([msgs]) => {
  // interrupt() after the first item; the stream ends with "abort"; the next request at once.
  const items = [], t0 = performance.now();
  let tInterrupt = null;
  for await (const item of await LocalLLM.chat(msgs, {stream: true, maxTokens: 64, seed: 1})) {
    items.push(item);
    if (tInterrupt === null) { tInterrupt = performance.now(); await LocalLLM.interrupt(); }
  }
  const tEnd = performance.now();
  const next = await LocalLLM.chat(msgs, {maxTokens: 2, seed: 2});
  return {items, next, tInterrupt, tEnd, t: [t0, performance.now()], status: LocalLLM.getStatus()};
}"""


BREAK_JS = """async ([msgs]) => {
  // Leaving the for-await loop early stops that generation (the facade cancels it).
  const t0 = performance.now();
  let first = null;
  for await (const item of await LocalLLM.chat(msgs, {stream: true, maxTokens: 64, seed: 3})) {
    first = item;
    break;
  }
  const tBreak = performance.now();
  const next = await LocalLLM.chat(msgs, {maxTokens: 2, seed: 4});
  return {first, next, tBreak, tNext: performance.now(), t: [t0, performance.now()]};
}"""


QUEUE_JS = """async ([msgs]) => {
  // Two requests sent together: each item is stamped; the second must wait for the first.
  const log = [];
  const consume = async (name, stream) => {
    for await (const item of stream) log.push({name, t: performance.now(), item});
    log.push({name, t: performance.now(), done: true});
  };
  const t0 = performance.now();
  const [a, b] = await Promise.all([
    LocalLLM.chat(msgs, {stream: true, maxTokens: 3, seed: 5}),
    LocalLLM.chat(msgs, {stream: true, maxTokens: 3, seed: 6}),
  ]);
  const statusWhile = LocalLLM.getStatus();
  await Promise.all([consume("a", a), consume("b", b)]);
  return {log, statusWhile, t: [t0, performance.now()], status: LocalLLM.getStatus()};
}"""


PY_RELOAD = """
events = []
offs = [llm.on(name, lambda d, name=name: events.append([name, d]))
        for name in ("loading", "progress", "ready", "error", "status")]
steps = {"start": llm.status()}
await llm.unload()
steps["unloaded"] = llm.status()
steps["unloaded_memory"] = (await llm.runtime_info())["memory"]
reply = await llm.init(None, context_length=256)
steps["loaded"] = llm.status()
n = len(events)
for off in offs:
    off()
await llm.chat([{"role": "user", "content": "Hi"}], max_tokens=1)   # status events, unheard
result = {"reply": reply, "events": events, "steps": steps, "before_off": n,
          "after_off": len(events)}
"""


PY_GENERATE = """
import asyncio
msgs, seed = inputs["msgs"], inputs["seed"]
opts = dict(seed=seed, temperature=0.8, top_k=40, max_tokens=4)
whole = await llm.chat(msgs, **opts)
stream = await llm.chat(msgs, stream=True, **opts)
items = [item async for item in stream]
s1 = llm.status()

# Leave a stream early (aclose), then at once a new request.
long = await llm.chat(msgs, stream=True, max_tokens=64, seed=seed)
first = await long.__anext__()
await long.aclose()
nxt = await llm.complete("The capital of France is", max_tokens=2, seed=seed)

# Two requests at once, consumed concurrently: the second waits for the first.
log = []
async def consume(name, s):
    async for item in s:
        log.append(name)
a = await llm.chat(msgs, stream=True, max_tokens=2, seed=1)
b = await llm.chat(msgs, stream=True, max_tokens=2, seed=2)
await asyncio.gather(consume("a", a), consume("b", b))

oa = await llm.chat_completions.create(messages=msgs, max_tokens=1, seed=seed)
try:
    await llm.chat([], max_tokens=2)
    bad = None
except Exception as e:
    bad = [type(e).__name__, e.name, str(e)]
result = dict(whole=whole, items=items, s1=s1, first=first, next=nxt, log=log, oa=oa, bad=bad,
              status=llm.status())
"""


FAILED_INIT_JS = """async () => {
  const n = window.__win.length;
  const failed = await LocalLLM.init("models/%s").then(
    () => null, (e) => [e.name, e.message]);
  const afterFail = LocalLLM.getStatus();
  const chat = await LocalLLM.chat([{role: "user", content: "hi"}]).then(() => null, (e) => e.name);
  const t0 = performance.now();
  const retry = await LocalLLM.init(null, {contextLength: 64});
  return {failed, afterFail, chat, retry, events: window.__win.slice(n),
          t: [t0, performance.now()], status: LocalLLM.getStatus()};
}"""


NO_GPU_JS = """async () => {
  const errors = [];
  window.addEventListener("local-llm:error", (e) => errors.push(e.detail));
  const check = await LocalLLM.checkWebGPU().then(() => null, (e) => [e.name, e.message]);
  const afterCheck = LocalLLM.getStatus();
  // backend "webgpu": the default "auto" would load the model on the CPU backend instead
  const init = await LocalLLM.init(null, {backend: "webgpu"}).then(() => null, (e) => [e.name, e.message]);
  return {check, init, errors, afterCheck, status: LocalLLM.getStatus()};
}"""
