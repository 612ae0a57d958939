"""Tokenizers and chat templates: tokenizer.json or a GGUF vocabulary -> Tokenizer (backend:
`tokenizers` in CPython, @huggingface/tokenizers in the page); chat templates -> ChatFormat
(jinja2 / @huggingface/jinja); StreamDetokenizer for UTF-8-safe streaming with stop handling."""
from .backend import TemplateError
from .chat import ChatFormat
from .gguf_vocab import UnsupportedTokenizerError, tokenizer_json_from_gguf
from .stream import StopMatch, StreamDetokenizer
from .tokenizer import Tokenizer

__all__ = ["ChatFormat", "StopMatch", "StreamDetokenizer", "TemplateError", "Tokenizer",
           "UnsupportedTokenizerError", "tokenizer_json_from_gguf"]
