"""The runtime API in headless Chromium, on the real page (index.html): the engine (LocalLLM over
BrowserPlatform: WebGPU on SwiftShader, the IndexedDB weight store) runs in its Web Worker and
is driven through the JS facade (window.LocalLLM, static/local-llm.js) and through Python in the
page's PyScript interpreter (app.runtime.client.LocalLLMClient).

One page for the module (SwiftShader is slow: SmolLM2-135M decodes ~2-4 tok/s, its first load
takes ~10-30 s), so the tests run in file order on shared state: SmolLM2 is loaded by the
`loaded` fixture (the bundled file, downloaded from the test server into IndexedDB), and the
last model tests switch to gemma-3-270m (real weights, served by the test server, added by URL)
and unload. Replies are kept to a few tokens.

Checked through JS: init's events (order, payloads, monotonic progress through the phases) and
the worker's ledger snapshots; non-stream == stream for one seed at temperature > 0, usage,
chat.completions.create; interrupt, then an immediate next request; leaving a stream early;
two concurrent requests run one after the other; switch with the ledger (old weights freed
before the new ones); unload to the baseline; getStatus after every step; no main-thread task
over 100 ms while loading and generating; no request to another host; a failed init leaves
the error state and init again recovers. Through Python: the same behaviours via the client
(events, unload/init from the cache, stream == non-stream, leaving a stream early, queueing,
named errors). Without WebGPU (Chromium without --enable-unsafe-webgpu): the named
error from checkWebGPU()/init() and the local-llm:error event.
"""
from __future__ import annotations

import os
import random
import shutil

import pytest

from tests.browser.runtime_page import (BREAK_JS, FAILED_INIT_JS, INTERRUPT_JS, NO_GPU_JS,
                                        PY_GENERATE, PY_RELOAD, QUEUE_JS, STREAM_JS,
                                        event_count, foreign_requests, js_events, long_tasks,
                                        no_webgpu_launch_args, now, open_app, py)
from tests.fixtures_tokenizer import gemma_gguf  # noqa: F401 (fixture)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
PHASES = ("download", "cache", "upload", "compile")
USAGE = ("prompt_tokens", "completion_tokens", "prefill_tokens_per_s", "decode_tokens_per_s",
         "time_to_first_token_s", "e2e_latency_s")
QUESTIONS = ["What is the capital of France?", "Name three primary colors.",
             "How many legs does a spider have?", "Why is the sky blue?", "Say hello in Spanish."]
LONG_TASK_MS = 100          # the bound for main-thread tasks while loading/generating

# Windows (page ms) in which the engine loaded or generated, for the long-task test.
BUSY: list[tuple[float, float]] = []


def messages():
    return [{"role": "user", "content": random.choice(QUESTIONS)}]


def status(page) -> dict:
    return page.evaluate("LocalLLM.getStatus()")


def ready_status(model: str) -> dict:
    return {"state": "ready", "model": model, "progress": 1.0, "error": None,
            "backend": "webgpu", "backend_reason": None}


def collapse(seq):
    out = []
    for x in seq:
        if not out or out[-1] != x:
            out.append(x)
    return out


def states(events) -> list[str]:
    return [e["detail"]["state"] for e in events if e["name"] == "status"]


def check_usage(usage: dict, max_tokens: int) -> None:
    assert set(USAGE) <= set(usage), usage
    assert 0 < usage["completion_tokens"] <= max_tokens
    assert all(usage[k] > 0 for k in USAGE), usage
    assert usage["e2e_latency_s"] >= usage["time_to_first_token_s"]


