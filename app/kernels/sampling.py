"""Sampling on the GPU: penalties, greedy / temperature / top-k / top-p / min-p, a seeded
counter-based RNG, and logprobs. Only the result buffer (the chosen id, optionally top-n
logprobs) is read back per step.

    sampler = Sampler(dev, vocab)
    await sampler.setup()
    sampler.configure(SamplingParams(temperature=0.7, top_p=0.9, seed=1))
    sampler.reset(); sampler.record_tokens(prompt_ids)       # penalty counts of the context
    sampler.sample(logits)                                   # 2 dispatches, params written first
    r = await sampler.read_result()                          # r.id, r.logprob, r.top

With a recorded plan: `sampler.sample(logits, target=plan)` once, then just replay: the params
uniform is written only when the settings change (configure), the RNG step counter lives on the
GPU (sample.wgsl result[8], advanced by every step) and the chosen token's count is incremented
on the GPU (params.record), so a decode step needs no sampler write and no host round trip.

Per step: 2 dispatches. shaders/logits_penalty.wgsl (ceil(V / 1024) workgroups: penalties,
per-chunk max / argmax / sum exp), then shaders/sample.wgsl (one workgroup: the cut by radix
select, the draw, logprobs). Passes of that workgroup over the V logits: greedy 0, top-k 4,
top-p 4, kept mass 1, logprobs 5. Semantics and the result layout: shaders/sample.wgsl.
On CPU adapters (dev.is_cpu) logits_penalty.wgsl runs its CPU variant (one invocation per
1024-entry chunk, no barriers; same partials); sample.wgsl is the same on every adapter.
Logprobs are log_softmax(z / T) over the full vocab after penalties and temperature, before
the top-k / top-p / min-p truncation (T = 1 when greedy).
"""
from __future__ import annotations

import array
import math
import secrets
import struct
from dataclasses import dataclass

from ..gpu import Buffer, BufferUsage, Device
from .grid import grid, uniform

CHUNK = 1024           # logits per workgroup of logits_penalty.wgsl
CPU_WG = 8             # its CPU variant: chunks per workgroup (one invocation each)
MAX_LOGPROBS = 20      # as OpenAI's top_logprobs
HEADER = 16            # u32 words before the logprob pairs (sample.wgsl)
STEP_WORD = 8          # result word holding the GPU-side RNG step counter (sample.wgsl)
DRAWS = HEADER + 2 * MAX_LOGPROBS
# shaders/sample_params.wgsl: vocab, n_wg, greedy, top_k | temperature, top_p, min_p,
# repetition_penalty, presence_penalty, frequency_penalty | seed, step | n_logprobs, n_draws,
# record, pad
_PARAMS_FMT = "<4I6f2I4I"
_UNIFORM = BufferUsage.UNIFORM | BufferUsage.COPY_DST


class SamplingParamsError(ValueError):
    """A sampling parameter is out of range; the message names it and its valid range."""


@dataclass(frozen=True)
class SamplingParams:
    """HF transformers / llama.cpp conventions, applied in this order:
    penalties (tokens counted in the context: repetition z > 0 ? z / p : z * p, then
    z -= frequency * count + presence), temperature (0 = greedy), top-k (0 = off), top-p
    (1 = off), min-p (0 = off), then one draw. top_k == 1 is greedy too. seed None = random.
    Top-p and min-p see z / T as in HF (llama.cpp's default chain applies T after them).
    logprobs = how many top (id, logprob) pairs to return (0..20)."""
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logprobs: int = 0

    def __post_init__(self):
        def bad(name, why):
            raise SamplingParamsError(f"{name}={getattr(self, name)!r}: {why}")
        for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                     "frequency_penalty"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, "must be a finite number")
        for name in ("top_k", "logprobs"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                bad(name, "must be an integer")
        if self.temperature < 0:
            bad("temperature", "must be >= 0 (0 = greedy)")
        if self.top_k < 0:
            bad("top_k", "must be >= 0 (0 = off)")
        if not 0 < self.top_p <= 1:
            bad("top_p", "must be in (0, 1] (1 = off)")
        if not 0 <= self.min_p <= 1:
            bad("min_p", "must be in [0, 1] (0 = off)")
        if self.repetition_penalty <= 0:
            bad("repetition_penalty", "must be > 0 (1 = off)")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                bad(name, "must be in [-2, 2] (0 = off), as OpenAI's API")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2 ** 32):
            bad("seed", "must be None or an integer in [0, 2^32)")
        if not 0 <= self.logprobs <= MAX_LOGPROBS:
            bad("logprobs", f"must be in [0, {MAX_LOGPROBS}]")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


