"""Usage math (app/runtime/usage.py): rates from the model's counter deltas, prefill counting only
the tokens actually prefilled (not the reused prefix), times from the call."""
from __future__ import annotations

import pytest

from app.runtime.usage import empty_usage, stats_mark, usage


def test_rates_and_times():
    before = stats_mark({"prefill_s": 1.0, "prefill_tokens": 100, "decode_s": 2.0,
                         "decode_tokens": 40, "host_s": 9.0})
    after = {"prefill_s": 1.5, "prefill_tokens": 110, "decode_s": 3.0, "decode_tokens": 60}
    u = usage(prompt_tokens=50, completion_tokens=21, cached_tokens=40, before=before,
              after=after, t_call=10.0, t_first=10.75, t_end=12.0)
    assert u == {"prompt_tokens": 50, "completion_tokens": 21, "cached_tokens": 40,
                 "prefill_tokens_per_s": pytest.approx(20.0),   # 10 new tokens in 0.5 s
                 "decode_tokens_per_s": pytest.approx(20.0),    # 20 steps in 1 s
                 "time_to_first_token_s": pytest.approx(0.75), "e2e_latency_s": pytest.approx(2.0)}


def test_no_decode_step_and_no_token():
    s = {"prefill_s": 0.0, "prefill_tokens": 0, "decode_s": 0.0, "decode_tokens": 0}
    u = usage(3, 1, 0, s, {**s, "prefill_s": 0.1, "prefill_tokens": 3}, 0.0, 0.2, 0.3)
    assert u["decode_tokens_per_s"] == 0.0 and u["prefill_tokens_per_s"] == pytest.approx(30.0)
    e = empty_usage(1.0, 1.5, prompt_tokens=7)
    assert e["completion_tokens"] == 0 and e["time_to_first_token_s"] is None
    assert e["e2e_latency_s"] == pytest.approx(0.5) and e["prompt_tokens"] == 7
