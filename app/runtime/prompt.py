"""Prompt ids of a request, checked against the context before any GPU work.

A prompt fits when prompt tokens + 1 (the reply's first token) <= the model's context length.
truncate="error" raises PromptTooLongError; truncate="oldest" drops turns:
  chat: the oldest non-system messages, one at a time, then any that would leave the
        conversation starting with a non-user message (chat templates expect user first);
        system messages and the last user message (with what follows it) are never dropped:
        when those alone do not fit, PromptTooLongError.
  raw:  the oldest tokens (a leading bos token is kept).
"""
from __future__ import annotations

from ..kernels.sampling import SamplingParams
from .errors import PromptTooLongError

TRUNCATE = ("error", "oldest")


def check_options(o: dict) -> tuple[SamplingParams, int, list[str], str]:
    """The options of a chat()/complete() call (its keyword arguments), checked: (SamplingParams,
    max_tokens, stop as a list of strings, truncate). SamplingParamsError / ValueError name the
    bad one. The local runtime and the remote provider both check requests with it."""
    params = SamplingParams(
        temperature=o["temperature"], top_k=o["top_k"], top_p=o["top_p"], min_p=o["min_p"],
        repetition_penalty=o["repetition_penalty"], presence_penalty=o["presence_penalty"],
        frequency_penalty=o["frequency_penalty"], seed=o["seed"], logprobs=o["logprobs"])
    max_tokens = o["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    stop = o["stop"]
    stop = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) for s in stop):
        raise ValueError(f"stop must be a string or a list of strings, got {o['stop']!r}")
    if o["truncate"] not in TRUNCATE:
        raise ValueError(f"truncate must be 'error' or 'oldest', got {o['truncate']!r}")
    return params, max_tokens, stop, o["truncate"]


def check_messages(messages) -> list[dict]:
    """A list of {"role", "content"} dicts with string contents; ValueError naming the bad one."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} "
                         "dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"messages[{i}] must be a dict with a 'role' string, got {m!r}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}]['content'] must be a string")
        out.append(dict(m))
    return out


def _too_long(n: int, context_length: int, what: str) -> PromptTooLongError:
    return PromptTooLongError(
        f"{what} has {n} tokens; the model's context is {context_length} tokens and must also "
        f"hold at least one token of the reply. Shorten it, pass truncate='oldest' to drop the "
        f"oldest turns, or load the model with a longer context_length.", n, context_length)


def fits(n: int, context_length: int) -> bool:
    return n + 1 <= context_length


def chat_prompt_ids(chat, messages: list[dict], context_length: int,
                    truncate: str = "error") -> tuple[list[int], int]:
    """(prompt ids, number of messages dropped) of `messages` through `chat` (a ChatFormat)."""
    _check_truncate(truncate)
    ids = chat.prompt_ids(messages)
    if fits(len(ids), context_length):
        return ids, 0
    if truncate == "error":
        raise _too_long(len(ids), context_length, "the prompt")
    others = [i for i, m in enumerate(messages) if m["role"] != "system"]
    users = [k for k, i in enumerate(others) if messages[i]["role"] == "user"]
    last_user = users[-1] if users else len(others) - 1
    drop = 0
    while True:
        drop += 1
        while drop < last_user and messages[others[drop]]["role"] != "user":
            drop += 1
        if drop > last_user or not others:
            raise _too_long(len(ids), context_length,
                            "even the last user message (with the system prompt)")
        cut = others[drop]
        kept = [m for i, m in enumerate(messages) if m["role"] == "system" or i >= cut]
        ids = chat.prompt_ids(kept)
        if fits(len(ids), context_length):
            return ids, len(messages) - len(kept)


def raw_prompt_ids(tok, prompt: str, context_length: int,
                   truncate: str = "error") -> tuple[list[int], int]:
    """(prompt ids, number of tokens dropped) of a raw prompt (the tokenizer's bos rule)."""
    _check_truncate(truncate)
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    ids = tok.encode(prompt, add_special_tokens=True)
    if fits(len(ids), context_length):
        return ids, 0
    if truncate == "error":
        raise _too_long(len(ids), context_length, "the prompt")
    head = ids[:1] if ids and tok.bos_id is not None and ids[0] == tok.bos_id else []
    keep = context_length - 1 - len(head)
    if keep < 1:
        raise _too_long(len(ids), context_length, "the prompt")
    return head + ids[-keep:], len(ids) - len(head) - keep


def _check_truncate(truncate: str) -> None:
    if truncate not in TRUNCATE:
        raise ValueError(f"truncate must be 'error' or 'oldest', got {truncate!r}")