@dataclass(frozen=True)
class SampleResult:
    id: int
    logprob: float                      # of the chosen token (see the module docstring)
    top: list                           # [(id, logprob)] most likely first, len = logprobs
    n_kept: int                         # tokens that survived top-k / top-p / min-p (1 greedy)
    max_logit: float                    # max penalized logit
    sum_exp: float                      # sum exp((z - max) / T)
    cut: float                          # kept tokens have z >= cut (-inf: no top-k/top-p cut)
                                        # and pass the min-p test
    kept_mass: float                    # sum of exp((z - max) / T) over the kept tokens


class Sampler:
    """GPU sampling state for one vocab size: penalty counts, params, result. Create once per
    model; `max_draws` > 1 only for tests that draw many times from one distribution. `cpu`
    picks logits_penalty's barrier-free variant (same partials; default: dev.is_cpu)."""

    def __init__(self, dev: Device, vocab: int, max_draws: int = 1, cpu: bool | None = None):
        if vocab <= 0 or max_draws <= 0:
            raise ValueError(f"Sampler: vocab {vocab} and max_draws {max_draws} must be positive")
        self.dev, self.vocab, self.max_draws = dev, vocab, max_draws
        self.n_wg = -(-vocab // CHUNK)
        self.cpu = getattr(dev, "is_cpu", False) if cpu is None else cpu
        self.params = SamplingParams()
        self.seed = 0
        self.record = True
        self._written = None
        self._bind_cache: dict = {}

    async def setup(self) -> "Sampler":
        dev, v = self.dev, self.vocab
        self.counts = dev.create_buffer(4 * v, kind="activations", label="sampler.counts")
        self.adjusted = dev.create_buffer(4 * v, kind="activations", label="sampler.adjusted")
        self.partials = dev.create_buffer(16 * self.n_wg, kind="activations",
                                          label="sampler.partials")
        self.uniform = dev.create_buffer(64, kind="uniforms", label="sampler.params",
                                         usage=_UNIFORM)
        self.result = dev.create_buffer(4 * (DRAWS + self.max_draws), kind="activations",
                                        label="sampler.result")
        self._penalty = await dev.pipeline("logits_penalty", "main", None, {"CPU": self.cpu})
        self._select = await dev.pipeline("sample", "main")
        self._count = await dev.pipeline("sample_count", "main")
        self._select_bg = dev.bind(self._select, [self.adjusted, self.partials, self.uniform,
                                                  self.counts, self.result])
        self.reset()
        self.configure(self.params)
        return self

    # -- state ---------------------------------------------------------------------------------
    def configure(self, params: SamplingParams, record: bool = True) -> None:
        """New params; the RNG restarts at step 0 (same seed -> same tokens). record: count each
        chosen token on the GPU for the penalties."""
        self.params = params
        self.seed = secrets.randbits(32) if params.seed is None else params.seed
        self.record = record
        self.write_params()
        # Restart the GPU-side step counter (result[8]).
        self.dev.write(self.result, bytes(4), offset=4 * STEP_WORD)

    def reset(self) -> None:
        """Forget the context: all penalty counts to 0."""
        self.dev.write(self.counts, bytes(4 * self.vocab))

    def record_tokens(self, ids) -> None:
        """counts[id] += 1 for each id (the prompt, or tokens chosen elsewhere), on the GPU."""
        ids = array.array("I", [int(i) for i in ids])
        if not ids:
            return
        if any(i >= self.vocab for i in ids):
            raise ValueError(f"record_tokens: ids must be < vocab {self.vocab}")
        dev = self.dev
        buf = dev.upload(ids.tobytes(), kind="activations", label="sampler.ids")
        shape = uniform(dev, "<4I", len(ids), self.vocab, 0, 0, label="sampler.count_shape")
        dev.dispatch(self._count, [dev.bind(self._count, [buf, self.counts, shape])],
                     grid(-(-len(ids) // 256)))
        dev.destroy_buffer(buf)   # WebGPU frees it after the submitted work is done
        dev.destroy_buffer(shape)

    def write_params(self, n_draws: int = 1, record: bool | None = None) -> None:
        """Write the params uniform (after configure, or to change n_draws/record)."""
        if not 1 <= n_draws <= self.max_draws:
            raise ValueError(f"n_draws {n_draws} must be in [1, max_draws={self.max_draws}]")
        p = self.params
        record = self.record if record is None else record
        self.dev.write(self.uniform, struct.pack(
            _PARAMS_FMT, self.vocab, self.n_wg, int(p.greedy), p.top_k,
            p.temperature, p.top_p, p.min_p, p.repetition_penalty, p.presence_penalty,
            p.frequency_penalty, self.seed, 0,
            p.logprobs, n_draws, int(record), 0))
        self._written = (n_draws, record)

    # -- per step ------------------------------------------------------------------------------
    def sample(self, logits: Buffer, target=None) -> None:
        """Dispatch (or record into `target`) the two sampling passes over `logits` (f32, at
        least vocab entries). Each executed step advances the GPU-side RNG counter."""
        if self._written != (1, self.record):
            self.write_params()
        self._dispatch(logits, self.dev if target is None else target)

    def _dispatch(self, logits: Buffer, target) -> None:
        if logits.size < 4 * self.vocab:
            raise ValueError(f"sample: logits {logits.label!r} holds {logits.size // 4} f32, "
                             f"vocab is {self.vocab}")
        bg = self._bind_cache.get(logits)
        if bg is None:
            bg = self._bind_cache[logits] = self.dev.bind(
                self._penalty, [logits, self.counts, self.uniform, self.adjusted, self.partials])
        groups = -(-self.n_wg // CPU_WG) if self.cpu else self.n_wg
        target.dispatch(self._penalty, [bg], (groups, 1, 1))
        target.dispatch(self._select, [self._select_bg], (1, 1, 1))

    async def read_result(self) -> SampleResult:
        """Reads back only the header and the requested logprob pairs."""
        n = self.params.logprobs
        w = await self.dev.read(self.result, 0, 4 * (HEADER + 2 * n))
        u = struct.unpack(f"<{HEADER + 2 * n}I", w)
        f = struct.unpack(f"<{HEADER + 2 * n}f", w)
        top = [(u[HEADER + 2 * r], f[HEADER + 2 * r + 1]) for r in range(n)]
        return SampleResult(u[0], f[1], top, u[3], f[4], f[5], f[6], f[7])

    async def sample_many(self, logits: Buffer, n: int) -> list[int]:
        """Test/debug: n draws (RNG draws 0..n-1 of the current step) from ONE distribution,
        without recording them in the counts. Draw 0 is what sample() would have chosen."""
        self.write_params(n_draws=n, record=False)
        self._dispatch(logits, self.dev)
        data = await self.dev.read(self.result, 4 * DRAWS, 4 * n)
        return list(struct.unpack(f"<{n}I", data))

    def destroy(self) -> None:
        for b in (self.counts, self.adjusted, self.partials, self.uniform, self.result):
            self.dev.destroy_buffer(b)
        self._bind_cache.clear()

