"""CPython backend: the `tokenizers` package (the Rust library behind tokenizer.json) and jinja2
set up as transformers sets it up for chat templates."""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from .backend import TemplateError


class NativeTokenizer:
    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer
        self._tok = Tokenizer.from_str(tokenizer_json)

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)


def load_tokenizer(tokenizer_json: str) -> NativeTokenizer:
    return NativeTokenizer(tokenizer_json)


def _raise(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


@lru_cache(maxsize=8)
def _compile(source: str):
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


class JinjaTemplates:
    def render(self, source: str, context: dict) -> str:
        from jinja2.exceptions import TemplateError as JinjaError
        try:
            return _compile(source).render(**context)
        except JinjaError as e:
            raise TemplateError(f"chat template failed: {e}") from None
