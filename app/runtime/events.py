"""Runtime events: names, listeners, and the monotonic load progress.

Events (name -> detail), the same in Python (rt.on) and JS (CustomEvent "local-llm:<name>"):
    loading         {model}
    progress        {progress 0..1 (never decreases; the last one of a load is 1.0),
                     phase: download | cache | upload | compile | import, loaded_bytes,
                     total_bytes, text, speed_bps, eta_s}
                    speed_bps: bytes/s over the last ~2 s of the current phase (None until
                    the phase has RATE_MIN_SPAN s of samples, and for "compile", which counts
                    steps, not bytes); eta_s: bytes left / speed_bps (None when either is
                    unknown). "import" is import_model_file's copy into the weight store.
    ready           {model, load_s, backend}
    error           {name, message, model}
    memory-warning  {used_bytes, budget_bytes, text}
    status          {state, model, progress, error, backend, backend_reason}
                    (rt.status() at each change)
    backend         {model, backend: "cpu", reason}   (a load goes to the CPU backend, and why)
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

EVENTS = ("loading", "progress", "ready", "error", "memory-warning", "status", "backend")
PHASES = ("download", "cache", "upload", "compile", "import")
BYTE_PHASES = ("download", "cache", "upload", "import")   # loaded/total count bytes
# Share of the overall progress given to the platform's load (download + cache + upload); the
# compile warm-up (first prefill and decode: pipelines compile) takes the rest.
LOAD_SHARE = 0.9
MIN_STEP = 0.002        # progress events closer than this (same phase, phase not complete)
                        # are not sent
RATE_WINDOW = 2.0       # seconds of samples speed_bps is measured over
RATE_MIN_SPAN = 0.5     # seconds of samples needed before a speed is given

log = logging.getLogger("app.runtime")


class Emitter:
    """Listeners by event name. Every emitted event also goes to `relay(name, detail)` (the
    platform's emit). A listener that raises is logged and skipped: a UI bug must not stop a
    model load."""

    def __init__(self, relay: Callable[[str, dict], None] | None = None):
        self._listeners: dict[str, list] = {n: [] for n in EVENTS}
        self._relay = relay

    def on(self, name: str, callback: Callable[[dict], None]) -> Callable[[], None]:
        if name not in self._listeners:
            raise ValueError(f"unknown event {name!r}; events are {', '.join(EVENTS)}")
        self._listeners[name].append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners[name]:
                self._listeners[name].remove(callback)
        return unsubscribe

    def emit(self, name: str, detail: dict) -> None:
        if name not in self._listeners:
            raise ValueError(f"unknown event {name!r}")
        if self._relay is not None:
            try:
                self._relay(name, dict(detail))
            except Exception:
                log.exception("the platform's event relay failed on %r", name)
        for cb in list(self._listeners[name]):
            try:
                cb(dict(detail))
            except Exception:
                log.exception("a %r listener raised", name)


class Rate:
    """Bytes/s over the last RATE_WINDOW seconds of (time, bytes done) samples. One sample at or
    before the window's start is kept, so the rate spans the whole window once there is one;
    a drop in bytes (a retry discarding a partial chunk) starts over."""

    def __init__(self, window: float = RATE_WINDOW, min_span: float = RATE_MIN_SPAN):
        self.window, self.min_span = window, min_span
        self.samples: deque = deque()

    def add(self, t: float, done: int) -> float | None:
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()
        self.samples.append((t, done))
        while len(self.samples) > 2 and t - self.samples[1][0] >= self.window:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        return (done - d0) / (t - t0) if t - t0 >= self.min_span else None


def eta(done, total, speed) -> float | None:
    """Seconds left at `speed` bytes/s; None when the total or a positive speed is unknown."""
    if total is None or done is None:
        return None
    if done >= total:
        return 0.0
    return (total - done) / speed if speed else None


class LoadProgress:
    """Turns the platform's progress dicts and the compile steps into progress events with an
    overall fraction that never decreases and ends at exactly 1.0, each with the phase's speed
    and time left. `share`: the fraction the platform's work covers (LOAD_SHARE; 1.0 for an
    import, which has no compile step); `clock`: seconds (tests pass a fake one)."""

    def __init__(self, emit: Callable[[dict], None], *, share: float = LOAD_SHARE,
                 clock: Callable[[], float] = time.perf_counter):
        self._emit = emit
        self.share = share
        self.clock = clock
        self.value = 0.0
        self._sent = -1.0
        self._phase = None
        self._rate_phase, self._rate = None, Rate()
        self.t0 = clock()

    def platform(self, d: dict) -> None:
        """A progress dict from Platform.load (see platform.py)."""
        frac = d.get("progress")
        if frac is None:
            total = d.get("total_bytes") or 0
            frac = (d.get("loaded_bytes") or 0) / total if total else 0.0
        phase = d.get("phase", "upload")
        if phase not in PHASES:
            phase = "upload"
        self._update(self.share * min(max(float(frac), 0.0), 1.0), phase,
                     d.get("loaded_bytes", 0), d.get("total_bytes"), d.get("text", ""))

    def compile(self, step: int, steps: int, text: str) -> None:
        """Compile step `step` of `steps` done (0 = starting)."""
        frac = LOAD_SHARE + (1.0 - LOAD_SHARE) * step / steps
        self._update(1.0 if step >= steps else frac, "compile", step, steps, text)

    def _speed(self, phase: str, loaded) -> float | None:
        """Sample the phase's bytes now (every update, sent or not); its speed or None."""
        if phase != self._rate_phase:
            self._rate_phase, self._rate = phase, Rate()
        if phase not in BYTE_PHASES:
            return None
        return self._rate.add(self.clock(), int(loaded or 0))

    def _update(self, value, phase, loaded, total, text) -> None:
        speed = self._speed(phase, loaded)
        self.value = max(self.value, value)
        final = self.value >= 1.0
        phase_done = bool(total) and (loaded or 0) >= total      # always sent: "x of x"
        if (phase == self._phase and self.value - self._sent < MIN_STEP and not final
                and not phase_done):
            return
        if final and self._sent >= 1.0:
            return
        self._phase, self._sent = phase, self.value
        total = None if total is None else int(total)
        self._emit({"progress": self.value, "phase": phase, "loaded_bytes": int(loaded or 0),
                    "total_bytes": total, "text": text, "speed_bps": speed,
                    "eta_s": eta(int(loaded or 0), total, speed) if speed is not None else None})
