"""The remote fallback in headless Chromium started WITHOUT --enable-unsafe-webgpu (so WebGPU is
missing), on the real page (index.html, the engine worker, the JS facade), against llama.cpp's
OpenAI-compatible server (llama-cpp-python built from source, SmolLM2 on the CPU) on another
port of 127.0.0.1, with an API key; its CORS headers are the server's own (any origin).

init() is called with backend="webgpu" so that the local side cannot pick the CPU backend
(wllama): this file tests the remote path, with the local engine unable to run at all.

In file order, on one page: fallback disabled (the default) -> the named local errors, no
provider event, and neither the page's request log nor the server's access log shows a request
to the server; configured but still disabled -> the same; enabled (mode auto) -> init resolves
with provider "remote", replies come from the server through the facade (stream == non-stream
at temperature 0, chat.completions.create), local-llm:provider fires per request; interrupt()
aborts the worker's fetch (the server logs the disconnect); after a reload the settings come
back from IndexedDB without the key, which is in no URL the page requested.
"""
from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from tests.browser.runtime_page import foreign_requests, no_webgpu_launch_args, open_app
from tests.remote_servers import LLAMA_KEY

KEY = LLAMA_KEY          # the session server's key (tests/conftest.py `llama`)
MSGS = [{"role": "user", "content": "What is the capital of France?"}]
PROVIDER_RECORDER = """
window.__provider = [];
window.addEventListener("local-llm:provider", (e) => window.__provider.push(e.detail));
"""

ATTEMPT_JS = """async ([msgs]) => {
  const fail = (e) => ({error: [e.name, e.message]});
  const init = await LocalLLM.init(null, {backend: "webgpu"}).then((r) => ({result: r}), fail);
  const chat = await LocalLLM.chat(msgs, {maxTokens: 4}).then((r) => ({result: r}), fail);
  const stream = await LocalLLM.chat(msgs, {stream: true, maxTokens: 4})
    .then(async (s) => { const items = []; for await (const i of s) items.push(i); return {result: items}; }, fail);
  return {init, chat, stream, status: LocalLLM.getStatus(), provider: window.__provider.slice()};
}"""

REMOTE_JS = """async ([msgs]) => {
  const init = await LocalLLM.init(null, {backend: "webgpu"});
  const full = await LocalLLM.chat(msgs, {temperature: 0, maxTokens: 12});
  const items = [];
  for await (const i of await LocalLLM.chat(msgs, {stream: true, temperature: 0, maxTokens: 12})) items.push(i);
  const oa = await LocalLLM.chat.completions.create({messages: msgs, maxTokens: 4, temperature: 0});
  return {init, full, items, oa, provider: window.__provider.slice(), status: LocalLLM.getStatus()};
}"""

INTERRUPT_JS = """async ([msgs]) => {
  const got = [];
  let after = 0;
  for await (const i of await LocalLLM.chat(msgs, {stream: true, maxTokens: 1500, seed: 4})) {
    if (got.length >= 2) after++;
    got.push(i);
    if (got.length === 2) await LocalLLM.interrupt();
  }
  return {got, after};
}"""


@pytest.fixture(scope="module")
def app(browser_type, browser_type_launch_args, server):
    browser = browser_type.launch(**no_webgpu_launch_args(browser_type_launch_args))
    context = browser.new_context(service_workers="block")
    context.add_init_script(PROVIDER_RECORDER)
    headers: list[tuple[str, dict]] = []
    context.on("request", lambda r: headers.append((r.url, r.headers)))
    page, log = open_app(context, server.url)
    yield page, log, headers
    browser.close()


def posts(llama) -> list[str]:
    return [r for r in llama.requests() if r.startswith("POST")]


def to_llama(log: list[str], llama) -> list[str]:
    return [u for u in log if urlparse(u).port == llama.port]


