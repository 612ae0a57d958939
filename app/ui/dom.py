"""A few DOM helpers for the dashboard's Python views. Text goes in through textContent only:
nothing here parses HTML, so no string can become markup."""
from __future__ import annotations


def el(doc, tag: str, text: str | None = None, cls: str | None = None, **attrs):
    """A new element; attrs with "_" in their names become "-" (aria_label -> aria-label);
    True sets an empty attribute, None/False leaves it out."""
    node = doc.createElement(tag)
    if cls:
        node.className = cls
    if text is not None:
        node.textContent = text
    for k, v in attrs.items():
        if v is None or v is False:
            continue
        node.setAttribute(k.rstrip("_").replace("_", "-"), "" if v is True else str(v))
    return node


def clear(node) -> None:
    while node.firstChild:
        node.removeChild(node.firstChild)


class Handlers:
    """Keeps the JS proxies of event handlers alive (and destroyable) for one view."""

    def __init__(self):
        self._proxies = []

    def on(self, node, event: str, fn) -> None:
        from pyodide.ffi import create_proxy
        proxy = create_proxy(fn)
        self._proxies.append(proxy)
        node.addEventListener(event, proxy)

    def task(self, node, event: str, coro_fn) -> None:
        """An async handler: each event starts coro_fn(event) as a task."""
        import asyncio
        self.on(node, event, lambda e: asyncio.ensure_future(coro_fn(e)))
