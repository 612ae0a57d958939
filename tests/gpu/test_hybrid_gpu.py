"""HybridLLM over the real native engine (LocalLLM + NativePlatform on wgpu-py / lavapipe,
SmolLM2) and llama.cpp's server with the same GGUF: in auto mode a working engine answers
locally and nothing reaches the server; after the GPU device is destroyed (what a driver reset
does) the next request goes to the server, with the provider event naming DeviceLostError;
with the fallback disabled the same loss gives DeviceLostError and sends nothing."""
from __future__ import annotations

import pytest

from app.gpu import DeviceLostError
from app.runtime import LocalLLM
from app.runtime.hybrid import HybridLLM
from app.runtime.native import NativePlatform
from app.runtime.remote_config import MemoryConfigStore
from tests.remote_servers import LLAMA_KEY

KEY = LLAMA_KEY          # the session server's key (tests/conftest.py `llama`)
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize("enabled", [True, False])
def test_lost_device_goes_remote_only_with_fallback(gpu, run, llama, tmp_path, enabled):
    store = MemoryConfigStore({"enabled": enabled, "base_url": llama.base_url, "api_key": KEY,
                               "model": "smollm2", "mode": "auto"})
    rt = HybridLLM(LocalLLM(platform=NativePlatform(cache_dir=tmp_path)), store=store)
    events = []
    rt.on("provider", events.append)
    n = len(llama.requests())
    r = run(rt.init(context_length=64))
    assert r["provider"] == "local" and r["backend"] == "webgpu"
    local = run(rt.chat(Q, max_tokens=3, temperature=0.0))
    assert local["provider"] == "local" and local["usage"]["completion_tokens"] >= 1
    assert llama.requests()[n:] == [] and events == []
    rt._dev.destroy()                     # the local runtime's device (HybridLLM delegates)
    try:
        if enabled:
            out = run(rt.chat(Q, max_tokens=6, temperature=0.0))
            assert out["provider"] == "remote" and out["text"]
            assert [e["local_error"] for e in events] == ["DeviceLostError"]
            assert llama.requests()[n:] == ["POST /v1/chat/completions 200"]
        else:
            with pytest.raises(DeviceLostError):
                run(rt.chat(Q, max_tokens=6, temperature=0.0))
            assert events == [] and llama.requests()[n:] == []
        assert rt.status()["state"] == "error"
    finally:
        run(rt.unload())
