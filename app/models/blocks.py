"""The transformer blocks shared by every family, recorded into dispatch plans.

One code path; families differ by config values (app/models/config.py). Per layer, for T tokens
(T = 1: decode through matvec; T > 1: prefill through matmul_q, or on CPU adapters through
matvec over groups of a few tokens: see CpuLinear):

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
Decode (T = 1, fused q | k | v and gate | up weights) merges two pairs of steps: rope + the cache
append are one dispatch (rope_kv), and act(gate) * up is formed inside the down matvec (its glu
input, for down weights up to GLU_IN_MAX elements); the residual stream's rmsnorms fold into
the matvecs (see record_body): 7 dispatches per layer without qk-norm or post norms (8 above
GLU_IN_MAX).
"""
from __future__ import annotations

import os

from dataclasses import dataclass

from ..gpu import Buffer, Device
from ..kernels.activation import glu
from ..kernels.attention import attention_decode, attention_prefill
from ..kernels.embedding import embedding
from ..kernels.kv_cache import KVCache, kv_write
from ..kernels import matmul_sgmat as sgmat
from ..kernels.matmul_q import matmul_q
from ..kernels.matvec import Q8_UNIT, matvec, quantize_x
from ..kernels.norm import add, rmsnorm
from ..kernels.rope import RopeTable, rope
from ..kernels.rope_kv import rope_kv
from .config import ModelConfig
from .weights import ModelWeights


# Decode fuses the GLU into the down matvec's input (one dispatch fewer per layer) only up to this
# many down-weight elements: every row group of the matvec recomputes act(gate) * up for the units
# it walks (~rows / 4 exp and divisions per ffn element), which outgrows the ~2 us a dispatch costs
# the GPU on large models. H100, GPU ms per token fused -> not fused (Dawn; native): Llama-3.2-1B
# Q4_0 (2048 x 8192 = 17M) 1.439 -> 1.431; 1.486 -> 1.435; Llama-3.1-8B Q4_0 (59M) 5.65 -> 5.29;
# 5.70 -> 5.36. SmolLM2-135M (576 x 1536 = 0.9M) is fused. Up to the 1B's 17M the GPU cost is
# a few us per token (1.431 -> 1.439 ms) and the saved dispatch is worth more: 16 dispatches of
# host encoding (~8 us each through Dawn) once decode is host-bound (1B after the norm folding).
GLU_IN_MAX = 32 << 20


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


