"""GPU self-test: one matmul on fresh random inputs, checked against a float64 reference.

Runs the same way in the page (shown in the runtime panel) and natively. Pure Python on purpose:
the page has no numpy (design.md). The result carries the inputs and outputs so that a test can
recompute the reference independently.
"""
from __future__ import annotations

import random
import struct
import time

from .gpu import Device
from .kernels.matmul import matmul


def _f32(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


async def matmul_selftest(dev: Device, m: int = 37, n: int = 29, k: int = 45,
                          seed: int | None = None) -> dict:
    rng = random.Random(seed)
    a = [rng.uniform(-1, 1) for _ in range(m * k)]
    b = [rng.uniform(-1, 1) for _ in range(k * n)]
    # Round inputs to f32 so the reference sees exactly what the GPU sees.
    a = list(struct.unpack(f"<{m * k}f", _f32(a)))
    b = list(struct.unpack(f"<{k * n}f", _f32(b)))
    t0 = time.perf_counter()
    ga = dev.upload(_f32(a), kind="activations", label="selftest.a")
    gb = dev.upload(_f32(b), kind="activations", label="selftest.b")
    gc = await matmul(dev, ga, gb, m, n, k)
    c = list(struct.unpack(f"<{m * n}f", await dev.read(gc)))
    elapsed = time.perf_counter() - t0
    for buf in (ga, gb, gc):
        dev.destroy_buffer(buf)
    ref = [sum(a[i * k + j] * b[j * n + col] for j in range(k)) for i in range(m) for col in range(n)]
    max_err = max(abs(x - y) for x, y in zip(c, ref))
    # f32 accumulation of K products of magnitude <= 1: error bound ~ K * 2^-24 * sum|a||b| <= K^2 eps.
    tol = k * k * 2.0 ** -24 * 4
    return {"m": m, "n": n, "k": k, "a": a, "b": b, "c": c, "max_abs_err": max_err,
            "tolerance": tol, "ok": max_err <= tol, "seconds": elapsed}
