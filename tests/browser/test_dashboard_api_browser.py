"""The dashboard's runtime API in headless Chromium: the JS facade (static/local-llm.js) over the
real engine worker (Pyodide, WebGPU on SwiftShader, the IndexedDB weight store and settings
store), with the bundled SmolLM2 GGUF served by the fault-injecting Range server
(tests/fault_server.py, another origin, as Hugging Face is).

One page for the module, tests in file order on shared state:
1. addModel(url) of the GGUF, init it through a throttled server, cancelLoad() mid-download:
   LoadCancelledError, status idle, a busy deleteCached refused with ModelBusyError, getCache
   shows the partial file; a second init resumes with a Range request past 0 and the model chats.
2. importModelFile: a non-GGUF and a truncated GGUF are refused by name and leave getCache as it
   was; the real file (fetched into a Blob, made a File in the page) is imported with "import"
   progress, then init and chat with no request for weights; deleting the loaded model's files
   is allowed and it keeps answering; a preset cannot be removed; a bad URL is a named error.
3. A reload (a later visit): the user models come back from the settings store; removeModel
   takes one out with its files, and it stays out after another reload.

The page is a minimal one written into the test build (the facade only: index.html's dashboard
and its second Pyodide are not needed to drive the worker).
"""
from __future__ import annotations

import re

import pytest

from tests.fault_server import Fault, FaultServer

PAGE = "__dashboard_api_test.html"
HTML = """<!doctype html><meta charset="utf-8"><title>dashboard API test</title>
<script>
  window.__events = [];
  window.__ready = false;
  for (const name of ["loading", "progress", "ready", "error", "status"]) {
    addEventListener(`local-llm:${name}`, (e) => window.__events.push({name, detail: e.detail}));
  }
  addEventListener("local-llm:api-ready", () => { window.__ready = true; });
</script>
<script type="module" src="./static/local-llm.js"></script>"""
BOOT_MS = 240_000
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HI = [{"role": "user", "content": "Hi"}]


def _open(context, base: str):
    page = context.new_page()
    log: list[str] = []
    page.on("request", lambda r: log.append(r.url))
    page.goto(base + PAGE)
    page.wait_for_function("window.__ready", timeout=BOOT_MS)
    return page, log


