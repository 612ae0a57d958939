"""The page's remote-fallback controls (docs/remote.md): the settings form in the side panel and
the badge in the top bar that shows whenever text left the device.

    panel = RemoteSettings(document, llm)      # llm: app.runtime.client.LocalLLMClient
    await panel.load()                         # fills the form; wires Save and the badge

The form never shows the stored key (the worker does not return it): the key field stays empty,
its placeholder says whether one is saved, and typing a new one replaces it on Save. The badge
follows the runtime's "provider" events, which fire before a request leaves the device.
"""
from __future__ import annotations

import asyncio
import time


class RemoteSettings:
    def __init__(self, document, llm, on_saved=None):
        self.doc, self.llm = document, llm
        self.on_saved = on_saved           # async fn(config) after a successful save
        self._proxies = []
        self.sent = 0                      # requests that went to the remote server

    def _el(self, element_id: str):
        return self.doc.getElementById(element_id)

    def _show(self, cfg: dict) -> None:
        self._el("remote-enabled").checked = bool(cfg.get("enabled"))
        self._el("remote-url").value = cfg.get("base_url") or ""
        self._el("remote-model").value = cfg.get("model") or ""
        self._el("remote-mode").value = cfg.get("mode") or "auto"
        key = self._el("remote-key")
        key.value = ""
        key.placeholder = ("a key is saved (type to replace)" if cfg.get("has_api_key")
                           else "none saved")
        warn = " Plain http to another machine: the key and your text travel unencrypted." \
            if cfg.get("insecure") else ""
        self._status(("On" if cfg.get("enabled") else "Off") + "." + warn)

    def _status(self, text: str) -> None:
        self._el("remote-status").textContent = text

    async def load(self) -> None:
        from pyodide.ffi import create_proxy
        self._show(await self.llm.remote_config())
        on_submit = create_proxy(lambda _e: asyncio.ensure_future(self.save()))
        self._proxies.append(on_submit)
        self._el("remote-form").addEventListener("submit", on_submit)
        self.llm.on("provider", self.on_provider)

    async def save(self) -> dict | None:
        """Store the form's values; the key only when one was typed."""
        changes = {"enabled": bool(self._el("remote-enabled").checked),
                   "base_url": str(self._el("remote-url").value).strip() or None,
                   "model": str(self._el("remote-model").value).strip() or None,
                   "mode": str(self._el("remote-mode").value)}
        key = str(self._el("remote-key").value)
        if key:
            changes["api_key"] = key
        try:
            cfg = await self.llm.set_remote_config(**changes)
        except Exception as e:  # noqa: BLE001 - shown to the user, who can correct the form
            self._status(f"Not saved: {getattr(e, 'message', None) or e}")
            return None
        self._show(cfg)
        self._status("Saved. " + self._el("remote-status").textContent)
        if self.on_saved is not None:
            await self.on_saved(cfg)
        return cfg

    def on_provider(self, detail: dict) -> None:
        if detail.get("provider") != "remote":
            return
        self.sent += 1
        badge = self._el("remote-badge")
        host = detail.get("host") or "a remote server"
        badge.textContent = (f"Sent to {host} at {time.strftime('%H:%M')}"
                             + (f" ({self.sent} requests)" if self.sent > 1 else ""))
        badge.hidden = False
