"""The model picker (left panel) and the load progress (above the chat).

    picker = ModelPicker(document, llm, toasts, on_loaded=coro_fn)
    await picker.refresh()             # the catalog with cached/partial/runnable badges
    await picker.choose("smollm2-…")   # load it (switching from the current one), with progress

Cards are rebuilt from llm.available_models() on every refresh; one delegated click handler on
the list reads data-action/data-model, so no per-card proxies pile up. The chosen model id is
kept in localStorage and loaded again on the next visit when its files are cached (a visit
never starts a download by itself).
"""
from __future__ import annotations

import asyncio

from . import format as fmt
from .dom import Handlers, clear, el

CHOICE_KEY = "localllm.model"


def card_facts(m: dict) -> dict:
    """What a model card shows, from an available_models() entry (pure; unit-tested)."""
    badges = []
    if m.get("bundled"):
        badges.append(("bundled", "bundled"))
    if m.get("cached"):
        badges.append(("cached", "cached"))
    elif m.get("partial"):
        size = m.get("size") or 0
        pct = f" {100 * (m.get('cached_bytes') or 0) / size:.0f}%" if size else ""
        badges.append(("partial", "partly downloaded" + pct))
    if m.get("backend") == "cpu":
        badges.append(("cpu", "runs on CPU"))
    if m.get("user_added"):
        badges.append(("user", "added by you"))
    meta = [x for x in (m.get("family"), fmt.params(m.get("params")), m.get("quantization"))
            if x]
    if m.get("size"):
        meta.append(fmt.size(m["size"]) if m.get("size_exact", True) else
                    f"~{fmt.size(m['size'])}")
    if m.get("memory_bytes"):
        meta.append(f"needs {fmt.size(m['memory_bytes'])} GPU memory")
    if m.get("license"):
        meta.append(m["license"])
    if m.get("cached"):
        action = "Load"
    elif m.get("partial"):
        action = "Resume download"
    else:
        action = f"Download {fmt.size(m['size'])}" if m.get("size") else "Download"
    return {"badges": badges, "meta": " · ".join(meta), "action": action,
            "disabled_reason": m.get("runnable") if not m.get("backend") else None}


