"""The stats panel's chart: decode tokens/s of each reply in the conversation, as SVG bars.
bars() is pure geometry (unit-tested); draw() writes it into an <svg> with DOM calls (text and
numbers only)."""
from __future__ import annotations

from dataclasses import dataclass

SVG_NS = "http://www.w3.org/2000/svg"
MAX_BARS = 24


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    value: float


def bars(values: list[float], width: float, height: float, gap: float = 2.0) -> tuple[list[Bar], float]:
    """The last MAX_BARS values as bars filling width x height (y grows downwards), scaled to
    a "nice" ceiling; returns (bars, ceiling)."""
    vals = [max(0.0, float(v)) for v in values[-MAX_BARS:]]
    if not vals:
        return [], 0.0
    ceiling = nice_ceiling(max(vals))
    slot = width / max(len(vals), 8)          # a few bars do not become wide slabs
    out = []
    for i, v in enumerate(vals):
        h = height * v / ceiling if ceiling else 0.0
        out.append(Bar(x=i * slot + gap / 2, y=height - h, w=max(slot - gap, 1.0), h=h, value=v))
    return out, ceiling


def nice_ceiling(v: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= v (v > 0)."""
    if v <= 0:
        return 1.0
    import math
    p = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def draw(svg, values: list[float], width: float = 240, height: float = 64) -> None:
    """Replace the chart in `svg` (an <svg> element) with bars for `values`."""
    doc = svg.ownerDocument
    while svg.firstChild:
        svg.removeChild(svg.firstChild)
    svg.setAttribute("viewBox", f"0 0 {width} {height}")
    found, ceiling = bars(values, width, height)
    title = doc.createElementNS(SVG_NS, "title")
    title.textContent = ("Decode speed of each reply: " + ", ".join(f"{b.value:.1f}" for b in found)
                         + " tokens/s") if found else "No replies yet"
    svg.appendChild(title)
    for b in found:
        r = doc.createElementNS(SVG_NS, "rect")
        for k, v in (("x", b.x), ("y", b.y), ("width", b.w), ("height", b.h)):
            r.setAttribute(k, f"{v:.2f}")
        r.setAttribute("rx", "1.5")
        svg.appendChild(r)
    svg.dataset.ceiling = f"{ceiling:g}"
    svg.dataset.bars = str(len(found))
