"""The dashboard in headless Chromium, driven as a person would: real page, real engine worker
(WebGPU through SwiftShader), real IndexedDB, the bundled SmolLM2 and gemma-3-270m GGUFs served
by the real build server.

- the full flow: pick a model, the progress bar reaches 100%, ask, tokens stream in order (what
  the page shows is what the engine generates greedily), stats fill in, Stop mid-reply,
  Regenerate, the conversation survives a reload, add gemma-3-270m by URL and switch to it;
- offline: after that visit, with the server stopped, a new page loads the remembered model from
  the cache by itself and chats;
- a lost GPU is a toast whose Retry reloads the model;
- a narrow window keeps every control reachable; an automated WCAG audit finds nothing.

Hostile output, bad files, cancelled and failed downloads, imports:
tests/browser/test_dashboard_errors_browser.py. Helpers: tests/browser/dashboard_page.py.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.bench.browser import Server
from tests.browser.dashboard_page import (BUNDLED, LOAD_MS, REPLY_MS, add_by_url, ask,
                                          dash, last_reply, load_model, recorded_dash,  # noqa: F401
                                          set_generation, shot, stored_conversations)
from tests.browser.test_page import BOOT_TIMEOUT_MS, Recorder, boot
from tests.fixtures_tokenizer import gemma_gguf  # noqa: F401 (fixture)

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
SYSTEM = "You are a geography teacher. Answer in one sentence."

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
