"""LocalLLM's ordering and bookkeeping with a fake platform and model (tests/unit/runtime_fakes.py):
events and their payloads, status after every operation, the FIFO queue, interrupt, switch and
unload against the ledger, init failure and retry, prompt checks before any work. The real
engine runs the same paths in tests/gpu/test_runtime.py."""
from __future__ import annotations

import asyncio

import pytest

from app.runtime import LocalLLM, ModelNotFoundError, NotLoadedError, PromptTooLongError
from app.runtime.catalog import Catalog
from tests.unit.runtime_fakes import FakePlatform, FakeTokenizer

DEFAULT = "smollm2-135m-instruct-q4_1"
OTHER = "gemma-3-270m-it-q4_k_m"
USER = [{"role": "user", "content": "hi a"}]


def make(**kw) -> tuple[LocalLLM, FakePlatform, list]:
    p = FakePlatform(**kw)
    rt = LocalLLM(platform=p, catalog=Catalog.load())
    seen: list = []
    for name in ("loading", "progress", "ready", "error", "memory-warning", "status"):
        rt.on(name, lambda d, name=name: seen.append((name, d)))
    return rt, p, seen


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_init_events_status_and_payloads():
    async def main():
        rt, p, seen = make()
        assert rt.status() == {"state": "idle", "model": None, "progress": 0.0, "error": None,
                "backend": None, "backend_reason": None}
        r = await rt.init()
        assert r["model"] == DEFAULT and r["load_s"] > 0
        names = [n for n, _ in seen]
        assert names[0] == "status" and seen[0][1]["state"] == "loading"
        assert names[1] == "loading" and seen[1][1] == {"model": DEFAULT}
        assert names[-2:] == ["status", "ready"] and seen[-2][1]["state"] == "ready"
        assert set(seen[-1][1]) == {"model", "load_s", "backend"}
        prog = [d for n, d in seen if n == "progress"]
        assert all(set(d) == {"progress", "phase", "loaded_bytes", "total_bytes", "text",
                              "speed_bps", "eta_s"} for d in prog)
        values = [d["progress"] for d in prog]
        assert values == sorted(values) and values[-1] == 1.0 and values.count(1.0) == 1
        phases = [d["phase"] for d in prog]
        assert phases.index("download") < phases.index("upload") < phases.index("compile")
        assert phases[-1] == "compile"
        # progress events come between "loading" and "ready"
        assert names.index("loading") < names.index("progress") and \
            max(i for i, n in enumerate(names) if n == "progress") < names.index("ready")
        assert rt.status() == {"state": "ready", "model": DEFAULT, "progress": 1.0, "error": None,
                "backend": "webgpu", "backend_reason": None}
        # every event was relayed to the platform, in the same order
        assert [n for n, _ in p.events] == names
        # warm-up: one prefill + decode on the bos token, then the cache was reset
        m = p.models[0]
        assert m.prompts == [[1]] and m.cached == []
    run(main())


def test_status_events_only_on_change_and_match_status():
    async def main():
        rt, p, seen = make()
        await rt.init()
        await rt.chat(USER, max_tokens=3)
        await rt.unload()
        states = [d["state"] for n, d in seen if n == "status"]
        assert states == ["loading", "ready", "generating", "ready", "idle"]
        assert rt.status() == {"state": "idle", "model": None, "progress": 0.0, "error": None,
                "backend": None, "backend_reason": None}
    run(main())


def test_chat_before_init_and_after_unload():
    async def main():
        rt, p, _ = make()
        with pytest.raises(NotLoadedError, match="init"):
            await rt.chat(USER)
        await rt.init()
        await rt.unload()
        with pytest.raises(NotLoadedError):
            await rt.complete("x")
    run(main())


def test_request_queued_behind_a_pending_init_runs_after_it():
    async def main():
        rt, p, _ = make()
        init = asyncio.ensure_future(rt.init())
        await asyncio.sleep(0)      # init has taken its turn; the model is not there yet
        r = await rt.chat(USER, max_tokens=2)
        assert (await init)["model"] == DEFAULT
        assert r["text"] == "aa" and r["model"] == DEFAULT
    run(main())


