"""The dashboard in headless Chromium, driven as a person would: real page, real engine worker
(WebGPU through SwiftShader), real IndexedDB, the bundled SmolLM2 and gemma-3-270m GGUFs served
by the real build server.

- the full flow: pick a model, the progress bar reaches 100%, ask, tokens stream in order (what
  the page shows is what the engine generates greedily), stats fill in, Stop mid-reply,
  Regenerate, the conversation survives a reload, add gemma-3-270m by URL and switch to it;
- offline: after that visit, with the server stopped, a new page loads the remembered model from
  the cache by itself and chats;
- safety: a model whose output is hostile HTML/Markdown (streamed by an OpenAI-compatible server
  the page is configured to use; a real model cannot be made to say it on demand) executes
  nothing and makes the page request nothing;
- a narrow window keeps every control reachable.

Screenshots of the main states go to artifacts/screenshots/ (CI keeps them).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from app.bench.browser import Server
from tests.browser.test_page import BOOT_TIMEOUT_MS, Recorder, boot
from tests.fault_server import ServerThread
from tests.fixtures_tokenizer import gemma_gguf  # noqa: F401 (fixture)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
BUNDLED = "smollm2-135m-instruct-q4_1"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
LOAD_MS = 240_000
REPLY_MS = 180_000
SYSTEM = "You are a geography teacher. Answer in one sentence."

# Snapshots of the streaming reply's text, taken on every DOM change (tokens in order).
WATCH_STREAM = """
window.__snaps = [];
addEventListener("DOMContentLoaded", () => new MutationObserver(() => {
  const node = document.querySelector("#messages .msg.streaming .msg-body");
  if (node) {
    const t = node.textContent;
    if (window.__snaps[window.__snaps.length - 1] !== t) window.__snaps.push(t);
  }
}).observe(document.getElementById("messages"), {subtree: true, childList: true, characterData: true}));
"""


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def set_generation(page, temperature=None, max_tokens=None, system=None) -> None:
    for sel, value in (("#temperature", temperature), ("#max-tokens", max_tokens),
                       ("#system-prompt", system)):
        if value is not None:
            page.fill(sel, str(value))
            page.dispatch_event(sel, "change")


def load_model(page, model_id: str) -> None:
    title = page.inner_text(f"#model-list li[data-model='{model_id}'] .model-name")
    page.click(f"#model-list li[data-model='{model_id}'] button[data-action=load]")
    page.wait_for_selector("#load-progress:not([hidden])", timeout=30_000)
    # This load's bar (a bar left from an earlier load may still be showing 100%).
    page.wait_for_function("document.getElementById('load-title').textContent === "
                           f"{json.dumps(title)}", timeout=30_000)
    page.wait_for_function(
        "(() => { const s = LocalLLM.getStatus(); return s.state === 'ready' && s.model === "
        f"{json.dumps(model_id)} && document.getElementById('load-progress').dataset.max === "
        "'100'; })()", timeout=LOAD_MS)
    page.wait_for_function("!document.getElementById('prompt').disabled", timeout=60_000)


def add_by_url(page, url: str) -> str:
    """Add a model through the "Add a model" form; its id (the card marked "added by you")."""
    page.evaluate("document.getElementById('add-model').open = true")
    page.fill("#add-url", url)
    page.click("#add-url-button")
    page.wait_for_function("document.getElementById('add-status').textContent.startsWith"
                           "('Added')", timeout=60_000)
    card = page.locator("#model-list li.model", has_text="added by you")
    assert card.count() == 1
    return card.get_attribute("data-model")


def ask(page, text: str) -> dict:
    """Type and press Enter; wait for the reply to end. Returns the last reply's state."""
    n = page.locator("#messages article.msg-assistant").count()
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    page.wait_for_function(
        f"document.querySelectorAll('#messages article.msg-assistant').length > {n} && "
        "!document.body.dataset.generating", timeout=REPLY_MS)
    return last_reply(page)