class CpuLinear:
    """Prefill projections on CPU adapters (dev.is_cpu): out (T, rows) (+)= x (T, cols) @ W^T
    through the barrier-free matvec (matvec.choose_cpu), GROUP tokens per dispatch (one read and
    decode of W serves GROUP tokens) instead of matmul_q, whose barrier-synchronized tiles cost
    the same for 8, 16 or 64 tokens on SwiftShader: 1536x576 Q4_1, 173 / 166 / 165 ms, vs
    matvec 21 / 42 / 167 ms (GROUP 8, RPT 2; GROUP 4 / RPT 4 measured the same; headless
    Chromium on a loaded 2-core machine). Per token they are equal from 64 tokens on; below,
    cost follows the real token count (a body[16] step of SmolLM2-135M: 21.9 -> 4.9 s).

    matvec binds x and out from offset 0, so tokens 0..GROUP-1 are done in place and every later
    group is staged: its x rows are copied into a staging buffer of their own (x + 0 through
    shaders/add.wgsl; exact), matvec writes (GROUP, rows) into `y`, and add() copies (or, for
    accumulate, adds) y into out's rows. Staged x is reused by every weight reading the same x
    (q, k and v read xn) until x changes. Weights whose group offsets are not 256-byte aligned
    (minStorageBufferOffsetAlignment) take matmul_q. Staging buffers are kept by the plan."""

    GROUP = 8   # tokens per matvec (<= MAX_VEC) and RPT rows per thread (GROUP * RPT <= 16):
    RPT = 2     # each x load serves RPT rows and each decoded weight unit GROUP tokens

    def __init__(self, dev: Device, cfg: ModelConfig, tokens: int, plan):
        self.dev, self.plan, self.T = dev, plan, tokens
        self.align = dev.limits.get("minStorageBufferOffsetAlignment", 256)
        G = self.GROUP
        qd = cfg.n_heads * cfg.head_dim
        cols = max(cfg.dim, qd, cfg.ffn_dim)                 # widest x row
        rows = max(cfg.dim, qd, 2 * cfg.ffn_dim)             # widest out row (gate | up)
        groups = -(-tokens // G) - 1                         # staged groups: tokens G..T-1

        def buf(n, label):
            b = dev.create_buffer(4 * G * n, kind="activations", label=f"cpu_linear.{label}")
            plan.keep(b)
            return b
        self.xs = [buf(cols, f"x{g + 1}") for g in range(groups)]
        self.y = buf(rows, "y")
        self.zeros = buf(max(cols, rows), "zeros")           # WebGPU zero-fills new buffers
        self.staged = None                                   # id of the x the xs hold

    def fits(self, weight) -> bool:
        return all((4 * self.GROUP * n) % self.align == 0 for n in (weight.cols, weight.rows))

    def forget(self, buf=None) -> None:
        """x's contents changed (buf None: any activation)."""
        if buf is None or self.staged == id(buf):
            self.staged = None

    async def __call__(self, weight, x, out, bias=None, accumulate=False):
        dev, plan, cols, rows, G = self.dev, self.plan, weight.cols, weight.rows, self.GROUP
        await matvec(dev, weight, x, out=out, n_vec=min(G, self.T), bias=bias,
                     accumulate=accumulate, target=plan, rpt=self.RPT)
        for g, t0 in enumerate(range(G, self.T, G)):
            n = min(G, self.T - t0)
            xs = self.xs[g]
            if self.staged != id(x):
                await add(dev, (x, 4 * t0 * cols, 4 * n * cols), self.zeros, n * cols, out=xs,
                          target=plan)
            await matvec(dev, weight, xs, out=self.y, n_vec=n, bias=bias, target=plan,
                         rpt=self.RPT)
            ov = (out, 4 * t0 * rows, 4 * n * rows)
            if accumulate:
                await add(dev, ov, self.y, n * rows, out=ov, target=plan)
            else:
                await add(dev, self.y, self.zeros, n * rows, out=ov, target=plan)
        self.staged = id(x)
        self.forget(out)


NORM_FOLD = os.environ.get("LOCALLLM_NORM_FOLD", "1") == "1"   # "0": separate rmsnorms (A/B)
# CPU adapters keep the separate rmsnorms: their barrier-free matvec (one thread per RPT rows)
# makes every thread sum x^2 over the whole row itself, which for the lm_head (49152 rows of
# SmolLM2) reads x as often as the weights (SwiftShader decode 247 -> 379 ms per token), while a
# dispatch costs them little. Tests set FOLD_ON_CPU to run the folded path on lavapipe.
FOLD_ON_CPU = False


async def record_body(dev: Device, cfg: ModelConfig, w: ModelWeights, cache: KVCache,
                      ropes: list[RopeTable], acts: Activations, ids: Buffer, step: Buffer,
                      tokens: int, plan, q8: bool = False, fold_final: bool = False):
    """Record embedding + all layers + the final norm for `tokens` tokens (their ids in `ids`,
    positions from `step`) into `plan`. Rows past step.n_tokens are computed and ignored.
    q8 (decode only): quantized weights take the int8-dot matvec path, each input quantized
    once by quantize_x (app/kernels/matvec.py) and reused by the matvecs reading it.
    fold_final (decode): leave the final norm to the head: acts.xn then holds x * g' and the
    return value is acts.x, whose rms the head's matvec applies (norm=); None when acts.xn holds
    the normalized rows."""
    T, dim, hd, eps, one = tokens, cfg.dim, cfg.head_dim, cfg.norm_eps, cfg.norm_add_one
    nh, nkv = cfg.n_heads, cfg.n_kv_heads
    a = acts

    xq_bufs: dict = {}     # cols -> QuantX, reused by every layer (the plan keeps them)
    quantized: dict = {}   # id(x buffer) -> QuantX of its current contents
    cpu = CpuLinear(dev, cfg, T, plan) if T > 1 and getattr(dev, "is_cpu", False) else None

    # Decode folds the residual stream's rmsnorms into the matvecs around them: the matvec that
    # accumulates into a.x (o, down) also writes a.xn = x * g' (its EPI epilogue, g' the next
    # norm's weight), and the matvecs reading a.xn (qkv / q, k, v, gate_up / gate, up, and the
    # lm_head) scale their sums by rmsnorm's 1 / rms(a.x) (matvec norm=). Layer 0's attention
    # norm (after the embedding) is a real rmsnorm. `ss` is a.x while a.xn holds x * g'.
    fold = (T == 1 and not q8 and not cfg.post_norms and NORM_FOLD
            and (FOLD_ON_CPU or not getattr(dev, "is_cpu", False)))
    ss = None

    async def linear(weight, x, out, bias=None, accumulate=False, glu_in=None, epi=None):
        if T == 1 and (epi is not None or (ss is not None and x is a.xn)):
            await matvec(dev, weight, x, out=out, bias=bias, accumulate=accumulate, target=plan,
                         glu=glu_in, norm=(ss, eps) if x is a.xn else None,
                         epilogue=(epi, one, a.xn) if epi is not None else None)
            return
        if cpu is not None and cpu.fits(weight):
            await cpu(weight, x, out, bias, accumulate)
        elif T == 1:
            xq = None
            if q8 and weight.layout in Q8_UNIT and weight.cols % 32 == 0:
                xq = await quant(x, weight.cols)
            await matvec(dev, weight, x, out=out, bias=bias, accumulate=accumulate, target=plan,
                         xq=xq, glu=glu_in)
            quantized.pop(id(out), None)   # out's contents changed
        elif sgmat.plan(dev, weight):      # tensor cores (subgroup matrices), int8 activations
            await sgmat.matmul_sgmat(dev, weight, await quant(x, weight.cols), T, out=out,
                                     bias=bias, accumulate=accumulate, target=plan)
            quantized.pop(id(out), None)
        else:
            await matmul_q(dev, weight, x, T, out=out, bias=bias, accumulate=accumulate,
                           target=plan)
            quantized.pop(id(out), None)
            if cpu is not None:
                cpu.forget(out)

    async def quant(x, cols):
        """x's QuantX (T rows), made once per x contents and kept in one buffer per width."""
        xq = quantized.get(id(x))
        if xq is None:
            xq = await quantize_x(dev, x, cols, n_vec=T, target=plan, out=xq_bufs.get(cols))
            if cols not in xq_bufs:
                xq_bufs[cols] = xq
                for b in (xq.q, xq.ds, xq.inv):
                    plan.keep(b)
            # the buffer now holds x's quantization only
            for key in [k for k, v in quantized.items() if v is xq]:
                del quantized[key]
            quantized[id(x)] = xq
        return xq

    async def norm(x, weight, rows, width, out, residual=None):
        quantized.clear()     # activations change: forget which inputs are quantized
        if cpu is not None:
            cpu.forget()
        await rmsnorm(dev, x, weight, rows, width, eps, out=out, add_one=one,
                      residual=residual, target=plan)

    await embedding(dev, w.token_embd, ids, T, out=a.x, scale=cfg.embed_scale, target=plan)
    await norm(a.x, w.layers[0].attn_norm, T, dim, a.xn)
    for i, lw in enumerate(w.layers):
        if T == 1 and lw.qkv is not None:
            # Decode: one matvec for q | k | v into a.qkv, then one dispatch rotates q in place
            # and appends rope(k) and v to the cache (app/kernels/rope_kv.py).
            await linear(lw.qkv, a.xn, a.qkv, lw.qkv_bias)
            q, k = (a.qkv, 0, 4 * nh * hd), (a.qkv, 4 * nh * hd, 4 * nkv * hd)
            if cfg.qk_norm:
                await norm(q, lw.q_norm, nh, hd, q)
                await norm(k, lw.k_norm, nkv, hd, k)
            await rope_kv(dev, a.qkv, ropes[i], cache, i, step, nh, neox=cfg.rope_neox,
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
            await kv_write(dev, cache, i, _view(a.k, T, nkv * hd), _view(a.v, T, nkv * hd), step,
                           target=plan)
        window = cfg.sliding_window if cfg.is_local(i) else 0
        attend = attention_decode if T == 1 else attention_prefill
        await attend(dev, q, cache, i, step, nh,
                     out=_view(a.a, T, nh * hd), scale=cfg.scale, softcap=cfg.attn_softcap,
                     window=window, target=plan)
        if cfg.post_norms:
            await linear(lw.o, a.a, a.t)
            await norm(a.t, lw.post_attn_norm, T, dim, a.t)
            await norm(a.t, lw.ffn_norm, T, dim, a.xn, residual=a.x)      # x += t; xn = norm(x)
        elif fold:
            await linear(lw.o, a.a, a.x, accumulate=True, epi=lw.ffn_norm)   # a.xn = x * g'
            ss = a.x
        else:
            await linear(lw.o, a.a, a.x, accumulate=True)
            await norm(a.x, lw.ffn_norm, T, dim, a.xn)
        quantized.clear()
        if cpu is not None:
            cpu.forget()
        ffn_in = dict(x=a.g)    # the down projection's input
        if lw.gate_up is not None:
            await linear(lw.gate_up, a.xn, a.gu)              # (T, 2 * ffn): gate | up per row
            if T == 1 and lw.down.rows * lw.down.cols <= GLU_IN_MAX and \
                    not (q8 and lw.down.layout in Q8_UNIT and lw.down.cols % 32 == 0):
                # decode: the down matvec forms act(gate) * up on load (matvec's glu input)
                ffn_in = dict(x=a.gu, glu_in=(cfg.activation, cfg.ffn_dim))
            else:
                await glu(dev, a.gu, None, T * cfg.ffn_dim, kind=cfg.activation, out=a.g,
                          fused_ffn=cfg.ffn_dim, target=plan)
        else:
            await linear(lw.gate, a.xn, a.g)
            await linear(lw.up, a.xn, a.u)
            await glu(dev, a.g, a.u, T * cfg.ffn_dim, kind=cfg.activation, out=a.g, target=plan)
        quantized.clear()
        if cpu is not None:
            cpu.forget()
        nxt = w.layers[i + 1].attn_norm if i + 1 < len(w.layers) else w.output_norm
        if cfg.post_norms:
            await linear(lw.down, out=a.t, **ffn_in)
            await norm(a.t, lw.post_ffw_norm, T, dim, a.t)
            await norm(a.t, nxt, T, dim, a.xn, residual=a.x)
        elif fold and (fold_final or i + 1 < len(w.layers)):
            await linear(lw.down, out=a.x, accumulate=True, epi=nxt, **ffn_in)
            ss = a.x
        else:
            ss = None
            await linear(lw.down, out=a.x, accumulate=True, **ffn_in)
            await norm(a.x, nxt, T, dim, a.xn)
    return ss   # a.x when a.xn holds x * g' (the head folds the final norm), else None
