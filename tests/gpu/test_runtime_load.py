"""Loading through the runtime natively, with real models and the real allocation ledger:
switch SmolLM2 -> gemma-3-270m while a reply is streaming (the old weights are gone before the
new load starts), unload back to the baseline, memory warnings against a small budget, init
failures (a corrupt GGUF; a failure injected mid-upload) followed by a clean init, and a model
downloaded from a local HTTP server (resume after a dropped connection, sha256 mismatch, the
bearer token)."""
from __future__ import annotations

import hashlib

import pytest

from app.runtime import LocalLLM
from app.runtime.catalog import Catalog
from app.runtime.fetch import part_paths
from app.runtime.native import NativePlatform
from app.store.errors import IntegrityError
from tests.fault_server import Fault, FaultServer
from tests.gpu.test_runtime import CTX, Q, record
from tests.fixtures_tokenizer import gemma_gguf  # noqa: F401  (fixture)


class HookedPlatform(NativePlatform):
    """NativePlatform that snapshots the ledger when each load starts; `fail_at` injects an
    error once the upload has passed that fraction (a failure mid-upload)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.at_load: list = []
        self.fail_at = None

    async def load(self, dev, entry, progress, **kw):
        self.at_load.append((entry.id, dev.ledger.snapshot()))

        def checked(d):
            if (self.fail_at is not None and d["phase"] == "upload"
                    and d["loaded_bytes"] > self.fail_at * d["total_bytes"]):
                self.fail_at = None
                raise RuntimeError("injected failure mid-upload")
            progress(d)
        return await super().load(dev, entry, checked, **kw)


def test_switch_to_gemma_then_unload(gpu, run, tmp_path, gemma_gguf):
    p = HookedPlatform(cache_dir=tmp_path)
    rt = LocalLLM(platform=p)
    seen = record(rt)
    run(rt.init(context_length=CTX))
    smol = rt.runtime_info()["memory"]
    base = rt.baseline

    async def switch_while_streaming():
        s = await rt.chat(Q, temperature=0.0, max_tokens=200, stream=True)
        first = await s.__anext__()
        states_at = len(seen)
        r = await rt.switch_model(str(gemma_gguf), context_length=CTX)
        rest = [i async for i in s]
        return first, r, rest, states_at
    first, r, rest, mark = run(switch_while_streaming())
    assert rest[-1]["finish_reason"] == "abort"
    assert [d["state"] for n, d in seen[mark:] if n == "status"] == \
        ["ready", "idle", "loading", "ready"]
    assert rt.status() == {"state": "ready", "model": r["model"], "progress": 1.0, "error": None,
            "backend": "webgpu", "backend_reason": None}
    # when gemma's load started, SmolLM2's buffers were all gone
    (id0, at0), (id1, at1) = p.at_load
    assert at1["total"] == base and at1["live"] == {} and at1["buffers"] == 0
    gem = rt.runtime_info()["memory"]
    assert gem["live"]["weights"] > 200 << 20
    # never both models at once: the peak stays below the two totals together
    assert gem["peak"] < smol["total"] + gem["total"]
    out = run(rt.complete("The capital of France is", temperature=0.0, max_tokens=4))
    assert out["text"].strip() and out["model"] == r["model"]
    run(rt.unload())
    after = rt.runtime_info()["memory"]
    assert after["total"] == base and after["live"] == {} and after["buffers"] == 0
    assert rt.status() == {"state": "idle", "model": None, "progress": 0.0, "error": None,
            "backend": None, "backend_reason": None}
    print(f"\nSmolLM2 total {smol['total'] >> 20} MiB, gemma {gem['total'] >> 20} MiB, "
          f"peak {gem['peak'] >> 20} MiB; gemma load {r['load_s']:.1f} s")


def test_memory_warnings_against_a_small_budget(gpu, run, tmp_path):
    budget = 100 << 20                      # SmolLM2 at 256 tokens needs ~105 MB
    rt = LocalLLM(platform=NativePlatform(cache_dir=tmp_path, memory_budget=budget))
    seen = record(rt)
    run(rt.init(context_length=CTX))
    warns = [d for n, d in seen if n == "memory-warning"]
    entry = run(rt.catalog()).default()
    assert len(warns) == 2
    assert warns[0] == {"used_bytes": entry.memory_bytes(CTX, "f16", 64), "budget_bytes": budget,
                        "text": warns[0]["text"]}
    names = [n for n, _ in seen]
    # the estimate's warning comes before any weight is read
    assert names.index("loading") < names.index("memory-warning") < names.index("progress")
    used = rt.runtime_info()["memory"]["total"]
    assert warns[1]["used_bytes"] == used > 0.9 * budget
    run(rt.chat(Q, max_tokens=2))
    assert len([n for n, _ in seen if n == "memory-warning"]) == 2      # once per crossing
    run(rt.unload())
    print(f"\nestimate {warns[0]['used_bytes']} B, ledger after load {used} B")


def test_init_failures_then_a_clean_init(gpu, run, tmp_path, smollm2_gguf):
    data = smollm2_gguf.read_bytes()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(data[: len(data) // 2])
    entry = {"id": "broken-smollm2", "name": "broken", "format": "gguf", "bundled": True,
             "files": [{"url": broken.as_uri(), "size": broken.stat().st_size,
                        "sha256": hashlib.sha256(broken.read_bytes()).hexdigest()}]}
    p = HookedPlatform(cache_dir=tmp_path / "cache")
    rt = LocalLLM(platform=p, catalog=Catalog.load(bundled=[entry]))
    seen = record(rt)
    with pytest.raises(Exception) as e:
        run(rt.init("broken-smollm2", context_length=CTX))
    assert type(e.value).__name__ == "TensorOutOfRangeError"
    st = rt.status()
    assert st["state"] == "error" and st["model"] is None
    assert st["error"]["name"] == "TensorOutOfRangeError" and "truncated" in st["error"]["message"]
    assert [n for n, _ in seen] == ["status", "loading", "status", "error"]
    assert seen[-1][1]["model"] == "broken-smollm2"
    assert rt.runtime_info()["memory"]["total"] == rt.baseline

    # a failure in the middle of the upload: everything allocated so far is released
    p.fail_at = 0.5
    seen.clear()
    with pytest.raises(RuntimeError, match="injected"):
        run(rt.init(str(smollm2_gguf), context_length=CTX))
    assert rt.status()["state"] == "error"
    prog = [d for n, d in seen if n == "progress"]
    assert prog and prog[-1]["phase"] == "upload"
    mem = rt.runtime_info()["memory"]
    assert mem["total"] == rt.baseline and mem["peak"] > 40 << 20     # it had uploaded weights

    r = run(rt.init(str(smollm2_gguf), context_length=CTX))
    assert rt.status() == {"state": "ready", "model": r["model"], "progress": 1.0, "error": None,
            "backend": "webgpu", "backend_reason": None}
    assert run(rt.chat(Q, temperature=0.0, max_tokens=3))["text"]
    run(rt.unload())
    assert rt.runtime_info()["memory"]["total"] == rt.baseline


def test_download_resume_and_integrity(gpu, run, tmp_path, smollm2_gguf):
    srv = FaultServer({"smol.gguf": smollm2_gguf}).start()
    try:
        size = smollm2_gguf.stat().st_size
        sha = hashlib.sha256(smollm2_gguf.read_bytes()).hexdigest()

        def spec(mid, digest):
            return {"id": mid, "name": mid, "format": "gguf", "bundled": True,
                    "files": [{"url": srv.url("smol.gguf"), "size": size, "sha256": digest}]}
        cat = Catalog.load(bundled=[spec("served-smollm2", sha), spec("served-bad", "0" * 64)])
        p = NativePlatform(cache_dir=tmp_path)
        rt = LocalLLM(platform=p, catalog=cat)
        seen = record(rt)

        with pytest.raises(IntegrityError, match="sha256"):
            run(rt.init("served-bad", context_length=CTX))
        assert rt.status()["error"]["name"] == "IntegrityError"
        bad = run(rt.available_models())
        bad = next(m for m in bad if m["id"] == "served-bad")
        assert not bad["cached"] and not bad["partial"] and bad["cached_bytes"] == 0
        assert not list((tmp_path / "served-bad").iterdir())          # the bad file is gone

        srv.reset()
        seen.clear()
        cut = 30 << 20
        srv.inject("smol.gguf", Fault("drop", after=cut))
        r = run(rt.init("served-smollm2", context_length=CTX, hf_token="hf_test_token"))
        gets = srv.gets()
        assert [g.range for g in gets] == ["bytes=0-", f"bytes={cut}-"]
        assert [h.authorization for h in srv.log] == ["Bearer hf_test_token"] * 2
        prog = [d for n, d in seen if n == "progress"]
        phases = [d["phase"] for d in prog]
        assert phases[0] == "download" and phases[-1] == "compile"
        assert phases.index("upload") > max(i for i, ph in enumerate(phases) if ph == "download")
        down = [d for d in prog if d["phase"] == "download"]
        assert down[-1]["loaded_bytes"] == down[-1]["total_bytes"] == size
        values = [d["progress"] for d in prog]
        assert values == sorted(values) and values[-1] == 1.0
        path = tmp_path / "served-smollm2" / "smol.gguf"
        assert path.stat().st_size == size and not part_paths(path)[0].exists()
        assert run(rt.chat(Q, temperature=0.0, max_tokens=3))["model"] == r["model"]
        # loading again reads the cache: no request
        srv.reset()
        run(rt.unload())
        run(rt.init("served-smollm2", context_length=CTX))
        assert srv.gets() == []
        run(rt.unload())
    finally:
        srv.stop()
