"""CpuModel: the model interface the runtime drives (app.models.Model's generate, reset,
destroy, stats, context_length, config), over a wllama engine (wllama.py).

The runtime hands over prompt ids made by our tokenizer and chat template; wllama 3's completion
API takes text (a token-id prompt crashes its glue), so the ids are decoded with their special
tokens kept and llama.cpp re-tokenizes them with special-token parsing. Its tokenizer is the one
our tokenizer is tested against (llama.cpp's vocab fixtures), so the ids are the same; each
request checks that the prompt token count llama.cpp reports equals ours and records a mismatch
in stats["prompt_mismatches"]. A leading bos id is left out of the text when llama.cpp adds one
itself.

Each streamed chunk carries the sampled token's id (n_probs >= 1), so generate() yields ids (or
SampleResults) exactly like the GPU model, and the runtime's detokenizer, stop strings and usage
work unchanged. llama.cpp ends at an end-of-generation token without streaming it: generate()
then yields one of the caller's stop ids, as the GPU model yields the stop token it sampled.

Sampling: the runtime's SamplingParams mapped to llama.cpp's fields with the same order as ours
(penalties over the whole context, temperature, top-k, top-p, min-p, then one draw; temperature
0 is greedy). logprobs are llama.cpp's: log-softmax of the raw logits (before penalties and
temperature).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from ..kernels.sampling import SampleResult, SamplingParams

SAMPLERS = ["penalties", "temperature", "top_k", "top_p", "min_p"]


@dataclass(frozen=True)
class CpuInfo:
    threads: int
    multithread: bool
    cross_origin_isolated: bool
    llama_cpp: str | None
    wllama: str | None


def sampling_fields(params: SamplingParams, context_length: int) -> dict:
    """llama.cpp server fields for `params` (every field set: the server's defaults differ).
    The penalty window is the whole context (as ours); wllama 3.13 rejects -1 for that."""
    seed = params.seed if params.seed is not None else random.getrandbits(31)
    return {
        "temperature": float(params.temperature), "top_k": int(params.top_k),
        "top_p": float(params.top_p), "min_p": float(params.min_p),
        "repeat_penalty": float(params.repetition_penalty), "repeat_last_n": int(context_length),
        "presence_penalty": float(params.presence_penalty),
        "frequency_penalty": float(params.frequency_penalty),
        "typical_p": 1.0, "dry_multiplier": 0.0, "xtc_probability": 0.0,
        "samplers": SAMPLERS, "seed": int(seed) & 0x7FFFFFFF,
        "n_probs": max(1, int(params.logprobs)),
    }


def _result(entry: dict) -> SampleResult:
    top = [(int(t["id"]), float(t["logprob"])) for t in entry.get("top_logprobs") or ()]
    return SampleResult(id=int(entry["id"]), logprob=float(entry.get("logprob", 0.0)), top=top,
                        n_kept=0, max_logit=float("nan"), sum_exp=float("nan"),
                        cut=float("-inf"), kept_mass=float("nan"))


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class CpuModel:
    backend = "cpu"

    def __init__(self, engine, tokenizer, config, context_length: int, info: CpuInfo):
        self.engine, self.tok, self.config = engine, tokenizer, config
        self.context_length = int(context_length)
        self.info = info
        self.cached: list[int] = []          # ids llama.cpp's slot holds, as far as we know
        self._fresh = False                  # reset(): the next request must not reuse the cache
        self.stats = {"prefill_s": 0.0, "prefill_tokens": 0, "decode_s": 0.0,
                      "decode_tokens": 0, "prefill_reused": 0, "prompt_mismatches": 0}
        ids = engine.info
        self._drop_bos = bool(ids.get("add_bos")) and ids.get("bos") is not None
        self._bos = ids.get("bos")

    def prompt_text(self, ids) -> tuple[str, int]:
        """(text for llama.cpp, the token count it should tokenize to)."""
        ids = list(ids)
        if self._drop_bos and ids and ids[0] == self._bos:
            return self.tok.decode(ids[1:], skip_special_tokens=False), len(ids)
        return self.tok.decode(ids, skip_special_tokens=False), len(ids)

    def reset(self) -> None:
        """Forget the KV cache: the next request prefills its whole prompt."""
        self.cached = []
        self._fresh = True

    def destroy(self) -> None:
        """Free the engine (wllama's memory and workers); the model is unusable after."""
        import asyncio
        if not self.engine.closed:
            asyncio.ensure_future(self.engine.exit())

    async def generate(self, ids, params: SamplingParams | None = None, max_tokens: int = 256,
                       stop_ids=(), with_logprobs: bool = False, **_):
        """Yield up to max_tokens ids (SampleResults with_logprobs), like Model.generate: a
        stop id is yielded last; the context's end stops it early."""
        params = params or SamplingParams()
        ids = list(ids)
        stop = set(stop_ids)
        room = self.context_length - len(ids)
        if room < 1:
            from ..models import ContextLengthError
            raise ContextLengthError(f"the prompt has {len(ids)} tokens; the context holds "
                                     f"{self.context_length}")
        text, n_prompt = self.prompt_text(ids)
        opts = {"prompt": text, "max_tokens": min(int(max_tokens), room),
                "cache_prompt": not self._fresh,
                **sampling_fields(params, self.context_length)}
        if not params.logprobs:
            opts["n_probs"] = 1
        self._fresh = False
        reused = min(common_prefix(self.cached, ids), len(ids) - 1)
        self.stats["prefill_reused"] = max(0, reused)
        self.cached = list(ids)
        stream = self.engine.start(opts)
        t0 = time.perf_counter()
        t_first = t_last = None
        count, final = 0, None
        try:
            async for chunk in stream:
                choice = (chunk.get("choices") or [{}])[0]
                for entry in ((choice.get("logprobs") or {}).get("content") or ()):
                    now = time.perf_counter()
                    if t_first is None:
                        t_first = now
                    t_last = now
                    count += 1
                    self.cached.append(int(entry["id"]))
                    yield _result(entry) if with_logprobs else int(entry["id"])
                if choice.get("finish_reason"):
                    final = chunk
            if final is not None:
                reason = final["choices"][0]["finish_reason"]
                if reason == "stop" and stop and count < max_tokens:
                    # llama.cpp stopped at an end-of-generation token it does not stream.
                    eog = self._stop_token(stop)
                    count += 1
                    self.cached.append(eog)
                    yield (SampleResult(eog, 0.0, [], 0, float("nan"), float("nan"),
                                        float("-inf"), float("nan"))
                           if with_logprobs else eog)
        finally:
            if final is None:        # left early (stop string, stop id, interrupt): stop it
                stream.abort()
            self._account(final, n_prompt, reused, t0, t_first, t_last, count)

    def _stop_token(self, stop: set) -> int:
        info = self.engine.info
        for cand in (info.get("eot"), info.get("eos"), *info.get("eog", ())):
            if cand in stop:
                return cand
        return min(stop)

    def _account(self, final, n_prompt, reused, t0, t_first, t_last, count) -> None:
        s = self.stats
        timings = (final or {}).get("timings")
        usage = (final or {}).get("usage") or {}
        if usage.get("prompt_tokens") is not None and int(usage["prompt_tokens"]) != n_prompt:
            s["prompt_mismatches"] += 1
        if timings:
            s["prefill_reused"] = int(timings.get("cache_n", s["prefill_reused"]))
            s["prefill_s"] += float(timings.get("prompt_ms", 0.0)) / 1000
            s["prefill_tokens"] += int(timings.get("prompt_n", 0))
            s["decode_s"] += float(timings.get("predicted_ms", 0.0)) / 1000
            # llama.cpp's predicted_n counts the first token, which came out of the prefill.
            s["decode_tokens"] += max(0, int(timings.get("predicted_n", 0)) - 1)
        elif t_first is not None:
            # Stopped early (a stop string, interrupt): wall-clock figures of what ran.
            s["prefill_s"] += t_first - t0
            s["prefill_tokens"] += n_prompt - reused
            s["decode_s"] += (t_last - t_first) if t_last is not None else 0.0
            s["decode_tokens"] += max(0, count - 1)
