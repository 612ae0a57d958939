"""The OpenAI-shaped layer (app/runtime/openai.py) over LocalLLM with the fake platform: result
and chunk shapes, usage totals, the model check, logprobs, unsupported options."""
from __future__ import annotations

import asyncio

import pytest

from app.runtime import LocalLLM, NotLoadedError
from app.runtime.catalog import Catalog
from tests.unit.runtime_fakes import FakePlatform

MSGS = [{"role": "user", "content": "say k"}]


def loaded() -> tuple[LocalLLM, FakePlatform]:
    p = FakePlatform()
    rt = LocalLLM(platform=p, catalog=Catalog.load())
    return rt, p


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_completion_shape():
    async def main():
        rt, p = loaded()
        await rt.init()
        r = await rt.chat_completions.create(messages=MSGS, max_tokens=4, seed=1)
        assert set(r) == {"id", "object", "created", "model", "choices", "usage"}
        assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-")
        assert isinstance(r["created"], int) and r["model"] == rt.status()["model"]
        (c,) = r["choices"]
        assert c == {"index": 0, "message": {"role": "assistant", "content": "kkkk"},
                     "finish_reason": "length", "logprobs": None}
        u = r["usage"]
        assert u["completion_tokens"] == 4 and u["total_tokens"] == u["prompt_tokens"] + 4
        plain = await rt.chat(MSGS, max_tokens=4, seed=1)
        assert plain["text"] == c["message"]["content"]
    run(main())


def test_stream_chunks():
    async def main():
        rt, p = loaded()
        await rt.init()
        chunks = [c async for c in await rt.chat_completions.create(messages=MSGS, stream=True,
                                                                     max_completion_tokens=3)]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert len({c["id"] for c in chunks}) == 1
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        body = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert body == "kkk"
        last = chunks[-1]
        assert last["choices"][0]["finish_reason"] == "length"
        assert last["choices"][0]["delta"] == {} and last["usage"]["completion_tokens"] == 3
        assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    run(main())


def test_logprobs_and_checks():
    async def main():
        rt, p = loaded()
        await rt.init()
        r = await rt.chat_completions.create(messages=MSGS, max_tokens=2, logprobs=True,
                                             top_logprobs=1)
        content = r["choices"][0]["logprobs"]["content"]
        assert [e["token"] for e in content] == ["k", "k"]
        assert all(len(e["top_logprobs"]) == 1 and set(e) == {"token", "logprob", "top_logprobs"}
                   for e in content)
        with pytest.raises(NotLoadedError, match="switch_model"):
            await rt.chat_completions.create(model="gemma-3-270m-it-q4_k_m", messages=MSGS)
        same = await rt.chat_completions.create(model=rt.status()["model"].upper(),
                                                messages=MSGS, max_tokens=1)
        assert same["choices"][0]["message"]["content"] == "k"
        with pytest.raises(ValueError, match="n=1"):
            await rt.chat_completions.create(messages=MSGS, n=2)
        with pytest.raises(ValueError, match="tools"):
            await rt.chat_completions.create(messages=MSGS, tools=[])
    run(main())
