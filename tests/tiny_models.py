"""Tiny random transformers models of the seven families, saved as HF safetensors and converted
to GGUF the way llama.cpp's convert_hf_to_gguf.py does, plus the transformers reference logits.

    tm = build("gemma3", tmp_dir)                # random weights, fresh seed (tm.seed)
    tm.hf_dir                                    # config.json + model.safetensors
    build("llama", d, sharded=True).hf_dir       # + model.safetensors.index.json and shards
    path = write_gguf(tm.model, tmp_dir / "m.gguf", "Q8_0")      # "F32" | "F16" | "Q8_0"
    ref = reference_logits(tm.model, ids)        # float64 (len(ids), vocab)
    deq = gguf_to_hf(tm.model, path)             # the GGUF's (dequantized) weights in an HF model

Shapes: hidden 64, head_dim 16, 4 query heads (kv heads 4, 2 or 1 by family), ffn 96 or 128,
vocab 419 (odd, not a multiple of any tile), so every 2-D weight has a multiple of 32 columns
(Q8_0 blocks). Every family turns on what makes it different: llama3 rope scaling, q/k/v bias,
QK-norm, MQA, sliding windows (8) shorter than the 40-token test sequence, softcapping, a
local/global layer pattern with its own local RoPE base, phi3 longrope crossing into the long
factors. Values are chosen so that the feature matters at 40 tokens (see FAMILY_CONFIGS).

GGUF conventions, from convert_hf_to_gguf.py (llama-cpp-python 0.3.36 sdist, conversion/*.py):
  - names from gguf-py's tensor map (token_embd, blk.N.attn_q, ..., output_norm, output);
    phi3's qkv_proj / gate_up_proj stay fused (attn_qkv, ffn_up with the gate rows first)
  - llama: q and k rows permuted for interleaved RoPE (LlamaModel.permute); llama3 scaling
    becomes the F32 tensor rope_freqs.weight (one divisor per rotary pair), no metadata
  - gemma, gemma2, gemma3: 1 added to every weight whose name ends in "norm.weight"
  - phi3: rope_factors_long/short.weight (F32), rope.scaling.attn_factor,
    rope.scaling.original_context_length, rope.dimension_count, sliding_window (0 when none)
  - tied embeddings: no output.weight; 1-D tensors and *_norm.weight are always F32
  - metadata as each family's set_gguf_parameters writes it (gemma/gemma2 write no rope base:
    llama.cpp's default 10000 is what they use, so their tiny configs keep rope_theta 10000)
Checked once against the real script (convert_hf_to_gguf.py run on build()'s directories with a
stub vocabulary): for all 7 families x F32/F16/Q8_0 the architecture metadata and every
tensor's name, type, shape and bytes are identical.
"""
from __future__ import annotations

import copy
import json
import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch
import transformers

FAMILIES = ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3")
WTYPES = ("F32", "F16", "Q8_0")
VOCAB = 419
MAX_POS = 256
N_TEST_TOKENS = 40
GEMMA = ("gemma", "gemma2", "gemma3")

_COMMON = dict(vocab_size=VOCAB, hidden_size=64, head_dim=16, num_attention_heads=4,
               max_position_embeddings=MAX_POS, pad_token_id=None, bos_token_id=None,
               eos_token_id=None)

