"""A loaded model on one GPU device: the named steps of generation (gpt-fast's naming).

    model = await load_model(dev, "model.gguf", context_length=2048)     (app/models/loader.py)
    tok = await model.prefill(prompt_ids, params)   # the prompt (reusing a cached prefix), 1 token
    tok = await model.decode_one()                  # one more token
    toks = await model.decode_n(8)                  # 8 more, chained on the GPU, one readback
    async for tok in model.generate(ids, params, max_tokens, stop_ids): ...
    logits = await model.logits(ids)                # (n, vocab) f32 bytes, every position (tests)

Plans (app/gpu/plan.py), recorded once and replayed with one Step write each:
  decode        embedding of the last sampled id (read on the GPU from the sampler's result),
                all layers for 1 token (matvec), lm_head, softcap, sample, store the id
  body[T]       embedding of ids, all layers for a chunk of up to T prompt tokens (matmul_q);
                T is a bucket (PREFILL_BUCKETS) so short prompts do not pay for 512 rows
  head          the last prompt row -> lm_head -> sample -> store (after the last chunk)
  all_logits[T] lm_head over every row of a chunk (logits(); tests and scoring)
The sampled ids live on the GPU (`history`, by position): decode steps feed each other without
a host round trip and decode_n reads n ids at once.
"""
from __future__ import annotations

import struct
import time
from typing import AsyncIterator

from ..gpu import Device
from ..kernels.activation import softcap
from ..kernels.embedding import embedding
from ..kernels.grid import step_params
from ..kernels.kv_cache import KVCache
from ..kernels.layouts import Chunk, GPUWeight
from ..kernels.matmul_q import matmul_q
from ..kernels.matvec import Q8_UNIT, matvec, quantize_x
from ..kernels.rope import RopeTable, rope_table
from ..kernels.sampling import Sampler, SamplingParams
from ..kernels.token_store import token_store
from .blocks import Activations, record_body
from .config import ModelConfig
from .weights import ModelWeights

PREFILL_BUCKETS = (16, 64, 256, 512)
# CPU adapters (SwiftShader, lavapipe): prefill projections cost in proportion to the bucket (8-token
# matvec groups, app/models/blocks.py CpuLinear), so buckets follow the prompt closely and chunks
# stay small.
CPU_PREFILL_BUCKETS = (8, 16, 32, 64)
DECODE_BATCH = 4        # generate(): decode steps replayed per readback of their ids
GREEDY = SamplingParams(temperature=0.0)


class ContextLengthError(ValueError):
    """The prompt (plus at least one generated token) does not fit the context."""