def last_reply(page) -> dict:
    return page.evaluate("""() => {
      const a = [...document.querySelectorAll('#messages article.msg-assistant')].pop();
      return {text: a.querySelector('.msg-body').textContent, finish: a.dataset.finish,
              foot: a.querySelector('.foot-text').textContent,
              html: a.querySelector('.msg-body').innerHTML};
    }""")


def stored_conversations(page) -> list[dict]:
    return json.loads(page.evaluate(
        "import('./static/chat-store.js').then(m => m.loadAll())"))


@pytest.fixture
def site(dist, tmp_path, gemma_gguf):
    """A copy of the build with gemma-3-270m beside the bundled model, on its own server (the
    offline test stops it)."""
    root = tmp_path / "dist"
    shutil.copytree(dist, root, symlinks=True)
    shutil.copyfile(gemma_gguf, root / "models" / GEMMA_FILE)
    srv = Server(root).start()
    yield srv
    srv.stop()

@pytest.fixture
def dash(browser, server):
    """The dashboard booted in a fresh context at 1280x800 (empty IndexedDB and caches)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    assert boot(page, server.url) == "1"
    yield page
    context.close()


def test_pick_load_chat_stream_stop_regenerate_reload_switch_then_offline(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    try:
        page = context.new_page()
        rec = Recorder(page)
        page.add_init_script(WATCH_STREAM)
        assert boot(page, site.url) == "1"
        shot(page, "01-start")

        # The catalog: the bundled model is marked; every model either loads or says why not.
        card = page.locator(f"#model-list li[data-model='{BUNDLED}']")
        assert "bundled" in card.locator(".badges").inner_text()
        for c in page.locator("#model-list li.model").all():
            btn = c.locator("button[data-action=load]")
            assert btn.is_enabled() or c.locator(".model-reason").inner_text().strip()
        assert page.is_disabled("#prompt") and page.is_disabled("#send")

        set_generation(page, temperature=0, max_tokens=24, system=SYSTEM)
        load_model(page, BUNDLED)
        shot(page, "02-loaded")
        assert "cached" in card.locator(".badges").inner_text()
        assert card.locator("button[data-action=load]").inner_text() == "Loaded"
        assert "Ready" in page.inner_text("#status")
        assert BUNDLED in page.inner_text("#storage-usage") or page.locator(
            "#cache-list li[data-key]").count() >= 1

        # Ask: the reply streams (several growing snapshots) and is exactly the engine's greedy
        # reply to the same messages.
        question = "What is the capital of France?"
        reply = ask(page, question)
        snaps = page.evaluate("window.__snaps")
        assert len(snaps) >= 3, snaps
        assert all(len(a) <= len(b) for a, b in zip(snaps, snaps[1:])), snaps
        convs = stored_conversations(page)
        assert len(convs) == 1 and convs[0]["title"] == question
        user, assistant = convs[0]["messages"]
        assert user == {"role": "user", "content": question, "meta": {}}
        ref = page.evaluate("""([s, q]) => LocalLLM.chat(
            [{role: 'system', content: s}, {role: 'user', content: q}],
            {temperature: 0, maxTokens: 24, topP: 0.95})""", [SYSTEM, question])
        assert assistant["content"] == ref["text"] and ref["text"].strip()
        assert assistant["meta"]["model"] == BUNDLED
        assert " ".join(reply["text"].split())[:20] == " ".join(ref["text"].split())[:20]
        # Stats of the last reply, and the chart has its bar.
        assert page.inner_text("#st-ttft") != "—"
        assert page.inner_text("#st-decode").endswith("tok/s")
        assert page.inner_text("#st-prefill").endswith("tok/s")
        assert " in · " in page.inner_text("#st-tokens")
        assert page.get_attribute("#rate-chart", "data-bars") == "1"
        assert "of" in page.inner_text("#gpu-memory") or "in use" in page.inner_text("#gpu-memory")
        shot(page, "03-reply")
        assert axe_violations(page) == []      # with a conversation, stats and the chart

        # Copy puts the message on the clipboard.
        page.click("#messages article.msg-assistant button[data-action=copy]")
        page.wait_for_selector("#messages article.msg-assistant button[data-action=copy]"
                               ":text('Copied')", timeout=10_000)
        assert page.evaluate("navigator.clipboard.readText()") == assistant["content"]

        # Stop mid-reply: a long answer is cut, marked "stopped", and the composer comes back.
        set_generation(page, max_tokens=400)
        page.evaluate("window.__snaps = []")
        page.fill("#prompt", "Write a long story about a dragon who learns to paint.")
        page.press("#prompt", "Enter")
        page.wait_for_function("window.__snaps.some(t => t.trim().length > 0)",
                               timeout=REPLY_MS)
        assert page.is_visible("#stop") and page.is_hidden("#send")
        shot(page, "04-streaming")
        page.click("#stop")
        page.wait_for_function("!document.body.dataset.generating", timeout=60_000)
        stopped = last_reply(page)
        assert stopped["finish"] == "abort" and "stopped" in stopped["foot"]
        assert page.is_enabled("#send") and page.is_hidden("#stop")

        # Regenerate replaces the last reply (greedy: short and complete this time).
        set_generation(page, max_tokens=6)
        page.click("#messages article.msg-assistant:last-of-type button[data-action=regenerate]")
        page.wait_for_function("!document.body.dataset.generating && [...document.querySelectorAll("
                               "'#messages article.msg-assistant')].pop().dataset.finish !== 'abort'",
                               timeout=REPLY_MS)
        again = last_reply(page)
        assert again["finish"] in ("length", "stop") and again["text"].strip()
        assert page.locator("#messages article.msg-assistant").count() == 2
        assert page.get_attribute("#rate-chart", "data-bars") in ("2", "3")

        # The conversation and the chosen model survive a reload; the model reloads by itself
        # from the cache (it is cached), with no download.
        page.reload()
        page.wait_for_function("document.body.dataset.pyReady", timeout=BOOT_TIMEOUT_MS)
        page.wait_for_function("!document.getElementById('prompt').disabled", timeout=LOAD_MS)
        assert page.locator("#messages article.msg").count() == 4
        assert page.inner_text("#conv-select").startswith(question)

        # Add gemma-3-270m by URL and switch to it.
        gemma_id = add_by_url(page, f"models/{GEMMA_FILE}")
        page.click("#new-chat")
        set_generation(page, max_tokens=8)
        load_model(page, gemma_id)
        assert page.evaluate("LocalLLM.getStatus()")["model"] == gemma_id
        reply = ask(page, "Say hello.")
        assert reply["text"].strip() and reply["finish"] in ("length", "stop")
        assert page.locator(f"#model-list li[data-model='{gemma_id}'] button").first.inner_text() == "Loaded"
        shot(page, "05-gemma")
        assert rec.foreign(site.url) == []
        assert rec.errors == []

        # Offline: the server goes away; a new page boots from the service worker's cache,
        # reloads gemma (the last choice) from IndexedDB and answers.
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
        site.stop()
        page.close()
        page = context.new_page()
        rec = Recorder(page)
        assert boot(page, site.url) == "1"
        page.wait_for_function("!document.getElementById('prompt').disabled", timeout=LOAD_MS)
        assert page.evaluate("LocalLLM.getStatus()")["model"] == gemma_id
        reply = ask(page, "And goodbye?")
        assert reply["text"].strip()
        shot(page, "06-offline")
        assert rec.errors == []
    finally:
        context.close()


# -- hostile model output --------------------------------------------------------------------
HOSTILE = """Here is **bold**, `code <b>x</b>` and a table:

