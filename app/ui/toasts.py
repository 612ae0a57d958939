"""Toasts: errors with the engine's message, what to do (app/ui/errors.py) and one action
button (Retry, Reload, Open storage, Clear conversation); notices that go away by themselves.

    toasts = Toasts(document)
    toasts.error(exc_or_event, retry=coro_fn)     # exc: RuntimeAPIError or {"name", "message"}
    toasts.info("Loading cancelled", "…")
"""
from __future__ import annotations

import asyncio

from .dom import el
from .errors import advice

INFO_SECONDS = 6.0
MAX_TOASTS = 4


def error_fields(error) -> tuple[str, str]:
    """(name, message) of a RuntimeAPIError, an exception or an "error" event's detail."""
    if isinstance(error, dict):
        return str(error.get("name") or "Error"), str(error.get("message") or "")
    name = getattr(error, "name", None) or type(error).__name__
    message = error.args[0] if getattr(error, "args", None) else str(error)
    return str(name), str(message)


class Toasts:
    def __init__(self, document, actions: dict | None = None):
        self.doc = document
        self.box = document.getElementById("toasts")
        # action name -> zero-argument callable (coroutine function or plain), set by main
        self.actions = dict(actions or {})

    def error(self, error, retry=None, title: str | None = None):
        """Show a named error. retry: a coroutine function for the "retry" action."""
        name, message = error_fields(error)
        adv = advice(name)
        action = adv.action
        fn = None
        label = None
        if action == "retry" and retry is not None:
            fn, label = retry, "Retry"
        elif action == "reload":
            fn, label = self._reload, "Reload"
        elif action in self.actions:
            fn, label = self.actions[action], {"cache": "Open storage",
                                               "clear": "Clear conversation"}.get(action, action)
        return self._show("error", title or adv.title, f"{name}: {message}" if message else name,
                          adv.remedy, label, fn, name)

    def info(self, title: str, text: str = "", action_label: str | None = None, action=None,
             sticky: bool = False):
        node = self._show("info", title, text, None, action_label, action, "info")
        if not sticky:
            asyncio.get_event_loop().call_later(INFO_SECONDS, lambda: self._remove(node))
        return node

    def _reload(self):
        from js import location
        location.reload()

    def _show(self, kind, title, text, remedy, action_label, action, name):
        from pyodide.ffi import create_proxy
        while self.box.childElementCount >= MAX_TOASTS:
            self.box.removeChild(self.box.firstElementChild)
        node = el(self.doc, "div", cls=f"toast {kind}", role="alert" if kind == "error" else "status")
        node.dataset.name = name
        node.appendChild(el(self.doc, "strong", title))
        if text:
            node.appendChild(el(self.doc, "div", text, "toast-text"))
        if remedy:
            node.appendChild(el(self.doc, "p", remedy, "remedy"))
        bar = el(self.doc, "div", cls="toast-actions")
        proxies = []

        def close(*_):
            self._remove(node)
            for p in proxies:
                p.destroy()

        if action is not None:
            btn = el(self.doc, "button", action_label, "secondary", type="button")
            btn.dataset.action = action_label

            def run(*_):
                close()
                result = action()
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(result)
            p = create_proxy(run)
            proxies.append(p)
            btn.addEventListener("click", p)
            bar.appendChild(btn)
        dismiss = el(self.doc, "button", "Dismiss", "secondary", type="button",
                     aria_label=f"Dismiss: {title}")
        p = create_proxy(close)
        proxies.append(p)
        dismiss.addEventListener("click", p)
        bar.appendChild(dismiss)
        node.appendChild(bar)
        self.box.appendChild(node)
        return node

    def _remove(self, node) -> None:
        if node.parentNode:
            node.parentNode.removeChild(node)
