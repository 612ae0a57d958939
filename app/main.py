"""Page start-up (PyScript): connect to the engine worker and run the dashboard.

The engine (Pyodide + WebGPU) runs in a Web Worker (static/engine-worker.js) behind the JS facade
window.LocalLLM (static/local-llm.js); this page's Python only renders. It talks to the worker
through app.runtime.client and never opens the GPU itself. The views live in app/ui: the model
picker and load progress (models.py), the chat (chat.py), stats (stats.py), the storage panel
(cache.py), toasts (toasts.py), the status bar and runtime panel (dashboard.py).

Exposes `window.localLLMDiagnostics.selfTest(m, n, k, seed)` (a Promise of a JSON string with the
inputs, outputs and error of a matmul run in the worker) so that tests and curious users can
re-run the GPU check. `document.body.dataset.pyReady` is "1" once the page is up (without
WebGPU too, when the CPU backend can run models: a notice says so), "error" when the engine, or
both WebGPU and the CPU backend, are unavailable.
"""
from __future__ import annotations

import asyncio
import json

from .runtime.client import LocalLLMClient, RuntimeAPIError
from .ui.dashboard import Dashboard


async def start() -> None:
    from js import Object, document, window
    from pyodide.ffi import create_proxy, to_js

    ui = Dashboard(document)
    ui.status("Starting the engine…")
    try:
        llm = await LocalLLMClient.connect()
    except RuntimeAPIError as e:
        ui.error("The engine could not start", str(e.args[0]))
        document.body.dataset.pyReady = "error"
        return
    info = await llm.runtime_info()
    versions = dict(info.get("versions") or {})
    ui.python(f"Pyodide {versions.get('pyodide', '?')}, Python {versions.get('python', '?')} "
              "(engine worker)")
    ui.versions({k: v for k, v in versions.items() if k != "python"})
    app = await App.create(document, llm, ui)
    # Every later state change (loads, generation, errors) comes as an event from the worker.
    llm.on("status", ui.engine_status)
    llm.on("progress", ui.progress)
    llm.on("backend", ui.backend)
    # Remote fallback settings and the "text left this device" badge (docs/remote.md).
    from .ui.remote_settings import RemoteSettings
    try:
        await RemoteSettings(document, llm, on_saved=lambda _c: app.remote_only()).load()
    except RuntimeAPIError as e:
        app.toasts.error(e, title="Remote fallback settings could not be read")
    ui.status("Opening the GPU…")
    gpu_ok = True
    try:
        ui.runtime(await llm.check_webgpu())
    except RuntimeAPIError as e:
        if not info.get("cpu_available"):
            ui.error("WebGPU is unavailable", str(e.args[0]))
            document.body.dataset.pyReady = "error"
            return
        # Models still run, on the CPU backend (init's backend="auto" picks it).
        ui.notice("WebGPU is unavailable — chats run on the CPU (slower)", str(e.args[0]))
        ui.backend({"backend": "cpu", "reason": "WebGPU is unavailable"})
        gpu_ok = False

    if gpu_ok:
        async def self_test(m=37, n=29, k=45, seed=None):
            result = await llm.self_test(int(m), int(n), int(k),
                                         None if seed is None else int(seed))
            ui.selftest(result)
            app.stats.memory((await llm.runtime_info()).get("memory"))
            return json.dumps(result)

        window.localLLMDiagnostics = to_js({"selfTest": create_proxy(self_test)},
                                           dict_converter=Object.fromEntries)
        ui.status("Checking the GPU…")
        result = json.loads(await self_test())
        if not result["ok"]:
            ui.error("GPU self-test failed", "The GPU returned wrong results for a matrix "
                     "product; this browser's WebGPU implementation cannot run the engine "
                     "correctly.")
    ui.engine_status(llm.status())
    await app.start()
    document.body.dataset.pyReady = "1"


