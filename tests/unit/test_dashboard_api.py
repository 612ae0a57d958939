"""The runtime API the dashboard needs (issue 8, engine side), under CPython: cancel_load,
the cache manager (get_cache, delete_cached, delete_cached_file), user models by URL kept across
service instances (add_model, remove_model), import_model_file, the progress events' speed_bps
and eta_s, and available_models' memory_bytes / runnable text.

The service is the real LocalLLM. Downloads, the cache and imports run on the real
NativePlatform (files, a real HTTP server with Range: tests/fault_server.py, the real SmolLM2
GGUF); only the GPU is replaced (tests/unit/runtime_fakes.py), because what is checked here is
bookkeeping. The same calls through the worker, the facade and IndexedDB are in
tests/browser/test_dashboard_api_browser.py."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from app.formats.gguf import BadMagicError, TensorOutOfRangeError
from app.runtime import LocalLLM
from app.runtime.catalog import Catalog
from app.runtime.catalog_ops import (CachedFileNotFoundError, ModelBusyError, ModelURLError,
                                     ModelNotRemovableError)
from app.runtime.events import LoadProgress
from app.runtime.memory import GPU_PREFILL_CHUNK
from app.runtime.native import NativePlatform
from app.runtime.service import LoadCancelledError
from app.runtime.worker import WorkerLoop
from tests.fault_server import Fault, FaultServer
from tests.unit.runtime_fakes import FakeDevice, FakeModel, FakePlatform, FakeTokenizer

DEFAULT = "smollm2-135m-instruct-q4_1"
OTHER = "gemma-3-270m-it-q4_k_m"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class GatedPlatform(FakePlatform):
    """FakePlatform whose load() waits at `gate` (an asyncio.Event) after its first progress
    event and allocates 500 bytes of "weights" before it, so a cancel lands mid-load with
    something on the ledger."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.gate = None
        self.started = None

    async def load(self, dev, entry, progress, *, context_length, kv_dtype, hf_token):
        if self.gate is None:
            return await super().load(dev, entry, progress, context_length=context_length,
                                      kv_dtype=kv_dtype, hf_token=hf_token)
        self.loads.append((entry.id, dev.ledger.total))
        buf = dev.create_buffer(500, kind="weights", label="partial upload")
        try:
            progress({"phase": "download", "loaded_bytes": 10, "total_bytes": 40, "progress": 0.25})
            self.started.set()
            await self.gate.wait()
        except BaseException:
            dev.destroy_buffer(buf)          # as load_checkpoint frees a partial upload
            raise
        dev.destroy_buffer(buf)
        model = FakeModel(dev)
        self.models.append(model)
        return model, FakeTokenizer()


def gated():
    p = GatedPlatform()
    p.gate, p.started = asyncio.Event(), asyncio.Event()
    rt = LocalLLM(platform=p, catalog=Catalog.load())
    seen = []
    rt.on("status", lambda d: seen.append(d["state"]))
    return rt, p, seen


# -- 1. cancel_load ---------------------------------------------------------------------------
def test_cancel_load_stops_the_running_and_queued_loads():
    async def main():
        rt, p, seen = gated()
        assert rt.cancel_load() is False                     # nothing to cancel
        first = asyncio.ensure_future(rt.init())
        queued = asyncio.ensure_future(rt.init(OTHER))
        await p.started.wait()
        assert rt.status()["state"] == "loading" and p.devices[0].ledger.total == 500
        assert rt.cancel_load() is True                      # answers at once (not async)
        for task in (first, queued):
            with pytest.raises(LoadCancelledError, match="kept.*resumes"):
                await task
        assert rt.status() == {"state": "idle", "model": None, "progress": 0.0, "error": None,
                               "backend": None, "backend_reason": None}
        assert seen[-1] == "idle" and "loading" in seen
        assert p.devices[0].ledger.total == rt.baseline       # nothing left on the GPU
        assert [i for i, _ in p.loads] == [DEFAULT]           # the queued one never started
        assert rt.cancel_load() is False
        p.gate = None                                         # a later load runs normally
        assert (await rt.init())["model"] == DEFAULT and rt.status()["state"] == "ready"
        assert (await rt.chat([{"role": "user", "content": "hi z"}], max_tokens=2))["text"] == "zz"
    run(main())


