"""The runtime API natively (LocalLLM + NativePlatform on wgpu-py / lavapipe) with real models:
SmolLM2-135M-Instruct Q4_1 (the bundled default) and gemma-3-270m Q4_K_M. Events and status
around init, stream vs non-stream equality, usage, interrupt, the FIFO queue, KV prefix reuse,
prompt limits, logprobs, memory warnings against the real ledger, switch and unload against the
ledger, init failures, downloads from a local HTTP server (resume, sha256), and the interactive
CLI. Contexts are small (256) and replies short: lavapipe runs on 2 CPU cores.
"""
from __future__ import annotations

import asyncio
import math

import pytest

from app.models.model import DECODE_BATCH
from app.runtime import LocalLLM, PromptTooLongError
from app.runtime.native import NativePlatform

DEFAULT = "smollm2-135m-instruct-q4_1"
CTX = 256
Q = [{"role": "user", "content": "What is the capital of France?"}]


def record(rt) -> list:
    seen: list = []
    for name in ("loading", "progress", "ready", "error", "memory-warning", "status"):
        rt.on(name, lambda d, name=name: seen.append((name, d)))
    return seen


@pytest.fixture(scope="module")
def smol(gpu, run, tmp_path_factory):
    """A LocalLLM with the bundled SmolLM2 loaded (context 256), and the events of its init."""
    rt = LocalLLM(platform=NativePlatform(cache_dir=tmp_path_factory.mktemp("cache")))
    seen = record(rt)
    statuses = [rt.status()]
    r = run(rt.init(context_length=CTX))
    statuses.append(rt.status())
    yield rt, r, seen, statuses
    run(rt.unload())


def test_init_events_status_and_info(smol, run):
    rt, r, seen, statuses = smol
    assert r["model"] == DEFAULT and r["load_s"] > 0
    assert statuses[0] == {"state": "idle", "model": None, "progress": 0.0, "error": None,
            "backend": None, "backend_reason": None}
    assert statuses[1] == {"state": "ready", "model": DEFAULT, "progress": 1.0, "error": None,
            "backend": "webgpu", "backend_reason": None}
    names = [n for n, _ in seen]
    assert names[:2] == ["status", "loading"] and names[-2:] == ["status", "ready"]
    assert seen[1][1] == {"model": DEFAULT}
    assert seen[-1][1] == {"model": DEFAULT, "load_s": r["load_s"], "backend": "webgpu"}
    assert [d["state"] for n, d in seen if n == "status"] == ["loading", "ready"]
    prog = [d for n, d in seen if n == "progress"]
    assert all(set(d) == {"progress", "phase", "loaded_bytes", "total_bytes", "text",
                       "speed_bps", "eta_s"}
               for d in prog)
    values = [d["progress"] for d in prog]
    assert values == sorted(values) and values[-1] == 1.0 and values.count(1.0) == 1
    phases = [d["phase"] for d in prog]
    assert set(phases) == {"upload", "compile"}          # a local file: nothing to download
    assert phases.index("compile") > max(i for i, p in enumerate(phases) if p == "upload")
    up = [d for d in prog if d["phase"] == "upload"]
    assert up[-1]["loaded_bytes"] == up[-1]["total_bytes"] > 90 << 20
    info = rt.runtime_info()
    assert info["backend"] == "webgpu" and info["platform"] == "native"
    assert info["adapter"]["description"] and info["limits"]["maxBufferSize"] > 0
    mem = info["memory"]
    assert mem["live"]["weights"] > 90 << 20 and mem["live"]["kv_cache"] > 0
    assert mem["baseline"] == rt.baseline and mem["total"] >= mem["live"]["weights"]
    assert {"python", "wgpu"} <= set(info["versions"])
    models = {m["id"]: m for m in run(rt.available_models())}
    assert models[DEFAULT]["cached"] and models[DEFAULT]["bundled"]
    assert models[DEFAULT]["runnable"] is None
    print(f"\nSmolLM2 init: {r['load_s']:.2f} s, {len(prog)} progress events")