class ModelPicker:
    def __init__(self, document, llm, toasts, on_loaded=None, on_busy=None):
        self.doc, self.llm, self.toasts = document, llm, toasts
        self.on_loaded = on_loaded          # async fn(load_result) after a load
        self.on_busy = on_busy              # fn(bool): loading started / ended
        self.models: list[dict] = []
        self.names: dict[str, str] = {}
        self.loading: str | None = None
        self.h = Handlers()
        self.list = document.getElementById("model-list")
        self.progress = LoadProgressView(document)
        self.h.on(self.list, "click", self._on_click)
        self.h.task(document.getElementById("load-cancel"), "click", lambda _e: self.cancel())
        self.h.task(document.getElementById("add-url-form"), "submit", lambda _e: self.add_url())
        file_input = document.getElementById("add-file")
        self.h.task(file_input, "change", lambda _e: self._import_files(file_input.files))
        zone = document.getElementById("models-title").parentNode
        self.h.on(zone, "dragover", self._on_dragover)
        self.h.on(zone, "dragleave", lambda _e: self._drop_zone(False))
        self.h.on(zone, "drop", self._on_drop)
        llm.on("progress", self.progress.update)

    # -- the list ---------------------------------------------------------------------------
    @property
    def loaded_model(self) -> str | None:
        st = self.llm.status()
        return st.get("model") if st.get("state") in ("ready", "generating") else None

    async def refresh(self) -> list[dict]:
        self.models = await self.llm.available_models()
        self.names.clear()                 # updated in place: the status bar shares it
        self.names.update({m["id"]: m.get("name") or m["id"] for m in self.models})
        self.render()
        return self.models

    def render(self) -> None:
        doc = self.doc
        self.doc.getElementById("models-empty").hidden = bool(self.models)
        clear(self.list)
        loaded, chosen = self.loaded_model, self.saved_choice()
        for m in self.models:
            facts = card_facts(m)
            disabled = facts["disabled_reason"] is not None
            li = el(doc, "li", cls="model" + (" selected" if m["id"] in (loaded, self.loading)
                                              else "") + (" disabled" if disabled else ""))
            li.dataset.model = m["id"]
            name_id = f"model-name-{len(self.list.children)}"
            li.appendChild(el(doc, "div", m.get("name") or m["id"], "model-name", id=name_id))
            li.appendChild(el(doc, "div", facts["meta"], "model-meta"))
            if facts["badges"]:
                badges = el(doc, "div", cls="badges")
                for kind, text in facts["badges"]:
                    badges.appendChild(el(doc, "span", text, f"badge badge-{kind}"))
                li.appendChild(badges)
            reason_id = None
            if disabled:
                reason_id = name_id + "-why"
                li.appendChild(el(doc, "p", facts["disabled_reason"], "model-reason",
                                  id=reason_id))
            actions = el(doc, "div", cls="model-actions")
            if m["id"] == loaded:
                label, btn_disabled = "Loaded", True
            elif m["id"] == self.loading:
                label, btn_disabled = "Loading…", True
            else:
                label, btn_disabled = facts["action"], disabled or self.loading is not None
            btn = el(doc, "button", label, "load" if m["id"] != loaded else "secondary",
                     type="button", disabled=btn_disabled,
                     aria_describedby=reason_id, aria_label=f"{label}: {m.get('name')}")
            btn.dataset.action = "load"
            btn.dataset.model = m["id"]
            actions.appendChild(btn)
            if m.get("user_added"):
                rm = el(doc, "button", "Remove", "secondary danger", type="button",
                        aria_label=f"Remove {m.get('name')}", disabled=self.loading is not None)
                rm.dataset.action = "remove"
                rm.dataset.model = m["id"]
                actions.appendChild(rm)
            if m["id"] == chosen and m["id"] != loaded:
                actions.appendChild(el(doc, "span", "last used", "muted small"))
            li.appendChild(actions)
            self.list.appendChild(li)

    def _on_click(self, event) -> None:
        target = event.target.closest("button[data-action]")
        if not target or target.disabled:
            return
        model_id = str(target.dataset.model)
        if str(target.dataset.action) == "load":
            asyncio.ensure_future(self.choose(model_id))
        elif str(target.dataset.action) == "remove":
            asyncio.ensure_future(self.remove(model_id))

    # -- the persisted choice ---------------------------------------------------------------
    def saved_choice(self) -> str | None:
        from js import localStorage
        v = localStorage.getItem(CHOICE_KEY)
        return None if v is None else str(v)

    def _save_choice(self, model_id: str) -> None:
        from js import localStorage
        localStorage.setItem(CHOICE_KEY, model_id)

    async def restore(self) -> bool:
        """Load the model chosen on an earlier visit if it is fully cached and runnable."""
        chosen = self.saved_choice()
        m = next((m for m in self.models if m["id"] == chosen), None)
        if m is None or not m.get("cached") or not m.get("backend"):
            return False
        await self.choose(chosen)
        return True

    # -- loading ----------------------------------------------------------------------------
    async def choose(self, model_id: str) -> dict | None:
        if self.loading is not None:
            return None
        self.loading = model_id
        self._save_choice(model_id)
        name = next((m.get("name") for m in self.models if m["id"] == model_id), model_id)
        self.progress.start(name)
        self.render()
        if self.on_busy:
            self.on_busy(True)
        result = None
        try:
            if self.llm.status().get("model"):
                result = await self.llm.switch_model(model_id)
            else:
                result = await self.llm.init(model_id)
            self.progress.finish()
        except Exception as e:  # noqa: BLE001 - shown as a toast with the remedy
            self.progress.stop()
            if getattr(e, "name", "") == "LoadCancelledError":
                self.toasts.info("Loading cancelled", e.args[0] if e.args else "")
            else:
                self.toasts.error(e, retry=lambda: self.choose(model_id),
                                  title=None)
        finally:
            self.loading = None
            if self.on_busy:
                self.on_busy(False)
            await self.refresh()
        if self.on_loaded:
            await self.on_loaded(result)
        return result

    async def cancel(self) -> None:
        try:
            await self.llm.cancel_load()
        except Exception as e:  # noqa: BLE001
            self.toasts.error(e)

    async def remove(self, model_id: str) -> None:
        try:
            await self.llm.remove_model(model_id)
        except Exception as e:  # noqa: BLE001
            self.toasts.error(e)
        await self.refresh()
        if self.on_loaded:
            await self.on_loaded(None)

    # -- adding models ----------------------------------------------------------------------
    def _add_status(self, text: str) -> None:
        self.doc.getElementById("add-status").textContent = text

    async def add_url(self) -> dict | None:
        box = self.doc.getElementById("add-url")
        url = str(box.value).strip()
        if not url:
            self._add_status("Type the URL of a .gguf file first.")
            return None
        try:
            entry = await self.llm.add_model(url)   # a path on this site resolves there
        except Exception as e:  # noqa: BLE001
            self._add_status(f"Not added: {getattr(e, 'args', [e])[0]}")
            return None
        box.value = ""
        await self.refresh()
        self._add_status(f"Added {entry.get('name') or entry['id']}. Load it from the list.")
        return entry

    def _drop_zone(self, over: bool) -> None:
        self.doc.getElementById("drop-zone").classList.toggle("over", over)

    def _on_dragover(self, event) -> None:
        event.preventDefault()
        self._drop_zone(True)

    def _on_drop(self, event) -> None:
        event.preventDefault()
        self._drop_zone(False)
        files = event.dataTransfer.files if event.dataTransfer else None
        asyncio.ensure_future(self._import_files(files))

    async def _import_files(self, files) -> None:
        if not files or not files.length:
            return
        for i in range(files.length):
            await self.import_file(files.item(i))
        self.doc.getElementById("add-file").value = ""

    async def import_file(self, file) -> dict | None:
        name = str(file.name)
        if not name.lower().endswith(".gguf"):
            self._add_status(f"{name} is not a .gguf file; only GGUF models can be added from "
                             "a file.")
            return None
        self._add_status(f"Copying {name} into this browser's storage…")
        self.progress.start(f"Importing {name}")
        try:
            entry = await self.llm.import_model_file(file)
        except Exception as e:  # noqa: BLE001
            self.progress.stop()
            self._add_status(f"Not added: {getattr(e, 'args', [e])[0]}")
            self.toasts.error(e, title=f"{name} could not be added")
            return None
        self.progress.stop()
        await self.refresh()
        self._add_status(f"Added {entry.get('name') or entry['id']}. Load it from the list.")
        return entry


