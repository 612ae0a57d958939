"""The installable, updatable, offline PWA (docs/pwa.md) in headless Chromium, on real builds
of the site served by build.make_app (Range support, the real headers) from a temporary folder.

- Installable: Chrome's own checks (DevTools protocol) find no installability error and parse
  the web manifest without errors, with its id, start URL, scope and 192/512 px icons.
- Precache completeness: one online visit boots Python, loads the bundled model and chats;
  every same-origin URL the page, its engine worker and the service worker requested (model
  weights aside) is in the build's precache manifest. Then the server is STOPPED (its socket
  closed, not an emulated offline mode) and a new page boots, loads the model from IndexedDB and
  chats, and no request fails.
- Update: build A is visited, the served folder switches to build B; B's worker installs and
  waits (the page keeps A), "local-llm:update-ready" names B's version, a page opened meanwhile
  sees the waiting worker at load; LocalLLMUpdate.apply() activates B and reloads: only B's
  cache is left, the page has B's CSS and Python boots; the other tab reloads with apply() too.

Each test serves its own build (SiteServer below) so that stopping or switching it touches
nothing else; the site folder is a symlink, switched atomically between builds.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

import build

BOOT_TIMEOUT_MS = 240_000      # two Pyodides (engine worker + PyScript) on a 2-core machine
SW_TIMEOUT_MS = 60_000         # the service worker installs (precaches ~80 files) and claims

PHASE_RECORDER = """
window.__phases = [];
window.addEventListener("local-llm:progress", (e) => {
  if (window.__phases.at(-1) !== e.detail.phase) window.__phases.push(e.detail.phase);
});
"""

UPDATE_RECORDER = """
window.__updates = [];
window.addEventListener("local-llm:update-ready", (e) => window.__updates.push(e.detail));
"""

# The version the page's controlling service worker serves (static/sw.js: GET_VERSION).
CONTROLLER_VERSION = """() => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = ({ data }) => resolve(data.version);
  navigator.serviceWorker.controller.postMessage({ type: "GET_VERSION" }, [channel.port2]);
})"""

LOCALLLM_CACHES = "caches.keys().then((keys) => keys.filter((k) => k.startsWith('localllm-')))"

STREAM_CHAT = """async () => {
  const items = [];
  const stream = await LocalLLM.chat([{ role: "user", content: "Say hello." }],
                                     { stream: true, maxTokens: 4, temperature: 0 });
  for await (const item of stream) items.push(item);
  return items;
}"""


class SiteServer:
    """build.make_app(root) on 127.0.0.1 in a thread of this process. stop() closes the
    listening socket and every connection: afterwards the site is really unreachable."""

    def __init__(self, root: Path):
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pwa-site", daemon=True)
        self.runner = None
        self.url = None

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self) -> "SiteServer":
        from aiohttp import web

        async def up():
            runner = web.AppRunner(build.make_app(self.root), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, site._server.sockets[0].getsockname()[1]

        self.thread.start()
        self.runner, port = self._call(up())
        self.url = f"http://127.0.0.1:{port}/"
        return self

    def stop(self) -> None:
        if self.runner is not None:
            self._call(self.runner.cleanup())
            self.runner = None
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def point(link: Path, target: Path) -> None:
    """Make `link` a symlink to `target`, atomically (the server follows it per request)."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def site_path(url: str, base: str) -> str | None:
    """The site-relative path of a same-origin http(s) URL ("" is the root), else None."""
    u, b = urlparse(url), urlparse(base)
    if u.scheme not in ("http", "https") or u.netloc != b.netloc:
        return None
    return u.path[len(b.path):]


def manifest_of(site: Path) -> dict:
    return json.loads((site / "precache-manifest.json").read_text())


def wait_controlled(page) -> None:
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=SW_TIMEOUT_MS)


