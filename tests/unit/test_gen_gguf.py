"""app/bench/gen_gguf.py: random-weight GGUFs with real model shapes.

Oracles: the models' published config.json numbers (written out here, not read from gen_gguf's
table), app.formats.gguf + app.models.config.from_gguf for parsing, gguf-py for dequantization,
transformers' llama3 RoPE init for rope_freqs, and the tensor types of the real gemma-3-270m Q4_K_M
file (counts copied from it; a tensor-by-tensor comparison runs too when the file is cached).
Seeds are fresh each run (seed=None).
"""
from __future__ import annotations

import asyncio
import os

import gguf
import numpy as np
import pytest

from app.bench import gen_gguf
from app.formats.gguf import read_gguf
from app.formats.sources import FileSource
from app.models.config import from_gguf
from tests.fixtures_tokenizer import CACHE

REAL_GEMMA = CACHE / "gemma" / "gemma-3-270m-q4_k_m.gguf"  # cached by the tokenizer fixtures


def parse(path):
    f = asyncio.run(read_gguf(FileSource(path)))
    return f, from_gguf(f.metadata, f.tensors)


def dequant(f, names, max_rows=512):
    """{name: (type, float64 values of the first max_rows rows)} through gguf-py's dequantize
    (bytes sliced by app.formats.gguf; gguf-py's own reader spends ~15 s on a 262k vocab)."""
    out = {}
    for name in names:
        t = f.tensors[name]
        rows = t.shape[0] if len(t.shape) == 2 else 1
        n = min(rows, max_rows)
        raw = bytes(asyncio.run(f.tensor_data(name)))[:t.nbytes // rows * n]
        data = np.frombuffer(raw, np.uint8).reshape(n, -1)
        out[name] = (t.type_name, gguf.quants.dequantize(
            data, gguf.GGMLQuantizationType[t.type_name]).astype(np.float64))
    return out


def check_values(name, qtype, x):
    # Target std 0.02 * sqrt(E[u^2]) = 0.0202 (u ~ U(0.75, 1.25) per block). With >= 1.1e5
    # elements (checked below) the sampling error is < 1%, f16 rounding of scales < 0.1%, and
    # Q4_K's integer min rounding adds < 2% variance: [0.018, 0.0225] leaves room for these and nothing else
    # (a wrong scale formula is off by >= 2x, a sign/offset bug shows in the mean).
    assert np.isfinite(x).all(), name
    assert x.size >= 110_000, (name, x.size)
    assert 0.018 < x.std() < 0.0225, (name, qtype, x.std())
    assert abs(x.mean()) < 0.002, (name, qtype, x.mean())  # 10% of std; real means are ~0


def test_smollm2_q4_0(tmp_path):
    path = tmp_path / "smollm2.gguf"
    r = gen_gguf.generate("smollm2-135m", "Q4_0", path)
    f, c = parse(path)
    # SmolLM2-135M config.json: 30 layers, hidden 576, 9 heads, 3 kv heads, ffn 1536,
    # vocab 49152, rope_theta 1e5, rms eps 1e-5, 8192 positions, tied embeddings.
    assert (c.family, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
            c.vocab_size, c.context_length) == ("llama", 30, 576, 9, 3, 64, 1536, 49152, 8192)
    assert c.rope_theta == 100000.0 and c.norm_eps == pytest.approx(1e-5) and c.tied_embeddings
    assert not c.qkv_bias and f.get("general.file_type") == 2
    assert f.get("tokenizer.ggml.model") == "gpt2" and len(f.get("tokenizer.ggml.tokens")) == 49152
    t = f.tensors
    assert len(t) == 272 and "output.weight" not in t  # as the real SmolLM2 GGUF
    assert t["token_embd.weight"].shape == (49152, 576)
    assert t["token_embd.weight"].type_name == "Q8_0"  # tied: Q6_K, 576 % 256 -> Q8_0
    for i in (0, 29):
        assert t[f"blk.{i}.attn_q.weight"].shape == (576, 576)
        assert t[f"blk.{i}.attn_k.weight"].shape == (192, 576)
        assert t[f"blk.{i}.attn_v.weight"].shape == (192, 576)
        assert t[f"blk.{i}.attn_output.weight"].shape == (576, 576)
        assert t[f"blk.{i}.ffn_gate.weight"].shape == (1536, 576)
        assert t[f"blk.{i}.ffn_down.weight"].shape == (576, 1536)
        assert t[f"blk.{i}.attn_norm.weight"].shape == (576,)
    assert {v.type_name for k, v in t.items() if k.startswith("blk.") and k.endswith("weight")
            and len(v.dims) == 2} == {"Q4_0"}
    assert r["bytes"] == os.path.getsize(path)
    names = ["token_embd.weight", "blk.3.attn_q.weight", "blk.29.ffn_down.weight",
             "blk.0.attn_norm.weight"]
    vals = dequant(f, names)
    for name in names[:3]:
        check_values(name, *vals[name])
    norm = vals["blk.0.attn_norm.weight"][1]
    assert abs(norm.mean() - 1) < 0.01 and 0.01 < norm.std() < 0.03  # 1 + N(0, 0.02), 576 values


def test_gemma3_q4_k_m_matches_real_file(tmp_path):
    path = tmp_path / "gemma.gguf"
    r = gen_gguf.generate("gemma-3-270m", "Q4_K_M", path)
    # Tensor type counts of the real gemma-3-270m Q4_K_M (design.md's file): Q5_0 where the row
    # length 640 is not a multiple of 256, Q6_K/Q8_0 in the 9 use_more_bits layers.
    assert r["types"] == {"F32": 109, "Q5_0": 81, "Q4_K": 27, "Q8_0": 10, "Q6_K": 9}
    f, c = parse(path)
    assert (c.family, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
            c.vocab_size, c.sliding_window) == ("gemma3", 18, 640, 4, 1, 256, 2048, 262144, 512)
    assert c.rope_theta == 1e6 and c.qk_norm and c.tied_embeddings
    more_bits = [0, 1, 4, 7, 10, 13, 15, 16, 17]  # llama.cpp use_more_bits for 18 layers
    for i in range(18):
        assert f.tensors[f"blk.{i}.ffn_down.weight"].type_name == (
            "Q6_K" if i in more_bits else "Q4_K")
        assert f.tensors[f"blk.{i}.attn_v.weight"].type_name == (
            "Q8_0" if i in more_bits else "Q5_0")
    names = ["blk.0.ffn_down.weight", "blk.2.ffn_down.weight", "blk.5.attn_output.weight",
             "blk.0.attn_q.weight", "blk.0.attn_v.weight", "token_embd.weight"]
    vals = dequant(f, names)
    assert {q for q, _ in vals.values()} == {"Q6_K", "Q4_K", "Q5_0", "Q8_0"}
    for name in names:
        check_values(name, *vals[name])
    if REAL_GEMMA.exists():  # tensor-by-tensor when the real file is cached
        real = asyncio.run(read_gguf(FileSource(REAL_GEMMA)))
        assert {k: (v.type_name, v.dims) for k, v in real.tensors.items()} == \
               {k: (v.type_name, v.dims) for k, v in f.tensors.items()}
        for k, v in real.metadata.items():
            if k.startswith("gemma3."):
                assert f.metadata[k] == v, k


def test_qwen2_q4_k_m(tmp_path):
    path = tmp_path / "qwen.gguf"
    gen_gguf.generate("qwen2.5-0.5b", "Q4_K_M", path)
    f, c = parse(path)
    # Qwen2.5-0.5B config.json: 24 layers, hidden 896, 14 heads, 2 kv heads, ffn 4864,
    # vocab 151936, rope_theta 1e6, eps 1e-6, tied, q/k/v biases.
    assert (c.family, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
            c.vocab_size) == ("qwen2", 24, 896, 14, 2, 64, 4864, 151936)
    assert c.qkv_bias and c.tied_embeddings and c.rope_theta == 1e6
    t = f.tensors
    assert t["blk.0.attn_k.bias"].shape == (128,) and t["blk.0.attn_q.bias"].shape == (896,)
    assert t["blk.0.attn_q.weight"].type_name == "Q5_0"      # 896 % 256 != 0: Q4_K -> Q5_0
    assert t["blk.0.ffn_down.weight"].type_name == "Q6_K"    # 4864 % 256 == 0, more bits
    assert t["blk.4.ffn_down.weight"].type_name == "Q4_K"    # 24 layers: (4 - 3) % 3 != 2
    assert t["token_embd.weight"].type_name == "Q8_0"
    vals = dequant(f, ["blk.4.ffn_down.weight", "blk.1.attn_k.bias"])
    check_values("blk.4.ffn_down.weight", *vals["blk.4.ffn_down.weight"])
    assert abs(vals["blk.1.attn_k.bias"][1].std() - 0.02) < 0.01  # N(0, 0.02), 128 values


def test_plans_8b_and_1b():
    """Shapes and types from the plan alone (no 4.7 GB file in a unit test)."""
    plan = {n: (t, s) for n, t, s in gen_gguf.tensor_plan(gen_gguf.SHAPES["llama-3.1-8b"],
                                                           "Q4_K_M")}
    # Llama-3.1-8B: 32 layers, 4096 hidden, 32 heads x 128, 8 kv heads, ffn 14336, untied.
    assert plan["output.weight"] == ("Q6_K", (128256, 4096))
    assert plan["token_embd.weight"] == ("Q4_K", (128256, 4096))
    assert plan["blk.0.attn_k.weight"] == ("Q4_K", (1024, 4096))
    assert plan["blk.0.attn_q.weight"] == ("Q4_K", (4096, 4096))
    assert plan["rope_freqs.weight"] == ("F32", (64,))
    assert plan["blk.7.ffn_down.weight"][1] == (4096, 14336)
    more = [i for i in range(32) if plan[f"blk.{i}.attn_v.weight"][0] == "Q6_K"]
    # i < 4, i >= 28, (i - 4) % 3 == 2: half the layers
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert [i for i in range(32) if plan[f"blk.{i}.ffn_down.weight"][0] == "Q6_K"] == more
    pure = gen_gguf.tensor_plan(gen_gguf.SHAPES["llama-3.1-8b"], "Q4_0", pure=True)
    assert {t for _, t, s in pure if len(s) == 2} == {"Q4_0"}
    q8 = gen_gguf.tensor_plan(gen_gguf.SHAPES["llama-3.2-1b"], "Q8_0")
    assert {t for _, t, s in q8 if len(s) == 2} == {"Q8_0"}


def test_rope_freqs_match_transformers():
    """rope_freqs.weight = default inv_freq / llama3-scaled inv_freq (transformers' oracle)."""
    pytest.importorskip("torch")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    for name, factor in (("llama-3.2-1b", 32.0), ("llama-3.1-8b", 8.0)):
        s = gen_gguf.SHAPES[name]
        cfg = LlamaConfig(hidden_size=s.dim, num_attention_heads=s.n_heads, head_dim=s.head_dim,
                          max_position_embeddings=131072, rope_parameters={
                              "rope_type": "llama3", "rope_theta": 500000.0, "factor": factor,
                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192})
        inv, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
        base = 1.0 / 500000.0 ** (np.arange(0, s.head_dim, 2) / s.head_dim)
        # transformers computes inv_freq in f32: 1e-5 relative covers its rounding
        np.testing.assert_allclose(gen_gguf.llama3_rope_factors(s),
                                   base / inv.double().numpy(), rtol=1e-5)


def test_bad_arguments(tmp_path):
    with pytest.raises(gen_gguf.GenGGUFError, match="choose one of"):
        gen_gguf.generate("llama-9b", "Q4_0", tmp_path / "x.gguf")
    with pytest.raises(gen_gguf.GenGGUFError, match="choose one of"):
        gen_gguf.generate("smollm2-135m", "Q3_K", tmp_path / "x.gguf")


def test_scales_are_normal_f16():
    """No header pattern has a zero, subnormal, NaN or Inf scale (GPUs may flush subnormals)."""
    rng = np.random.default_rng()
    for qtype, offs in (("Q4_0", [0]), ("Q4_1", [0, 2]), ("Q5_0", [0]), ("Q8_0", [0]),
                        ("Q4_K", [0, 2]), ("Q6_K", [16])):
        p = gen_gguf.header_patterns(qtype, rng)
        for o in offs:
            d = np.abs(p[:, o:o + 2].copy().view(np.float16).astype(np.float64))
            assert np.isfinite(d).all() and d.min() >= 6.104e-5, (qtype, o, d.min())