class LoadProgressView:
    """The bar above the chat: phase, bytes, speed, time left, and Cancel."""

    def __init__(self, document):
        self.doc = document
        self.box = document.getElementById("load-progress")
        self.value = 0.0

    def _set(self, element_id: str, text: str) -> None:
        self.doc.getElementById(element_id).textContent = text

    def start(self, title: str) -> None:
        self.value = 0.0
        self._set("load-title", title)
        self._set("load-phase", "Starting…")
        self._set("load-detail", "")
        self._bar(0.0)
        self.doc.getElementById("load-cancel").disabled = False
        self.box.hidden = False

    def _bar(self, frac: float) -> None:
        pct = max(0.0, min(1.0, frac)) * 100
        self.doc.getElementById("load-fill").style.width = f"{pct:.1f}%"
        bar = self.doc.getElementById("load-bar")
        bar.setAttribute("aria-valuenow", f"{pct:.0f}")
        bar.setAttribute("aria-valuetext", f"{pct:.0f}%")
        self.box.dataset.max = f"{pct:.0f}"          # the highest value of this load (tests)

    def update(self, detail: dict) -> None:
        if self.box.hidden:
            return
        frac = detail.get("progress")
        if frac is None:
            total = detail.get("total_bytes") or 0
            frac = (detail.get("loaded_bytes") or 0) / total if total else self.value
        self.value = max(self.value, float(frac))
        label, line = fmt.progress_line(detail)
        self._set("load-phase", f"{label} · {100 * self.value:.0f}%")
        self._set("load-detail", line)
        self._bar(self.value)

    def finish(self) -> None:
        self.value = 1.0
        self._bar(1.0)
        self._set("load-phase", "Ready · 100%")
        self.doc.getElementById("load-cancel").disabled = True
        self.box.dataset.done = "1"
        asyncio.get_event_loop().call_later(4.0, self._hide)

    def stop(self) -> None:
        self._hide()

    def _hide(self) -> None:
        self.box.hidden = True
        self.box.dataset.done = ""
