"""HybridLLM: the local engine first; an OpenAI-compatible server only when the user allows it.

    rt = HybridLLM(LocalLLM())                   # natively; the worker passes its stores
    await rt.set_remote_config(enabled=True, base_url="https://host/v1", api_key="...",
                               model="name", mode="auto")
    rt.on("provider", lambda d: show_badge(d))   # a request is about to leave the device
    await rt.init()                              # local load (or, see below, the remote model)
    r = await rt.chat(messages)                  # r["provider"]: "local" | "remote"

The same API as LocalLLM (composition: `rt.local` is the LocalLLM; attributes not defined here
are the local runtime's). Every result and stream item carries "provider". Settings
(remote_config.py) are loaded from the store on first use; only set_remote_config changes them.

Routing by the mode in force (RemoteConfig.effective_mode: "local" unless the user enabled the
remote provider):
  local   everything is LocalLLM's, errors unchanged; nothing is ever sent.
  remote  chat/complete go to the server; init/switch_model load nothing locally (they return
          {"model": the remote model, "load_s": 0.0, "provider": "remote"}).
  auto    the local engine serves; a request goes remote only when the local engine cannot
          serve it: no backend (WebGPUUnavailableError, or CpuBackendUnavailableError; with
          init's backend="auto" LocalLLM itself first tries its CPU backend), the device was
          lost (DeviceLostError), the model does not fit (ModelMemoryError,
          GPUOutOfMemoryError), or no model is loaded because the last load failed (any load
          error: state "error"). A request that
          failed locally goes remote only when none of its text was delivered (a stream fails
          over before its first item, never mid-reply). init() whose local load fails for one
          of these reasons returns the remote model ({"provider": "remote", "reason"}) instead
          of raising; the local "error" event and status still say what failed locally.
          Any other local error (PromptTooLongError, NotLoadedError before any init, bad
          options) is raised as it is.

Before a request goes remote, a "provider" event fires: {"provider": "remote", "reason",
"local_error": the local error's class name or None, "host": scheme://host:port, "model",
"kind": "chat" | "complete"}; it is also relayed through the platform (in the browser: the
page's local-llm:provider event). Local requests fire none.
"""
from __future__ import annotations

import logging

from ..cpu.errors import CpuBackendUnavailableError
from ..gpu import DeviceLostError, GPUOutOfMemoryError, WebGPUUnavailableError
from ..models import ModelMemoryError
from .errors import NotLoadedError
from .hybrid_completions import HybridCompletions
from .remote import RemoteLLM
from .remote_config import RemoteConfig

log = logging.getLogger("app.runtime.hybrid")
# Errors that mean "the local engine cannot serve this", whatever the request: no backend
# (neither WebGPU nor, where asked for, the CPU one), a lost device, a model that does not fit.
UNABLE = (WebGPUUnavailableError, CpuBackendUnavailableError, DeviceLostError, ModelMemoryError,
          GPUOutOfMemoryError)


def _default_store():
    import sys
    if sys.platform == "emscripten":
        raise RuntimeError("in the browser, pass store=IndexedDBConfigStore(site) "
                           "(app/runtime/worker.py does)")
    from .remote_config import FileConfigStore
    return FileConfigStore()