def test_init_failure_then_clean_retry():
    async def main():
        rt, p, seen = make(fail=[ValueError("corrupt file; pick another")])
        with pytest.raises(ValueError, match="corrupt"):
            await rt.init()
        st = rt.status()
        assert st["state"] == "error" and st["model"] is None
        assert st["error"] == {"name": "ValueError", "message": "corrupt file; pick another"}
        err = [d for n, d in seen if n == "error"]
        assert err == [{"name": "ValueError", "message": "corrupt file; pick another",
                        "model": DEFAULT}]
        assert "ready" not in [n for n, _ in seen]
        with pytest.raises(NotLoadedError, match="last load failed"):
            await rt.chat(USER)
        dev = p.devices[0]
        assert dev.ledger.total == rt.baseline == 0
        await rt.init()
        assert rt.status() == {"state": "ready", "model": DEFAULT, "progress": 1.0, "error": None,
                "backend": "webgpu", "backend_reason": None}
        assert len(p.devices) == 1          # the device was kept
    run(main())


def test_unknown_model_id():
    async def main():
        rt, p, seen = make()
        with pytest.raises(ModelNotFoundError, match="no-such-model"):
            await rt.init("no-such-model")
        assert rt.status()["state"] == "error"
        assert [d["name"] for n, d in seen if n == "error"] == ["ModelNotFoundError"]
        await rt.init()
        # with a model loaded, an unknown id reports the error but keeps the model
        with pytest.raises(ModelNotFoundError):
            await rt.switch_model("still-no-such-model")
        assert rt.status()["state"] == "ready" and rt.status()["model"] == DEFAULT
    run(main())


def test_init_same_model_twice_is_a_no_op():
    async def main():
        rt, p, _ = make()
        a = await rt.init()
        b = await rt.init(DEFAULT.upper())
        assert a == b and len(p.models) == 1
        await rt.init(DEFAULT, context_length=32)      # other options: reloaded
        assert len(p.models) == 2 and p.models[0].destroyed
    run(main())


def test_stream_equals_non_stream_and_usage():
    async def main():
        rt, p, _ = make()
        await rt.init()
        r = await rt.chat(USER, max_tokens=6, seed=3)
        items = [i async for i in await rt.chat(USER, max_tokens=6, seed=3, stream=True)]
        assert "".join(i["delta"] for i in items) == r["text"] == "a" * 6
        last = items[-1]
        assert last["finish_reason"] == r["finish_reason"] == "length"
        assert all("finish_reason" not in i for i in items[:-1])
        u = last["usage"]
        assert set(u) == {"prompt_tokens", "completion_tokens", "cached_tokens",
                          "prefill_tokens_per_s", "decode_tokens_per_s",
                          "time_to_first_token_s", "e2e_latency_s"}
        prompt = len(p.models[0].prompts[-1])
        assert u["prompt_tokens"] == prompt and u["completion_tokens"] == 6
        # the second identical prompt reuses all but its last token (fake engine's rule)
        assert u["cached_tokens"] == prompt - 1
        assert u["prefill_tokens_per_s"] == pytest.approx(1 / 0.5)     # 1 token in 0.5 s (fake)
        assert u["decode_tokens_per_s"] == pytest.approx(10.0)         # 0.1 s per step (fake)
        assert 0 < u["time_to_first_token_s"] <= u["e2e_latency_s"]
    run(main())


def test_stop_token_and_stop_string():
    async def main():
        rt, p, _ = make()
        await rt.init()
        p.models[0].stop_after = 3
        r = await rt.chat(USER, max_tokens=10)
        assert r["text"] == "aaa" and r["finish_reason"] == "stop"
        assert r["usage"]["completion_tokens"] == 4          # the eos was generated too
        p.models[0].stop_after = None
        r = await rt.complete("xyz", max_tokens=10, stop=["zzz"])
        assert r["text"] == "" and r["finish_reason"] == "stop"
        r = await rt.complete("xyz", max_tokens=10, stop="zq")
        assert r["text"] == "z" * 10 and r["finish_reason"] == "length"
    run(main())


