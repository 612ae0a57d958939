"""Runtime events: names, listeners, and the monotonic load progress.

Events (name -> detail), the same in Python (rt.on) and JS (CustomEvent "local-llm:<name>"):
    loading         {model}
    progress        {progress 0..1 (never decreases; the last one of a load is 1.0),
                     phase: download | cache | upload | compile, loaded_bytes, total_bytes, text}
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
from typing import Callable

EVENTS = ("loading", "progress", "ready", "error", "memory-warning", "status", "backend")
PHASES = ("download", "cache", "upload", "compile")
# Share of the overall progress given to the platform's load (download + cache + upload); the
# compile warm-up (first prefill and decode: pipelines compile) takes the rest.
LOAD_SHARE = 0.9
MIN_STEP = 0.002        # progress events closer than this (same phase, phase not complete)
                        # are not sent

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


class LoadProgress:
    """Turns the platform's progress dicts and the compile steps into progress events with an
    overall fraction that never decreases and ends at exactly 1.0."""

    def __init__(self, emit: Callable[[dict], None]):
        self._emit = emit
        self.value = 0.0
        self._sent = -1.0
        self._phase = None
        self.t0 = time.perf_counter()

    def platform(self, d: dict) -> None:
        """A progress dict from Platform.load (see platform.py)."""
        frac = d.get("progress")
        if frac is None:
            total = d.get("total_bytes") or 0
            frac = (d.get("loaded_bytes") or 0) / total if total else 0.0
        phase = d.get("phase", "upload")
        if phase not in PHASES:
            phase = "upload"
        self._update(LOAD_SHARE * min(max(float(frac), 0.0), 1.0), phase,
                     d.get("loaded_bytes", 0), d.get("total_bytes"), d.get("text", ""))

    def compile(self, step: int, steps: int, text: str) -> None:
        """Compile step `step` of `steps` done (0 = starting)."""
        frac = LOAD_SHARE + (1.0 - LOAD_SHARE) * step / steps
        self._update(1.0 if step >= steps else frac, "compile", step, steps, text)

    def _update(self, value, phase, loaded, total, text) -> None:
        self.value = max(self.value, value)
        final = self.value >= 1.0
        phase_done = bool(total) and (loaded or 0) >= total      # always sent: "x of x"
        if (phase == self._phase and self.value - self._sent < MIN_STEP and not final
                and not phase_done):
            return
        if final and self._sent >= 1.0:
            return
        self._phase, self._sent = phase, self.value
        self._emit({"progress": self.value, "phase": phase, "loaded_bytes": int(loaded or 0),
                    "total_bytes": None if total is None else int(total), "text": text})
