"""The stats panel: the last reply's time to first token, prefill and decode speed, the GPU
memory in use (the allocation ledger) against the limit with a warning near it, and the chart
of decode speed over the conversation."""
from __future__ import annotations

from . import chart
from . import format as fmt

NEAR_LIMIT = 0.9


def memory_line(memory: dict | None) -> tuple[str, float | None, bool]:
    """(text, fraction of the budget, near the limit) from runtime_info()["memory"] (pure)."""
    if not memory:
        return "—", None, False
    total, budget = memory.get("total") or 0, memory.get("budget")
    text = f"{fmt.size(total)} in use"
    frac = None
    if budget:
        frac = total / budget
        text = f"{fmt.size(total)} of {fmt.size(budget)} ({100 * frac:.0f}%)"
    return text, frac, bool(frac is not None and frac >= NEAR_LIMIT)


class StatsPanel:
    def __init__(self, document):
        self.doc = document

    def _set(self, element_id: str, text: str) -> None:
        self.doc.getElementById(element_id).textContent = text

    def reply(self, usage: dict | None, backend: str | None = None) -> None:
        """The last reply's figures (its usage dict), or dashes."""
        u = usage or {}
        self._set("st-ttft", fmt.duration(u.get("time_to_first_token_s")))
        self._set("st-prefill", fmt.rate(u.get("prefill_tokens_per_s")))
        self._set("st-decode", fmt.rate(u.get("decode_tokens_per_s")))
        self._set("st-tokens", f"{u['prompt_tokens']} in · {u['completion_tokens']} out"
                  if "prompt_tokens" in u else "—")

    def memory(self, memory: dict | None, warning: str | None = None) -> None:
        text, frac, near = memory_line(memory)
        self._set("gpu-memory", text)
        meter = self.doc.getElementById("gpu-meter")
        meter.style.width = f"{100 * min(frac or 0, 1):.1f}%"
        meter.className = "high" if near else ""
        warn = self.doc.getElementById("gpu-warning")
        if warning or near:
            warn.textContent = warning or ("GPU memory is nearly full: a longer conversation or a "
                                           "bigger model may fail. Pick a smaller model or "
                                           "start a new chat.")
            warn.hidden = False
        else:
            warn.hidden = True

    def chart(self, rates: list[float]) -> None:
        chart.draw(self.doc.getElementById("rate-chart"), rates)
