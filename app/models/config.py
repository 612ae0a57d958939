"""One frozen config per model, read from GGUF metadata or from a Hugging Face config.json.

Families differ by config values and a few flags, never by copied forward passes (style.md 5):

    family   norms        activation  extras
    llama    w            silu        rope scaling (linear / llama3), tied or untied output
    qwen2    w            silu        q/k/v bias
    qwen3    w            silu        per-head RMSNorm on q and k (QK-norm)
    gemma    1 + w        gelu_tanh   embeddings * sqrt(dim)
    gemma2   1 + w        gelu_tanh   sliding window on even layers, attention and final-logit
                                      softcapping, post-attention/post-ffn norms, query scale
    gemma3   1 + w        gelu_tanh   QK-norm, 5 local : 1 global layers, local RoPE base 10000
    phi3     w            silu        fused qkv and gate_up, longrope (short/long factors)

RoPE layout: GGUF `llama` weights were permuted by the converter for interleaved pairs; every other
family (and every HF checkpoint) uses the half-split NeoX layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

FAMILIES = ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3")
GEMMA = ("gemma", "gemma2", "gemma3")
# HF model_type / architectures -> family
HF_MODEL_TYPES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
                  "gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3",
                  "phi3": "phi3"}


class UnsupportedArchitectureError(ValueError):
    def __init__(self, arch: str):
        super().__init__(f"model architecture {arch!r} is not supported; supported families: "
                         + ", ".join(FAMILIES))
        self.arch = arch


class ConfigError(ValueError):
    """A required hyperparameter is missing or inconsistent."""


@dataclass(frozen=True)
class RopeScaling:
    kind: str = "none"                  # none | linear | llama3 | longrope
    factor: float = 1.0
    low_freq_factor: float = 1.0        # llama3
    high_freq_factor: float = 4.0       # llama3
    original_context: int = 0           # llama3 / longrope
    short_factor: tuple = ()            # longrope, one per rotary dim pair
    long_factor: tuple = ()
    attention_factor: float = 1.0       # longrope: cos/sin scale


@dataclass(frozen=True)
class ModelConfig:
    family: str
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    context_length: int
    norm_eps: float
    rope_theta: float
    rope_dim: int                       # rotary dims per head (partial rotary when < head_dim)
    rope_neox: bool                     # half-split pairs (True) or interleaved pairs (False)
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    rope_theta_local: float = 0.0       # gemma3: base of sliding-window layers
    sliding_window: int = 0
    local_pattern: int = 0              # every local_pattern-th layer is global (gemma3: 6); 0 = none
    attn_softcap: float = 0.0
    final_softcap: float = 0.0
    query_scale: float = 0.0            # multiplier on q.k; 0 -> 1/sqrt(head_dim)
    qkv_bias: bool = False
    qk_norm: bool = False
    norm_add_one: bool = False
    post_norms: bool = False
    embed_scale: float = 1.0
    activation: str = "silu"
    tied_embeddings: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise UnsupportedArchitectureError(self.family)
        for name in ("n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                     "vocab_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"{self.n_heads} heads are not a multiple of {self.n_kv_heads} "
                              "kv heads")
        if self.rope_dim > self.head_dim or self.rope_dim % 2:
            raise ConfigError(f"rotary dims {self.rope_dim} vs head_dim {self.head_dim}")

    @property
    def scale(self) -> float:
        return self.query_scale or 1.0 / math.sqrt(self.head_dim)

    def is_local(self, layer: int) -> bool:
        """Whether `layer` uses the sliding window (and, for gemma3, the local RoPE base)."""
        if not self.sliding_window:
            return False
        if self.family == "gemma2":
            return layer % 2 == 0
        if self.local_pattern:
            return (layer + 1) % self.local_pattern != 0
        return True  # every layer windowed (e.g. Mistral-style sliding window)

    def layer_rope_theta(self, layer: int) -> float:
        return self.rope_theta_local if self.rope_theta_local and self.is_local(layer) else self.rope_theta


def _family_defaults(family: str, dim: int, head_dim: int) -> dict:
    if family in GEMMA:
        return {"norm_add_one": True, "activation": "gelu_tanh", "embed_scale": math.sqrt(dim),
                "post_norms": family != "gemma", "qk_norm": family == "gemma3"}
    return {"qk_norm": family == "qwen3"}


def from_gguf(metadata: dict, tensor_names) -> ModelConfig:
    """Config from a GGUF header (metadata dict and the set of tensor names)."""
    arch = metadata.get("general.architecture")
    if arch not in FAMILIES:
        raise UnsupportedArchitectureError(str(arch))
    names = set(tensor_names)

    def get(key, default=None, required=False):
        v = metadata.get(f"{arch}.{key}", default)
        if required and v is None:
            raise ConfigError(f"GGUF metadata lacks {arch}.{key}")
        return v

    dim = get("embedding_length", required=True)
    n_heads = get("attention.head_count", required=True)
    n_kv = get("attention.head_count_kv", n_heads)
    head_dim = get("attention.key_length", dim // n_heads)
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = get("vocab_size") or (len(tokens) if tokens else 0)
    scaling = RopeScaling()
    kind = get("rope.scaling.type", "none")
    if kind == "linear" and get("rope.scaling.factor", 1.0) != 1.0:
        scaling = RopeScaling("linear", float(get("rope.scaling.factor")))
    if arch == "phi3" and "rope_factors_long.weight" in names:
        # The factor arrays are tensors; the loader reads them into short/long_factor.
        orig = get("rope.scaling.original_context_length", get("context_length"))
        attn = get("rope.scaling.attn_factor", 0.0)
        scaling = RopeScaling("longrope", original_context=int(orig), attention_factor=float(attn))
    defaults = _family_defaults(arch, dim, head_dim)
    window = get("attention.sliding_window", 0) or 0
    return ModelConfig(
        family=arch, n_layers=get("block_count", required=True), dim=dim, n_heads=n_heads,
        n_kv_heads=n_kv, head_dim=head_dim, ffn_dim=get("feed_forward_length", required=True),
        vocab_size=vocab, context_length=get("context_length", 2048),
        norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=float(get("rope.freq_base", 10000.0)),
        rope_dim=get("rope.dimension_count", head_dim), rope_neox=arch != "llama",
        rope_scaling=scaling,
        rope_theta_local=10000.0 if arch == "gemma3" else 0.0,
        sliding_window=window, local_pattern=6 if arch == "gemma3" else 0,
        attn_softcap=float(get("attn_logit_softcapping", 0.0) or 0.0),
        final_softcap=float(get("final_logit_softcapping", 0.0) or 0.0),
        query_scale=0.0,
        qkv_bias="blk.0.attn_q.bias" in names,
        tied_embeddings="output.weight" not in names,
        **{**defaults, "qk_norm": "blk.0.attn_q_norm.weight" in names or defaults["qk_norm"]},
    )


def from_hf(config: dict) -> ModelConfig:
    """Config from a Hugging Face config.json dict."""
    mt = config.get("model_type", "")
    family = HF_MODEL_TYPES.get(mt)
    if family is None:
        raise UnsupportedArchitectureError(mt or str(config.get("architectures")))
    if mt == "gemma3" and "text_config" in config:
        config = {**config["text_config"], "tie_word_embeddings": config.get("tie_word_embeddings", True)}
    dim, n_heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or dim // n_heads
    rs = config.get("rope_scaling") or {}
    rtype = rs.get("rope_type", rs.get("type", "none"))
    if rtype in ("linear",):
        scaling = RopeScaling("linear", float(rs["factor"]))
    elif rtype == "llama3":
        scaling = RopeScaling("llama3", float(rs["factor"]), float(rs["low_freq_factor"]),
                              float(rs["high_freq_factor"]),
                              int(rs["original_max_position_embeddings"]))
    elif rtype in ("longrope", "su"):
        orig = config.get("original_max_position_embeddings", config["max_position_embeddings"])
        s = config["max_position_embeddings"] / orig
        attn = rs.get("attention_factor") or (
            1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(orig)))
        scaling = RopeScaling("longrope", original_context=int(orig),
                              short_factor=tuple(rs["short_factor"]),
                              long_factor=tuple(rs["long_factor"]), attention_factor=float(attn))
    else:
        scaling = RopeScaling()
    partial = config.get("partial_rotary_factor", 1.0)
    defaults = _family_defaults(family, dim, head_dim)
    window = config.get("sliding_window") or 0
    if family == "llama" and not config.get("use_sliding_window", mt == "mistral"):
        window = 0
    qpas = config.get("query_pre_attn_scalar")
    return ModelConfig(
        family=family, n_layers=config["num_hidden_layers"], dim=dim, n_heads=n_heads,
        n_kv_heads=config.get("num_key_value_heads", n_heads), head_dim=head_dim,
        ffn_dim=config["intermediate_size"], vocab_size=config["vocab_size"],
        context_length=config.get("max_position_embeddings", 2048),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        rope_dim=int(head_dim * partial), rope_neox=True, rope_scaling=scaling,
        rope_theta_local=float(config.get("rope_local_base_freq", 0.0)) if family == "gemma3" else 0.0,
        sliding_window=window if family in ("gemma2", "gemma3", "llama", "qwen2", "qwen3", "phi3")
        and (family in GEMMA or config.get("use_sliding_window", family == "phi3")) else 0,
        local_pattern=config.get("sliding_window_pattern", 6) if family == "gemma3" else 0,
        attn_softcap=float(config.get("attn_logit_softcapping") or 0.0),
        final_softcap=float(config.get("final_logit_softcapping") or 0.0),
        query_scale=qpas ** -0.5 if qpas else 0.0,
        qkv_bias=family == "qwen2" or bool(config.get("attention_bias", False)),
        tied_embeddings=bool(config.get("tie_word_embeddings", family in GEMMA)),
        **defaults,
    )
