"""tests/tiny_models.py (the fidelity tests' reference side) and app.models.config on its files.

Checks: every family x wtype GGUF parses with app.formats.gguf and with gguf-py's GGUFReader and
holds the tensors, shapes and types the converter would write; the GGUF round trip
(dequantize, undo permutation/+1) reproduces the HF weights within the format's rounding;
from_gguf and from_hf agree except for the documented format differences, and from_hf matches the
transformers config values; the float64 oracle agrees with transformers' own float32 forward.
Fresh random weights every run (the seed is in the failure message).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import math

import gguf
import numpy as np
import pytest
import torch

from app.formats.gguf import read_gguf
from app.formats.safetensors import read_safetensors
from app.formats.sources import FileSource
from app.models.config import RopeScaling, from_gguf, from_hf
from tests import tiny_models as tm

# Max |w_gguf - w_hf| per element, relative to the tensor's max |w|: F16 rounds to 11 bits
# (2^-11 relative, plus subnormal-free range here); Q8_0 rounds each value to 1/127 of its
# 32-block's max |w|, half a step -> 1/254, plus the f16 rounding of the block scale (2^-11).
WEIGHT_TOL = {"F32": 0.0, "F16": 2.0 ** -11, "Q8_0": 1 / 254 + 2.0 ** -10}


@pytest.fixture(scope="module", params=tm.FAMILIES)
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    model = tm.build(request.param, d / "hf")
    paths = {w: tm.write_gguf(model.model, d / f"{request.param}-{w}.gguf", w) for w in tm.WTYPES}
    return model, paths


def _read_ours(path):
    src = FileSource(path)
    try:
        return asyncio.run(read_gguf(src))
    finally:
        src.close()


@pytest.mark.parametrize("wtype", tm.WTYPES)
def test_gguf_parses_with_both_readers(built, wtype):
    model, paths = built
    ours, theirs = _read_ours(paths[wtype]), gguf.GGUFReader(str(paths[wtype]))
    expect = tm.gguf_tensors(model.model)          # name -> f32 array after the converter's edits
    assert set(ours.tensors) == set(expect) == {t.name for t in theirs.tensors}, model.seed
    for t in theirs.tensors:
        info, want = ours.tensors[t.name], expect[t.name]
        # GGUF dims are ne[0] first: a (rows, cols) weight is stored as (cols, rows)
        assert tuple(int(x) for x in t.shape) == want.shape[::-1]
        assert info.shape == want.shape, (t.name, info.shape, want.shape)
        one_d = want.ndim == 1 or t.name.endswith("_norm.weight")
        assert t.tensor_type.name == ("F32" if one_d else wtype), t.name
        assert info.type_name == t.tensor_type.name
    arch = model.model.config.model_type.replace("_text", "")
    assert ours.metadata["general.architecture"] == arch
    assert len(ours.metadata["tokenizer.ggml.tokens"]) == tm.VOCAB


@pytest.mark.parametrize("wtype", tm.WTYPES)
def test_gguf_round_trip_reproduces_the_weights(built, wtype):
    model, paths = built
    back = tm.gguf_to_hf(model.model, paths[wtype]).state_dict()
    for name, w in model.model.state_dict().items():
        if model.family in tm.GEMMA and name.endswith("norm.weight"):
            # (w + 1) - 1 drops w's low bits in f32, but HF computes 1 + w in f32 from it and
            # gets back exactly the stored w + 1: that is the value that must survive
            one = np.float32(1)
            assert np.array_equal(one + back[name].numpy(), one + w.numpy()), name
            continue
        w, b = w.numpy().astype(np.float64), back[name].numpy().astype(np.float64)
        tol = 0.0 if w.ndim == 1 or name.endswith("norm.weight") else WEIGHT_TOL[wtype]
        err = np.abs(b - w).max() / np.abs(w).max()
        assert err <= tol, (model.seed, wtype, name, err)
        if tol:
            assert err > 0, (name, "a lossy format that changed nothing: was it written?")


def _configs(model, path):
    f = _read_ours(path)
    return from_gguf(f.metadata, f.tensors), from_hf(tm.hf_config_json(model))


# ModelConfig fields that legitimately differ by format (app/models/config.py's table)
def _format_fields(family: str) -> set:
    return ({"norm_add_one"} if family in tm.GEMMA else set()) | \
           ({"rope_neox", "rope_scaling"} if family == "llama" else set()) | \
           ({"rope_scaling"} if family == "phi3" else set())


def test_from_gguf_equals_from_hf_except_format_fields(built):
    model, paths = built
    fam = model.family
    g, h = _configs(model, paths["Q8_0"])
    diff = {f.name for f in dataclasses.fields(g) if getattr(g, f.name) != getattr(h, f.name)}
    assert diff == _format_fields(fam), (diff, g, h)
    if fam in tm.GEMMA:
        assert h.norm_add_one and not g.norm_add_one         # GGUF norms already hold 1 + w
    if fam == "llama":
        assert h.rope_neox and not g.rope_neox                # q/k rows permuted by the converter
        assert g.rope_scaling == RopeScaling() and h.rope_scaling.kind == "llama3"
    if fam == "phi3":    # same longrope parameters; the factors live in tensors in the GGUF
        assert dataclasses.replace(h.rope_scaling, short_factor=(), long_factor=()) == \
            dataclasses.replace(g.rope_scaling, attention_factor=h.rope_scaling.attention_factor)
        assert g.rope_scaling.attention_factor == pytest.approx(h.rope_scaling.attention_factor,
                                                                rel=1e-7)   # f32 in the GGUF


def test_from_hf_matches_transformers(built):
    model, paths = built
    c, hf = from_hf(tm.hf_config_json(model)), model.model.config
    fam = model.family
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    assert (c.family, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
            c.vocab_size, c.context_length) == (
        fam, hf.num_hidden_layers, hf.hidden_size, hf.num_attention_heads,
        hf.num_key_value_heads, head_dim, hf.intermediate_size, hf.vocab_size,
        hf.max_position_embeddings)
    assert c.norm_eps == hf.rms_norm_eps and c.tied_embeddings == hf.tie_word_embeddings
    rp = hf.rope_parameters
    assert c.rope_theta == rp.get("full_attention", rp)["rope_theta"]
    assert c.rope_dim == head_dim == 16 and c.rope_neox
    # the attention scale transformers applies (module.scaling of layer 0)
    assert c.scale == pytest.approx(model.model.model.layers[0].self_attn.scaling, rel=1e-12)
    assert c.qkv_bias == (model.model.model.layers[0].self_attn.k_proj.bias is not None
                          if fam != "phi3" else False)
    assert c.qk_norm == hasattr(model.model.model.layers[0].self_attn, "q_norm")
    types = getattr(hf, "layer_types", None)
    if fam in ("gemma2", "gemma3"):
        assert c.sliding_window == hf.sliding_window == 8
        assert [c.is_local(i) for i in range(c.n_layers)] == \
            [t == "sliding_attention" for t in types]
        assert c.attn_softcap == (hf.attn_logit_softcapping or 0.0)
        assert c.final_softcap == (hf.final_logit_softcapping or 0.0)
    else:
        assert c.sliding_window == 0 and not any(c.is_local(i) for i in range(c.n_layers))
    if fam == "gemma3":
        assert [c.layer_rope_theta(i) for i in range(6)] == [20000.0] * 5 + [1e6]
    if fam in tm.GEMMA:
        assert c.embed_scale == pytest.approx(math.sqrt(hf.hidden_size))
        assert c.activation == "gelu_tanh"
    if fam == "llama":
        assert c.rope_scaling == RopeScaling("llama3", 8.0, 1.0, 4.0, 64)
    if fam == "phi3":
        rs = c.rope_scaling
        assert rs.kind == "longrope" and rs.original_context == 32
        assert rs.long_factor == tuple(rp["long_factor"]) and len(rs.short_factor) == 8
        # transformers' attention_scaling of the rotary embedding
        assert rs.attention_factor == pytest.approx(
            model.model.model.rotary_emb.attention_scaling, rel=1e-12)


def test_safetensors_dir_and_shards(tmp_path):
    """The saved checkpoint holds every HF tensor in f32; sharded saving writes an index."""
    m = tm.build("qwen2", tmp_path / "one")
    s = tm.build("qwen2", tmp_path / "many", sharded=True, seed=m.seed)
    src = FileSource(m.hf_dir / "model.safetensors")
    try:
        st = asyncio.run(read_safetensors(src))
    finally:
        src.close()
    names = {n for n in m.model.state_dict() if not n.endswith("inv_freq")}
    assert set(st.tensors) == names and all(t.dtype == "F32" for t in st.tensors.values())
    index = json.loads((s.hf_dir / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == names and len(set(index["weight_map"].values())) > 1


def test_reference_oracle_is_stable_and_not_degenerate(built):
    """The float64 oracle vs transformers' own float32 forward: they differ by f32 accumulation
    only (< 1e-5 relative here, measured ~5e-7), so the oracle is well conditioned; the logits
    spread (std 1..20) and for gemma2 stay inside the final softcap."""
    model, _ = built
    ids = tm.random_ids()
    ref = tm.reference_logits(model.model, ids)
    with torch.no_grad():
        f32 = model.model(input_ids=torch.tensor([ids])).logits[0].numpy()
    assert ref.shape == (tm.N_TEST_TOKENS, tm.VOCAB) and ref.dtype == np.float64
    assert np.abs(f32 - ref).max() / np.abs(ref).max() < 1e-5, model.seed
    assert 1.0 < ref.std() < 20.0, (model.seed, ref.std())
    # no position is degenerate: every row has a clear winner and spread
    assert (ref.std(axis=1) > 0.5).all()
    if model.family == "gemma2":
        assert np.abs(ref).max() < 10.0 and (np.abs(ref) > 0.95 * 10.0).mean() < 0.05