def test_stream_equals_non_stream_with_usage(smol, run):
    rt = smol[0]
    opts = {"temperature": 0.9, "top_p": 0.95, "seed": 1234, "max_tokens": 12}
    r = run(rt.chat(Q, **opts))
    assert rt.status()["state"] == "ready"

    async def stream():
        return [i async for i in await rt.chat(Q, stream=True, **opts)]
    items = run(stream())
    assert "".join(i["delta"] for i in items) == r["text"] and r["text"].strip()
    assert items[-1]["finish_reason"] == r["finish_reason"] in ("stop", "length")
    for u in (r["usage"], items[-1]["usage"]):
        assert u["prompt_tokens"] > 10 and 1 <= u["completion_tokens"] <= 12
        assert u["prefill_tokens_per_s"] > 0 and u["decode_tokens_per_s"] > 0
        assert 0 < u["time_to_first_token_s"] < u["e2e_latency_s"]
    # the second run's prompt was the same: all but its last token came from the KV cache
    assert items[-1]["usage"]["cached_tokens"] == r["usage"]["prompt_tokens"] - 1
    other = run(rt.chat(Q, **{**opts, "seed": 99}))
    print(f"\nseed 1234: {r['text']!r}; seed 99: {other['text']!r}; usage {r['usage']}")


def test_multi_turn_reuses_the_prefix(smol, run):
    rt = smol[0]
    first = run(rt.chat(Q, temperature=0.0, max_tokens=8))
    turn2 = Q + [{"role": "assistant", "content": first["text"]},
                 {"role": "user", "content": "And of Italy?"}]
    second = run(rt.chat(turn2, temperature=0.0, max_tokens=8))
    u = second["usage"]
    assert u["cached_tokens"] >= first["usage"]["prompt_tokens"]
    assert u["prompt_tokens"] > u["cached_tokens"]
    print(f"\nturn 2: {u['prompt_tokens']} prompt tokens, {u['cached_tokens']} reused; "
          f"prefill {u['prefill_tokens_per_s']:.1f} tok/s over the new ones")


def test_interrupt_then_next_request(smol, run):
    rt = smol[0]

    async def scenario():
        states = []
        rt.on("status", lambda d: states.append(d["state"]))
        first = await rt.chat(Q, temperature=0.0, max_tokens=200, stream=True)
        second = asyncio.ensure_future(rt.chat([{"role": "user", "content": "Say hi."}],
                                               temperature=0.0, max_tokens=4))
        seen = []
        async for item in first:
            seen.append(item)
            if len(seen) == 1:
                assert rt.interrupt() is True
        r2 = await second
        return seen, r2, states
    seen, r2, states = run(scenario())
    last = seen[-1]
    assert last["finish_reason"] == "abort"
    # interrupted after the first token: at most one more readback batch was read
    assert 1 <= last["usage"]["completion_tokens"] <= 1 + DECODE_BATCH
    assert r2["finish_reason"] in ("stop", "length") and r2["text"]
    assert rt.status()["state"] == "ready"
    assert states[-1] == "ready"


def test_two_concurrent_requests_are_queued_in_order(smol, run):
    rt = smol[0]

    async def scenario():
        order = []
        a = await rt.chat([{"role": "user", "content": "Name a color."}], temperature=0.0,
                          max_tokens=6, stream=True)
        b = await rt.chat([{"role": "user", "content": "Name a fruit."}], temperature=0.0,
                          max_tokens=6, stream=True)

        async def eat(name, s):
            out = []
            async for item in s:
                out.append(item["delta"])
                order.append(name)
            return "".join(out)
        ta, tb = await asyncio.gather(eat("b", b), eat("a", a))   # consumer order reversed
        return order, tb, ta
    order, ta, tb = run(scenario())
    assert order == sorted(order)           # every item of A before any of B
    alone = run(rt.chat([{"role": "user", "content": "Name a fruit."}], temperature=0.0,
                        max_tokens=6))
    assert tb == alone["text"]              # B's text is not mixed with A's
    print(f"\nA: {ta!r}  B: {tb!r}")


