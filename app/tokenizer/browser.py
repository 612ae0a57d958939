"""Browser backend: @huggingface/tokenizers and @huggingface/jinja (vendored by build.py under
vendor/) called through Pyodide's JS proxies. Every `from js import` of app/tokenizer is here.

The ES modules are loaded with a dynamic import() of URLs resolved against the page (or, in a
worker, the worker's location); set_vendor_base() overrides that base.
"""
from __future__ import annotations

import json

from .backend import TemplateError

TOKENIZERS_PATH = "vendor/huggingface-tokenizers/tokenizers.min.mjs"
JINJA_PATH = "vendor/huggingface-jinja/index.js"

_base: str | None = None
_modules: dict = {}


class VendorModuleError(RuntimeError):
    """A vendored JS module could not be imported (is dist/ built with build.py?)."""


def set_vendor_base(url: str) -> None:
    """Base URL that vendor/... paths are resolved against (default: the page's base URI)."""
    global _base
    _base = url


def _resolve(path: str) -> str:
    import js
    base = _base
    if base is None:
        doc = getattr(js, "document", None)
        base = str(doc.baseURI) if doc else str(js.location.href)
    return str(js.URL.new(path, base).href)


async def _import(path: str):
    if path not in _modules:
        from pyodide.code import run_js
        from pyodide.ffi import JsException
        url = _resolve(path)
        try:
            _modules[path] = await run_js("(url) => import(url)")(url)
        except JsException as e:
            raise VendorModuleError(f"could not import {url}: {e}") from None
    return _modules[path]


def _js(value):
    """A Python JSON-like value as a plain JS value (objects, arrays, null)."""
    from js import JSON
    return JSON.parse(json.dumps(value))


class BrowserTokenizer:
    def __init__(self, js_tokenizer):
        self._tok = js_tokenizer

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        enc = self._tok.encode(text, _js({"add_special_tokens": bool(add_special_tokens)}))
        return enc.ids.to_py()

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        # No clean-up of spaces: tokenizer.json's decoder only, as the `tokenizers` package does.
        if not ids:
            return ""  # the JS decode refuses an empty array
        opts = {"skip_special_tokens": bool(skip_special_tokens),
                "clean_up_tokenization_spaces": False}
        return str(self._tok.decode(_js([int(i) for i in ids]), _js(opts)))

    def token_to_id(self, token: str) -> int | None:
        i = self._tok.token_to_id(token)
        return None if i is None else int(i)

    def id_to_token(self, token_id: int) -> str | None:
        t = self._tok.id_to_token(int(token_id))
        return None if t is None else str(t)

    def vocab_size(self) -> int:
        return int(self._tok.get_vocab(True).size)


async def load_tokenizer(tokenizer_json: str) -> BrowserTokenizer:
    from js import JSON
    mod = await _import(TOKENIZERS_PATH)
    # An empty config: tokenizer.json alone decides encoding, as in the `tokenizers` package.
    config = _js({"clean_up_tokenization_spaces": False})
    return BrowserTokenizer(mod.Tokenizer.new(JSON.parse(tokenizer_json), config))


class JSTemplates:
    def __init__(self, module):
        self._mod = module
        self._compiled: dict = {}

    def render(self, source: str, context: dict) -> str:
        from pyodide.ffi import JsException
        try:
            if source not in self._compiled:
                self._compiled[source] = self._mod.Template.new(source)
            return str(self._compiled[source].render(_js(context)))
        except JsException as e:
            raise TemplateError(f"chat template failed: {e}") from None


async def load_templates() -> JSTemplates:
    return JSTemplates(await _import(JINJA_PATH))