def test_cancelling_a_queued_load_keeps_the_loaded_model():
    async def main():
        rt, p, seen = gated()
        gate = p.gate
        p.gate = None
        await rt.init()
        p.gate = gate
        # a request, then a queued switch: cancelling the switch leaves the model serving
        reply = asyncio.ensure_future(rt.chat([{"role": "user", "content": "hi q"}], max_tokens=3))
        switch = asyncio.ensure_future(rt.init(OTHER))
        await asyncio.sleep(0)
        assert rt.cancel_load() is True
        with pytest.raises(LoadCancelledError):
            await switch
        assert (await reply)["text"] == "qqq"
        assert rt.status()["state"] == "ready" and rt.status()["model"] == DEFAULT
        assert [i for i, _ in p.loads] == [DEFAULT]
    run(main())


def test_cancel_load_through_the_worker_is_immediate():
    async def main():
        rt, p, _ = gated()
        posted = []
        loop = WorkerLoop(rt, posted.append)
        loop.on_message(json.dumps({"id": 1, "op": "init", "args": [None], "kwargs": {}}))
        await p.started.wait()
        loop.on_message(json.dumps({"id": 2, "op": "cancelLoad", "args": [], "kwargs": {}}))
        assert posted[-1]["id"] == 2 and posted[-1]["result"] is True   # before the load ends
        while not any(m.get("id") == 1 for m in posted):
            await asyncio.sleep(0.01)
        reply = next(m for m in posted if m.get("id") == 1)
        assert reply["error"]["name"] == "LoadCancelledError" and reply["status"]["state"] == "idle"
    run(main())


def test_blob_arguments_are_taken_from_the_worker_js():
    class Service:
        def status(self):
            return {"state": "idle"}

        async def import_model_file(self, file, *, name=None):
            return {"got": file, "name": name}
    kept = {"7:0": "<a JS File>"}
    posted = []

    async def main():
        loop = WorkerLoop(Service(), posted.append, take_blob=lambda k: kept.pop(k, None))
        loop.on_message(json.dumps({"id": 7, "op": "importModelFile",
                                    "args": [{"$blob": "7:0"}], "kwargs": {"name": "m"}}))
        loop.on_message(json.dumps({"id": 8, "op": "importModelFile",
                                    "args": [{"$blob": "7:0"}], "kwargs": {}}))  # taken already
        while len(posted) < 2:
            await asyncio.sleep(0.01)
    run(main())
    by_id = {m["id"]: m for m in posted}
    assert by_id[7]["result"] == {"got": "<a JS File>", "name": "m"} and kept == {}
    assert by_id[8]["error"]["name"] == "TypeError"


# -- native platform without a GPU: real files, real HTTP ---------------------------------------
class NativeNoGPU(NativePlatform):
    """The real NativePlatform (cache, downloads, imports); the device and the model are fakes."""

    async def open_device(self):
        return FakeDevice()

    async def load(self, dev, entry, progress, *, context_length=None, kv_dtype="f16",
                   hf_token=None, quantize=None):
        await self.ensure_files(entry, progress, hf_token)
        return FakeModel(dev), FakeTokenizer()


@pytest.fixture
def served(tmp_path):
    data = os.urandom(6 << 20)
    path = tmp_path / "served.gguf"
    path.write_bytes(data)
    srv = FaultServer({"tiny-Q8_0.gguf": path, "other-Q4_0.gguf": path}).start()
    yield srv, data
    srv.stop()


