#!/usr/bin/env python3
"""Draw LocalLLM's maskable app icons (static/icons/icon-maskable-{192,512}.png).

    .venv/bin/python tools/make_icons.py        # rewrites the two PNGs (byte-identical each run)

A maskable icon is cropped by the platform to a circle, squircle or rounded square, so it must
be full-bleed (opaque to the edges) with its artwork inside the safe zone: the centred circle
whose radius is 40% of the icon's width (W3C "Icon masks"). The artwork here (the chat bubble of
icon-192/512.png, on the same gradient) stays within ARTWORK_RADIUS = 32% of the width.

No image library: numpy rasterizes (4 x 4 supersampling for smooth edges), zlib + struct write
the PNG. read_png() decodes 8-bit RGB/RGBA PNGs (all five row filters) for the tests, which check
the committed files, not this script's output.
"""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "static" / "icons"
SIZES = (192, 512)
SAFE_RADIUS = 0.40       # of the width: what every mask keeps (W3C Icon masks)
ARTWORK_RADIUS = 0.32    # of the width: the artwork's farthest point from the centre
SUPERSAMPLE = 4

# Colours (RGB) of the existing icons: the gradient runs from the top-left to the bottom-right.
GRADIENT_FROM = (80, 104, 245)
GRADIENT_TO = (44, 214, 192)
BUBBLE = (250, 252, 255)
DOTS = (59, 85, 217)


def _triangle(x, y, a, b, c):
    """Points inside triangle abc: on the same side of all three edges (edge functions)."""
    def edge(p, q):
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])
    e = (edge(a, b), edge(b, c), edge(c, a))
    return ((e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)) | ((e[0] <= 0) & (e[1] <= 0) & (e[2] <= 0))


def _coverage(size: int):
    """(bubble, dots) coverage in [0, 1] per pixel, shapes in units of the icon's width."""
    import numpy as np
    n = size * SUPERSAMPLE
    c = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(c, c)
    # Speech bubble: an ellipse centred a little above the middle and a tail at its lower left.
    ellipse = ((x - 0.5) / 0.25) ** 2 + ((y - 0.47) / 0.19) ** 2 <= 1.0
    tail = _triangle(x, y, (0.40, 0.58), (0.48, 0.60), (0.39, 0.72))
    bubble = ellipse | tail
    dots = np.zeros_like(bubble)
    for cx in (0.41, 0.50, 0.59):
        dots |= (x - cx) ** 2 + (y - 0.47) ** 2 <= 0.032 ** 2

    def down(mask):
        return mask.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    return down(bubble), down(dots)


def draw(size: int) -> bytes:
    """The icon's RGBA pixels, rows top to bottom (size * size * 4 bytes, every alpha 255)."""
    import numpy as np
    c = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(c, c)
    t = ((x + y) / 2)[..., None]
    rgb = (1 - t) * np.array(GRADIENT_FROM, float) + t * np.array(GRADIENT_TO, float)
    bubble, dots = _coverage(size)
    rgb = rgb * (1 - bubble[..., None]) + np.array(BUBBLE, float) * bubble[..., None]
    rgb = rgb * (1 - dots[..., None]) + np.array(DOTS, float) * dots[..., None]
    rgba = np.concatenate([np.rint(rgb), np.full((size, size, 1), 255.0)], axis=2)
    return rgba.astype(np.uint8).tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: Path, size: int, rgba: bytes) -> None:
    """An 8-bit RGBA PNG, filter 0 (none) on every row."""
    stride = size * 4
    raw = b"".join(b"\0" + rgba[r * stride:(r + 1) * stride] for r in range(size))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit, colour type 6 = RGBA
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {colour}, "
                         f"interlace {interlace})")
    bpp = 4 if colour == 6 else 3
    stride = width * bpp
    raw = zlib.decompress(idat)
    rows, prev = [], bytearray(stride)
    for r in range(height):
        kind, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 0xFF
        rows.append(bytes(line) if bpp == 4 else
                    b"".join(bytes(line[i:i + 3]) + b"\xff" for i in range(0, stride, 3)))
        prev = line
    return width, height, rows


def main() -> int:
    for size in SIZES:
        path = ICONS / f"icon-maskable-{size}.png"
        write_png(path, size, draw(size))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