def boot(page, url: str) -> None:
    """Open the app and wait until its Python is up and window.LocalLLM answers."""
    page.goto(url)
    page.wait_for_function("document.body.dataset.pyReady && window.LocalLLM",
                           timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.pyReady") == "1"
    page.evaluate("LocalLLM.ready()")


@pytest.fixture
def site(tmp_path) -> Path:
    out = tmp_path / "a"
    build.build(out)
    return out


# -- installable ------------------------------------------------------------------------------
def test_manifest_makes_the_page_installable(browser_type, browser_type_launch_args, site):
    """Chrome's installability check runs on a persistent profile (in an off-the-record one,
    which Playwright's new_context() creates, it always answers "in-incognito")."""
    srv = SiteServer(site).start()
    context = browser_type.launch_persistent_context(site.parent / "profile",
                                                     **browser_type_launch_args)
    try:
        page = context.new_page()
        page.goto(srv.url)
        wait_controlled(page)
        cdp = context.new_cdp_session(page)
        assert cdp.send("Page.getInstallabilityErrors") == {"installabilityErrors": []}
        app = cdp.send("Page.getAppManifest")
        assert app["url"] == srv.url + "static/manifest.webmanifest" and app["errors"] == []
        parsed = app["manifest"]
        assert parsed["id"] == srv.url and parsed["scope"] == srv.url
        assert parsed["startUrl"] == srv.url + "index.html"
        assert parsed["display"] == "kStandalone" and parsed["name"].startswith("LocalLLM")
        icons = {(i["url"].removeprefix(srv.url), i["sizes"]) for i in parsed["icons"]}
        assert {("static/icons/icon-192.png", "192x192"), ("static/icons/icon-512.png", "512x512"),
                ("static/icons/icon-maskable-512.png", "512x512")} <= icons
        # The purposes (the protocol's parsed form leaves them out) come from the served text.
        raw = json.loads(app["data"])
        assert {i["purpose"] for i in raw["icons"]} == {"any", "maskable"}
        assert raw["short_name"] == "LocalLLM"
        # The icons the manifest names are served as PNGs (and precached).
        for url, _ in icons:
            resp = page.request.get(srv.url + url)
            assert resp.ok and resp.headers["content-type"] == "image/png"
            assert url in manifest_of(site)["files"]
        assert cdp.send("Page.getAppId")["appId"] == srv.url
    finally:
        context.close()
        srv.stop()


# -- precache completeness, then offline --------------------------------------------------------
def test_everything_requested_is_precached_then_works_offline(browser, site):
    srv = SiteServer(site).start()
    context = browser.new_context()
    context.add_init_script(PHASE_RECORDER)
    requests, failures = [], []
    context.on("request", lambda r: requests.append((r.method, r.url, r.service_worker is not None)))
    context.on("requestfailed", lambda r: failures.append((r.method, r.url, r.failure)))
    context.on("response", lambda r: r.status >= 400 and failures.append(
        (r.request.method, r.url, r.status)))
    try:
        page = context.new_page()
        boot(page, srv.url)
        wait_controlled(page)
        loaded = page.evaluate("LocalLLM.init(null, {contextLength: 256})")
        assert loaded["backend"] == "webgpu"
        assert page.evaluate("window.__phases")[0] == "download"   # into IndexedDB
        reply = page.evaluate("LocalLLM.chat([{role: 'user', content: 'Hi'}], {maxTokens: 4})")
        assert 1 <= reply["usage"]["completion_tokens"] <= 4
        assert failures == []

        files = manifest_of(site)["files"]
        version = manifest_of(site)["version"]
        paths = {site_path(u, srv.url) for _, u, _ in requests} - {None}
        # The page, the engine worker and the service worker all asked (the recorder sees all).
        assert "vendor/pyodide/pyodide.asm.wasm" in paths and "py/localllm.zip" in paths
        assert any(p.startswith("vendor/pyscript/") and p != "vendor/pyscript/core.js"
                   for p in paths)
        assert any(sw for _, _, sw in requests)
        weights = {p for p in paths if p.startswith("models/") and p.endswith(".gguf")}
        assert weights == {"models/" + build.BUNDLED_MODEL["file"]}
        # sw.js is the worker itself (fetched by the browser to look for updates); "" is the
        # root, answered with index.html.
        not_precached = sorted(p for p in paths - weights - {"sw.js"}
                               if (p or "index.html") not in files)
        assert not_precached == []
        # The cache holds exactly the manifest's files.
        cached = page.evaluate(f"""caches.open("localllm-{version}").then((c) => c.keys())
            .then((reqs) => reqs.map((r) => r.url))""")
        assert sorted(site_path(u, srv.url) for u in cached) == sorted(files)

        srv.stop()
        page.close()
        failures.clear()
        page = context.new_page()
        boot(page, srv.url)
        assert page.evaluate("navigator.serviceWorker.controller !== null")
        again = page.evaluate("LocalLLM.init(null, {contextLength: 256})")
        assert again["model"] == loaded["model"]
        assert "download" not in page.evaluate("window.__phases")     # read from IndexedDB
        assert "cache" in page.evaluate("window.__phases")
        items = page.evaluate(STREAM_CHAT)
        assert len(items) >= 2 and "finish_reason" not in items[0]
        assert items[-1]["finish_reason"] in ("stop", "length")
        assert items[-1]["usage"]["completion_tokens"] >= 1
        assert "".join(i.get("delta", "") for i in items).strip()
        # Nothing failed: every request was answered from the precache or IndexedDB. (The
        # browser's own update check of sw.js fails too, but is not a page request.)
        assert failures == []
    finally:
        srv.stop()
        context.close()


# -- update -------------------------------------------------------------------------------------
def changed_build(out: Path, css: str) -> dict:
    """Build B: a fresh build with `css` appended to static/app.css, manifest and sw.js
    rewritten by build.precache (as a deploy of a changed app.css would)."""
    build.build(out)
    app_css = out / "static" / "app.css"
    app_css.write_text(app_css.read_text() + css)
    return build.precache(out)


def test_a_new_build_waits_then_replaces_the_old_cache_on_apply(browser, site, tmp_path):
    b = tmp_path / "b"
    manifest_b = changed_build(b, "\n:root { --pwa-build: b; }\n")
    version_a, version_b = manifest_of(site)["version"], manifest_b["version"]
    assert version_a != version_b
    served = tmp_path / "site"
    point(served, site)
    srv = SiteServer(served).start()
    context = browser.new_context()
    context.add_init_script(UPDATE_RECORDER)
    css_var = "getComputedStyle(document.documentElement).getPropertyValue('--pwa-build').trim()"
    try:
        page = context.new_page()
        page.goto(srv.url)
        wait_controlled(page)
        assert page.evaluate(CONTROLLER_VERSION) == version_a
        assert page.evaluate(LOCALLLM_CACHES) == [f"localllm-{version_a}"]
        assert page.evaluate("window.LocalLLMUpdate.ready") is False
        assert page.evaluate("window.LocalLLMUpdate.apply()") is False   # nothing to apply

        point(served, b)   # deploy B while the page is open
        page.evaluate("window.LocalLLMUpdate.check()")
        page.wait_for_function("window.__updates.length > 0", timeout=SW_TIMEOUT_MS)
        assert page.evaluate("window.__updates") == [{"version": version_b}]
        assert page.evaluate("[LocalLLMUpdate.ready, LocalLLMUpdate.version]") == [True, version_b]
        # B waits: A still controls the page and serves A's files; both caches exist.
        page.wait_for_timeout(1500)
        assert page.evaluate(CONTROLLER_VERSION) == version_a
        assert page.evaluate("navigator.serviceWorker.getRegistration().then((r) => !!r.waiting)")
        assert sorted(page.evaluate(LOCALLLM_CACHES)) == sorted(
            [f"localllm-{version_a}", f"localllm-{version_b}"])
        assert "--pwa-build" not in page.evaluate("fetch('static/app.css').then((r) => r.text())")
        assert page.evaluate(css_var) == ""

        # A tab opened now is still served A, and sees the waiting worker at load.
        other = context.new_page()
        other.goto(srv.url)
        other.wait_for_function("window.__updates.length > 0", timeout=SW_TIMEOUT_MS)
        assert other.evaluate("window.__updates") == [{"version": version_b}]
        assert other.evaluate(CONTROLLER_VERSION) == version_a

        # The dashboard offers the reload (a notice with a Reload button, app/main.py); the
        # button applies the update.
        page.wait_for_function("document.body.dataset.pyReady", timeout=BOOT_TIMEOUT_MS)
        toast = page.locator("#toasts .toast", has_text="new version")
        toast.wait_for(timeout=60_000)
        with page.expect_navigation(timeout=SW_TIMEOUT_MS):
            toast.locator("button[data-action=Reload]").click()
        page.wait_for_function("navigator.serviceWorker.controller !== null",
                               timeout=SW_TIMEOUT_MS)
        assert page.evaluate(CONTROLLER_VERSION) == version_b
        assert page.evaluate(LOCALLLM_CACHES) == [f"localllm-{version_b}"]
        assert page.evaluate(css_var) == "b"
        assert page.evaluate("[LocalLLMUpdate.ready, window.__updates]") == [False, []]
        page.wait_for_function("document.body.dataset.pyReady", timeout=BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.pyReady") == "1"

        # The other tab (old code, now controlled by B) still offers the reload; apply() reloads.
        assert other.evaluate("LocalLLMUpdate.ready") is True
        with other.expect_navigation(timeout=SW_TIMEOUT_MS):
            assert other.evaluate("window.LocalLLMUpdate.apply()") is True
        other.wait_for_function("navigator.serviceWorker.controller !== null",
                                timeout=SW_TIMEOUT_MS)
        assert other.evaluate(css_var) == "b"
    finally:
        srv.stop()
        context.close()
        shutil.rmtree(b, ignore_errors=True)