def check_progress(progress: list[dict]) -> list[str]:
    """Payloads complete, fraction in [0, 1] and never decreasing, last exactly 1.0; returns
    the phase sequence (repeats collapsed)."""
    assert progress
    for d in progress:
        assert {"progress", "phase", "loaded_bytes", "total_bytes", "text"} <= set(d), d
        assert d["phase"] in PHASES and isinstance(d["text"], str) and d["text"]
        assert 0.0 <= d["progress"] <= 1.0
    fractions = [d["progress"] for d in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    return collapse(d["phase"] for d in progress)


# -- the page and the loaded model ------------------------------------------------------------
@pytest.fixture(scope="module")
def app(browser, server):
    """index.html in its own context (fresh IndexedDB; the service worker is tested in
    test_page.py and blocked here), booted: api-ready fired and the dashboard is up."""
    context = browser.new_context(service_workers="block")
    page, log = open_app(context, server.url)
    assert page.evaluate("document.body.dataset.pyReady") == "1"
    yield page, log
    context.close()


@pytest.fixture(scope="module")
def loaded(app, dist):
    """init() of the default model through the facade, with everything observed around it."""
    page, _ = app
    size = (dist / "models" / SMOLLM2_FILE).stat().st_size
    before = {"status": status(page), "info": page.evaluate("LocalLLM.getRuntimeInfo()"),
              "models": page.evaluate("LocalLLM.getAvailableModels()")}
    n0, t0 = event_count(page), now(page)
    result = page.evaluate("LocalLLM.init(null, {contextLength: 256})")
    t1 = now(page)
    BUSY.append((t0, t1))
    return {"result": result, "before": before, "size": size, "t": (t0, t1),
            "events": js_events(page, n0), "on": js_events(page, n0, "__on"),
            "status": status(page), "info": page.evaluate("LocalLLM.getRuntimeInfo()")}


def test_init_events_status_and_ledger_through_the_js_facade(loaded):
    before, r = loaded["before"], loaded["result"]
    default = [m for m in before["models"] if m.get("default")]
    assert len(default) == 1 and default[0]["bundled"] and not default[0]["cached"]
    model = default[0]["id"]
    assert before["status"] == {"state": "idle", "model": None, "progress": 0, "error": None,
            "backend": None, "backend_reason": None}
    assert r["model"] == model and r["load_s"] > 0
    events = loaded["events"]
    names = [e["name"] for e in events]
    # loading first, every progress event between it and ready, ready last; status follows.
    assert names.count("loading") == 1 and names.count("ready") == 1 and "error" not in names
    i_load, i_ready = names.index("loading"), names.index("ready")
    assert all(i_load < i < i_ready for i, n in enumerate(names) if n == "progress")
    assert events[i_load]["detail"] == {"model": model}
    assert events[i_ready]["detail"]["model"] == model
    assert events[i_ready]["detail"]["load_s"] == pytest.approx(r["load_s"])
    assert states(events) == ["loading", "ready"]
    progress = [e["detail"] for e in events if e["name"] == "progress"]
    # A first load: downloaded from the site into IndexedDB, read back, uploaded, compiled.
    assert check_progress(progress) == ["download", "cache", "upload", "compile"]
    downloads = [d for d in progress if d["phase"] == "download"]
    assert downloads[-1]["loaded_bytes"] == downloads[-1]["total_bytes"] == loaded["size"]
    # The same events reach LocalLLM.on listeners, with the worker's ledger snapshot.
    on = loaded["on"]
    assert [(e["name"], e["detail"]) for e in on] == [(e["name"], e["detail"]) for e in events]
    baseline = before["info"]["memory"]["baseline"]
    assert before["info"]["memory"]["total"] == baseline
    at = {e["name"]: e["memory"] for e in on}
    assert on[[e["name"] for e in on].index("loading")]["memory"]["total"] == baseline
    # Q4_1 weights are uploaded as they are (repacked, not expanded): about the file's size.
    weights = at["ready"]["live"]["weights"]
    assert 0.9 * loaded["size"] < weights < 1.2 * loaded["size"]
    mem = loaded["info"]["memory"]
    assert mem["live"]["weights"] == weights and mem["total"] > weights
    assert loaded["status"] == ready_status(model)
    info = loaded["info"]
    assert info["backend"] == "webgpu" and info["platform"] == "browser"
    assert info["adapter"]["architecture"] == "swiftshader" and info["limits"]["maxBufferSize"] > 0
    assert info["versions"]["pyodide"] == "314.0.7" and info["versions"]["python"].startswith("3.")
    assert info["versions"]["@huggingface/tokenizers"]


def test_stream_equals_non_stream_with_usage_through_the_js_facade(app, loaded):
    page, _ = app
    model = loaded["result"]["model"]
    msgs, seed = messages(), random.randrange(2**31)
    opts = {"seed": seed, "temperature": 0.9, "topP": 0.95, "maxTokens": 6}
    n0, t0 = event_count(page), now(page)
    whole = page.evaluate("([m, o]) => LocalLLM.chat(m, o)", [msgs, opts])
    assert status(page) == ready_status(model)
    assert states(js_events(page, n0)) == ["generating", "ready"]
    n1 = event_count(page)
    s = page.evaluate(STREAM_JS, [msgs, opts])
    assert status(page) == ready_status(model)
    assert states(js_events(page, n1)) == ["generating", "ready"]
    openai = page.evaluate("""([m, seed]) => LocalLLM.chat.completions.create(
        {messages: m, seed, temperature: 0.9, topP: 0.95, maxTokens: 6})""", [msgs, seed])
    BUSY.append((t0, now(page)))
    items = s["items"]
    assert "".join(i["delta"] for i in items) == whole["text"] and whole["text"]
    assert all("finish_reason" not in i for i in items[:-1])
    assert items[-1]["finish_reason"] == whole["finish_reason"] in ("stop", "length")
    assert whole["model"] == items[-1]["model"] == model
    check_usage(whole["usage"], 6)
    check_usage(items[-1]["usage"], 6)
    assert items[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]
    assert openai["object"] == "chat.completion" and openai["model"] == model
    (choice,) = openai["choices"]
    assert choice["message"] == {"role": "assistant", "content": whole["text"]}
    assert choice["finish_reason"] == whole["finish_reason"]
    u = openai["usage"]
    assert u["completion_tokens"] == whole["usage"]["completion_tokens"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0


def test_interrupt_then_immediate_next_request_through_the_js_facade(app, loaded):
    page, _ = app
    model = loaded["result"]["model"]
    msgs = messages()
    r = page.evaluate(INTERRUPT_JS, [msgs])
    BUSY.append(tuple(r["t"]))
    items = r["items"]
    assert items[-1]["finish_reason"] == "abort"
    # It stops within one decode readback (a few tokens), far from its 64.
    aborted = items[-1]["usage"]["completion_tokens"]
    assert aborted < 16, aborted
    assert r["next"]["finish_reason"] == "length" and r["next"]["usage"]["completion_tokens"] == 2
    assert r["status"] == ready_status(model)
    rate = r["next"]["usage"]["decode_tokens_per_s"]
    n0 = event_count(page)
    b = page.evaluate(BREAK_JS, [msgs])
    BUSY.append(tuple(b["t"]))
    assert b["first"]["delta"] is not None and "finish_reason" not in b["first"]
    assert b["next"]["finish_reason"] == "length" and b["next"]["usage"]["completion_tokens"] == 2
    # The abandoned generation ended right after the break: the next request did not wait for
    # its remaining 63 tokens (at this machine's decode rate, half of them take this long).
    evs = js_events(page, n0)
    t_ready = next(e["t"] for e in evs if e["name"] == "status" and e["t"] > b["tBreak"]
                   and e["detail"]["state"] == "ready")
    assert (t_ready - b["tBreak"]) / 1000 < 0.5 * 63 / rate, (t_ready - b["tBreak"], rate)
    assert states(evs) == ["generating", "ready", "generating", "ready"]
    assert status(page) == ready_status(model)


def test_two_concurrent_requests_run_in_order_through_the_js_facade(app, loaded):
    page, _ = app
    model = loaded["result"]["model"]
    r = page.evaluate(QUEUE_JS, [messages()])
    BUSY.append(tuple(r["t"]))
    order = [e["name"] for e in r["log"]]
    assert order == sorted(order), order          # every "a" entry before any "b" entry
    for name in "ab":
        items = [e["item"] for e in r["log"] if e["name"] == name and "item" in e]
        assert items[-1]["finish_reason"] in ("stop", "length")
        check_usage(items[-1]["usage"], 3)
    # b's time to first token includes its wait for a: it was queued, not run alongside.
    a_end = next(e["t"] for e in r["log"] if e["name"] == "a" and e.get("done"))
    b_first = next(e["t"] for e in r["log"] if e["name"] == "b")
    assert b_first > a_end
    assert r["statusWhile"]["state"] in ("ready", "generating")
    assert r["status"] == ready_status(model)


# -- the same through Python in the page ------------------------------------------------------


def test_python_client_unload_and_cached_init_events(app, loaded):
    page, _ = app
    model = loaded["result"]["model"]
    t0 = now(page)
    r = py(page, PY_RELOAD)
    BUSY.append((t0, now(page)))
    steps, events = r["steps"], r["events"]
    assert steps["start"] == ready_status(model)
    assert steps["unloaded"] == {"state": "idle", "model": None, "progress": 0, "error": None,
            "backend": None, "backend_reason": None}
    mem = steps["unloaded_memory"]
    assert mem["total"] == mem["baseline"] and not mem["live"].get("weights")
    assert steps["loaded"] == ready_status(model)
    assert r["reply"]["model"] == model and r["reply"]["load_s"] > 0
    names = [n for n, _ in events]
    assert names[0] == "status" and events[0][1]["state"] == "idle"
    i_load, i_ready = names.index("loading"), names.index("ready")
    assert events[i_load][1] == {"model": model} and events[i_ready][1]["model"] == model
    progress = [d for n, d in events if n == "progress"]
    # Cached now: no download, straight from IndexedDB to the GPU.
    assert check_progress(progress) == ["cache", "upload", "compile"]
    assert [d["state"] for n, d in events if n == "status"] == ["idle", "loading", "ready"]
    assert r["after_off"] == r["before_off"] == len(events)


def test_python_client_stream_interrupt_queue_and_errors(app, loaded):
    page, _ = app
    model = loaded["result"]["model"]
    msgs, seed = messages(), random.randrange(2**31)
    t0 = now(page)
    code = f"inputs = {{'msgs': {msgs!r}, 'seed': {seed}}}\n" + PY_GENERATE
    r = py(page, code)
    BUSY.append((t0, now(page)))
    whole, items = r["whole"], r["items"]
    assert "".join(i["delta"] for i in items) == whole["text"] and whole["text"]
    assert items[-1]["finish_reason"] == whole["finish_reason"]
    check_usage(whole["usage"], 4)
    check_usage(items[-1]["usage"], 4)
    assert r["s1"] == ready_status(model)
    assert "delta" in r["first"] and "finish_reason" not in r["first"]
    assert r["next"]["finish_reason"] == "length" and r["next"]["usage"]["completion_tokens"] == 2
    assert r["log"] == sorted(r["log"]) and set(r["log"]) == {"a", "b"}
    assert r["oa"]["object"] == "chat.completion" and r["oa"]["choices"][0]["message"]["content"]
    # A named error crosses worker -> facade -> Python with its class name and message.
    assert r["bad"][:2] == ["RuntimeAPIError", "ValueError"] and "non-empty list" in r["bad"][2]
    assert r["status"] == ready_status(model)


# -- switch and unload --------------------------------------------------------------------------
def test_switch_to_gemma_frees_the_old_weights_first_then_unload(app, loaded, dist, gemma_gguf):
    """switch_model(SmolLM2 -> gemma-3-270m): the worker's ledger snapshot on every event shows
    the old model's buffers gone (total at the baseline) when the new load starts, and no
    snapshot during the load holds more weights than gemma's own; the ledger's peak stays
    below old + new. Then a short completion on gemma, and unload back to the baseline."""
    page, _ = app
    target = dist / "models" / GEMMA_FILE
    if not target.exists():
        try:
            os.link(gemma_gguf, target)
        except OSError:
            shutil.copyfile(gemma_gguf, target)
    try:
        old = page.evaluate("LocalLLM.getRuntimeInfo()")["memory"]
        baseline = old["baseline"]
        n0, t0 = event_count(page), now(page)
        r = page.evaluate("LocalLLM.switchModel('models/%s', {contextLength: 128})" % GEMMA_FILE)
        s = status(page)
        info = page.evaluate("LocalLLM.getRuntimeInfo()")
        done = page.evaluate("LocalLLM.complete('The capital of France is', {maxTokens: 2})")
        s2 = status(page)
        BUSY.append((t0, now(page)))
        page.evaluate("LocalLLM.unload()")
        s3 = status(page)
        after = page.evaluate("LocalLLM.getRuntimeInfo()")["memory"]
    finally:
        target.unlink(missing_ok=True)
    gemma = r["model"]
    assert gemma.startswith("gemma-3-270m-q4_k_m-") and r["load_s"] > 0
    on = js_events(page, n0, "__on")
    names = [e["name"] for e in on]
    i_load = names.index("loading")
    assert on[i_load]["detail"] == {"model": gemma}
    # unload of the old model came first (status idle), then the new load.
    assert [e["detail"]["state"] for e in on if e["name"] == "status"][:3] == \
        ["idle", "loading", "ready"]
    assert on[i_load]["memory"]["total"] == baseline
    new_weights = info["memory"]["live"]["weights"]
    assert all(e["memory"]["live"].get("weights", 0) <= new_weights for e in on[i_load:])
    assert info["memory"]["peak"] < old["total"] + new_weights
    assert check_progress([e["detail"] for e in on if e["name"] == "progress"])[0] == "download"
    assert s == ready_status(gemma) and s2 == ready_status(gemma)
    assert done["model"] == gemma and done["finish_reason"] in ("stop", "length")
    check_usage(done["usage"], 2)
    assert s3 == {"state": "idle", "model": None, "progress": 0, "error": None,
            "backend": None, "backend_reason": None}
    assert after["total"] == baseline and not after["live"].get("weights"), after
    assert page.evaluate("LocalLLM.chat([{role: 'user', content: 'hi'}]).catch(e => e.name)") \
        == "NotLoadedError"


def test_failed_init_sets_the_error_state_and_init_again_recovers(app, loaded):
    """A load that fails (a model URL the server does not have: DownloadError, HTTP 404) leaves
    status "error" with the named error and fires local-llm:error; chat is then NotLoadedError;
    init() again loads cleanly."""
    page, _ = app
    model = loaded["result"]["model"]
    r = page.evaluate(FAILED_INIT_JS % "no-such-model.gguf")
    BUSY.append(tuple(r["t"]))
    assert r["failed"][0] == "DownloadError" and "404" in r["failed"][1], r["failed"]
    err = {"name": "DownloadError", "message": r["failed"][1]}
    assert r["afterFail"] == {"state": "error", "model": None, "progress": 0, "error": err,
                              "backend": None, "backend_reason": None}
    errors = [e["detail"] for e in r["events"] if e["name"] == "error"]
    assert len(errors) == 1 and errors[0]["name"] == err["name"] and errors[0]["model"]
    assert r["chat"] == "NotLoadedError"
    assert r["retry"]["model"] == model and r["status"] == ready_status(model)
    assert states(r["events"])[-2:] == ["loading", "ready"]
    page.evaluate("LocalLLM.unload()")
    assert status(page)["state"] == "idle"


def test_lost_gpu_device_gives_the_named_error_and_init_recovers(app, loaded):
    """The engine's GPUDevice destroyed under a loaded model (LocalLLM.loseDevice(): what a
    driver reset does; WebGPU resolves device.lost): the next chat fails with DeviceLostError,
    status is "error" with that error, local-llm:error fires once, and init() opens a new device
    and loads the model again, which then chats."""
    page, _ = app
    model = loaded["result"]["model"]
    r = page.evaluate("""async () => {
  const t0 = performance.now();
  await LocalLLM.init(null, {contextLength: 64});
  const n = window.__win.length;
  const lost = await LocalLLM.loseDevice();
  const chat = await LocalLLM.chat([{role: "user", content: "hi"}], {maxTokens: 2}).then(
    () => null, (e) => [e.name, e.message]);
  const afterLoss = LocalLLM.getStatus();
  const events = window.__win.slice(n);
  const retry = await LocalLLM.init(null, {contextLength: 64});
  const again = await LocalLLM.complete("The capital of France is", {maxTokens: 2});
  return {lost, chat, afterLoss, events, retry, again, status: LocalLLM.getStatus(),
          t: [t0, performance.now()]};
}""")
    BUSY.append(tuple(r["t"]))
    assert r["lost"]["reason"] == "destroyed"
    assert r["chat"][0] == "DeviceLostError" and "Reload the model" in r["chat"][1], r["chat"]
    assert r["afterLoss"] == {"state": "error", "model": None, "progress": 0,
                              "error": {"name": "DeviceLostError", "message": r["chat"][1]},
                              "backend": None, "backend_reason": None}
    errors = [e["detail"] for e in r["events"] if e["name"] == "error"]
    assert len(errors) == 1 and errors[0]["name"] == "DeviceLostError"
    assert r["retry"]["model"] == model and r["status"] == ready_status(model)
    assert r["again"]["finish_reason"] in ("stop", "length") and r["again"]["model"] == model
    page.evaluate("LocalLLM.unload()")
    assert status(page)["state"] == "idle"


# -- the page's thread and the network ------------------------------------------------------
def test_no_long_main_thread_task_while_loading_and_generating(app, loaded):
    """A longtask PerformanceObserver (registered at api-ready, buffered) saw no task over
    100 ms on the page's thread in any window in which the worker loaded or generated (every
    load and generation of this module before this test, SmolLM2's and gemma's; the Python
    tests' windows included: the client's own work on the page's thread counts too)."""
    page, _ = app
    tasks = long_tasks(page)
    busy_ms = sum(b - a for a, b in BUSY)
    assert busy_ms > 5_000            # at least the first load (more when the module runs whole)
    bad = [t for t in tasks if t["duration"] > LONG_TASK_MS
           and any(a <= t["start"] <= b or t["start"] <= a <= t["start"] + t["duration"]
                   for a, b in BUSY)]
    print(f"{len(tasks)} long tasks over the page's life, {busy_ms / 1000:.0f} s watched; "
          f"over {LONG_TASK_MS} ms while busy: {bad}")
    assert bad == []


def test_the_page_requested_nothing_from_another_host(app, server):
    page, log = app
    assert foreign_requests(log, server.url) == []
    assert any(u.endswith("/static/engine-worker.js") for u in log)
    assert any(u.endswith("/" + SMOLLM2_FILE) for u in log)


# -- without WebGPU -----------------------------------------------------------------------------


def test_missing_webgpu_gives_the_named_error_and_event(browser_type, browser_type_launch_args,
                                                        server):
    browser = browser_type.launch(**no_webgpu_launch_args(browser_type_launch_args))
    try:
        context = browser.new_context(service_workers="block")
        page, log = open_app(context, server.url)
        # The page stays usable: models run on the CPU backend (test_cpu_backend_browser.py).
        assert page.evaluate("document.body.dataset.pyReady") == "1"
        assert "WebGPU is unavailable" in page.inner_text("#banner")
        assert "cpu" in page.inner_text("#rt-backend")
        r = page.evaluate(NO_GPU_JS)
        p = py(page, """
try:
    await llm.check_webgpu()
    result = None
except Exception as e:
    result = [e.name, str(e)]
""")
    finally:
        browser.close()
    assert r["check"][0] == "WebGPUUnavailableError"
    assert "enable-unsafe-webgpu" in r["check"][1] and "Chrome or Edge 113" in r["check"][1]
    assert r["afterCheck"]["state"] == "idle"
    assert r["init"][0] == "WebGPUUnavailableError"
    assert [e["name"] for e in r["errors"]] == ["WebGPUUnavailableError"] * 2
    assert r["errors"][0]["message"] == r["check"][1]
    assert r["status"]["state"] == "error"
    assert r["status"]["error"]["name"] == "WebGPUUnavailableError"
    assert p[0] == "WebGPUUnavailableError" and "enable-unsafe-webgpu" in p[1]
    assert foreign_requests(log, server.url) == []