# family -> (config class, kwargs). Why each value:
#   llama  rope_theta 50000 (not the 10000 default, so a reader that ignores the key fails);
#          llama3 original 64: pair 0 kept (wavelength 6 < 64/4), pair 1 blended, pairs 2..7
#          divided by 8; at position 39 pair 3 turns 1.2 rad unscaled vs 0.15 rad scaled.
#   gemma2 attn softcap 5 and final softcap 10 (real: 50 / 30) so that tanh visibly bends the
#          O(1..5) scores and O(1..10) logits of this model; window 8 < 40 tokens.
#   gemma3 6 layers: pattern 6 gives local layers 0-4 and global layer 5 (GGUF has no
#          pattern key: llama.cpp uses 6); local base 20000 != default 10000, so it must be read
#          from rope.freq_base_swa.
#   phi3   original 32 < 40 test tokens: HF (max position + 1 > original), our engine
#          (pos + n_tokens > original) and llama.cpp (context 64 > original) all pick long_factor;
#          max_position 256 / 32 = 8 gives attention_factor sqrt(1 + ln 8 / ln 32) = 1.26.
FAMILY_CONFIGS = {
    "llama": ("LlamaConfig", dict(
        num_hidden_layers=2, num_key_value_heads=2, intermediate_size=96, rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_parameters=dict(rope_type="llama3", rope_theta=50000.0, factor=8.0,
                             low_freq_factor=1.0, high_freq_factor=4.0,
                             original_max_position_embeddings=64))),
    "qwen2": ("Qwen2Config", dict(
        num_hidden_layers=2, num_key_value_heads=1, intermediate_size=128, rms_norm_eps=1e-6,
        tie_word_embeddings=False, rope_parameters=dict(rope_type="default", rope_theta=1e6))),
    "qwen3": ("Qwen3Config", dict(
        num_hidden_layers=2, num_key_value_heads=2, intermediate_size=96, rms_norm_eps=1e-6,
        tie_word_embeddings=True, rope_parameters=dict(rope_type="default", rope_theta=1e6))),
    "gemma": ("GemmaConfig", dict(
        num_hidden_layers=2, num_key_value_heads=1, intermediate_size=128, rms_norm_eps=1e-6,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh")),
    "gemma2": ("Gemma2Config", dict(
        num_hidden_layers=3, num_key_value_heads=2, intermediate_size=96, rms_norm_eps=1e-6,
        tie_word_embeddings=True, sliding_window=8, attn_logit_softcapping=5.0,
        final_logit_softcapping=10.0, query_pre_attn_scalar=16)),
    "gemma3": ("Gemma3TextConfig", dict(
        num_hidden_layers=6, num_key_value_heads=1, intermediate_size=128, rms_norm_eps=1e-6,
        tie_word_embeddings=True, sliding_window=8, query_pre_attn_scalar=16,
        rope_parameters={"full_attention": dict(rope_type="default", rope_theta=1e6),
                         "sliding_attention": dict(rope_type="default", rope_theta=20000.0)})),
    "phi3": ("Phi3Config", dict(
        num_hidden_layers=2, num_key_value_heads=4, intermediate_size=96, rms_norm_eps=1e-5,
        tie_word_embeddings=False, original_max_position_embeddings=32,
        rope_parameters=dict(rope_type="longrope", rope_theta=10000.0))),
}


@dataclass
class TinyModel:
    family: str
    model: "transformers.PreTrainedModel"   # float32, eval, eager attention
    hf_dir: Path                             # config.json + model.safetensors (or shards)
    seed: int                                # torch seed of the weights (in failure messages)


def hf_config(family: str, gen: torch.Generator):
    cls_name, kw = FAMILY_CONFIGS[family]
    kw = copy.deepcopy({**_COMMON, **kw})
    if family == "phi3":
        # one factor per rotary pair; long factors grow with the wavelength as in Phi-3.5
        half = kw["head_dim"] // 2
        short = 1.0 + 0.5 * torch.rand(half, generator=gen, dtype=torch.float64)
        long = 1.0 + torch.sort(torch.rand(half, generator=gen, dtype=torch.float64)).values * 7
        kw["rope_parameters"].update(short_factor=short.tolist(), long_factor=long.tolist())
        del kw["head_dim"]          # Phi3Config derives it (hidden / heads = 16)
    if family == "qwen2":
        del kw["head_dim"]          # Qwen2Config derives it too
    cfg = getattr(transformers, cls_name)(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def _randomize(model, family: str, gen: torch.Generator) -> None:
    """Re-draw every weight so that activations and logits are O(1..10): HF's init (N(0, 0.02))
    would give near-zero logits that hide most errors. Linear rows ~ N(0, 1/in) keep each
    projection O(1) after RMSNorm; norms ~ 1 +- 0.2 (Gemma stores w with 1 + w applied);
    embeddings and lm_head N(0, 0.5^2): 64 dims give logits with std ~4."""
    gemma = family in GEMMA
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(0.2 * r + (0.0 if gemma else 1.0))
            elif name.endswith(".bias"):
                p.copy_(0.3 * r)
            elif "embed_tokens" in name or name == "lm_head.weight":
                p.copy_(0.5 * r)
            else:
                p.copy_(r / math.sqrt(p.shape[-1]))


def build(family: str, out_dir, sharded: bool = False, seed: int | None = None) -> TinyModel:
    """A random `family` model saved under out_dir (safetensors, float32). sharded: save with a
    tiny max_shard_size so model.safetensors.index.json and several shards are written."""
    seed = secrets.randbits(31) if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    cfg = hf_config(family, gen)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    model.eval()
    _randomize(model, family, gen)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    out = Path(out_dir)
    model.save_pretrained(out, max_shard_size="40KB" if sharded else "50GB")
    return TinyModel(family, model, out, seed)


def reference_logits(model, ids) -> np.ndarray:
    """transformers' logits (len(ids), vocab) in float64, positions from 0.

    The forward runs on a float64 copy of the (float32) weights: the oracle then carries no f32
    accumulation error of its own, so the measured difference is the engine's alone. A few HF
    ops still round to f32 inside (RMSNorm's `.float()`, the rotary cos/sin), ~1e-7 relative,
    four orders below the 1e-3 bound."""
    m64 = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        out = m64(input_ids=torch.tensor([list(ids)], dtype=torch.long), use_cache=False)
    return out.logits[0].numpy().astype(np.float64)


# -- GGUF writing --------------------------------------------------------------------------------
_ARCH = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2,
         "qwen3": gguf.MODEL_ARCH.QWEN3, "gemma": gguf.MODEL_ARCH.GEMMA,
         "gemma2": gguf.MODEL_ARCH.GEMMA2, "gemma3": gguf.MODEL_ARCH.GEMMA3,
         "phi3": gguf.MODEL_ARCH.PHI3}
_QTYPE = {"F32": gguf.GGMLQuantizationType.F32, "F16": gguf.GGMLQuantizationType.F16,
          "Q8_0": gguf.GGMLQuantizationType.Q8_0}
_FTYPE = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
          "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}


def family_of(model) -> str:
    return {"gemma3_text": "gemma3"}.get(model.config.model_type, model.config.model_type)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """LlamaModel.permute: NeoX half-split rows -> interleaved pairs, per head."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _llama3_freq_factors(cfg) -> np.ndarray:
    """LlamaModel.generate_extra_tensors: one divisor per rotary pair (f32, as the converter)."""
    rp = cfg.rope_parameters
    dim = cfg.head_dim
    freqs = 1.0 / (rp["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    orig, lo, hi, factor = (rp["original_max_position_embeddings"], rp["low_freq_factor"],
                            rp["high_freq_factor"], rp["factor"])
    out = []
    for f in freqs:                  # 0-d float32 tensors: the converter's arithmetic, bit for bit
        wavelen = 2 * math.pi / f
        if wavelen < orig / hi:
            out.append(1.0)
        elif wavelen > orig / lo:
            out.append(factor)
        else:
            smooth = (orig / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32).numpy()


def gguf_tensors(model) -> dict:
    """GGUF name -> float32 array (rows, cols) or (n,), after the converter's transforms."""
    cfg, family = model.config, family_of(model)
    names = gguf.get_tensor_name_map(_ARCH[family], cfg.num_hidden_layers)
    out = {}
    for hf_name, t in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue                      # tied: save_pretrained drops it, so does the converter
        data = t.detach().to(torch.float32).numpy().copy()
        if family == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, cfg.num_attention_heads)
        if family == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, cfg.num_key_value_heads)
        if family in GEMMA and hf_name.endswith("norm.weight"):
            data = data + np.float32(1.0)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise KeyError(f"gguf-py has no {family} name for {hf_name}")
        out[name] = data
    if family == "llama":
        out["rope_freqs.weight"] = _llama3_freq_factors(cfg)
    if family == "phi3":
        rp = cfg.rope_parameters
        out["rope_factors_long.weight"] = np.array(rp["long_factor"], dtype=np.float32)
        out["rope_factors_short.weight"] = np.array(rp["short_factor"], dtype=np.float32)
    return out


