"""HybridLLM's routing (app/runtime/hybrid.py) with a real remote server (llama.cpp serving
SmolLM2 on 127.0.0.1, tests/remote_servers.py) and a real LocalLLM whose local side cannot or
can serve: a NativePlatform without any GPU adapter (open_device raises
WebGPUUnavailableError, as on a machine with no WebGPU), and the fake platform of
tests/unit/runtime_fakes.py for a local engine that works, whose load fails, or whose device is
lost mid-request. The server's own access log is the record of what left the device."""
from __future__ import annotations


import pytest

from app.gpu import DeviceLostError, WebGPUUnavailableError
from app.models import ModelMemoryError
from app.runtime import LocalLLM, NotLoadedError
from app.runtime.catalog import Catalog
from app.runtime.hybrid import HybridLLM
from app.runtime.native import NativePlatform
from app.runtime.remote_config import MemoryConfigStore
from app.runtime.remote_errors import RemoteConfigError
from tests.remote_servers import LLAMA_KEY
from tests.unit.runtime_fakes import FakeModel, FakePlatform

KEY = LLAMA_KEY          # the session server's key (tests/conftest.py `llama`)
MSGS = [{"role": "user", "content": "What is the capital of France?"}]
POST = "POST /v1/chat/completions 200"


class NoGPUPlatform(NativePlatform):
    """This machine without a WebGPU adapter."""

    async def open_device(self):
        raise WebGPUUnavailableError("no adapter was granted (test platform)")


class LosingModel(FakeModel):
    """Generates normally until `lose` is set, then its device is lost (after `after` tokens)."""
    lose = False
    after = 0

    async def generate(self, ids, params=None, max_tokens=256, stop_ids=(), with_logprobs=False):
        n = 0
        async for t in super().generate(ids, params, max_tokens, stop_ids, with_logprobs):
            if LosingModel.lose and n >= LosingModel.after:
                raise DeviceLostError("destroyed", "test")
            n += 1
            yield t


class LosingPlatform(FakePlatform):
    async def load(self, dev, entry, progress, **kw):
        model, tok = await super().load(dev, entry, progress, **kw)
        model.__class__ = LosingModel
        return model, tok


def hybrid(platform, llama=None, **config) -> tuple[HybridLLM, list]:
    stored = None
    if llama is not None:
        stored = {"enabled": True, "base_url": llama.base_url, "api_key": KEY,
                  "model": "smollm2", "mode": "auto", **config}
    rt = HybridLLM(LocalLLM(platform=platform, catalog=Catalog.load()),
                   store=MemoryConfigStore(stored))
    events: list = []
    rt.on("provider", events.append)
    return rt, events


async def collect(stream) -> list[dict]:
    return [i async for i in stream]


def test_fallback_disabled_gives_the_local_errors_and_sends_nothing(run, llama):
    rt, events = hybrid(NoGPUPlatform())               # default settings: disabled
    n = len(llama.requests())
    with pytest.raises(WebGPUUnavailableError):
        run(rt.init())
    assert rt.status()["state"] == "error"
    with pytest.raises(NotLoadedError, match="WebGPUUnavailableError"):
        run(rt.chat(MSGS, max_tokens=4))
    with pytest.raises(NotLoadedError):
        run(rt.complete("Hi", stream=True))
    with pytest.raises(NotLoadedError):
        run(rt.chat_completions.create(messages=MSGS))
    # Configured and enabled but in mode "local": still nothing leaves.
    assert run(rt.set_remote_config(base_url=llama.base_url, model="smollm2", api_key=KEY,
                                    enabled=True, mode="local"))["mode"] == "local"
    with pytest.raises(NotLoadedError):
        run(rt.chat(MSGS, max_tokens=4))
    assert events == [] and llama.requests()[n:] == []


def test_auto_with_fallback_goes_remote_when_no_backend(run, llama):
    rt, events = hybrid(NoGPUPlatform(), llama)
    n = len(llama.requests())
    r = run(rt.init(backend="auto"))
    assert r["provider"] == "remote" and r["model"] == "smollm2"
    assert "WebGPUUnavailableError" in r["reason"] and rt.status()["state"] == "error"
    assert llama.requests()[n:] == []                  # init itself sends nothing
    full = run(rt.chat(MSGS, temperature=0.0, max_tokens=8))
    items = run(collect(run(rt.chat(MSGS, stream=True, temperature=0.0, max_tokens=8))))
    assert full["provider"] == "remote" and full["text"]
    assert all(i["provider"] == "remote" for i in items)
    assert "".join(i["delta"] for i in items) == full["text"]
    assert len(events) == 2 and events[0] == {
        "provider": "remote", "local_error": "WebGPUUnavailableError", "host":
        llama.base_url.rsplit("/", 1)[0], "model": "smollm2", "kind": "chat",
        "reason": events[0]["reason"]}
    assert "WebGPUUnavailableError" in events[0]["reason"]
    oa = run(rt.chat_completions.create(messages=MSGS, max_tokens=4, temperature=0.0))
    assert oa["provider"] == "remote" and oa["usage"]["completion_tokens"] == 4
    assert oa["choices"][0]["message"]["content"] == \
        run(rt.chat(MSGS, temperature=0.0, max_tokens=4))["text"]
    chunks = run(collect(run(rt.chat_completions.create(messages=MSGS, max_tokens=4,
                                                        stream=True))))
    assert {c["provider"] for c in chunks} == {"remote"}
    assert chunks[-1]["usage"] is None         # llama-cpp-python reports no streamed usage
    assert llama.requests()[n:] == [POST] * 5 and len(events) == 5
    # Turning it off stops it at once: the local error again, nothing more sent.
    run(rt.set_remote_config(enabled=False))
    with pytest.raises(NotLoadedError):
        run(rt.chat(MSGS, max_tokens=4))
    assert llama.requests()[n:] == [POST] * 5 and len(events) == 5


