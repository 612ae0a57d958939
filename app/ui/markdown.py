"""Chat replies as safe Markdown, from Python in the page: the edge to static/markdown.js.

The JS module does the work (markdown-it, then DOMPurify; see its header for the rules). It is
imported once with a dynamic import() of a URL resolved against the page; after `await load()`,
`render_into` is a plain synchronous call, cheap enough to re-render a whole reply on every
streamed token, in order, without scheduling a task per token:

    from app.ui import markdown
    await markdown.load()                      # once, when the dashboard starts
    markdown.render_into(bubble, reply_so_far) # on every token
"""
from __future__ import annotations

MARKDOWN_JS = "static/markdown.js"

_module = None


class MarkdownError(RuntimeError):
    """static/markdown.js could not be loaded, or render_into ran before load()."""


async def load(base: str | None = None):
    """Import static/markdown.js (once; later calls return the same module). `base` defaults to
    the page's base URI."""
    global _module
    if _module is None:
        import js
        from pyodide.code import run_js
        from pyodide.ffi import JsException
        url = str(js.URL.new(MARKDOWN_JS, base or str(js.document.baseURI)).href)
        try:
            _module = await run_js("(url) => import(url)")(url)
        except JsException as e:
            raise MarkdownError(f"could not load {url} (is dist/ built with build.py?): "
                                f"{e}") from None
    return _module


def render_into(element, text: str) -> None:
    """Replace `element`'s children with `text` rendered as sanitized Markdown."""
    if _module is None:
        raise MarkdownError("app.ui.markdown.load() must be awaited once before render_into")
    if not isinstance(text, str):
        raise TypeError(f"render_into expects the reply text as str, got {type(text).__name__}")
    _module.renderInto(element, text)
