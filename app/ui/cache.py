"""The storage panel (cache manager): cached models with their sizes and a Delete button each,
files that belong to no model, and the origin's usage against its quota.

    panel = CachePanel(document, llm, toasts, on_change=coro_fn)
    await panel.refresh()              # llm.get_cache(): {"models", "other", "usage", "quota", ...}
"""
from __future__ import annotations

import asyncio

from . import format as fmt
from .dom import Handlers, clear, el

HIGH_USAGE = 0.8


def usage_line(cache: dict) -> tuple[str, float | None]:
    """("1.2 GB of 40 GB used · 2 models", fraction) from get_cache() (pure; unit-tested)."""
    usage, quota = cache.get("usage"), cache.get("quota")
    n = sum(1 for m in cache.get("models") or [] if m.get("bytes"))
    models = f"{n} model{'s' if n != 1 else ''} stored"
    if quota:
        text = f"{fmt.size(usage or 0)} of {fmt.size(quota)} used · {models}"
        frac = (usage or 0) / quota
    else:
        text, frac = f"{fmt.size(usage or 0)} used · {models}", None
    if cache.get("persisted"):
        text += " · kept by the browser (persistent)"
    return text, frac


class CachePanel:
    def __init__(self, document, llm, toasts, on_change=None):
        self.doc, self.llm, self.toasts = document, llm, toasts
        self.on_change = on_change
        self.list = document.getElementById("cache-list")
        self.h = Handlers()
        self.h.on(self.list, "click", self._on_click)
        self.cache: dict = {}

    async def refresh(self) -> dict:
        try:
            self.cache = await self.llm.get_cache()
        except Exception as e:  # noqa: BLE001
            self.doc.getElementById("storage-usage").textContent = f"Storage unavailable: {e}"
            return {}
        self.render()
        return self.cache

    def render(self) -> None:
        doc, cache = self.doc, self.cache
        text, frac = usage_line(cache)
        doc.getElementById("storage-usage").textContent = text
        meter = doc.getElementById("storage-meter")
        meter.style.width = f"{100 * min(frac or 0, 1):.1f}%"
        meter.className = "high" if (frac or 0) >= HIGH_USAGE else ""
        clear(self.list)
        rows = [(m.get("name") or m["id"], m.get("bytes") or 0, "model", m["id"],
                 m.get("complete"), m.get("loaded"))
                for m in cache.get("models") or [] if m.get("bytes")]
        rows += [(f.get("name") or f["key"], f.get("bytes") or 0, "file", f["key"],
                  f.get("complete"), False) for f in cache.get("other") or []]
        if not rows:
            self.list.appendChild(el(doc, "li", "No models stored yet.", "muted"))
        for name, size, kind, key, complete, loaded in rows:
            li = el(doc, "li")
            li.dataset.kind, li.dataset.key = kind, key
            label = name + ("" if complete else " (partial)") + (" · in use" if loaded else "")
            li.appendChild(el(doc, "span", label, "name"))
            li.appendChild(el(doc, "span", fmt.size(size), "muted"))
            btn = el(doc, "button", "Delete", "secondary danger", type="button",
                     aria_label=f"Delete {name} from this device")
            btn.dataset.kind, btn.dataset.key = kind, key
            li.appendChild(btn)
            self.list.appendChild(li)

    def _on_click(self, event) -> None:
        btn = event.target.closest("button[data-key]")
        if btn:
            asyncio.ensure_future(self.delete(str(btn.dataset.kind), str(btn.dataset.key)))

    async def delete(self, kind: str, key: str) -> None:
        try:
            if kind == "model":
                self.cache = await self.llm.delete_cached(key)
            else:
                self.cache = await self.llm.delete_cached_file(key)
        except Exception as e:  # noqa: BLE001
            self.toasts.error(e)
            return
        self.render()
        if self.on_change:
            await self.on_change()

    def focus(self) -> None:
        """The "cache" action of a quota error: bring the panel into view."""
        section = self.doc.getElementById("storage-title")
        section.scrollIntoView()
        first = self.list.querySelector("button")
        if first:
            first.focus()