def test_auto_keeps_a_working_local_engine_local(run, llama):
    rt, events = hybrid(FakePlatform(), llama)
    n = len(llama.requests())
    r = run(rt.init())
    assert r["provider"] == "local" and r["backend"] == "webgpu"
    out = run(rt.chat([{"role": "user", "content": "hi a"}], max_tokens=3, seed=1))
    assert out["provider"] == "local" and out["text"] == "aaa"
    items = run(collect(run(rt.complete("b", stream=True, max_tokens=2, seed=1))))
    assert [i["provider"] for i in items] == ["local"] * len(items)
    oa = run(rt.chat_completions.create(messages=MSGS, max_tokens=2))
    assert oa["provider"] == "local" and oa["usage"]["completion_tokens"] == 2
    # A local error that is not "cannot serve" stays local.
    with pytest.raises(ValueError):
        run(rt.chat(MSGS, max_tokens=0))
    assert events == [] and llama.requests()[n:] == []


@pytest.mark.parametrize("error", [ModelMemoryError("the weights do not fit"),
                                   ValueError("not a GGUF file")])
def test_auto_goes_remote_when_the_load_failed(run, llama, error):
    rt, events = hybrid(FakePlatform(fail=[error]), llama)
    r = run(rt.init())
    assert r["provider"] == "remote" and type(error).__name__ in r["reason"]
    out = run(rt.chat(MSGS, temperature=0.0, max_tokens=4))
    assert out["provider"] == "remote"
    assert events[-1]["local_error"] == type(error).__name__
    # init again succeeds locally: requests are local again
    assert run(rt.init())["provider"] == "local"
    assert run(rt.chat([{"role": "user", "content": "hi a"}], max_tokens=2))["provider"] == \
        "local"
    assert len(events) == 1


def test_without_fallback_a_failed_load_raises_its_own_error(run, llama):
    rt, events = hybrid(FakePlatform(fail=[ModelMemoryError("too big")]), llama, enabled=False)
    n = len(llama.requests())
    with pytest.raises(ModelMemoryError):
        run(rt.init())
    assert events == [] and llama.requests()[n:] == []


def test_device_lost_before_the_first_item_fails_over_never_mid_reply(run, llama):
    rt, events = hybrid(LosingPlatform(), llama)
    user = [{"role": "user", "content": "hi a"}]

    def reload(after: int) -> None:        # a fresh local model (its warm-up must not fail)
        LosingModel.lose = False
        assert run(rt.init(context_length=64 + after))["provider"] == "local"
        LosingModel.lose, LosingModel.after = True, after

    try:
        reload(0)
        items = run(collect(run(rt.chat(user, stream=True, temperature=0.0, max_tokens=4))))
        assert items and all(i["provider"] == "remote" for i in items)
        assert events[-1]["local_error"] == "DeviceLostError"
        # lost after 2 tokens were delivered: the reply fails; no mixing of providers
        reload(2)
        got = []

        async def go():
            async for item in await rt.chat(user, stream=True, max_tokens=6):
                got.append(item)
        with pytest.raises(DeviceLostError):
            run(go())
        assert got and {i["provider"] for i in got} == {"local"} and len(events) == 1
        # non-streamed: nothing was delivered, so it goes remote
        reload(0)
        assert run(rt.chat(user, max_tokens=4))["provider"] == "remote" and len(events) == 2
    finally:
        LosingModel.lose = False


def test_mode_remote_loads_nothing_locally_and_interrupt_aborts_the_remote_request(run, llama):
    platform = FakePlatform()
    rt, events = hybrid(platform, llama, mode="remote")
    r = run(rt.init())
    assert r == {"model": "smollm2", "load_s": 0.0, "backend": None, "provider": "remote"}
    assert platform.loads == [] and rt.status()["state"] == "idle"

    async def go():
        got = []
        async for item in await rt.chat(MSGS, stream=True, max_tokens=1500, seed=5):
            got.append(item)
            if len(got) == 2:
                assert rt.interrupt() is True
        return got
    got = run(go())
    assert got[-1]["finish_reason"] == "abort" and len(got) == 3
    assert events[-1]["reason"] == "remote mode" and events[-1]["local_error"] is None


def test_settings_are_checked_kept_private_and_enable_needs_url_and_model(run, llama):
    store = MemoryConfigStore()
    rt = HybridLLM(LocalLLM(platform=NoGPUPlatform(), catalog=Catalog.load()), store=store)
    assert run(rt.remote_config())["enabled"] is False
    with pytest.raises(RemoteConfigError, match="set base_url"):
        run(rt.set_remote_config(enabled=True))
    pub = run(rt.set_remote_config(enabled=True, base_url=llama.base_url + "/", api_key=KEY,
                                   model="smollm2"))
    assert pub["has_api_key"] and pub["base_url"] == llama.base_url and KEY not in str(pub)
    assert store.data["api_key"] == KEY                       # stored, on this device
    assert KEY not in repr(rt) and KEY not in str(rt.runtime_info())
    # a second runtime over the same store starts with the saved settings
    rt2 = HybridLLM(LocalLLM(platform=NoGPUPlatform(), catalog=Catalog.load()), store=store)
    assert run(rt2.remote_config()) == pub