| a | b |
|:--|--:|
| 1 | 2 |

<script>window.__pwned = 1</script>
<img src="{evil}/img.png" onerror="window.__pwned = 2">
[click me](javascript:window.__pwned=3)
[tab trick](jav&#x09;ascript:window.__pwned=4)
![picture]({evil}/pic.png)
<iframe src="{evil}/frame"></iframe>
<a href="{evil}/raw">raw link</a>
<svg onload="window.__pwned=5"></svg>
<style>body {{ background: url({evil}/bg.png) }}</style>
<form action="{evil}/post"><button>send</button></form>
```html
<script>window.__pwned = 6</script>
```
"""


class ScriptedModel:
    """An OpenAI-compatible chat server whose "model" streams a fixed text in small chunks,
    with CORS as deployed servers send it; plus a second, "evil" server that records any request
    (the page must never make one)."""

    def __init__(self):
        self.evil_hits: list[str] = []
        self.chat_hits = 0
        self.text = ""
        app = web.Application()
        app.router.add_route("OPTIONS", "/v1/{tail:.*}", self._preflight)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._srv = ServerThread(app, "scripted-model")
        evil = web.Application()
        evil.router.add_route("*", "/{tail:.*}", self._evil)
        self._evil_srv = ServerThread(evil, "evil")

    def start(self) -> "ScriptedModel":
        self.base_url = f"http://127.0.0.1:{self._srv.start()}/v1"
        self.evil = f"http://127.0.0.1:{self._evil_srv.start()}"
        self.text = HOSTILE.format(evil=self.evil)
        return self

    def stop(self) -> None:
        self._srv.stop()
        self._evil_srv.stop()

    CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*",
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS"}

    async def _preflight(self, request):
        return web.Response(headers=self.CORS)

    async def _evil(self, request):
        self.evil_hits.append(f"{request.method} {request.path}")
        return web.Response(text="pwned", headers=self.CORS)

    async def _chat(self, request):
        import asyncio
        self.chat_hits += 1
        body = await request.json()
        resp = web.StreamResponse(headers={**self.CORS, "Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def chunk(delta, finish=None):
            return ("data: " + json.dumps({"object": "chat.completion.chunk",
                                           "model": body.get("model"),
                                           "choices": [{"index": 0, "delta": delta,
                                                        "finish_reason": finish}]})
                    + "\n\n").encode()
        for i in range(0, len(self.text), 7):
            await resp.write(chunk({"content": self.text[i:i + 7]}))
            await asyncio.sleep(0.005)
        await resp.write(chunk({}, "stop"))
        await resp.write(b"data: [DONE]\n\n")
        return resp


def test_hostile_model_output_is_shown_as_text_and_executes_nothing(browser, server):
    model = ScriptedModel().start()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        rec = Recorder(page)
        assert boot(page, server.url) == "1"
        # Configure the remote server through the settings form, "always" mode.
        page.check("#remote-enabled")
        page.fill("#remote-url", model.base_url)
        page.fill("#remote-model", "scripted")
        page.select_option("#remote-mode", "remote")
        page.click("#remote-save")
        page.wait_for_function("!document.getElementById('prompt').disabled", timeout=60_000)
        reply = ask(page, "Show me some HTML.")
        assert model.chat_hits == 1 and not page.is_hidden("#remote-badge")
        page.wait_for_timeout(1500)           # give any injected handler a chance to fire
        assert page.evaluate("window.__pwned") is None
        body = "#messages article.msg-assistant .msg-body"
        # Markdown is rendered; raw HTML is text; nothing active or remote is in the DOM.
        assert page.locator(f"{body} table td").count() == 2
        assert page.locator(f"{body} strong").first.inner_text() == "bold"
        assert page.locator(f"{body} pre code").count() == 1
        for tag in ("script", "img", "iframe", "svg", "style", "form", "button", "object", "embed"):
            assert page.locator(f"{body} {tag}").count() == 0, tag
        hrefs = page.eval_on_selector_all(f"{body} a", "as => as.map(a => a.getAttribute('href'))")
        assert all(h.startswith(("http://", "https://", "mailto:")) for h in hrefs), hrefs
        on_attrs = page.evaluate(f"""[...document.querySelectorAll('{body} *')].flatMap(
            e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on'))""")
        assert on_attrs == []
        text = reply["text"]
        assert "<script>window.__pwned = 1</script>" in text and "onerror=" in text
        assert "<iframe" in text
        # The stored conversation keeps the text as it came; re-rendering it after a reload is
        # just as inert.
        page.reload()
        page.wait_for_function("document.body.dataset.pyReady", timeout=BOOT_TIMEOUT_MS)
        page.wait_for_selector(body)
        page.wait_for_timeout(1000)
        assert page.evaluate("window.__pwned") is None
        assert page.locator(f"{body} img, {body} script, {body} iframe").count() == 0
        assert model.evil_hits == []
        assert not [u for u in rec.foreign(server.url) if not u.startswith(model.base_url)]
        # The page's CSP is a second gate: an image from elsewhere is refused even if markup
        # carrying it were inserted.
        blocked = page.evaluate("""(url) => new Promise((resolve) => {
            const img = document.createElement('img');
            img.onload = () => resolve(false); img.onerror = () => resolve(true);
            img.src = url; document.body.appendChild(img); })""", model.evil + "/csp.png")
        assert blocked and model.evil_hits == []
        shot(page, "07-hostile-output")
        # Shift+Enter is a newline, not a send; Clear empties the conversation, here and in
        # storage.
        page.fill("#prompt", "line one")
        page.press("#prompt", "Shift+Enter")
        page.keyboard.type("line two")
        assert page.input_value("#prompt") == "line one\nline two"
        assert model.chat_hits == 1 and page.locator("#messages article.msg").count() == 2
        page.click("#clear-chat")
        page.wait_for_selector("#messages #welcome")
        assert page.locator("#messages article.msg").count() == 0
        assert stored_conversations(page) == []
    finally:
        context.close()
        model.stop()


def test_narrow_window_keeps_every_control_reachable(browser, server):
    context = browser.new_context(viewport={"width": 420, "height": 860})
    try:
        page = context.new_page()
        assert boot(page, server.url) == "1"
        page.wait_for_selector("#model-list li.model")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420, f"the page scrolls sideways: {width}px"
        for sel in ("#model-list button[data-action=load]", "#prompt", "#send", "#new-chat",
                    "#temperature", "#remote-save", "#cache-list"):
            box = page.locator(sel).first.bounding_box()
            assert box and box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= 421, sel
        # Every form control has an accessible name.
        unnamed = page.evaluate("""[...document.querySelectorAll('input, select, textarea, button')]
            .filter(e => !e.closest('[hidden]') && e.type !== 'hidden')
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.textContent.trim())
            .map(e => e.id || e.outerHTML.slice(0, 60))""")
        assert unnamed == []
        # Keyboard: Tab from the top of the page reaches a model's Load button.
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.action") == "load":
                break
        else:
            pytest.fail("Tab never reached a model's Load button")
        shot(page, "08-narrow")
    finally:
        context.close()


def test_a_file_that_is_not_a_model_is_refused_by_name_and_nothing_is_added(dash,
                                                                            tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 8)       # the magic, then garbage
    page = dash
    page.wait_for_selector("#model-list li.model")
    before = page.locator("#model-list li.model").count()
    cache_before = page.evaluate("LocalLLM.getCache()")
    page.click("#add-model summary")
    page.set_input_files("#add-file", str(bad))
    toast = page.locator("#toasts .toast", has_text="notes.gguf could not be added")
    toast.wait_for(timeout=60_000)
    assert "gguf" in toast.locator(".remedy").inner_text().lower()
    assert page.inner_text("#add-status").startswith("Not added")
    assert page.locator("#model-list li.model").count() == before
    after = page.evaluate("LocalLLM.getCache()")
    assert [m["id"] for m in after["models"]] == [m["id"] for m in cache_before["models"]]
    assert after["other"] == cache_before["other"]
    # Dropped on the models panel, the same bytes are refused the same way.
    page.evaluate("""(bytes) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], "dropped.gguf"));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", list(bad.read_bytes()))
    page.locator("#toasts .toast", has_text="dropped.gguf could not be added").wait_for(
        timeout=60_000)
    assert page.locator("#model-list li.model").count() == before


def test_cancel_mid_download_keeps_the_part_and_remove_forgets_the_model(dash,
                                                                         smollm2_gguf):
    from tests.fault_server import Fault, FaultServer
    host = FaultServer({"smol.gguf": smollm2_gguf}).start()
    host.inject("smol.gguf", Fault("slow", seconds=60.0))
    page = dash
    try:
        model_id = add_by_url(page, host.url("smol.gguf"))
        page.click(f"#model-list li[data-model='{model_id}'] button[data-action=load]")
        page.wait_for_function(
            "/Downloading/.test(document.getElementById('load-phase').textContent) && "
            "/ of /.test(document.getElementById('load-detail').textContent)", timeout=120_000)
        # Speed and time left appear once the runtime has measured the transfer.
        page.wait_for_function(
            "/\\/s · .* left$/.test(document.getElementById('load-detail').textContent)",
            timeout=60_000)
        assert page.get_attribute("#load-bar", "aria-valuenow") is not None
        shot(page, "09-downloading")
        # Cancel once at least one whole chunk is stored (chunks are what a resume keeps).
        for _ in range(120):
            stored = [m["bytes"] for m in page.evaluate("LocalLLM.getCache()")["models"]
                      if m["id"] == model_id]
            if stored and stored[0] > 0:
                break
            page.wait_for_timeout(1000)
        else:
            pytest.fail("no chunk was stored within 2 minutes")
        page.click("#load-cancel")
        page.locator("#toasts .toast", has_text="Loading cancelled").wait_for(timeout=60_000)
        page.wait_for_selector("#load-progress", state="hidden", timeout=10_000)
        assert page.evaluate("LocalLLM.getStatus()")["state"] == "idle"
        card = page.locator(f"#model-list li[data-model='{model_id}']")
        card.locator("button:text('Resume download')").wait_for(timeout=30_000)
        assert "partly downloaded" in card.locator(".badges").inner_text()
        assert card.locator("button[data-action=load]").inner_text() == "Resume download"
        assert page.is_disabled("#prompt")
        # The storage panel lists the partial file and deletes it (the model stays listed);
        # Remove forgets the model itself.
        row = page.locator("#cache-list li[data-kind=model]", has_text="(partial)")
        assert row.count() == 1
        row.locator("button").click()
        card.locator("button:text('Download 93.8 MB')").wait_for(timeout=30_000)
        assert page.locator("#cache-list li[data-kind=model]").count() == 0
        assert "partly" not in card.locator(".badges").inner_text()
        card.locator("button[data-action=remove]").click()
        page.wait_for_function(f"!document.querySelector(\"#model-list li[data-model='{model_id}']\")",
                               timeout=30_000)
        cache = page.evaluate("LocalLLM.getCache()")
        assert model_id not in [m["id"] for m in cache["models"]]
        assert not [f for f in cache["other"] if "smol" in (f.get("name") or "")]
        page.reload()
        page.wait_for_function("document.body.dataset.pyReady", timeout=BOOT_TIMEOUT_MS)
        page.wait_for_selector("#model-list li.model")
        assert page.locator(f"#model-list li[data-model='{model_id}']").count() == 0
    finally:
        host.stop()


def test_a_lost_gpu_is_a_toast_whose_retry_reloads_the_model_and_answers(dash):
    page = dash
    set_generation(page, temperature=0, max_tokens=4)
    load_model(page, BUNDLED)
    assert page.evaluate("LocalLLM.loseDevice()")["reason"] is not None
    page.fill("#prompt", "Hi")
    page.press("#prompt", "Enter")
    toast = page.locator("#toasts .toast", has_text="The GPU was reset")
    toast.wait_for(timeout=REPLY_MS)
    assert "DeviceLostError" in toast.inner_text() and "Load the model again" in toast.inner_text()
    failed = last_reply(page)
    assert "DeviceLostError" in page.inner_text("#messages article.msg-assistant .msg-error")
    shot(page, "10-device-lost")
    toast.locator("button[data-action=Retry]").click()
    # Retry loads the model again on a new device, then regenerates the failed reply.
    page.wait_for_function(
        "!document.body.dataset.generating && !document.body.dataset.loading && "
        "(() => { const a = [...document.querySelectorAll('#messages article.msg-assistant')]"
        ".pop(); return a && !a.querySelector('.msg-error') && a.dataset.finish; })()",
        timeout=LOAD_MS)
    again = last_reply(page)
    assert again["text"].strip() and again["finish"] in ("length", "stop")
    assert failed["text"] != again["text"] or failed["finish"] != again["finish"]
    assert page.locator("#messages article.msg-assistant").count() == 1
    assert page.evaluate("LocalLLM.getStatus()")["state"] == "ready"


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG 2.x A and AA audit of the page as it is now (axe-core is a dev
    dependency, injected by the test; the page never loads it)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})""")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]} for v in result["violations"]]


