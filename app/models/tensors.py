"""One view of a checkpoint's tensors under GGUF names, whichever format they came in.

    ts = TensorSet.from_gguf(gguf_file)            # names as in the file
    ts = TensorSet.from_safetensors(st, family)    # HF names renamed through HF_NAMES (style.md 6)
    ts.names, ts.type(name) ("Q4_K", "F16", ...), ts.shape(name) (rows, cols), await ts.data(name)

Names are the GGUF ones throughout the engine (token_embd, blk.N.attn_q, ...). HF checkpoints
differ in three ways that the loader handles, not this table: llama q/k rows stay in NeoX order
(the config says rope_neox), Gemma norms lack the +1 the GGUF converter adds (norm_add_one), and
Phi-3's fused qkv / gate_up tensors are split by rows at upload like the GGUF ones.
"""
from __future__ import annotations

import re

# HF suffix after "model.layers.N." -> GGUF suffix after "blk.N."; Gemma-2/3 name their norms
# differently (four per layer), see _LAYER_GEMMA2.
_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
    "self_attn.qkv_proj.weight": "attn_qkv.weight",            # phi3
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.gate_up_proj.weight": "ffn_up.weight",                 # phi3: gate rows, then up rows
    "mlp.down_proj.weight": "ffn_down.weight",
}
_LAYER_GEMMA2 = {**_LAYER,
                 "post_attention_layernorm.weight": "post_attention_norm.weight",
                 "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                 "post_feedforward_layernorm.weight": "post_ffw_norm.weight"}
_GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


class MissingTensorError(ValueError):
    """The checkpoint lacks a tensor its architecture needs (a partial or mismatched file)."""


class UnknownTensorError(ValueError):
    """A safetensors checkpoint holds a tensor this engine has no name for."""


def hf_to_gguf_name(name: str, family: str) -> str | None:
    """GGUF name of an HF tensor, or None for tensors the text model ignores."""
    # Multimodal Gemma-3 checkpoints nest the text model.
    name = name.replace("model.language_model.", "model.").replace("language_model.model.", "model.")
    if name in _GLOBAL:
        return _GLOBAL[name]
    m = _LAYER_RE.match(name)
    if m:
        table = _LAYER_GEMMA2 if family in ("gemma2", "gemma3") else _LAYER
        suffix = table.get(m.group(2))
        return None if suffix is None else f"blk.{m.group(1)}.{suffix}"
    if name.startswith(("vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                        "model.multi_modal_projector.")):
        return None
    if "rotary_emb.inv_freq" in name:
        return None
    raise UnknownTensorError(f"tensor {name!r} has no meaning for a {family} model")


class TensorSet:
    def __init__(self, entries: dict, reader, positions: dict | None = None):
        self._entries = entries     # gguf name -> (source name, type, (rows, cols) or (n,))
        self._reader = reader       # async (source name) -> bytes-like / Uint8Array
        self._positions = positions or {}   # gguf name -> sortable place of its bytes

    @classmethod
    def from_gguf(cls, gguf) -> "TensorSet":
        return cls({n: (n, t.type_name, t.shape) for n, t in gguf.tensors.items()},
                   gguf.tensor_data, {n: (0, t.offset) for n, t in gguf.tensors.items()})

    @classmethod
    def from_safetensors(cls, st, family: str) -> "TensorSet":
        entries, positions = {}, {}
        for name, t in st.tensors.items():
            g = hf_to_gguf_name(name, family)
            if g is not None:
                entries[g] = (name, t.dtype, tuple(t.shape))
                positions[g] = (getattr(t, "file", ""), t.offset)
        return cls(entries, st.tensor_data, positions)

    @property
    def names(self):
        return self._entries.keys()

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def position(self, name: str) -> tuple:
        """Where the tensor's bytes lie ((file, offset)): uploads run in this order."""
        self._get(name)
        return self._positions.get(name, (0, 0))

    def type(self, name: str) -> str:
        return self._get(name)[1]

    def shape(self, name: str) -> tuple:
        return self._get(name)[2]

    async def data(self, name: str):
        return await self._reader(self._get(name)[0])

    def _get(self, name: str):
        try:
            return self._entries[name]
        except KeyError:
            raise MissingTensorError(f"the model file has no tensor {name!r}; it is incomplete or "
                                     "not the architecture its header claims") from None
