"""Download progress: bytes done, total, speed and ETA per file and over all files.

Events passed to the callback (the `local-llm:progress` event's detail, phase "download"):

    {"phase": "download", "file": name, "loaded_bytes": int, "total_bytes": int | None,
     "speed": bytes/s, "eta": seconds | None,
     "overall": {"loaded_bytes", "total_bytes", "speed", "eta"}}

Speed is measured over a sliding window (default 3 s) of this session's samples, so bytes that
were already cached when a download resumed count as loaded but never as speed. A drop in
`loaded` (a retry discarding an incomplete chunk) restarts the window.
"""
from __future__ import annotations

import time
from collections import deque


class _Rate:
    def __init__(self, window: float):
        self.window = window
        self.samples: deque = deque()

    def add(self, t: float, loaded: int) -> float:
        if self.samples and loaded < self.samples[-1][1]:
            self.samples.clear()
        self.samples.append((t, loaded))
        # Keep one sample older than the window so the rate spans at least `window` seconds.
        while len(self.samples) > 2 and t - self.samples[1][0] >= self.window:
            self.samples.popleft()
        t0, l0 = self.samples[0]
        return (loaded - l0) / (t - t0) if t > t0 else 0.0


def _eta(loaded: int, total: int | None, speed: float) -> float | None:
    if total is None:
        return None
    if loaded >= total:
        return 0.0
    return (total - loaded) / speed if speed > 0 else None


class Progress:
    def __init__(self, totals: dict[str, int | None], callback=None, clock=time.monotonic,
                 window: float = 3.0):
        self.totals = dict(totals)
        self.loaded = {name: 0 for name in totals}
        self.callback = callback
        self.clock = clock
        self._rates = {name: _Rate(window) for name in totals}
        self._overall = _Rate(window)
        self.last: dict | None = None

    def set_total(self, name: str, total: int | None) -> None:
        self.totals[name] = total

    def overall_total(self) -> int | None:
        totals = list(self.totals.values())
        return None if any(t is None for t in totals) else sum(totals)

    def update(self, name: str, loaded: int) -> dict:
        t = self.clock()
        self.loaded[name] = loaded
        speed = self._rates[name].add(t, loaded)
        all_loaded = sum(self.loaded.values())
        all_speed = self._overall.add(t, all_loaded)
        total, all_total = self.totals.get(name), self.overall_total()
        event = {"phase": "download", "file": name, "loaded_bytes": loaded, "total_bytes": total,
                 "speed": speed, "eta": _eta(loaded, total, speed),
                 "overall": {"loaded_bytes": all_loaded, "total_bytes": all_total,
                             "speed": all_speed, "eta": _eta(all_loaded, all_total, all_speed)}}
        self.last = event
        if self.callback is not None:
            self.callback(event)
        return event