def _metadata(w: "gguf.GGUFWriter", cfg, family: str, wtype: str) -> None:
    """Each family's set_gguf_parameters, for the keys our configs produce."""
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(_FTYPE[wtype])
    hf = cfg.to_dict()
    rp = cfg.rope_parameters
    if family in ("llama", "qwen2", "qwen3", "gemma3"):        # TextModel base keys
        rp_full = rp.get("full_attention", rp)
        w.add_rope_freq_base(rp_full["rope_theta"])
        if "sliding_attention" in rp:
            w.add_rope_freq_base_swa(rp["sliding_attention"]["rope_theta"])
    if "head_dim" in hf and family != "phi3":                   # base, gemma: key/value length
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    if family == "llama":
        w.add_vocab_size(cfg.vocab_size)
        w.add_rope_dimension_count(cfg.head_dim)
    if family == "gemma2":
        w.add_attn_logit_softcapping(cfg.attn_logit_softcapping)
        w.add_final_logit_softcapping(cfg.final_logit_softcapping)
    if family == "gemma3" and cfg.final_logit_softcapping:
        w.add_final_logit_softcapping(cfg.final_logit_softcapping)
    if family in ("gemma2", "gemma3"):
        w.add_sliding_window(cfg.sliding_window)
    if family == "phi3":
        orig = rp["original_max_position_embeddings"]
        n_rot = cfg.hidden_size // cfg.num_attention_heads
        w.add_rope_scaling_orig_ctx_len(orig)
        w.add_rope_dimension_count(n_rot)
        w.add_rope_freq_base(rp["rope_theta"])
        w.add_sliding_window(cfg.sliding_window or 0)
        s = cfg.max_position_embeddings / orig
        w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(s) / math.log(orig)) if s > 1
                                        else 1.0)
    # A minimal vocabulary: the token count is the vocab size (no vocab_size key but llama's).
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    w.add_token_scores([0.0] * cfg.vocab_size)
    w.add_token_types([int(gguf.TokenType.NORMAL)] * cfg.vocab_size)


