"""Driving the dashboard in headless Chromium as a person would (tests/browser/test_dashboard*
_browser.py): a booted page, and the steps a person takes (pick a model, ask, add a model),
each waiting for what the page shows. Screenshots go to artifacts/screenshots/ (CI keeps them).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.test_page import Recorder, boot

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
BUNDLED = "smollm2-135m-instruct-q4_1"
LOAD_MS = 240_000
REPLY_MS = 180_000


@pytest.fixture
def recorded_dash(browser, server):
    """(page, Recorder): the dashboard booted in a fresh context at 1280x800 (empty IndexedDB
    and caches), every request recorded from before the boot."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    rec = Recorder(page)
    assert boot(page, server.url) == "1"
    yield page, rec
    context.close()


@pytest.fixture
def dash(recorded_dash):
    """The booted dashboard page (recorded_dash without its recorder)."""
    return recorded_dash[0]


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
