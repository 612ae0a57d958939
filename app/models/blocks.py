"""The transformer blocks shared by every family, recorded into dispatch plans.

One code path; families differ by config values (app/models/config.py). Per layer, for T tokens
(T = 1: decode through matvec; T > 1: prefill through matmul_q):

    xn = norm(x)                                   attn_norm (fused into the previous layer's
                                                   residual add when the family has post norms)
    q, k, v = xn @ Wq^T (+bq), xn @ Wk^T, xn @ Wv^T
    q, k = qk_norm(q), qk_norm(k)                  qwen3, gemma3 (per head)
    q, k = rope(q), rope(k)                        local or global table per layer (gemma3)
    kv_cache[layer][pos .. pos + T) = k, v
    a = attention(q, kv_cache[layer])              window / softcap / scale per layer
    x += a @ Wo^T                                  or x += post_attn_norm(a @ Wo^T)
    xn = norm(x)                                   ffn_norm
    g = act(xn @ Wg^T) * (xn @ Wu^T)               silu or gelu_tanh
    x += g @ Wd^T                                  or x += post_ffw_norm(g @ Wd^T)
  finally xn = output_norm(x)  (every row)

The residual stream x is updated in place: matvec/matmul_q accumulate into it, or (post norms)
rmsnorm's fused residual add writes x + t back into x while normalizing for the next block.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..gpu import Buffer, Device
from ..kernels.activation import glu
from ..kernels.attention import attention_decode, attention_prefill
from ..kernels.embedding import embedding
from ..kernels.kv_cache import KVCache, kv_write
from ..kernels.matmul_q import matmul_q
from ..kernels.matvec import Q8_UNIT, matvec, quantize_x
from ..kernels.norm import rmsnorm
from ..kernels.rope import RopeTable, rope
from .config import ModelConfig
from .weights import ModelWeights


@dataclass
class Activations:
    """f32 work buffers for up to `tokens` tokens (kind="activations")."""
    tokens: int
    x: Buffer       # (T, dim) residual stream
    xn: Buffer      # (T, dim) normalized input of the next block
    t: Buffer       # (T, dim) block output before its post norm (gemma2/3)
    q: Buffer       # (T, n_heads * head_dim)
    k: Buffer       # (T, n_kv_heads * head_dim)
    v: Buffer
    a: Buffer       # (T, n_heads * head_dim) attention output
    g: Buffer       # (T, ffn) gate, then act(gate) * up
    u: Buffer       # (T, ffn) up
    qkv: Buffer     # (1, (n_heads + 2 n_kv_heads) * head_dim): decode's fused q | k | v
    gu: Buffer      # (T, 2 * ffn) fused gate | up

    @classmethod
    def create(cls, dev: Device, cfg: ModelConfig, tokens: int, label: str) -> "Activations":
        qd, kvd = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        sizes = dict(x=cfg.dim, xn=cfg.dim, t=cfg.dim, q=qd, k=kvd, v=kvd, a=qd,
                     g=cfg.ffn_dim, u=cfg.ffn_dim, qkv=qd + 2 * kvd, gu=2 * cfg.ffn_dim)
        return cls(tokens, **{n: dev.create_buffer(4 * tokens * d, kind="activations",
                                                   label=f"{label}.{n}")
                               for n, d in sizes.items()})

    def destroy(self, dev: Device) -> None:
        for n in ("x", "xn", "t", "q", "k", "v", "a", "g", "u", "qkv", "gu"):
            dev.destroy_buffer(getattr(self, n))


def _view(buf: Buffer, tokens: int, width: int) -> tuple:
    return (buf, 0, 4 * tokens * width)


async def record_body(dev: Device, cfg: ModelConfig, w: ModelWeights, cache: KVCache,
                      ropes: list[RopeTable], acts: Activations, ids: Buffer, step: Buffer,
                      tokens: int, plan, q8: bool = False) -> None:
    """Record embedding + all layers + the final norm for `tokens` tokens (their ids in `ids`,
    positions from `step`) into `plan`. Rows past step.n_tokens are computed and ignored.
    q8 (decode only): quantized weights take the int8-dot matvec path, each input quantized
    once by quantize_x (app/kernels/matvec.py) and reused by the matvecs reading it."""
    T, dim, hd, eps, one = tokens, cfg.dim, cfg.head_dim, cfg.norm_eps, cfg.norm_add_one
    nh, nkv = cfg.n_heads, cfg.n_kv_heads
    a = acts

    xq_bufs: dict = {}     # cols -> QuantX, reused by every layer (the plan keeps them)
    quantized: dict = {}   # id(x buffer) -> QuantX of its current contents

    async def linear(weight, x, out, bias=None, accumulate=False):
        if T == 1:
            xq = None
            if q8 and weight.layout in Q8_UNIT and weight.cols % 32 == 0:
                xq = quantized.get(id(x))
                if xq is None:
                    xq = await quantize_x(dev, x, weight.cols, target=plan,
                                          out=xq_bufs.get(weight.cols))
                    if weight.cols not in xq_bufs:
                        xq_bufs[weight.cols] = xq
                        for b in (xq.q, xq.ds, xq.inv):
                            plan.keep(b)
                    # the buffer now holds x's quantization only
                    for key in [k for k, v in quantized.items() if v is xq]:
                        del quantized[key]
                    quantized[id(x)] = xq
            await matvec(dev, weight, x, out=out, bias=bias, accumulate=accumulate, target=plan,
                         xq=xq)
            quantized.pop(id(out), None)   # out's contents changed
        else:
            await matmul_q(dev, weight, x, T, out=out, bias=bias, accumulate=accumulate,
                           target=plan)

    async def norm(x, weight, rows, width, out, residual=None):
        quantized.clear()     # activations change: forget which inputs are quantized
        await rmsnorm(dev, x, weight, rows, width, eps, out=out, add_one=one,
                      residual=residual, target=plan)

    await embedding(dev, w.token_embd, ids, T, out=a.x, scale=cfg.embed_scale, target=plan)
    await norm(a.x, w.layers[0].attn_norm, T, dim, a.xn)
    for i, lw in enumerate(w.layers):
        if T == 1 and lw.qkv is not None:
            # Decode: one matvec for q | k | v into a.qkv; q and k are adjacent, so one RoPE
            # dispatch covers both; k and v are read through aligned views.
            await linear(lw.qkv, a.xn, a.qkv, lw.qkv_bias)
            q, k, v = (a.qkv, 0, 4 * nh * hd), (a.qkv, 4 * nh * hd, 4 * nkv * hd), \
                (a.qkv, 4 * (nh + nkv) * hd, 4 * nkv * hd)
            if cfg.qk_norm:
                await norm(q, lw.q_norm, nh, hd, q)
                await norm(k, lw.k_norm, nkv, hd, k)
            await rope(dev, a.qkv, ropes[i], step, 1, nh + nkv, hd, neox=cfg.rope_neox,
                       target=plan)
        else:
            await linear(lw.q, a.xn, a.q, lw.q_bias)
            await linear(lw.k, a.xn, a.k, lw.k_bias)
            await linear(lw.v, a.xn, a.v, lw.v_bias)
            if cfg.qk_norm:
                await norm(a.q, lw.q_norm, T * nh, hd, a.q)
                await norm(a.k, lw.k_norm, T * nkv, hd, a.k)
            await rope(dev, a.q, ropes[i], step, T, nh, hd, neox=cfg.rope_neox, target=plan)
            await rope(dev, a.k, ropes[i], step, T, nkv, hd, neox=cfg.rope_neox, target=plan)
            q = _view(a.q, T, nh * hd)
            k, v = _view(a.k, T, nkv * hd), _view(a.v, T, nkv * hd)
        await kv_write(dev, cache, i, k, v, step, target=plan)
        window = cfg.sliding_window if cfg.is_local(i) else 0
        attend = attention_decode if T == 1 else attention_prefill
        await attend(dev, q, cache, i, step, nh,
                     out=_view(a.a, T, nh * hd), scale=cfg.scale, softcap=cfg.attn_softcap,
                     window=window, target=plan)
        if cfg.post_norms:
            await linear(lw.o, a.a, a.t)
            await norm(a.t, lw.post_attn_norm, T, dim, a.t)
            await norm(a.t, lw.ffn_norm, T, dim, a.xn, residual=a.x)      # x += t; xn = norm(x)
        else:
            await linear(lw.o, a.a, a.x, accumulate=True)
            await norm(a.x, lw.ffn_norm, T, dim, a.xn)
        quantized.clear()
        if lw.gate_up is not None:
            await linear(lw.gate_up, a.xn, a.gu)              # (T, 2 * ffn): gate | up per row
            await glu(dev, a.gu, None, T * cfg.ffn_dim, kind=cfg.activation, out=a.g,
                      fused_ffn=cfg.ffn_dim, target=plan)
        else:
            await linear(lw.gate, a.xn, a.g)
            await linear(lw.up, a.xn, a.u)
            await glu(dev, a.g, a.u, T * cfg.ffn_dim, kind=cfg.activation, out=a.g, target=plan)
        quantized.clear()
        nxt = w.layers[i + 1].attn_norm if i + 1 < len(w.layers) else w.output_norm
        if cfg.post_norms:
            await linear(lw.down, a.g, a.t)
            await norm(a.t, lw.post_ffw_norm, T, dim, a.t)
            await norm(a.t, nxt, T, dim, a.xn, residual=a.x)
        else:
            await linear(lw.down, a.g, a.x, accumulate=True)
            await norm(a.x, nxt, T, dim, a.xn)
