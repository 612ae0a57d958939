"""The command line's loading progress bar (stderr), fed by LocalLLM "progress" events.

On a terminal one line is redrawn in place:  upload   43.5%   40.1 / 92.2 MiB   85.3 MiB/s
Elsewhere (a pipe, a log file) a line is printed per second at most, and at each phase change.
"""
from __future__ import annotations

import time

MiB = 1 << 20
WIDTH = 72


class ProgressBar:
    def __init__(self, out):
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.drawn = False
        self._phase = None
        self._t_phase = self._last = 0.0
        self._bytes0 = 0

    def update(self, d: dict) -> None:
        now = time.perf_counter()
        phase, done, total = d["phase"], d.get("loaded_bytes") or 0, d.get("total_bytes")
        if phase != self._phase:
            self._phase, self._t_phase, self._bytes0 = phase, now, done
        elif d["progress"] < 1.0 and now - self._last < (0.1 if self.tty else 1.0):
            return
        self._last = now
        line = f"{phase:<8} {100 * d['progress']:5.1f}%"
        if phase != "compile":
            line += f"  {done / MiB:8.1f} / {'?' if total is None else f'{total / MiB:.1f}'} MiB"
            dt = now - self._t_phase
            if dt > 0.2:
                line += f"  {(done - self._bytes0) / MiB / dt:7.1f} MiB/s"
        if self.tty:
            self.out.write("\r" + line.ljust(WIDTH))
        else:
            self.out.write(line + "\n")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        """End the redrawn line (call once loading has ended, also after a failure)."""
        if self.tty and self.drawn:
            self.out.write("\n")
            self.out.flush()
        self.drawn = False
