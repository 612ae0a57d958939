"""The dashboard against bad input, in headless Chromium (real page, engine worker, IndexedDB;
helpers in tests/browser/dashboard_page.py):

- safety: a model whose output is hostile HTML/Markdown (streamed by an OpenAI-compatible server
  the page is configured to use; a real model cannot be made to say it on demand) executes
  nothing and makes the page request nothing, also re-rendered after a reload;
- a file that is not a model, picked or dropped, is refused by name and adds nothing;
- Cancel mid-download keeps the stored chunks; the storage panel deletes them; Remove forgets
  the model;
- a picked GGUF is imported with progress and loads with no download;
- a failed download is a toast whose Retry downloads again.
"""
from __future__ import annotations

import json
import shutil

import pytest
from aiohttp import web

from tests.browser.dashboard_page import (LOAD_MS, add_by_url, ask, dash, load_model,  # noqa: F401
                                          recorded_dash, set_generation, shot,
                                          stored_conversations)
from tests.browser.test_page import BOOT_TIMEOUT_MS
from tests.fault_server import ServerThread

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


def test_hostile_model_output_is_shown_as_text_and_executes_nothing(recorded_dash, server):
    page, rec = recorded_dash
    model = ScriptedModel().start()
    try:
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
        model.stop()


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


def test_a_picked_gguf_file_is_imported_with_progress_then_loads_with_no_download(
        recorded_dash, smollm2_gguf, tmp_path):
    page, rec = recorded_dash
    mine = tmp_path / "my-smollm2.gguf"
    shutil.copyfile(smollm2_gguf, mine)
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