class Model:
    def __init__(self, dev: Device, cfg: ModelConfig, weights: ModelWeights, context_length: int,
                 kv_dtype: str = "f16", prefill_chunk: int = 512, decode_q8: bool = False):
        self.dev, self.config, self.weights = dev, cfg, weights
        self.decode_q8 = decode_q8
        self.context_length = context_length
        self.kv_dtype = kv_dtype
        self.vocab = weights.output.rows
        if getattr(dev, "is_cpu", False):
            prefill_chunk = min(prefill_chunk, CPU_PREFILL_BUCKETS[-1])
            table = CPU_PREFILL_BUCKETS
        else:
            table = PREFILL_BUCKETS
        self.buckets = tuple(b for b in table if b < prefill_chunk) + (prefill_chunk,)
        self.cached: list[int] = []   # ids whose K/V rows 0..len-1 are in the cache
        self.pos = 0                  # position of the next token to feed (the last sampled one)
        self.stats = {"prefill_s": 0.0, "prefill_tokens": 0, "decode_s": 0.0,
                      "decode_tokens": 0, "host_s": 0.0}
        self._plans: dict = {}
        self._all_logits = None       # (rows, vocab) f32 for logits(), made on first use

    async def setup(self) -> "Model":
        dev, cfg = self.dev, self.config
        self.cache = KVCache(dev, cfg.n_layers, self.context_length, cfg.n_kv_heads, cfg.head_dim,
                             dtype=self.kv_dtype)
        self.ropes = self._rope_tables()
        self.step = step_params(dev, 0, 1)
        t_max = self.buckets[-1]
        self.ids = dev.create_buffer(4 * t_max, kind="activations", label="prompt.ids")
        self.last = dev.create_buffer(16, kind="activations", label="prompt.last")
        self.history = dev.create_buffer(4 * (self.context_length + 1), kind="activations",
                                         label="history")
        self.acts1 = Activations.create(dev, cfg, 1, "decode")
        self.acts = Activations.create(dev, cfg, t_max, "prefill")
        self.logits_buf = dev.create_buffer(4 * self.vocab, kind="activations", label="logits")
        self.last_row = dev.create_buffer(4 * cfg.dim, kind="activations", label="last_row")
        self.sampler = await Sampler(dev, self.vocab).setup()
        self.sampler.configure(GREEDY)
        await dev.check("allocating the KV cache and work buffers")
        return self

    def _rope_tables(self) -> list[RopeTable]:
        cfg, w = self.config, self.weights
        rs = cfg.rope_scaling
        scaling = None
        if rs.kind == "linear":
            scaling = {"rope_type": "linear", "factor": rs.factor}
        elif rs.kind == "llama3":
            scaling = {"rope_type": "llama3", "factor": rs.factor,
                       "low_freq_factor": rs.low_freq_factor,
                       "high_freq_factor": rs.high_freq_factor,
                       "original_max_position_embeddings": rs.original_context}
        elif rs.kind == "longrope":
            scaling = {"rope_type": "longrope",
                       "short_factor": list(w.rope_short or rs.short_factor),
                       "long_factor": list(w.rope_long or rs.long_factor),
                       "original_max_position_embeddings": rs.original_context,
                       "max_position_embeddings": cfg.context_length}
            if rs.attention_factor:
                scaling["attention_factor"] = rs.attention_factor
        glob = rope_table(self.dev, cfg.rope_dim, cfg.rope_theta, scaling, w.rope_freqs,
                          label="rope.global")
        tables = [glob] * cfg.n_layers
        if cfg.rope_theta_local:
            local = rope_table(self.dev, cfg.rope_dim, cfg.rope_theta_local, None,
                               label="rope.local")
            tables = [local if cfg.is_local(i) else glob for i in range(cfg.n_layers)]
        self._rope_buffers = list({id(t): t for t in tables}.values())
        return tables

    # -- plans ------------------------------------------------------------------------------
    async def _plan(self, key):
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        dev, cfg, w = self.dev, self.config, self.weights
        plan = dev.plan(str(key))
        kind = key[0]
        if kind == "decode":
            final = await record_body(dev, cfg, w, self.cache, self.ropes, self.acts1,
                                      self.sampler.result, self.step, 1, plan,
                                      q8=self.decode_q8, fold_final=True)
            # final: acts1.x when the final rmsnorm is folded into the lm_head matvec
            await self._record_head(self.acts1.xn, plan,
                                    norm=None if final is None else (final, cfg.norm_eps))
        elif kind == "body":
            await record_body(dev, cfg, w, self.cache, self.ropes, self.acts, self.ids, self.step,
                              key[1], plan)
        elif kind == "head":
            rows = GPUWeight("prefill.xn", "f32", self.acts.tokens, cfg.dim,
                             [Chunk(self.acts.xn, 0, self.acts.tokens)])
            await embedding(dev, rows, self.last, 1, out=self.last_row, target=plan)
            await self._record_head(self.last_row, plan)
        elif kind == "all_logits":
            t = min(key[1], self._logits_rows())    # rows past the chunk's n are not read
            if self._all_logits is None:
                self._all_logits = dev.create_buffer(4 * self._logits_rows() * self.vocab,
                                                     kind="activations", label="logits.all")
            await matmul_q(dev, w.output, self.acts.xn, t, out=self._all_logits, target=plan)
            if cfg.final_softcap:
                await softcap(dev, self._all_logits, t * self.vocab, cfg.final_softcap, target=plan)
        await dev.check(f"recording the {key} plan")
        self._plans[key] = plan
        return plan

    async def _record_head(self, xn, plan, norm=None) -> None:
        """lm_head over xn (norm = (x, eps): xn holds x * g' and matvec applies the final
        rmsnorm's scale), softcap, sample, store the id."""
        dev, cfg = self.dev, self.config
        out = self.weights.output
        xq = None
        if norm is None and self.decode_q8 and out.layout in Q8_UNIT and out.cols % 32 == 0:
            xq = await quantize_x(dev, xn, out.cols, target=plan)
            for b in (xq.q, xq.ds, xq.inv):
                plan.keep(b)
        await matvec(dev, out, xn, out=self.logits_buf, target=plan, xq=xq, norm=norm)
        if cfg.final_softcap:
            await softcap(dev, self.logits_buf, self.vocab, cfg.final_softcap, target=plan)
        self.sampler.sample(self.logits_buf, target=plan)
        await token_store(dev, self.sampler.result, self.history, self.step, target=plan)

    def _replay(self, plan, pos: int | None = None, n: int = 1, seq_end: int = 0) -> None:
        t0 = time.perf_counter()
        if pos is None:
            self.dev.replay(plan)
        else:
            self.dev.replay(plan, self.step, struct.pack("<4I", pos, n, pos + n, seq_end))
        self.stats["host_s"] += time.perf_counter() - t0

    def _bucket(self, n: int) -> int:
        return next(b for b in self.buckets if b >= n)

    async def _run_body(self, ids: list[int], pos: int) -> int:
        """Feed `ids` at positions pos.. in chunks; returns the size of the last chunk."""
        t_max = self.buckets[-1]
        n = 0
        for c in range(0, len(ids), t_max):
            chunk = ids[c:c + t_max]
            n = len(chunk)
            self.dev.write(self.ids, struct.pack(f"<{n}I", *chunk))
            self._replay(await self._plan(("body", self._bucket(n))), pos + c, n,
                         seq_end=pos + len(ids))
        return n

    # -- the named steps ----------------------------------------------------------------------
    def _check_ids(self, ids) -> list[int]:
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("the prompt is empty")
        bad = [i for i in ids if not 0 <= i < self.vocab]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary (0..{self.vocab - 1})")
        if len(ids) >= self.context_length:
            raise ContextLengthError(
                f"the prompt has {len(ids)} tokens; this model was loaded with a context of "
                f"{self.context_length} tokens, which must also hold the reply. Shorten the "
                "conversation or load the model with a longer context.")
        return ids

    async def prefill(self, ids, params: SamplingParams | None = None) -> int:
        """Run the prompt (only the part past the prefix already in the KV cache) and sample the
        first token. Penalty counts restart from the prompt."""
        ids = self._check_ids(ids)
        t0 = time.perf_counter()
        keep = 0
        for a, b in zip(self.cached, ids):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(ids) - 1)      # at least one token runs, to produce logits
        self.sampler.configure(params or GREEDY)
        self.sampler.reset()
        self.sampler.record_tokens(ids)
        n = await self._run_body(ids[keep:], keep)
        self.dev.write(self.last, struct.pack("<I", n - 1))
        self._replay(await self._plan(("head",)))      # step still holds the last chunk
        self.pos = len(ids)
        tok = await self._read_history(self.pos, 1)
        self.cached = ids
        self.stats["prefill_s"] += time.perf_counter() - t0
        self.stats["prefill_tokens"] += len(ids) - keep
        self.stats["prefill_reused"] = keep
        return tok[0]

    async def decode_one(self) -> int:
        return (await self.decode_n(1))[0]

    async def decode_n(self, n: int) -> list[int]:
        """n decode steps chained on the GPU, then one readback of the n chosen ids."""
        if n < 1:
            raise ValueError(f"decode_n: n must be >= 1, got {n}")
        if self.pos + n > self.context_length:
            raise ContextLengthError(f"decoding {n} more tokens at position {self.pos} would "
                                     f"pass the context length {self.context_length}")
        t0 = time.perf_counter()
        plan = await self._plan(("decode",))
        for i in range(n):
            self._replay(plan, self.pos + i, 1)
        fed = self._last          # the token fed at self.pos: the one sampled before
        toks = await self._read_history(self.pos + 1, n)
        # K/V now hold the fed tokens: the previously sampled one and all but the last new one.
        self.cached = self.cached + [fed] + toks[:-1]
        self.pos += n
        self.stats["decode_s"] += time.perf_counter() - t0
        self.stats["decode_tokens"] += n
        return toks

    async def _read_history(self, start: int, n: int) -> list[int]:
        data = await self.dev.read(self.history, 4 * start, 4 * n)
        toks = list(struct.unpack(f"<{n}I", data))
        self._last = toks[-1]
        return toks

    async def generate(self, ids, params: SamplingParams | None = None, max_tokens: int = 256,
                       stop_ids=(), batch: int = DECODE_BATCH,
                       with_logprobs: bool = False) -> AsyncIterator[int]:
        """Yield up to max_tokens ids (a stop id is yielded, then generation ends). Stops early
        at the context end. Decode steps run `batch` at a time between readbacks; steps past a
        stop id are wasted work, never visible.

        with_logprobs: yield the sampler's SampleResult of each step instead of its id (.id,
        .logprob, .top: params.logprobs (id, logprob) pairs); one readback per token, since
        the result buffer holds only the latest step's."""
        stop = set(stop_ids)
        if with_logprobs:
            async for r in self._generate_results(ids, params, max_tokens, stop):
                yield r
            return
        tok = await self.prefill(ids, params)
        yield tok
        count = 1
        while count < max_tokens and tok not in stop:
            k = min(batch, max_tokens - count, self.context_length - self.pos)
            if k <= 0:
                return
            for tok in await self.decode_n(k):
                yield tok
                count += 1
                if tok in stop:
                    return

    async def _generate_results(self, ids, params, max_tokens: int, stop: set):
        tok = await self.prefill(ids, params)
        r = await self.sampler.read_result()
        if r.id != tok:
            raise RuntimeError(f"sampler result {r.id} disagrees with the stored token {tok}")
        yield r
        count = 1
        while count < max_tokens and r.id not in stop and self.pos < self.context_length:
            tok = (await self.decode_n(1))[0]
            r = await self.sampler.read_result()
            if r.id != tok:
                raise RuntimeError(f"sampler result {r.id} disagrees with the stored token {tok}")
            yield r
            count += 1

    async def logits(self, ids) -> bytes:
        """f32 (len(ids), vocab) logits of every position, the sequence starting at position 0
        (the KV cache is overwritten). After final softcapping, before any sampling."""
        ids = [int(i) for i in ids]
        if not ids or len(ids) > self.context_length:
            raise ContextLengthError(f"logits: {len(ids)} tokens vs context {self.context_length}")
        out = []
        t_max = self._logits_rows()
        for c in range(0, len(ids), t_max):
            chunk = ids[c:c + t_max]
            n = len(chunk)
            self.dev.write(self.ids, struct.pack(f"<{n}I", *chunk))
            t = self._bucket(n)
            self._replay(await self._plan(("body", t)), c, n, seq_end=len(ids))
            self._replay(await self._plan(("all_logits", t)))
            out.append(await self.dev.read(self._all_logits, 0, 4 * n * self.vocab))
        self.cached = ids
        self.pos = len(ids)
        return b"".join(bytes(o) for o in out)

    def _logits_rows(self) -> int:
        """Tokens per logits() chunk: a prefill chunk, fewer when (rows, vocab) f32 would not
        fit one storage binding (262144-entry vocabularies)."""
        fit = self.dev.limits["maxStorageBufferBindingSize"] // (4 * self.vocab)
        return max(1, min(self.buckets[-1], fit))

    def reset(self) -> None:
        """Forget the cached prefix (the next prefill runs the whole prompt)."""
        self.cached, self.pos = [], 0

    def destroy(self) -> None:
        dev = self.dev
        for plan in self._plans.values():
            plan.destroy()
        self._plans.clear()
        for part in ("acts1", "acts"):
            if hasattr(self, part):
                getattr(self, part).destroy(dev)
        for name in ("ids", "last", "history", "logits_buf", "last_row", "step", "_all_logits"):
            buf = getattr(self, name, None)
            if buf is not None:
                dev.destroy_buffer(buf)
        for t in getattr(self, "_rope_buffers", []):
            dev.destroy_buffer(t.buffer)
        if hasattr(self, "sampler"):
            self.sampler.destroy()
        if hasattr(self, "cache"):
            self.cache.destroy()
        self.weights.destroy(dev)
