"""Numbers as a person reads them: sizes, speeds, durations, rates. Pure functions (no DOM), so
the dashboard's wording is unit-tested in CPython."""
from __future__ import annotations

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def size(n: int | float | None) -> str:
    """Bytes: "812 KB", "98.4 MB", "1.27 GB" (binary units, as the store and the ledger count)."""
    if n is None:
        return "—"
    n = float(n)
    if n < KiB:
        return f"{n:.0f} B"
    if n < MiB:
        return f"{n / KiB:.0f} KB"
    if n < GiB:
        return f"{n / MiB:.1f} MB" if n < 100 * MiB else f"{n / MiB:.0f} MB"
    return f"{n / GiB:.2f} GB"


def speed(bytes_per_s: float | None) -> str:
    return "—" if not bytes_per_s else f"{size(bytes_per_s)}/s"


def duration(seconds: float | None) -> str:
    """"0.42 s", "12 s", "3 min 05 s", "1 h 02 min"."""
    if seconds is None:
        return "—"
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.2f} s" if s < 1 else f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def rate(tokens_per_s: float | None) -> str:
    if not tokens_per_s:
        return "—"
    return f"{tokens_per_s:.1f} tok/s" if tokens_per_s < 100 else f"{tokens_per_s:.0f} tok/s"


def params(n: int | None) -> str:
    """Parameter count: "135M", "1.2B"."""
    if not n:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


PHASES = {
    "download": "Downloading",
    "import": "Importing",
    "cache": "Reading from this device",
    "upload": "Uploading to the GPU",
    "compile": "Compiling GPU kernels",
}


def progress_line(detail: dict) -> tuple[str, str]:
    """(phase label, detail line) for a "progress" event: bytes, speed and time left where the
    phase moves bytes, the step for compile."""
    phase = detail.get("phase") or ""
    label = PHASES.get(phase, phase.capitalize() or "Loading")
    done, total = detail.get("loaded_bytes"), detail.get("total_bytes")
    if phase == "compile":
        return label, detail.get("text") or ""
    parts = []
    if total:
        parts.append(f"{size(done or 0)} of {size(total)}")
    elif done:
        parts.append(size(done))
    if detail.get("speed_bps"):
        parts.append(speed(detail["speed_bps"]))
    if detail.get("eta_s") is not None and total and (done or 0) < total:
        parts.append(f"{duration(detail['eta_s'])} left")
    return label, " · ".join(parts)
