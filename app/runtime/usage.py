"""Usage figures of one request, from wall-clock marks and the model's own counters.

    usage = {prompt_tokens, completion_tokens, cached_tokens, prefill_tokens_per_s,
             decode_tokens_per_s, time_to_first_token_s, e2e_latency_s}

prompt_tokens     tokens of the prompt (after truncation), the reused prefix included
cached_tokens     of those, the prefix whose K/V rows were already in the cache (not recomputed)
completion_tokens tokens the model sampled for this request, a final stop token included
prefill_tokens_per_s  tokens actually prefilled (prompt_tokens - cached_tokens) over the
                  prefill's time (model.stats prefill_s), i.e. the reused prefix is NOT counted
decode_tokens_per_s   decode steps over their time (model.stats decode_*); steps run past a stop
                  token inside a readback batch are counted, as they cost the same. 0.0 when
                  no decode step ran (a 1-token reply)
time_to_first_token_s from the call (chat/complete/create) to the first sampled token: queueing
                  behind earlier requests, tokenization and prefill included
e2e_latency_s     from the call to the end of the request
"""
from __future__ import annotations

STAT_KEYS = ("prefill_s", "prefill_tokens", "decode_s", "decode_tokens")


def stats_mark(stats: dict) -> dict:
    """The counters of model.stats now (to subtract later)."""
    return {k: stats.get(k, 0) for k in STAT_KEYS}


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int, before: dict,
          after: dict, t_call: float, t_first: float | None, t_end: float) -> dict:
    d = {k: after[k] - before[k] for k in STAT_KEYS}
    prefilled = d["prefill_tokens"]
    return {
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "cached_tokens": int(cached_tokens),
        "prefill_tokens_per_s": prefilled / d["prefill_s"] if d["prefill_s"] > 0 and prefilled
        else 0.0,
        "decode_tokens_per_s": d["decode_tokens"] / d["decode_s"] if d["decode_s"] > 0
        and d["decode_tokens"] else 0.0,
        "time_to_first_token_s": (t_first - t_call) if t_first is not None else None,
        "e2e_latency_s": t_end - t_call,
    }


def empty_usage(t_call: float, t_end: float, prompt_tokens: int = 0) -> dict:
    """A request that ended before any GPU work (aborted while queued)."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "cached_tokens": 0,
            "prefill_tokens_per_s": 0.0, "decode_tokens_per_s": 0.0,
            "time_to_first_token_s": None, "e2e_latency_s": t_end - t_call}
