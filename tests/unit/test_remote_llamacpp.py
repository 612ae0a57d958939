"""RemoteLLM against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python 0.3.36
built from source) serving the SmolLM2-135M GGUF on 127.0.0.1 with an API key, generating on
the CPU. Streaming vs not, usage, interrupt (the server logs the client's disconnect), leaving a
stream early, raw completions, a wrong or missing key, and the server going down."""
from __future__ import annotations

import pytest

from app.runtime.remote import RemoteLLM
from app.runtime.remote_config import RemoteConfig
from app.runtime.remote_errors import RemoteUnauthorizedError, RemoteUnreachableError
from tests.remote_servers import LLAMA_KEY, LlamaServer

KEY = LLAMA_KEY          # the session server's key (tests/conftest.py `llama`)
MSGS = [{"role": "user", "content": "What is the capital of France?"}]


def remote(srv: LlamaServer, key: str = KEY) -> RemoteLLM:
    return RemoteLLM(RemoteConfig(enabled=True, base_url=srv.base_url, api_key=key,
                                  model="smollm2").checked())


async def collect(stream) -> list[dict]:
    return [item async for item in stream]


def test_stream_joins_to_the_non_stream_text_with_usage(run, llama):
    r = remote(llama)
    full = run(r.chat(MSGS, temperature=0.0, max_tokens=24))
    items = run(collect(run(r.chat(MSGS, stream=True, temperature=0.0, max_tokens=24))))
    print(repr(full["text"]), full["usage"])
    assert full["provider"] == "remote" and full["model"] == "smollm2"
    assert len(full["text"]) > 10 and full["finish_reason"] in ("stop", "length")
    u = full["usage"]
    assert u["server_reported"] is True and u["prompt_tokens"] > 5
    assert 0 < u["completion_tokens"] <= 24 and (u["completion_tokens"] == 24) == (
        full["finish_reason"] == "length")
    assert u["e2e_latency_s"] > 0
    *deltas, last = items
    assert len(deltas) >= 3 and all(set(i) == {"delta", "provider"} for i in deltas)
    assert all(i["provider"] == "remote" for i in items)
    assert "".join(i["delta"] for i in items) == full["text"]
    assert last["finish_reason"] == full["finish_reason"] and last["model"] == "smollm2"
    su = last["usage"]
    assert 0 < su["time_to_first_token_s"] <= su["e2e_latency_s"]
    # llama-cpp-python ignores stream_options.include_usage: streamed usage counts are then
    # unknown (None), never invented; a server that reports them must agree with the above.
    if su["server_reported"]:
        assert su["completion_tokens"] == u["completion_tokens"]
    else:
        assert su["prompt_tokens"] is None and su["completion_tokens"] is None
        assert su["decode_tokens_per_s"] is None


def test_raw_completion_stream_equals_non_stream(run, llama):
    r = remote(llama)
    prompt = "The three primary colors are"
    full = run(r.complete(prompt, temperature=0.0, max_tokens=12))
    items = run(collect(run(r.complete(prompt, stream=True, temperature=0.0, max_tokens=12))))
    assert full["text"].strip() and full["usage"]["completion_tokens"] == 12
    assert "".join(i["delta"] for i in items) == full["text"]
    assert full["finish_reason"] == items[-1]["finish_reason"] == "length"


def test_interrupt_mid_stream_drops_the_connection_and_ends_with_abort(run, llama):
    r = remote(llama)
    mark = len(llama.log_text())

    async def go():
        got, after = [], []
        async for item in await r.chat(MSGS, stream=True, temperature=0.8, seed=1,
                                       max_tokens=1500):
            (after if len(got) >= 3 else got).append(item)
            if len(got) == 3 and not after:
                assert r.interrupt() is True
                assert r.interrupt() is False      # the only request is already stopping
                got.append("interrupted")
        return got, after
    got, after = run(go())
    # Nothing but the final item after interrupt(); it says "abort".
    assert got[-1] == "interrupted" and len(after) == 1
    assert after[0]["finish_reason"] == "abort" and after[0]["delta"] == ""
    # The server saw the client go away (it stops generating for it).
    llama.wait_for_log("Disconnected from client", timeout=60, start=mark)
    nxt = run(r.chat(MSGS, temperature=0.0, max_tokens=4))
    assert nxt["finish_reason"] == "length" and nxt["text"]


def test_leaving_a_stream_early_aborts_its_request(run, llama):
    r = remote(llama)
    mark = len(llama.log_text())

    async def go():
        stream = await r.chat(MSGS, stream=True, max_tokens=1500, seed=2)
        first = await stream.__anext__()
        await stream.aclose()
        return first
    first = run(go())
    assert first["provider"] == "remote" and r._active == []
    llama.wait_for_log("Disconnected from client", timeout=60, start=mark)


def test_interrupt_before_the_reply_arrives_aborts_a_non_streamed_request(run, llama):
    r = remote(llama)

    async def go():
        import asyncio
        task = asyncio.ensure_future(r.chat(MSGS, max_tokens=1500, seed=3))
        while not r._active:                   # registered (the POST is on its way)
            await asyncio.sleep(0)
        assert r.interrupt() is True
        return await task
    out = run(go())
    assert out["finish_reason"] == "abort" and out["text"] == "" and out["provider"] == "remote"


def test_wrong_or_missing_key_is_unauthorized(run, llama):
    n = len(llama.requests())
    for key in ("wrong-key", ""):
        with pytest.raises(RemoteUnauthorizedError, match="HTTP 401.*Invalid API key"):
            run(remote(llama, key).chat(MSGS, max_tokens=2))
        with pytest.raises(RemoteUnauthorizedError):
            run(remote(llama, key).chat(MSGS, stream=True, max_tokens=2))
    assert llama.requests()[n:] == ["POST /v1/chat/completions 401"] * 4


def test_server_down_is_unreachable(run, smollm2_gguf, tmp_path):
    srv = LlamaServer(smollm2_gguf).start(tmp_path)      # no key: local servers often have none
    try:
        r = RemoteLLM(RemoteConfig(enabled=True, base_url=srv.base_url, model="smollm2"))
        assert run(r.chat(MSGS, temperature=0.0, max_tokens=2))["text"]
    finally:
        srv.stop()
    with pytest.raises(RemoteUnreachableError, match="Connection refused"):
        run(r.chat(MSGS, max_tokens=2))
    with pytest.raises(RemoteUnreachableError):
        run(r.chat(MSGS, stream=True, max_tokens=2))