def test_fifo_queue_never_interleaves():
    async def main():
        rt, p, _ = make()
        await rt.init()
        m = p.models[0]
        letters = "bcdef"
        streams = [await rt.chat([{"role": "user", "content": f"go {c}"}], stream=True,
                                 max_tokens=9) for c in letters]
        texts = {c: [] for c in letters}
        log = []

        async def consume(c, s):
            async for item in s:
                texts[c].append(item["delta"])
                if item["delta"]:
                    log.append(c)

        # consume in reverse order: the engine's order must still be the call order
        await asyncio.gather(*(consume(c, s) for c, s in reversed(list(zip(letters, streams)))))
        assert [pr[-1] - 2 for pr in m.prompts[1:]] == [ord(c) for c in letters]
        for c in letters:
            assert "".join(texts[c]) == c * 9
        # each request's tokens were produced in one contiguous run
        runs = [c for i, c in enumerate(log) if i == 0 or log[i - 1] != c]
        assert runs == list(letters)
    run(main())


def test_interrupt_then_next_request_starts_at_once():
    async def main():
        rt, p, _ = make()
        await rt.init()
        m = p.models[0]
        m.step = asyncio.Event()
        first = await rt.chat(USER, stream=True, max_tokens=1000)
        second = asyncio.ensure_future(rt.chat([{"role": "user", "content": "b"}], max_tokens=3))
        m.step.set()
        item = await first.__anext__()
        assert item["delta"] == "a"
        assert rt.status()["state"] == "generating"
        assert rt.interrupt() is True
        assert rt.interrupt() is False      # a second click must not abort the queued request
        m.step.set()
        rest = [i async for i in first]
        assert rest[-1]["finish_reason"] == "abort"
        assert rest[-1]["usage"]["completion_tokens"] < 1000
        assert m.closed_early == 1
        while not second.done():
            m.step.set()
            await asyncio.sleep(0)
        r = await second
        assert r["finish_reason"] == "length" and r["text"] == "bbb"
        assert rt.status()["state"] == "ready"
        assert rt.interrupt() is False      # nothing running
    run(main())


def test_leaving_a_stream_early_aborts_it():
    async def main():
        rt, p, _ = make()
        await rt.init()
        s = await rt.chat(USER, stream=True, max_tokens=500)
        async for item in s:
            break
        await s.aclose()
        r = await rt.chat([{"role": "user", "content": "q"}], max_tokens=2)
        assert r["text"] == "qq"
        assert p.models[0].yielded < 500
    run(main())


def test_switch_model_aborts_queue_and_frees_before_loading():
    async def main():
        rt, p, seen = make(weights=5000)
        await rt.init()
        m = p.models[0]
        m.step = asyncio.Event()
        running = await rt.chat(USER, stream=True, max_tokens=1000)
        queued = asyncio.ensure_future(rt.chat(USER, max_tokens=5))
        m.step.set()
        await running.__anext__()
        switch = asyncio.ensure_future(rt.switch_model(OTHER))
        while not switch.done():
            m.step.set()
            await asyncio.sleep(0)
        assert (await switch)["model"] == OTHER
        assert [i async for i in running][-1]["finish_reason"] == "abort"
        q = await queued
        assert q["finish_reason"] == "abort" and q["usage"]["completion_tokens"] == 0
        assert q["text"] == ""
        # the old model's weights were gone when the new load started
        assert p.loads == [(DEFAULT, 0), (OTHER, 0)]
        assert m.destroyed and p.devices[0].ledger.peak == 5000
        states = [d["state"] for n, d in seen if n == "status"]
        assert states[-4:] == ["ready", "idle", "loading", "ready"]
        r = await rt.chat(USER, max_tokens=2)
        assert r["model"] == OTHER
    run(main())


def test_unload_returns_ledger_to_baseline():
    async def main():
        rt, p, _ = make(weights=1234)
        await rt.init()
        dev = p.devices[0]
        assert dev.ledger.total == 1234
        await rt.unload()
        assert dev.ledger.total == rt.baseline == 0
        assert rt.runtime_info()["memory"]["total"] == 0
        await rt.unload()               # idempotent
        assert rt.status()["state"] == "idle"
    run(main())


