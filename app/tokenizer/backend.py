"""The interface both tokenizer backends implement (native.py: CPython `tokenizers` + `jinja2`;
browser.py: @huggingface/tokenizers + @huggingface/jinja through Pyodide). Same inputs, same
results: tests/unit and tests/browser check the ids and the rendered templates against the
Python reference libraries."""
from __future__ import annotations

import sys
from typing import Protocol


class TemplateError(ValueError):
    """A chat template raised (raise_exception) or failed to render."""


class TokenizerBackend(Protocol):
    def encode(self, text: str, add_special_tokens: bool) -> list[int]: ...

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Raw decode: no clean-up of spaces around punctuation (tokenizer.json's decoder only)."""

    def token_to_id(self, token: str) -> int | None: ...

    def id_to_token(self, token_id: int) -> str | None: ...

    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""


class TemplateBackend(Protocol):
    def render(self, source: str, context: dict) -> str:
        """Render a chat template with transformers' Jinja settings (trim_blocks, lstrip_blocks,
        loop controls, raise_exception, strftime_now, tojson)."""


def in_browser() -> bool:
    return sys.platform == "emscripten"


async def load_backend(tokenizer_json: str) -> TokenizerBackend:
    """The backend for this interpreter, built from tokenizer.json text."""
    if in_browser():
        from . import browser
        return await browser.load_tokenizer(tokenizer_json)
    from . import native
    return native.load_tokenizer(tokenizer_json)


async def template_backend() -> TemplateBackend:
    if in_browser():
        from . import browser
        return await browser.load_templates()
    from . import native
    return native.JinjaTemplates()