def test_the_dashboard_passes_an_automated_wcag_audit(dash):
    page = dash
    page.wait_for_selector("#model-list li.model")
    page.click("#add-model summary")
    assert axe_violations(page) == []


def test_a_picked_gguf_file_is_imported_with_progress_then_loads_with_no_download(
        browser, server, smollm2_gguf, tmp_path):
    mine = tmp_path / "my-smollm2.gguf"
    shutil.copyfile(smollm2_gguf, mine)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        rec = Recorder(page)
        assert boot(page, server.url) == "1"
        page.wait_for_selector("#model-list li.model")
        page.click("#add-model summary")
        page.set_input_files("#add-file", str(mine))
        page.wait_for_function("/Importing/.test(document.getElementById('load-phase')"
                               ".textContent)", timeout=60_000)
        page.wait_for_function("document.getElementById('add-status').textContent.startsWith"
                               "('Added')", timeout=LOAD_MS)
        card = page.locator("#model-list li.model", has_text="added by you")
        assert card.count() == 1 and "cached" in card.locator(".badges").inner_text()
        model_id = card.get_attribute("data-model")
        set_generation(page, temperature=0, max_tokens=4)
        n = len(rec.requests)
        load_model(page, model_id)
        reply = ask(page, "Hello!")
        assert reply["text"].strip()
        assert not [u for u in rec.requests[n:] if u.endswith(".gguf")]   # no weight download
        assert page.evaluate("LocalLLM.getStatus()")["model"] == model_id
    finally:
        context.close()


def test_a_failed_download_is_a_toast_whose_retry_downloads_again(dash,
                                                                   smollm2_gguf):
    from tests.fault_server import Fault, FaultServer
    host = FaultServer({"smol.gguf": smollm2_gguf}).start()
    page = dash
    try:
        model_id = add_by_url(page, host.url("smol.gguf"))
        host.inject("smol.gguf", Fault("status", status=404))
        page.click(f"#model-list li[data-model='{model_id}'] button[data-action=load]")
        toast = page.locator("#toasts .toast", has_text="The download failed")
        toast.wait_for(timeout=120_000)
        assert "DownloadError" in toast.inner_text() and "404" in toast.inner_text()
        assert page.is_hidden("#load-progress") and page.is_disabled("#prompt")
        host.reset()                                   # the host answers again
        toast.locator("button[data-action=Retry]").click()
        page.wait_for_function(
            f"LocalLLM.getStatus().state === 'ready' && LocalLLM.getStatus().model === '{model_id}'",
            timeout=LOAD_MS)
        page.wait_for_function("!document.getElementById('prompt').disabled", timeout=60_000)
        assert [h.status for h in host.gets("smol.gguf")][-1] in (200, 206)
    finally:
        host.stop()