class HybridLLM:
    """See the module doc. local: a LocalLLM; store: a settings store (default: the native
    file); remote: a RemoteLLM (default: one over the default transport)."""

    def __init__(self, local, *, store=None, remote: RemoteLLM | None = None):
        self.local = local
        self.remote = remote if remote is not None else RemoteLLM()
        self._store = store if store is not None else _default_store()
        self._config_loaded = False
        self._provider_listeners: list = []
        self.chat_completions = HybridCompletions(self)

    def __getattr__(self, name):
        # Local-only attributes (platform, catalog, add_model, _dev for diagnostics, ...).
        if name in ("local", "remote"):
            raise AttributeError(name)
        return getattr(self.local, name)

    def __repr__(self) -> str:
        return f"HybridLLM(local={type(self.local).__name__}, remote={self.remote!r})"

    # -- settings -----------------------------------------------------------------------------
    async def _config(self) -> RemoteConfig:
        if not self._config_loaded:
            self.remote.config = RemoteConfig.from_dict(await self._store.load())
            self._config_loaded = True
        return self.remote.config

    async def remote_config(self) -> dict:
        """The settings without the key: {enabled, base_url, model, mode, has_api_key,
        insecure}."""
        return (await self._config()).public()

    async def set_remote_config(self, **changes) -> dict:
        """Change some settings (keys: enabled, base_url, api_key, model, mode; api_key None or
        "" clears it), check them (RemoteConfigError), store them on this device, and return
        remote_config(). Disabling (or switching to mode "local") aborts running remote
        requests at once."""
        new = (await self._config()).updated(changes)
        await self._store.save(new.to_dict())
        self.remote.config = new
        if new.effective_mode == "local":
            self.remote.abort_all()
        log.info("remote provider settings changed: mode %s, host %s", new.effective_mode,
                 new.host or "-")
        return new.public()

    # -- events, status -------------------------------------------------------------------------
    def on(self, name: str, callback):
        """As LocalLLM.on, plus the "provider" event."""
        if name != "provider":
            return self.local.on(name, callback)
        self._provider_listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._provider_listeners:
                self._provider_listeners.remove(callback)
        return unsubscribe

    def _emit_provider(self, detail: dict) -> None:
        try:
            self.local.platform.emit("provider", dict(detail))
        except Exception:  # noqa: BLE001 - the relay must not stop the request
            log.exception("the platform's relay of the provider event failed")
        for cb in list(self._provider_listeners):
            try:
                cb(dict(detail))
            except Exception:  # noqa: BLE001 - a UI bug must not stop the request
                log.exception("a 'provider' listener raised")

    def status(self) -> dict:
        return self.local.status()

    def runtime_info(self) -> dict:
        """LocalLLM.runtime_info() plus "remote": the settings without the key (as last
        loaded) and "mode": the mode in force."""
        cfg = self.remote.config
        return {**self.local.runtime_info(), "remote": {**cfg.public(),
                                                        "mode_in_force": cfg.effective_mode}}

    # -- delegated local operations -------------------------------------------------------------
    async def check_webgpu(self) -> dict:
        return await self.local.check_webgpu()

    async def available_models(self) -> list[dict]:
        return await self.local.available_models()

    def interrupt(self) -> bool:
        """Abort the running remote request, else the local one (LocalLLM.interrupt)."""
        return self.remote.interrupt() or self.local.interrupt()

    async def unload(self) -> None:
        self.remote.abort_all()
        await self.local.unload()

    async def init(self, model_id: str | None = None, **options) -> dict:
        """LocalLLM.init (keyword arguments passed through) + "provider"; see the module doc
        for the remote and auto modes."""
        return await self._load(self.local.init, model_id, options)

    async def switch_model(self, model_id: str | None, **options) -> dict:
        """Aborts running remote requests too, then as LocalLLM.switch_model."""
        self.remote.abort_all()
        return await self._load(self.local.switch_model, model_id, options)

    async def _load(self, load, model_id, options) -> dict:
        cfg = await self._config()
        if cfg.effective_mode == "remote":
            return {"model": cfg.model, "load_s": 0.0, "backend": None, "provider": "remote"}
        try:
            return {**await load(model_id, **options), "provider": "local"}
        except Exception as e:
            # any failed load that left no model (state "error"), or a no-backend error
            unable = isinstance(e, UNABLE) or self.local.status()["state"] == "error"
            if cfg.effective_mode == "auto" and unable:
                log.info("local load failed (%s); requests will go to %s", type(e).__name__,
                         cfg.host)
                return {"model": cfg.model, "load_s": 0.0, "backend": None,
                        "provider": "remote", "reason": _reason(e)}
            raise

    # -- requests ---------------------------------------------------------------------------------
    async def chat(self, messages, *, stream: bool = False, **options):
        """LocalLLM.chat's arguments and results, + "provider" on each result and item."""
        return await self._request("chat", messages, stream, options)

    async def complete(self, prompt: str, *, stream: bool = False, **options):
        """LocalLLM.complete's arguments and results, + "provider" on each result and item."""
        return await self._request("complete", prompt, stream, options)

    def _unable(self, e: BaseException) -> bool:
        if isinstance(e, UNABLE):
            return True
        return isinstance(e, NotLoadedError) and self.local.status()["state"] == "error"

    async def _request(self, kind: str, payload, stream: bool, options: dict):
        cfg = await self._config()
        mode = cfg.effective_mode
        if mode == "remote":
            return await self._remote(kind, payload, stream, options, "remote mode", None)
        try:
            result = await getattr(self.local, kind)(payload, stream=stream, **options)
        except Exception as e:
            if mode == "auto" and self._unable(e):
                return await self._remote(kind, payload, stream, options, _reason(e), e)
            raise
        if not stream:
            return {**result, "provider": "local"}
        return self._local_items(result, kind, payload, options, mode == "auto")

    async def _remote(self, kind, payload, stream, options, reason, error):
        cfg = self.remote.config
        name = type(error).__name__ if error else None
        failed = self.local.status().get("error")
        if isinstance(error, NotLoadedError) and failed:
            name = failed["name"]          # the load's error, not "nothing loaded"
            reason = _reason_of(failed["name"], failed["message"])
        self._emit_provider({"provider": "remote", "reason": reason, "local_error": name,
                             "host": cfg.host, "model": cfg.model, "kind": kind})
        return await getattr(self.remote, kind)(payload, stream=stream, **options)

    async def _local_items(self, items, kind, payload, options, may_fall_back: bool):
        """The local stream's items + "provider"; before its first item, a failure that means
        "local cannot serve" continues on the remote server (auto mode)."""
        delivered = False
        try:
            async for item in items:
                delivered = True
                yield {**item, "provider": "local"}
        except Exception as e:
            if delivered or not may_fall_back or not self._unable(e):
                raise
            remote_items = await self._remote(kind, payload, True, options, _reason(e), e)
            try:
                async for item in remote_items:
                    yield item
            finally:
                await remote_items.aclose()
        finally:
            await items.aclose()


def _reason(e: BaseException) -> str:
    return _reason_of(type(e).__name__, str(e))


def _reason_of(name: str, message: str) -> str:
    return f"the local engine cannot serve this request ({name}: {message})"
