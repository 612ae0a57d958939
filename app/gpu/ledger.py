"""Allocation ledger: live GPU bytes by kind, and the peak of their sum.

Kinds are free-form strings; the engine uses "weights", "kv_cache", "activations", "staging" and
"uniforms". The ledger feeds memory stats in the UI, warnings near the device limit and leak tests.
"""
from __future__ import annotations

from collections import defaultdict


class Ledger:
    def __init__(self) -> None:
        self.live: dict[str, int] = defaultdict(int)
        self.count: dict[str, int] = defaultdict(int)
        self.peak = 0

    @property
    def total(self) -> int:
        return sum(self.live.values())

    def alloc(self, kind: str, nbytes: int) -> None:
        self.live[kind] += nbytes
        self.count[kind] += 1
        self.peak = max(self.peak, self.total)

    def free(self, kind: str, nbytes: int) -> None:
        if self.live[kind] < nbytes or self.count[kind] == 0:
            raise AssertionError(f"ledger underflow for {kind!r}: freeing {nbytes} of {self.live[kind]}")
        self.live[kind] -= nbytes
        self.count[kind] -= 1

    def snapshot(self) -> dict:
        return {"live": {k: v for k, v in self.live.items() if v}, "total": self.total,
                "peak": self.peak, "buffers": sum(self.count.values())}