def test_cancel_mid_download_keeps_the_part_and_the_next_init_resumes(tmp_path, served):
    srv, data = served

    async def main():
        rt = LocalLLM(platform=NativeNoGPU(cache_dir=tmp_path / "cache"), catalog=Catalog.load())
        entry = await rt.add_model(srv.url("tiny-Q8_0.gguf"))
        progress = []
        rt.on("progress", progress.append)
        srv.inject("tiny-Q8_0.gguf", Fault("slow", seconds=4.0))
        task = asyncio.ensure_future(rt.init(entry["id"]))
        while not progress or progress[-1]["loaded_bytes"] < (2 << 20):
            await asyncio.sleep(0.01)
        with pytest.raises(ModelBusyError, match="loading"):
            await rt.delete_cached(entry["id"])               # busy: nothing deleted
        assert rt.cancel_load() is True
        with pytest.raises(LoadCancelledError):
            await task
        await asyncio.sleep(0.3)                               # the thread sees its stop flag
        assert rt.status()["state"] == "idle"
        cache = await rt.get_cache()
        [m] = [m for m in cache["models"] if m["id"] == entry["id"]]
        assert m["partial"] and not m["complete"] and 0 < m["bytes"] < len(data)
        assert m["files"][0]["complete"] is False and m["loaded"] is False
        # later progress events had a speed once 0.5 s of samples were in
        assert any(d["speed_bps"] for d in progress if d["phase"] == "download")
        r = await rt.init(entry["id"])
        assert r["model"] == entry["id"]
        assert srv.gets("tiny-Q8_0.gguf")[-1].range == f"bytes={m['bytes']}-"
        cache = await rt.get_cache()
        [m] = [m for m in cache["models"] if m["id"] == entry["id"]]
        assert m["complete"] and m["bytes"] == m["size"] == len(data) and m["loaded"]
    run(main())


def test_cache_listing_delete_and_other_files(tmp_path, served):
    srv, data = served

    async def main():
        p = NativeNoGPU(cache_dir=tmp_path / "cache")
        rt = LocalLLM(platform=p, catalog=Catalog.load())
        a = await rt.add_model(srv.url("tiny-Q8_0.gguf"))
        b = await rt.add_model(srv.url("other-Q4_0.gguf"), name="Other")
        await rt.init(a["id"])
        await rt.init(b["id"])                                 # a: cached, b: cached + loaded
        stray = tmp_path / "cache" / "leftover" / "x.bin"
        stray.parent.mkdir(parents=True)
        stray.write_bytes(b"123")
        cache = await rt.get_cache()
        ids = {m["id"]: m for m in cache["models"]}
        assert set(ids) == {a["id"], b["id"]}
        assert ids[b["id"]]["loaded"] and not ids[a["id"]]["loaded"]
        assert ids[b["id"]]["name"] == "Other" and ids[a["id"]]["complete"]
        assert cache["other"] == [{"key": "leftover/x.bin", "name": "x.bin", "bytes": 3,
                                   "complete": True}]
        assert cache["usage"] == 2 * len(data) + 3 and cache["quota"] > cache["usage"]
        assert cache["persisted"] is True

        # deleting the loaded model's files is allowed and it keeps answering
        after = await rt.delete_cached(b["id"])
        assert b["id"] not in {m["id"] for m in after["models"]}
        assert not (tmp_path / "cache" / b["id"]).exists()
        assert (await rt.chat([{"role": "user", "content": "hi k"}], max_tokens=2))["text"] == "kk"
        after = await rt.delete_cached_file("leftover/x.bin")
        assert after["other"] == [] and not stray.exists()
        with pytest.raises(CachedFileNotFoundError):
            await rt.delete_cached_file("leftover/x.bin")
        assert [m["id"] for m in after["models"]] == [a["id"]]
    run(main())