def write_gguf(model, path, wtype: str = "F32") -> Path:
    """The GGUF convert_hf_to_gguf.py --outtype {f32,f16,q8_0} would write for `model`."""
    if wtype not in _QTYPE:
        raise ValueError(f"wtype must be one of {WTYPES}, got {wtype!r}")
    cfg, family = model.config, family_of(model)
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[_ARCH[family]])
    _metadata(w, cfg, family, wtype)
    for name, data in gguf_tensors(model).items():
        qtype = _QTYPE[wtype]
        if data.ndim <= 1 or name.endswith("_norm.weight"):
            qtype = gguf.GGMLQuantizationType.F32           # converter: 1-D and norms stay F32
        w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def gguf_to_hf(model, path):
    """A float32 copy of `model` holding the GGUF's weights, dequantized with gguf-py and the
    converter's transforms undone (llama q/k permutation, Gemma's +1): the reference for
    quantized files, so a comparison measures the engine, not the quantization."""
    cfg, family = model.config, family_of(model)
    names = gguf.get_tensor_name_map(_ARCH[family], cfg.num_hidden_layers)
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    out = copy.deepcopy(model)
    state = out.state_dict()
    with torch.no_grad():
        for hf_name, p in state.items():
            if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
                continue
            t = tensors[names.get_name(hf_name, try_suffixes=(".weight", ".bias"))]
            data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            data = data.reshape(tuple(p.shape))
            if family in GEMMA and hf_name.endswith("norm.weight"):
                data = data - np.float32(1.0)
            if family == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                data = _unpermute(data, cfg.num_attention_heads)
            if family == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                data = _unpermute(data, cfg.num_key_value_heads)
            p.copy_(torch.from_numpy(np.ascontiguousarray(data)))
    if cfg.tie_word_embeddings:
        out.tie_weights()
    return out


def random_ids(n: int = N_TEST_TOKENS, vocab: int = VOCAB) -> list:
    return [int(x) for x in np.random.default_rng().integers(0, vocab, n)]


def hf_config_json(tm: TinyModel) -> dict:
    return json.loads((tm.hf_dir / "config.json").read_text())