def test_fallback_disabled_gives_the_local_errors_and_no_request_leaves(app, llama, server):
    page, log, _ = app
    no_gpu = page.evaluate("LocalLLM.checkWebGPU().then(() => null, (e) => e.name)")
    assert no_gpu == "WebGPUUnavailableError"             # this browser has no WebGPU
    cfg = page.evaluate("LocalLLM.getRemoteConfig()")
    assert cfg == {"enabled": False, "base_url": "", "model": "", "mode": "auto",
                   "has_api_key": False, "insecure": False}
    n = len(llama.requests())
    r = page.evaluate(ATTEMPT_JS, [MSGS])
    assert r["init"]["error"][0] == "WebGPUUnavailableError"
    assert r["chat"]["error"][0] == "NotLoadedError" and "WebGPUUnavailableError" in \
        r["chat"]["error"][1]
    assert r["stream"]["error"][0] == "NotLoadedError"
    assert r["status"]["state"] == "error" and r["provider"] == []
    # Configured, still disabled: nothing leaves either.
    cfg = page.evaluate("(c) => LocalLLM.setRemoteConfig(c)",
                        {"baseUrl": llama.base_url, "apiKey": KEY, "model": "smollm2"})
    assert cfg["enabled"] is False and cfg["has_api_key"] is True and KEY not in json.dumps(cfg)
    r = page.evaluate(ATTEMPT_JS, [MSGS])
    assert r["init"]["error"][0] == "WebGPUUnavailableError" and r["provider"] == []
    assert to_llama(log, llama) == [] and foreign_requests(log, server.url) == []
    assert llama.requests()[n:] == []


def test_fallback_enabled_replies_come_from_the_remote_server(app, llama):
    page, log, headers = app
    n = len(posts(llama))
    cfg = page.evaluate("LocalLLM.setRemoteConfig({enabled: true, mode: 'auto'})")
    assert cfg["enabled"] is True and cfg["base_url"] == llama.base_url
    r = page.evaluate(REMOTE_JS, [MSGS])
    assert r["init"]["provider"] == "remote" and r["init"]["model"] == "smollm2"
    assert "WebGPUUnavailableError" in r["init"]["reason"]
    assert r["status"]["state"] == "error"           # the local engine is honestly not loaded
    full, items = r["full"], r["items"]
    print(repr(full["text"]), full["usage"])
    assert full["provider"] == "remote" and full["text"] and full["model"] == "smollm2"
    assert full["usage"]["completion_tokens"] > 0 and full["usage"]["server_reported"]
    assert all(i["provider"] == "remote" for i in items) and len(items) >= 3
    assert "".join(i["delta"] for i in items) == full["text"]
    assert items[-1]["finish_reason"] == full["finish_reason"]
    assert r["oa"]["provider"] == "remote" and r["oa"]["choices"][0]["message"]["content"]
    # one provider event per request, before it was sent
    assert len(r["provider"]) == 3
    host = llama.base_url.rsplit("/", 1)[0]
    assert all(e["provider"] == "remote" and e["host"] == host and e["model"] == "smollm2"
               and e["local_error"] == "WebGPUUnavailableError" for e in r["provider"])
    assert len(posts(llama)) == n + 3
    sent = to_llama(log, llama)
    assert sent and all(u == llama.base_url + "/chat/completions" for u in sent)
    auth = [h.get("authorization") for u, h in headers if u in sent and "authorization" in h]
    assert auth and set(auth) == {f"Bearer {KEY}"}   # the key: in the header, to that server


def test_interrupt_aborts_the_workers_fetch(app, llama):
    page, _, _ = app
    mark = len(llama.log_text())
    r = page.evaluate(INTERRUPT_JS, [MSGS])
    assert r["got"][-1]["finish_reason"] == "abort" and r["after"] == 1
    llama.wait_for_log("Disconnected from client", timeout=60, start=mark)
    nxt = page.evaluate("(m) => LocalLLM.chat(m, {maxTokens: 2})", MSGS)
    assert nxt["provider"] == "remote" and nxt["finish_reason"] == "length"


def test_settings_persist_in_indexeddb_and_the_key_stays_out_of_urls(app, llama, server):
    page, log, _ = app
    page.reload()
    page.wait_for_function("window.__apiReady !== null && document.body.dataset.pyReady",
                           timeout=240_000)
    cfg = page.evaluate("LocalLLM.getRemoteConfig()")
    assert cfg == {"enabled": True, "base_url": llama.base_url, "model": "smollm2",
                   "mode": "auto", "has_api_key": True, "insecure": False}
    assert all(KEY not in u for u in log)
    assert set(foreign_requests(log, server.url)) == {llama.base_url + "/chat/completions"}
    # Disabling stops it at once: the next request is local again (and fails here).
    page.evaluate("LocalLLM.setRemoteConfig({enabled: false})")
    n = len(llama.requests())
    err = page.evaluate("(m) => LocalLLM.chat(m, {maxTokens: 2}).then(() => null, (e) => e.name)",
                        MSGS)
    assert err == "NotLoadedError" and llama.requests()[n:] == []
