"""Prompt ids against the context (app/runtime/prompt.py): the fit rule (prompt + 1 <= context),
PromptTooLongError's message, and truncate="oldest" for chats and raw prompts, with a
character-level tokenizer (one token per character, so every length below is countable)."""
from __future__ import annotations

import pytest

from app.models import ContextLengthError
from app.runtime.errors import PromptTooLongError
from app.runtime.prompt import chat_prompt_ids, check_messages, raw_prompt_ids
from tests.unit.runtime_fakes import FakeTokenizer


class Chat:
    """A chat format whose rendering is visible: '<role>content' per message, no bos."""
    def __init__(self):
        self.tokenizer = FakeTokenizer()
        self.rendered: list[list[dict]] = []

    def prompt_ids(self, messages):
        self.rendered.append(messages)
        return self.tokenizer.encode("".join(f"<{m['role'][0]}>{m['content']}" for m in messages),
                                     add_special_tokens=False)


def text(ids):
    return FakeTokenizer().decode(ids)


MSGS = [{"role": "system", "content": "S"},
        {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"}]
FULL = "<s>S<u>u1<a>a1<u>u2<a>a2<u>u3"     # one token per character


def test_fits_exactly_at_context_minus_one():
    ids, dropped = chat_prompt_ids(Chat(), MSGS, len(FULL) + 1)
    assert text(ids) == FULL and dropped == 0
    with pytest.raises(PromptTooLongError) as e:
        chat_prompt_ids(Chat(), MSGS, len(FULL))
    assert isinstance(e.value, ContextLengthError)
    assert e.value.prompt_tokens == len(FULL) and e.value.context_length == len(FULL)
    msg = str(e.value)
    assert f"{len(FULL)} tokens" in msg and "truncate='oldest'" in msg and "context_length" in msg


def test_oldest_drops_whole_turns_and_keeps_the_system_prompt():
    chat = Chat()
    ids, dropped = chat_prompt_ids(chat, MSGS, len(FULL), truncate="oldest")
    # dropping u1 alone would start the conversation with an assistant turn: a1 goes too
    assert text(ids) == "<s>S<u>u2<a>a2<u>u3" and dropped == 2
    assert all(m[1]["role"] == "user" for m in chat.rendered[1:])
    ids, dropped = chat_prompt_ids(Chat(), MSGS, len("<s>S<u>u3") + 1, truncate="oldest")
    assert text(ids) == "<s>S<u>u3" and dropped == 4


def test_oldest_errors_when_the_last_user_message_does_not_fit():
    with pytest.raises(PromptTooLongError, match="last user message"):
        chat_prompt_ids(Chat(), MSGS, len("<s>S<u>u3"), truncate="oldest")
    with pytest.raises(PromptTooLongError):
        chat_prompt_ids(Chat(), [{"role": "user", "content": "x" * 50}], 10, truncate="oldest")


def test_trailing_messages_after_the_last_user_are_kept():
    msgs = MSGS + [{"role": "assistant", "content": "partial"}]
    ids, _ = chat_prompt_ids(Chat(), msgs, len("<s>S<u>u3<a>partial") + 1, truncate="oldest")
    assert text(ids) == "<s>S<u>u3<a>partial"


def test_raw_prompt_keeps_bos_and_the_newest_tokens():
    tok = FakeTokenizer()
    ids, dropped = raw_prompt_ids(tok, "abcdefghij", 20)
    assert ids[0] == tok.bos_id and text(ids) == "abcdefghij" and dropped == 0
    with pytest.raises(PromptTooLongError):
        raw_prompt_ids(tok, "abcdefghij", 11)            # 11 tokens with bos + 1 > 11
    ids, dropped = raw_prompt_ids(tok, "abcdefghij", 6, truncate="oldest")
    assert ids[0] == tok.bos_id and text(ids) == "ghij" and len(ids) == 5 and dropped == 6


def test_bad_arguments():
    with pytest.raises(ValueError, match="truncate"):
        chat_prompt_ids(Chat(), MSGS, 100, truncate="newest")
    with pytest.raises(ValueError, match="non-empty list"):
        check_messages([])
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        check_messages([{"role": "user", "content": "a"}, {"content": "b"}])
    with pytest.raises(ValueError, match="content"):
        check_messages([{"role": "user", "content": None}])
    with pytest.raises(ValueError, match="string"):
        raw_prompt_ids(FakeTokenizer(), ["not", "text"], 100)