# -- 3. user models by URL ------------------------------------------------------------------------
def test_user_models_persist_and_bad_urls_are_refused(tmp_path, served):
    srv, _ = served

    async def main():
        p = NativeNoGPU(cache_dir=tmp_path / "cache")
        rt = LocalLLM(platform=p)
        n = len(await rt.available_models())
        m = await rt.add_model(srv.url("tiny-Q8_0.gguf"), name="Tiny")
        assert m["user_added"] and m["name"] == "Tiny" and m["quantization"] == "Q8_0"
        for bad, why in (("ftp://host/x.gguf", "not an http"), ("models/x.gguf", "not an http"),
                         ("https://host/readme.txt", "one .gguf file"), (42, "not an http")):
            with pytest.raises(ModelURLError, match=why):
                await rt.add_model(bad)
        # "a later visit": a new service over the same platform restores it from the records
        rt2 = LocalLLM(platform=p)
        listed = {d["id"]: d for d in await rt2.available_models()}
        assert len(listed) == n + 1 and listed[m["id"]]["name"] == "Tiny"
        await rt2.init(m["id"])                                 # downloads it
        with pytest.raises(ModelNotRemovableError, match="built-in"):
            await rt2.remove_model(DEFAULT)
        cache = await rt2.remove_model(m["id"])
        assert cache["models"] == [] and not (tmp_path / "cache" / m["id"]).exists()
        assert m["id"] not in {d["id"] for d in await rt2.available_models()}
        assert m["id"] not in {d["id"] for d in await LocalLLM(platform=p).available_models()}
    run(main())


# -- 4. importing a local GGUF --------------------------------------------------------------------
def test_import_model_file(tmp_path, smollm2_gguf):
    async def main():
        p = NativeNoGPU(cache_dir=tmp_path / "cache")
        rt = LocalLLM(platform=p)
        progress = []
        rt.on("progress", progress.append)
        before_cache, before_models = await rt.get_cache(), await rt.available_models()
        # a non-GGUF and a truncated GGUF: named errors, nothing stored or listed
        junk = tmp_path / "notes.gguf"
        junk.write_bytes(b"PK\x03\x04" + os.urandom(4096))
        with pytest.raises(BadMagicError):
            await rt.import_model_file(str(junk))
        cut = tmp_path / "cut.gguf"
        cut.write_bytes(smollm2_gguf.read_bytes()[: 30 << 20])
        with pytest.raises(TensorOutOfRangeError):
            await rt.import_model_file(str(cut))
        after = await rt.get_cache()          # (quota is the disk's free space: it moves)
        assert [after[k] for k in ("models", "other", "usage")] == \
            [before_cache[k] for k in ("models", "other", "usage")]
        assert await rt.available_models() == before_models
        assert not any((tmp_path / "cache").rglob("*.gguf"))
        progress.clear()

        m = await rt.import_model_file(str(smollm2_gguf), name="My SmolLM2")
        assert m["imported"] and m["user_added"] and m["name"] == "My SmolLM2"
        assert m["family"] == "llama" and m["arch"]["n_layers"] == 30
        assert m["size"] == smollm2_gguf.stat().st_size and m["memory_bytes"] > m["size"]
        assert all(d["phase"] == "import" for d in progress) and progress[-1]["progress"] == 1.0
        assert progress[-1]["loaded_bytes"] == progress[-1]["total_bytes"] == m["size"]
        assert {"speed_bps", "eta_s"} <= set(progress[-1])
        [c] = [c for c in (await rt.get_cache())["models"] if c["id"] == m["id"]]
        assert c["complete"] and c["bytes"] == m["size"]
        assert (await rt.init(m["id"]))["model"] == m["id"]
        # kept for the next visit, with its architecture
        again = {d["id"]: d for d in await LocalLLM(platform=p).available_models()}
        assert again[m["id"]]["arch"]["n_layers"] == 30 and again[m["id"]]["imported"]
    run(main())