def test_prompt_too_long_and_truncation(smol, run):
    rt = smol[0]
    model = rt._loaded.model
    before = dict(model.stats)
    long = [{"role": "user", "content": "word " * 300}]
    with pytest.raises(PromptTooLongError, match="256 tokens"):
        run(rt.chat(long))
    assert model.stats["prefill_tokens"] == before["prefill_tokens"]    # no GPU work
    # turns of ~250 tokens: only the system prompt and the last user message can fit
    system, last = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}
    history = [system]
    for i in range(3):
        history += [{"role": "user", "content": f"Fact {i} about " + "cats " * 120},
                    {"role": "assistant", "content": "Cats sleep a lot. " * 25}]
    history.append(last)
    with pytest.raises(PromptTooLongError):
        run(rt.chat(history, max_tokens=1))
    r = run(rt.chat(history, max_tokens=1, truncate="oldest", temperature=0.0))
    alone = run(rt.chat([system, last], max_tokens=1, temperature=0.0))
    assert r["usage"]["prompt_tokens"] == alone["usage"]["prompt_tokens"] < 40
    assert r["text"] == alone["text"]
    with pytest.raises(PromptTooLongError, match="last user message"):
        run(rt.chat([system, {"role": "user", "content": "cats " * 300}], truncate="oldest"))
    assert rt.status()["state"] == "ready"


def test_logprobs(smol, run):
    rt = smol[0]
    r = run(rt.chat(Q, temperature=0.0, max_tokens=5, logprobs=3))
    entries = r["logprobs"]
    assert entries and "".join(e["token"] for e in entries).strip()
    for e in entries:
        tops = e["top_logprobs"]
        assert len(tops) == 3
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
        assert tops[0]["id"] == e["id"]                       # greedy: the chosen is the top
        assert e["logprob"] == pytest.approx(tops[0]["logprob"], abs=1e-5)
        assert e["logprob"] <= 0 and sum(math.exp(t["logprob"]) for t in tops) <= 1 + 1e-4

    async def stream():
        return [i async for i in await rt.chat(Q, temperature=0.0, max_tokens=5, logprobs=3,
                                               stream=True)]
    items = run(stream())
    flat = [e for i in items for e in i.get("logprobs", ())]
    assert [e["id"] for e in flat] == [e["id"] for e in entries]
    assert [e["logprob"] for e in flat] == pytest.approx([e["logprob"] for e in entries],
                                                          abs=1e-5)


def test_openai_shape_on_the_real_model(smol, run):
    rt = smol[0]
    r = run(rt.chat_completions.create(messages=Q, max_tokens=6, temperature=0.0))
    plain = run(rt.chat(Q, max_tokens=6, temperature=0.0))
    assert r["choices"][0]["message"]["content"] == plain["text"]
    assert r["usage"]["total_tokens"] == plain["usage"]["prompt_tokens"] + \
        plain["usage"]["completion_tokens"]


def test_lost_device_gives_the_named_error_and_init_recovers(gpu, run, tmp_path_factory):
    """The runtime's device destroyed under a loaded model (what a driver reset does): the next
    chat fails with DeviceLostError, status is "error" with it and one "error" event fires;
    init() opens a new device and the model answers again."""
    from app.gpu import DeviceLostError
    rt = LocalLLM(platform=NativePlatform(cache_dir=tmp_path_factory.mktemp("cache")))
    run(rt.init(context_length=64))
    seen = record(rt)
    old = rt._dev
    old.destroy()
    with pytest.raises(DeviceLostError, match="destroyed"):
        run(rt.chat(Q, max_tokens=2, temperature=0))
    st = rt.status()
    assert st["state"] == "error" and st["model"] is None and st["progress"] == 0
    assert st["error"]["name"] == "DeviceLostError"
    assert [d["name"] for n, d in seen if n == "error"] == ["DeviceLostError"]
    r = run(rt.init(context_length=64))
    assert r["model"] == DEFAULT and rt._dev is not old and rt.status()["state"] == "ready"
    out = run(rt.complete("The capital of France is", max_tokens=2, temperature=0))
    assert out["finish_reason"] in ("stop", "length") and out["usage"]["completion_tokens"] >= 1
    run(rt.unload())
