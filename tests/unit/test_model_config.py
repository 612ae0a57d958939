"""app.models.config: configs from GGUF metadata and HF config.json."""
from __future__ import annotations

import asyncio
import math

import pytest

from app.formats.gguf import read_gguf
from app.formats.sources import FileSource
from app.models.config import (ConfigError, ModelConfig, UnsupportedArchitectureError, from_gguf,
                               from_hf)


def test_smollm2_from_its_gguf(smollm2_gguf):
    src = FileSource(smollm2_gguf)
    f = asyncio.run(read_gguf(src))
    c = from_gguf(f.metadata, f.tensors)
    # SmolLM2-135M: published hyperparameters (HF config.json of HuggingFaceTB/SmolLM2-135M-Instruct)
    assert (c.family, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim) == \
        ("llama", 30, 576, 9, 3, 64, 1536)
    assert c.vocab_size == 49152 and c.context_length == 8192 and c.rope_theta == 100000.0
    assert c.norm_eps == pytest.approx(1e-5) and c.tied_embeddings and not c.rope_neox
    assert c.scale == pytest.approx(1 / 8) and not c.qkv_bias and not c.qk_norm
    src.close()


def test_unsupported_architecture_lists_the_supported_ones():
    with pytest.raises(UnsupportedArchitectureError, match="llama, qwen2, qwen3, gemma"):
        from_gguf({"general.architecture": "mamba"}, [])
    with pytest.raises(UnsupportedArchitectureError):
        from_hf({"model_type": "gpt_neox"})


def test_missing_and_inconsistent_values():
    with pytest.raises(ConfigError, match="block_count"):
        from_gguf({"general.architecture": "qwen2", "qwen2.embedding_length": 64,
                   "qwen2.attention.head_count": 4, "qwen2.feed_forward_length": 128}, [])
    base = dict(family="llama", n_layers=2, dim=64, n_heads=6, n_kv_heads=4, head_dim=16,
                ffn_dim=128, vocab_size=100, context_length=64, norm_eps=1e-5, rope_theta=1e4,
                rope_dim=16, rope_neox=True)
    with pytest.raises(ConfigError, match="multiple"):
        ModelConfig(**base)


def test_gemma3_layer_pattern_and_scales():
    c = from_hf({"model_type": "gemma3_text", "hidden_size": 640, "num_attention_heads": 4,
                 "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 2048,
                 "num_hidden_layers": 18, "vocab_size": 262144, "max_position_embeddings": 32768,
                 "rms_norm_eps": 1e-6, "rope_theta": 1e6, "rope_local_base_freq": 1e4,
                 "sliding_window": 512, "query_pre_attn_scalar": 256, "sliding_window_pattern": 6})
    assert [c.is_local(i) for i in range(6)] == [True] * 5 + [False]
    assert c.layer_rope_theta(0) == 1e4 and c.layer_rope_theta(5) == 1e6
    assert c.norm_add_one and c.qk_norm and c.activation == "gelu_tanh"
    assert c.embed_scale == pytest.approx(math.sqrt(640)) and c.scale == pytest.approx(1 / 16)