@pytest.fixture(scope="module")
def fault(smollm2_gguf):
    srv = FaultServer({GGUF: smollm2_gguf}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def app(browser, server, dist):
    # Written into the test build and served by its server: a page Playwright fulfilled itself
    # would not count as loopback, and Chromium's local network access rules would then block
    # its fetch from the fault server.
    (dist / PAGE).write_text(HTML, encoding="utf-8")
    context = browser.new_context(service_workers="block")
    page, log = _open(context, server.url)
    state = {"context": context, "page": page, "log": log, "base": server.url}
    yield state
    context.close()


def call(page, expr: str, *args):
    """Evaluate an async JS arrow over LocalLLM; a rejection comes back as {error: [name, msg]}."""
    return page.evaluate(f"""async (args) => {{
      try {{ return {{value: await ({expr})(...args)}}; }}
      catch (e) {{ return {{error: [e.name, e.message]}}; }}
    }}""", list(args))


def value(page, expr: str, *args):
    r = call(page, expr, *args)
    assert "error" not in r, r["error"]
    return r["value"]


def cached(cache: dict, model_id: str) -> dict | None:
    return next((m for m in cache["models"] if m["id"] == model_id), None)


CANCEL_JS = """async (url) => {
  const m = await LocalLLM.addModel(url, {name: "Slow SmolLM2"});
  const progress = [];
  const off = LocalLLM.on("progress", (d) => progress.push(d));
  const load = LocalLLM.init(m.id, {contextLength: 128})
    .then(() => null, (e) => [e.name, e.message]);
  // wait until at least one 16 MiB chunk is stored
  let partial = null;
  for (let i = 0; i < 600 && !partial; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const c = (await LocalLLM.getCache()).models.find((x) => x.id === m.id);
    if (c && c.bytes > 0) partial = c;
  }
  const busy = await LocalLLM.deleteCached(m.id).then(() => null, (e) => [e.name, e.message]);
  const statusBefore = LocalLLM.getStatus();
  const t0 = performance.now();
  const cancelled = await LocalLLM.cancelLoad();
  const tAnswer = performance.now() - t0;
  const error = await load;
  const again = await LocalLLM.cancelLoad();
  off();
  return {model: m, partial, busy, statusBefore, cancelled, tAnswer, error, again,
          status: LocalLLM.getStatus(), cache: await LocalLLM.getCache(), progress,
          info: await LocalLLM.getRuntimeInfo()};
}"""


def test_cancel_mid_download_keeps_the_part_and_the_next_init_resumes(app, fault, smollm2_gguf):
    page = app["page"]
    size = smollm2_gguf.stat().st_size
    fault.inject(GGUF, Fault("slow", seconds=90.0))
    r = value(page, CANCEL_JS, fault.url(GGUF))
    model = r["model"]
    assert model["user_added"] and model["name"] == "Slow SmolLM2" and model["size"] == size
    assert r["partial"] and 0 < r["partial"]["bytes"] < size
    assert r["busy"][0] == "ModelBusyError" and "Nothing was deleted" in r["busy"][1]
    assert r["statusBefore"]["state"] == "loading"
    assert r["cancelled"] is True and r["again"] is False
    assert r["tAnswer"] < 2000                        # answered at once, not after the load
    assert r["error"][0] == "LoadCancelledError" and "resumes" in r["error"][1]
    assert r["status"]["state"] == "idle" and r["status"]["model"] is None
    mem = r["info"]["memory"]
    assert mem["total"] == mem["baseline"]            # nothing left on the GPU ledger
    c = cached(r["cache"], model["id"])
    assert c["partial"] and not c["complete"] and not c["loaded"]
    assert c["bytes"] >= r["partial"]["bytes"] and c["bytes"] % (16 << 20) == 0
    assert c["files"] == [{"key": fault.url(GGUF), "name": GGUF, "bytes": c["bytes"],
                           "complete": False}]
    events = page.evaluate("window.__events")
    assert [e["detail"]["state"] for e in events if e["name"] == "status"][-1] == "idle"
    speeds = [d["speed_bps"] for d in r["progress"] if d["phase"] == "download"]
    assert any(s and s > 0 for s in speeds)
    assert any(d["eta_s"] and d["eta_s"] > 0 for d in r["progress"])

    # the next init resumes the download where the stored chunks end
    n = len(fault.gets(GGUF))
    out = value(page, """async (id) => {
      const r = await LocalLLM.init(id, {contextLength: 128});
      const reply = await LocalLLM.chat([{role: "user", content: "Hi"}], {maxTokens: 2});
      return {r, reply, cache: await LocalLLM.getCache(), status: LocalLLM.getStatus()};
    }""", model["id"])
    gets = fault.gets(GGUF)[n:]
    starts = [int(re.match(r"bytes=(\d+)-", h.range).group(1)) for h in gets if h.range]
    assert starts and starts[0] >= c["bytes"] > 0 and all(h.status == 206 for h in gets)
    assert out["r"]["model"] == model["id"] and out["status"]["state"] == "ready"
    assert out["reply"]["usage"]["completion_tokens"] >= 1
    c = cached(out["cache"], model["id"])
    assert c["complete"] and c["bytes"] == c["size"] == size and c["loaded"]
    app["url_model"] = model["id"]


IMPORT_JS = """async (url) => {
  const blob = await (await fetch(url)).blob();
  const file = new File([blob], "my-smollm2-Q4_1.gguf");
  const cut = new File([blob.slice(0, 30 << 20)], "cut.gguf");
  const junk = new File([new TextEncoder().encode("<html>not a model</html>".repeat(400))],
                        "download.gguf");
  const err = (p) => p.then(() => null, (e) => [e.name, e.message]);
  const before = await LocalLLM.getCache();
  const models0 = (await LocalLLM.getAvailableModels()).length;
  const junkErr = await err(LocalLLM.importModelFile(junk));
  const cutErr = await err(LocalLLM.importModelFile(cut));
  const after = await LocalLLM.getCache();
  const models1 = (await LocalLLM.getAvailableModels()).length;
  const progress = [];
  const off = LocalLLM.on("progress", (d) => progress.push(d));
  const m = await LocalLLM.importModelFile(file, {name: "Imported SmolLM2"});
  off();
  return {before, after, models0, models1, junkErr, cutErr, m, progress,
          cache: await LocalLLM.getCache(), size: blob.size};
}"""


def test_import_a_local_file_then_load_it_without_the_network(app, fault):
    page, log = app["page"], app["log"]
    r = value(page, IMPORT_JS, fault.url(GGUF))
    assert r["junkErr"][0] == "BadMagicError", r["junkErr"]
    assert r["cutErr"][0] == "TensorOutOfRangeError", r["cutErr"]
    strip = lambda c: {k: c[k] for k in ("models", "other")}    # noqa: E731
    assert strip(r["after"]) == strip(r["before"]) and r["models1"] == r["models0"]
    m = r["m"]
    assert m["imported"] and m["user_added"] and m["name"] == "Imported SmolLM2"
    assert m["family"] == "llama" and m["arch"]["n_layers"] == 30 and m["size"] == r["size"]
    assert m["memory_bytes"] > m["size"]
    prog = [d for d in r["progress"] if d["phase"] == "import"]
    assert prog and prog[-1]["progress"] == 1.0
    assert prog[-1]["loaded_bytes"] == prog[-1]["total_bytes"] == r["size"]
    c = cached(r["cache"], m["id"])
    assert c["complete"] and c["bytes"] == r["size"] and c["files"][0]["key"].startswith("import:")

    # load and chat with no request for weights (the server's log and the page's both)
    n_srv, n_log = len(fault.log), len(log)
    out = value(page, """async (id) => {
      const r = await LocalLLM.init(id, {contextLength: 128});
      const reply = await LocalLLM.chat([{role: "user", content: "Hi"}], {maxTokens: 2});
      // deleting the loaded model's files is allowed; it keeps answering
      const cache = await LocalLLM.deleteCached(id);
      const again = await LocalLLM.chat([{role: "user", content: "Hello"}], {maxTokens: 2});
      return {r, reply, cache, again, status: LocalLLM.getStatus()};
    }""", m["id"])
    assert len(fault.log) == n_srv
    assert not [u for u in log[n_log:] if u.endswith(".gguf") or fault.base in u]
    assert out["r"]["model"] == m["id"] and out["status"]["state"] == "ready"
    assert out["reply"]["usage"]["completion_tokens"] >= 1
    assert out["again"]["usage"]["completion_tokens"] >= 1
    assert cached(out["cache"], m["id"]) is None
    assert cached(out["cache"], app["url_model"])["complete"]

    bad = call(page, "(id) => LocalLLM.removeModel(id)", "smollm2-135m-instruct-q4_1")
    assert bad["error"][0] == "ModelNotRemovableError"
    for url in ("ftp://example.org/x.gguf", "https://example.org/readme.md"):
        bad = call(page, "(u) => LocalLLM.addModel(u)", url)
        assert bad["error"][0] == "ModelURLError", bad
    app["imported"] = m["id"]


def test_user_models_come_back_on_the_next_visit_and_remove_model(app):
    page = app["page"]
    url_model, imported = app["url_model"], app["imported"]
    page.reload()
    page.wait_for_function("window.__ready", timeout=BOOT_MS)
    models = {d["id"]: d for d in value(page, "() => LocalLLM.getAvailableModels()")}
    assert models[url_model]["name"] == "Slow SmolLM2" and models[url_model]["cached"]
    assert models[imported]["imported"] and models[imported]["arch"]["n_layers"] == 30
    assert models[url_model]["memory_bytes"] == models[imported]["memory_bytes"] > 0
    cache = value(page, "(id) => LocalLLM.removeModel(id)", url_model)
    assert cached(cache, url_model) is None and cache["other"] == []
    assert isinstance(cache["usage"], int) and cache["quota"] > 0
    assert isinstance(cache["persisted"], bool)
    page.reload()
    page.wait_for_function("window.__ready", timeout=BOOT_MS)
    ids = {d["id"] for d in value(page, "() => LocalLLM.getAvailableModels()")}
    assert url_model not in ids and imported in ids


PY_CLIENT = """
cache = await llm.get_cache()
nothing = await llm.cancel_load()
try:
    await llm.add_model("ftp://example.org/x.gguf")
    bad = None
except Exception as e:
    bad = [type(e).__name__, e.name]
try:
    await llm.delete_cached_file("no-such-key")
    missing = None
except Exception as e:
    missing = e.name
result = {"cache": cache, "nothing": nothing, "bad": bad, "missing": missing}
"""


def test_the_python_client_in_the_page(browser, server):
    """The same calls, snake_case, through app.runtime.client in index.html's PyScript."""
    from tests.browser.runtime_page import open_app, py
    context = browser.new_context(service_workers="block")
    try:
        page, _ = open_app(context, server.url)
        r = py(page, PY_CLIENT)
    finally:
        context.close()
    assert r["nothing"] is False
    assert r["bad"] == ["RuntimeAPIError", "ModelURLError"]
    assert r["missing"] == "CachedFileNotFoundError"
    assert r["cache"]["models"] == [] and r["cache"]["quota"] > 0