class App:
    """The dashboard's views wired to one LocalLLMClient."""

    @classmethod
    async def create(cls, document, llm, ui) -> "App":
        from .ui import markdown
        self = cls()
        self.doc, self.llm, self.ui = document, llm, ui
        from .ui.cache import CachePanel
        from .ui.chat import ChatView
        from .ui.conversations import BrowserChatStore, ConversationBook, MemoryChatStore
        from .ui.models import ModelPicker
        from .ui.settings import SettingsForm
        from .ui.stats import StatsPanel
        from .ui.toasts import Toasts
        self.toasts = Toasts(document)
        self.stats = StatsPanel(document)
        try:
            store = await BrowserChatStore.open(str(document.baseURI))
        except Exception as e:  # noqa: BLE001 - chats still work, for this visit only
            store = MemoryChatStore()
            self.toasts.error(e, title="Conversations cannot be saved on this device")
        self.book = ConversationBook(store)
        try:
            await self.book.load()
        except Exception as e:  # noqa: BLE001
            self.toasts.error(e, title="Saved conversations could not be read")
        await markdown.load(str(document.baseURI))
        self.picker = ModelPicker(document, llm, self.toasts, on_loaded=self.loaded,
                                  on_busy=self.busy)
        self.cache = CachePanel(document, llm, self.toasts, on_change=self.storage_changed)
        self.chat = ChatView(document, llm, self.toasts, SettingsForm(document), self.stats,
                             self.book, markdown, on_device_lost=self.reload_model,
                             names=self.picker.names)
        self.toasts.actions.update(cache=self.cache.focus, clear=self.chat.clear)
        llm.on("ready", lambda _d: asyncio.ensure_future(self.refresh_memory()))
        llm.on("memory-warning", lambda d: self.stats.memory(d.get("memory"), d.get("text")))
        llm.on("error", self.engine_error)
        llm.on("provider", self.provider)
        self._update_proxy = None
        self._watch_updates()
        return self

    async def start(self) -> None:
        await self.picker.refresh()
        self.ui.names = self.picker.names          # the status bar shows names, not ids
        self.chat.render_all()                     # (and replies their model's name)
        await self.cache.refresh()
        await self.refresh_memory()
        st = self.llm.status()
        if st.get("state") == "ready":
            self.chat.set_ready(True, st.get("model"))
        elif not await self.picker.restore():
            await self.remote_only()

    async def remote_only(self) -> None:
        """With the remote fallback on and no local model loaded, the composer still works:
        the hybrid provider sends the chat to the server (the badge says so). Runs at start,
        after a load that left no model, and after the remote settings are saved."""
        st = self.llm.status()
        if st.get("state") in ("ready", "generating", "loading"):
            return
        try:
            cfg = await self.llm.remote_config()
        except RuntimeAPIError:
            return
        mode = cfg.get("mode")
        usable = bool(cfg.get("enabled") and cfg.get("base_url") and (
            mode == "remote" or (mode == "auto" and st.get("state") == "error")))
        self.chat.set_ready(usable, (cfg.get("model") or "the remote server") if usable else None)

    # -- callbacks ------------------------------------------------------------------------
    async def loaded(self, result: dict | None) -> None:
        st = self.llm.status()
        ready = st.get("state") == "ready"
        name = next((m.get("name") for m in self.picker.models if m["id"] == st.get("model")),
                    st.get("model"))
        self.chat.set_ready(ready, name)
        if not ready:
            await self.remote_only()
        await self.cache.refresh()
        await self.refresh_memory()

    def busy(self, loading: bool) -> None:
        if loading:
            self.chat.set_ready(False)
        self.doc.body.dataset.loading = "1" if loading else ""

    async def storage_changed(self) -> None:
        await self.picker.refresh()

    async def refresh_memory(self) -> None:
        try:
            self.stats.memory((await self.llm.runtime_info()).get("memory"))
        except RuntimeAPIError:
            pass

    async def reload_model(self) -> bool:
        """After a lost GPU device: load the model again (the "Retry" of DeviceLostError)."""
        model = self.picker.saved_choice()
        return model is not None and await self.picker.choose(model) is not None

    def engine_error(self, detail: dict) -> None:
        """Errors no call of ours is waiting for (a lost device between requests)."""
        if detail.get("name") == "DeviceLostError" and not self.chat.generating:
            self.chat.set_ready(False)
            self.toasts.error(detail, retry=self.reload_model)

    def provider(self, detail: dict) -> None:
        if detail.get("provider") == "remote" and not self.chat.ready:
            self.chat.set_ready(True, detail.get("model") or "the remote model")

    def _watch_updates(self) -> None:
        """A new build was installed by the service worker (static/register-sw.js): offer to
        reload into it."""
        from js import window
        from pyodide.ffi import create_proxy

        def ready(_e=None):
            upd = getattr(window, "LocalLLMUpdate", None)
            if not upd or not upd.ready:
                return
            version = str(getattr(upd, "version", "") or "")
            self.toasts.info("A new version of LocalLLM is ready",
                             "Reload to use it; your conversations and models are kept."
                             + (f" (build {version})" if version else ""),
                             action_label="Reload", action=lambda: upd.apply(), sticky=True)
        self._update_proxy = create_proxy(ready)
        window.addEventListener("local-llm:update-ready", self._update_proxy)
        ready()