# -- 5. speed and time left -----------------------------------------------------------------------
def test_progress_speed_and_eta_with_a_fake_clock():
    now = [100.0]
    out = []
    p = LoadProgress(out.append, clock=lambda: now[0])

    def at(t, done, phase="download", total=1000):
        now[0] = 100.0 + t
        p.platform({"phase": phase, "loaded_bytes": done, "total_bytes": total,
                    "progress": done / total})
        return out[-1]
    first = at(0.0, 0)
    assert first["speed_bps"] is None and first["eta_s"] is None
    assert at(0.2, 20)["speed_bps"] is None                   # under 0.5 s of samples
    d = at(1.0, 100)
    assert d["speed_bps"] == pytest.approx(100.0) and d["eta_s"] == pytest.approx(9.0)
    at(2.0, 150)
    d = at(3.0, 350)                  # the window: the last ~2 s (from t=1.0: 250 B / 2 s)
    assert d["speed_bps"] == pytest.approx(125.0) and d["eta_s"] == pytest.approx(650 / 125)
    d = at(4.0, 370)
    assert d["speed_bps"] == pytest.approx(110.0)             # 220 B over t=2..4
    # a new phase starts over; compile counts steps, so no speed
    d = at(4.1, 10, "upload")
    assert d["phase"] == "upload" and d["speed_bps"] is None
    assert at(5.1, 510, "upload")["speed_bps"] == pytest.approx(500.0)
    assert at(5.2, 1000, "upload")["eta_s"] == 0.0
    p.compile(1, 2, "compiling")
    assert out[-1]["speed_bps"] is None and out[-1]["eta_s"] is None
    # no total: a speed but no time left
    q = LoadProgress(out.append, clock=lambda: now[0])
    now[0] = 0.0
    q.platform({"phase": "download", "loaded_bytes": 0, "total_bytes": None, "progress": 0.0})
    now[0] = 1.0
    q.platform({"phase": "download", "loaded_bytes": 64, "total_bytes": None, "progress": 0.1})
    assert out[-1]["speed_bps"] == pytest.approx(64.0) and out[-1]["eta_s"] is None


# -- 6. available_models: memory_bytes and readable reasons ---------------------------------------
def test_available_models_memory_bytes_and_reasons():
    async def main():
        plain = LocalLLM(platform=FakePlatform(), catalog=Catalog.load())
        models = {d["id"]: d for d in await plain.available_models()}
        entry = Catalog.load().get(DEFAULT)
        assert models[DEFAULT]["memory_bytes"] == entry.memory_bytes(None, "f16",
                                                                     GPU_PREFILL_CHUNK)
        assert all(d["memory_bytes"] > d["size"] for d in models.values() if d["arch"])
        warned = []
        small = models[DEFAULT]["memory_bytes"] + 1            # fits SmolLM2, not the big ones
        tight = LocalLLM(platform=FakePlatform(budget=small), catalog=Catalog.load())
        tight.on("memory-warning", warned.append)
        listed = {d["id"]: d for d in await tight.available_models()}
        assert listed[DEFAULT]["runnable"] is None and listed[DEFAULT]["backend"] == "webgpu"
        big = [d for d in listed.values() if d["memory_bytes"] > small]
        assert big and all(d["backend"] is None for d in big)  # no CPU backend natively
        for d in big:
            text = d["runnable"]
            assert text.startswith(d["name"]) and "MiB" in text and "Pick a smaller" in text
            assert "{" not in text and "None" not in text
        # the memory check before a load warns with the same estimate
        await tight.init(DEFAULT)
        b = max(big, key=lambda d: d["memory_bytes"])
        try:
            await tight.init(b["id"], backend="webgpu")
        except Exception:  # noqa: BLE001 - the fake platform loads anything; only the warning
            pass
        # (SmolLM2's own estimate is above 90% of this budget too: its load warned first)
        assert [w["used_bytes"] for w in warned] == [small - 1, b["memory_bytes"]]
        # a user model before its first load: unknown, not a reason
        user = await tight.add_model("https://example.org/m/x-Q4_0.gguf")
        again = {d["id"]: d for d in await tight.available_models()}
        assert user["memory_bytes"] is None and again[user["id"]]["runnable"] is None
    run(main())
