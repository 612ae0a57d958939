"""The page's remote-fallback controls (app/ui/remote_settings.py) in headless Chromium without
WebGPU, against llama.cpp's OpenAI-compatible server (tests/remote_servers.py): the user fills
the settings form and saves; the worker then reports them (the key only as has_api_key); a
reply that the local side cannot produce comes from the server and the top bar's badge shows
that text left the device, naming the host; turning the fallback off in the form sends nothing
more (the named local error, the server's access log unchanged, the badge count unchanged).
"""
from __future__ import annotations

from urllib.parse import urlparse

from tests.browser.runtime_page import no_webgpu_launch_args, open_app
from tests.remote_servers import LLAMA_KEY

KEY = LLAMA_KEY          # the session server's key (tests/conftest.py `llama`)
MSGS = [{"role": "user", "content": "Name a primary color."}]
CHAT_JS = """async ([msgs]) => LocalLLM.chat(msgs, {maxTokens: 6, temperature: 0})
  .then((r) => ({result: r}), (e) => ({error: e.name}))"""


def test_settings_form_badge_and_turning_it_off(browser_type, browser_type_launch_args, server,
                                                 llama):
    browser = browser_type.launch(**no_webgpu_launch_args(browser_type_launch_args))
    try:
        context = browser.new_context(service_workers="block")
        page, _ = open_app(context, server.url)
        assert page.is_hidden("#remote-badge")
        assert page.inner_text("#remote-status").startswith("Off")
        assert page.get_attribute("#remote-key", "placeholder") == "none saved"

        page.check("#remote-enabled")
        page.fill("#remote-url", llama.base_url)
        page.fill("#remote-key", KEY)
        page.fill("#remote-model", "smollm2")
        page.select_option("#remote-mode", "auto")
        page.click("#remote-save")
        page.wait_for_function("document.getElementById('remote-status').textContent"
                               ".startsWith('Saved')")
        cfg = page.evaluate("LocalLLM.getRemoteConfig()")
        assert cfg["enabled"] is True and cfg["has_api_key"] is True
        assert cfg["base_url"].rstrip("/") == llama.base_url.rstrip("/") and cfg["mode"] == "auto"
        assert KEY not in str(cfg) and page.input_value("#remote-key") == ""
        assert "a key is saved" in page.get_attribute("#remote-key", "placeholder")

        page.evaluate("LocalLLM.init(null, {backend: 'webgpu'}).catch(() => null)")
        r = page.evaluate(CHAT_JS, [MSGS])
        assert r["result"]["provider"] == "remote" and r["result"]["text"].strip()
        page.wait_for_selector("#remote-badge:not([hidden])")
        host = urlparse(llama.base_url).netloc
        text = page.inner_text("#remote-badge")
        assert text.startswith("Sent to ") and host in text, text

        # Off again from the form: the next request stays local (and fails: no WebGPU here).
        served = len(llama.requests())
        page.uncheck("#remote-enabled")
        page.click("#remote-save")
        page.wait_for_function("document.getElementById('remote-status').textContent"
                               ".startsWith('Saved. Off')")
        assert page.evaluate("LocalLLM.getRemoteConfig()")["enabled"] is False
        badge = page.inner_text("#remote-badge")
        r = page.evaluate(CHAT_JS, [MSGS])
        assert r.get("error") in ("WebGPUUnavailableError", "NotLoadedError"), r
        assert len(llama.requests()) == served
        assert page.inner_text("#remote-badge") == badge
    finally:
        browser.close()
