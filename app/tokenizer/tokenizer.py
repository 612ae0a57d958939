"""Tokenizer: encode/decode plus the special tokens a chat needs, loaded from tokenizer.json (+
tokenizer_config.json) or from a GGUF's embedded vocabulary. The work is done by a backend
(backend.py): `tokenizers` in CPython, @huggingface/tokenizers in the page."""
from __future__ import annotations

import json
import re

from .backend import TokenizerBackend, load_backend
from .gguf_vocab import tokenizer_config_from_gguf, tokenizer_json_from_gguf

SPECIAL_NAMES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def _content(tok) -> str | None:
    """tokenizer_config.json spells a token as a string or as {"content": ...}."""
    if isinstance(tok, dict):
        return tok.get("content")
    return tok if isinstance(tok, str) else None


class Tokenizer:
    def __init__(self, backend: TokenizerBackend, tokenizer_json: dict, config: dict | None = None):
        self.backend = backend
        self.config = dict(config or {})
        model = tokenizer_json.get("model") or {}
        self.byte_fallback = bool(model.get("byte_fallback"))
        self.special_tokens: dict[str, str] = {}   # "bos_token" -> "<s>", as transformers names them
        for name in SPECIAL_NAMES:
            content = _content(self.config.get(f"{name}_token"))
            if content is not None:
                self.special_tokens[f"{name}_token"] = content
        self.added_special = {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])
                              if t.get("special")}
        self.bos_token = self.special_tokens.get("bos_token")
        self.eos_token = self.special_tokens.get("eos_token")
        self.bos_id = self._id(self.bos_token)
        self.eos_id = self._id(self.eos_token)
        self.add_bos = bool(self.config.get("add_bos_token", False))
        self.add_eos = bool(self.config.get("add_eos_token", False))
        self.chat_template: str | None = _template(self.config.get("chat_template"))
        self.extra_end_of_turn = [t for t in self.config.get("end_of_turn_tokens", [])]

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    async def load(cls, tokenizer_json: str | dict, config: str | dict | None = None) -> "Tokenizer":
        """From tokenizer.json (text or dict) and tokenizer_config.json (text, dict or None)."""
        text = tokenizer_json if isinstance(tokenizer_json, str) else json.dumps(tokenizer_json)
        tj = json.loads(text) if isinstance(tokenizer_json, str) else tokenizer_json
        cfg = json.loads(config) if isinstance(config, str) else config
        return cls(await load_backend(text), tj, cfg)

    @classmethod
    async def from_gguf(cls, gguf) -> "Tokenizer":
        """From a GGUFFile (app.formats.gguf) or its metadata dict. Raises
        UnsupportedTokenizerError for vocabularies that cannot be converted."""
        md = getattr(gguf, "metadata", gguf)
        tj = tokenizer_json_from_gguf(md)
        return cls(await load_backend(json.dumps(tj)), tj, tokenizer_config_from_gguf(md))

    # -- use ----------------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids; add_special_tokens applies tokenizer.json's post-processor (bos/eos)."""
        return self.backend.encode(text, add_special_tokens)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(token_id)

    def is_byte_piece(self, token_id: int) -> bool:
        """A SentencePiece byte-fallback piece (<0xNN>): its text depends on its neighbours."""
        if not self.byte_fallback:
            return False
        piece = self.backend.id_to_token(token_id)
        return bool(piece and BYTE_PIECE.match(piece))

    @property
    def vocab_size(self) -> int:
        return self.backend.vocab_size()


def _template(value) -> str | None:
    """chat_template is a string, or a list of {"name", "template"} (the "default" one is used)."""
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        return named.get("default")
    return value or None