def test_prompt_too_long_before_any_work_and_truncation():
    async def main():
        rt, p, _ = make(context_length=16)
        await rt.init()
        m = p.models[0]
        n = len(m.prompts)
        long = [{"role": "user", "content": "x" * 20}]
        with pytest.raises(PromptTooLongError, match="16 tokens"):
            await rt.chat(long)
        with pytest.raises(PromptTooLongError):
            await rt.chat(long, stream=True)
        assert len(m.prompts) == n            # nothing reached the model
        msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "old one"},
                {"role": "assistant", "content": "reply"}, {"role": "user", "content": "new"}]
        r = await rt.chat(msgs, truncate="oldest", max_tokens=1)
        assert r["finish_reason"] == "length"
        assert FakeTokenizer().decode(m.prompts[-1]) == "s\n\nnew"
        assert rt.status()["state"] == "ready"
    run(main())


def test_options_are_validated_at_call():
    async def main():
        rt, p, _ = make()
        await rt.init()
        for bad in ({"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"max_tokens": 1.5},
                    {"stop": [1]}, {"truncate": "middle"}, {"logprobs": 99}, {"seed": -3}):
            with pytest.raises(ValueError):
                await rt.chat(USER, **bad)
        with pytest.raises(ValueError, match="messages"):
            await rt.chat([{"role": "user"}])
        assert rt.status()["state"] == "ready" and len(p.models[0].prompts) == 1
    run(main())


def test_logprobs_items():
    async def main():
        rt, p, _ = make()
        await rt.init()
        p.models[0].stop_after = 2
        r = await rt.chat(USER, max_tokens=5, logprobs=2)
        assert r["text"] == "aa"
        assert [e["token"] for e in r["logprobs"]] == ["a", "a"]     # no entry for the eos
        e = r["logprobs"][0]
        assert e["logprob"] == -0.5 and e["top_logprobs"][0] == {"id": e["id"], "token": "a",
                                                                 "logprob": -0.5}
        items = [i async for i in await rt.chat(USER, max_tokens=5, logprobs=2, stream=True)]
        assert sum(len(i.get("logprobs", ())) for i in items) == 2
    run(main())


def test_memory_warnings():
    async def main():
        # before loading: the catalog's estimate for SmolLM2 (> 100 MB) vs a 50 MB budget
        rt, p, seen = make(budget=50_000_000, weights=1000)
        await rt.init()
        warns = [d for n, d in seen if n == "memory-warning"]
        assert len(warns) == 1 and warns[0]["budget_bytes"] == 50_000_000
        assert warns[0]["used_bytes"] > 100_000_000 and "MiB" in warns[0]["text"]
        # after loading: the ledger crossing 90 % of the budget warns once per crossing
        rt, p, seen = make(budget=1_000_000_000, weights=950_000_000)
        rt._catalog = Catalog.load()
        await rt.init(OTHER, context_length=8)
        await rt.chat(USER, max_tokens=1)
        warns = [d for n, d in seen if n == "memory-warning"]
        assert [w["used_bytes"] for w in warns] == [950_000_000]
        await rt.switch_model(OTHER, context_length=16)
        assert len([n for n, _ in seen if n == "memory-warning"]) == 2
    run(main())


def test_runtime_info_and_available_models():
    async def main():
        rt, p, _ = make(budget=10 ** 12)
        info = rt.runtime_info()
        assert info["adapter"] is None and info["platform"] == "fake"
        await rt.check_webgpu()
        info = rt.runtime_info()
        assert info["backend"] == "webgpu" and info["adapter"]["vendor"] == "fake"
        assert info["versions"] == {"python": "fake"}
        assert info["memory"]["budget"] == 10 ** 12 and info["memory"]["total"] == 0
        models = await rt.available_models()
        ids = [m["id"] for m in models]
        assert DEFAULT in ids and OTHER in ids
        m = models[ids.index(DEFAULT)]
        assert m["cached"] is True and m["partial"] is False and m["runnable"] is None
        assert m["bundled"] is True and m["default"] is True
    run(main())


def test_check_webgpu_failure_emits_error():
    from app.gpu import WebGPUUnavailableError

    async def main():
        rt, p, seen = make()

        async def no_gpu():
            raise WebGPUUnavailableError("no adapter in this test")
        p.open_device = no_gpu
        with pytest.raises(WebGPUUnavailableError):
            await rt.check_webgpu()
        assert [d["name"] for n, d in seen if n == "error"] == ["WebGPUUnavailableError"]
        models = await rt.available_models()
        assert all("WebGPU is not available" in m["runnable"] for m in models)
    run(main())
