"""Kernel benchmark: matvec GB/s per weight layout, over the streaming-read peak of a probe kernel
measured on the same adapter in the same run.

    python -m app.bench kernels [--small] [--layouts q4_1,q4_k] [--shapes 4096x4096] [--q8] [--browser]
    node app/bench/node/run.mjs [same options]         (Dawn, see docs/benchmarks.md)

1. Probe: shaders/probe_read.wgsl `main` reads a buffer of min(1 GiB, max storage binding) once
   per dispatch (128 MiB with --small); peak = bytes / time.
2. For each layout and shape (rows N x cols K; y (N) = W (N, K) @ x (K)): random finite weights
   are generated on the GPU (probe_read.wgsl `fill`, no model files, no numpy: this module runs in
   Pyodide too), then app.kernels.matvec.matvec is recorded into a Plan and timed.
   bytes moved = W bytes + 4 K (x) + 4 N (y); GB/s = bytes / time; "peak" = GB/s / probe GB/s.

Caches: a weight smaller than the rotation size (512 MiB; 64 MiB with --small) is allocated in
several copies that the plan cycles through, so consecutive matvecs never find W in L2 (50 MB on
an H100) or a CPU's L3. Each timed pass moves >= 4 GiB (256 MiB with --small).

Timing: with timestamp-query, GPU timestamps at the start and end of one replayed pass of
R dispatches (median of --repeats passes) / R: GPU time only, barriers between dispatches
included. Without it, wall clock over --repeats replays followed by one 4-byte readback, / all
dispatches: that includes host submit time and the readback latency, amortized over the replays
(an upper bound on GPU time).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from ..gpu import Device, open_device
from ..kernels.layouts import Chunk, GPUWeight, row_bytes, rows_per_chunk
from .dispatch import describe

LAYOUTS = ("f32", "f16", "bf16", "q4_1", "q5_1", "q8_0a", "q4_k", "q5_k", "q6_ka")
# (rows, cols): Llama-3-8B's q/o (4096 x 4096), gate/up (14336 x 4096), down (4096 x 14336) and
# lm_head (128256 x 4096); --small: TinyLlama-1.1B-like shapes for CPU adapters.
SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336), (128256, 4096))
SMALL_SHAPES = ((2048, 2048), (5632, 2048), (2048, 5632))
MiB, GiB = 1 << 20, 1 << 30


async def fill(dev: Device, buf, seed: int = 1) -> None:
    """Finite pseudo-random words into buf (one binding; the last size % 16 bytes stay zero)."""
    n = buf.size // 16
    if n:
        pipe = await dev.pipeline("probe_read", "fill", {"SEED": seed})
        dev.dispatch(pipe, [dev.bind(pipe, [(buf, 0, 16 * n)])], (min(65535, -(-n // 256)),))


async def random_weight(dev: Device, layout: str, rows: int, cols: int, seed: int = 1) -> GPUWeight:
    per = rows_per_chunk(layout, cols, min(dev.limits["maxStorageBufferBindingSize"],
                                           dev.limits["maxBufferSize"]))
    w = GPUWeight(f"bench.{layout}.{rows}x{cols}", layout, rows, cols)
    for r0 in range(0, rows, per):
        r = min(per, rows - r0)
        buf = dev.create_buffer(r * row_bytes(layout, cols), kind="weights", label=w.name)
        await fill(dev, buf, seed)
        w.chunks.append(Chunk(buf, r0, r))
    return w


async def time_plan(dev: Device, plan, sync, repeats: int) -> tuple[float, str]:
    """(seconds per recorded dispatch, method). `sync`: a buffer read to wait for the GPU."""
    dev.replay(plan)
    await dev.read(sync, 0, 4)  # warm-up: pipelines, the plan's backend form, first touch
    if "timestamp-query" in dev.features:
        timer = dev.timer()
        times = []
        for _ in range(repeats):
            dev.replay(plan, timer=timer)
            times.append(await timer.seconds())
        timer.destroy()
        if min(times) > 0:
            return statistics.median(times) / len(plan), "GPU timestamps"
    t0 = time.perf_counter()
    for _ in range(repeats):
        dev.replay(plan)
    await dev.read(sync, 0, 4)
    return (time.perf_counter() - t0) / (repeats * len(plan)), "wall clock"


async def probe(dev: Device, size: int, pass_bytes: int, repeats: int,
                count: int | None = None) -> dict:
    """Streaming read of `size` bytes per dispatch, dispatches repeated until a pass moves
    pass_bytes (or `count` times). Each writes the same sink, so they run one after another."""
    size = min(size, dev.limits["maxStorageBufferBindingSize"], dev.limits["maxBufferSize"])
    size -= size % 4096
    data = dev.create_buffer(size, kind="activations", label="probe.data")
    await fill(dev, data)
    groups = min(65535, max(1, size // 16 // (256 * 16)))  # ~16 vec4 loads per invocation
    sink = dev.create_buffer(4 * 256 * groups, kind="activations", label="probe.sink")
    pipe = await dev.pipeline("probe_read", "main")
    bg = dev.bind(pipe, [data, sink])
    plan = dev.plan("probe")
    for _ in range(count or max(1, -(-pass_bytes // size))):
        plan.dispatch(pipe, [bg], (groups, 1, 1))
    t, method = await time_plan(dev, plan, sink, repeats)
    await dev.check("probe")
    dev.destroy_buffer(data)
    dev.destroy_buffer(sink)
    return {"bytes": size, "seconds": t, "gbs": size / t / 1e9, "method": method}


async def bench_matvec(dev: Device, matvec, layout: str, rows: int, cols: int, rotate: int,
                       pass_bytes: int, repeats: int, q8: bool = False,
                       variants=({},), independent: bool = False) -> list[dict]:
    """One result per variant (extra matvec() keyword arguments: tpr, rpt, v4), the same
    weights for all. independent: each weight copy writes its own y, so consecutive dispatches
    have no data hazard and the implementation may overlap them (no barrier between them); the
    default (one y) serializes them as a model's dependent matvecs are."""
    w_bytes = rows * row_bytes(layout, cols)
    copies = max(1, min(64, -(-rotate // w_bytes)))
    weights = [await random_weight(dev, layout, rows, cols) for _ in range(copies)]
    x = dev.create_buffer(4 * cols, kind="activations", label="bench.x")
    await fill(dev, x)
    ys = [dev.create_buffer(4 * rows, kind="activations", label="bench.y")
          for _ in range(len(weights) if independent else 1)]
    y = ys[0]
    xq = None
    if q8:  # x quantized once, outside the timed plan (one small dispatch per step in a model)
        from ..kernels.matvec import quantize_x
        xq = await quantize_x(dev, x, cols)
    out = []
    moved = w_bytes + 4 * cols + 4 * rows
    try:
        for var in variants:
            plan = dev.plan(f"matvec {layout}")
            for _ in range(max(1, -(-pass_bytes // (copies * w_bytes)))):
                for i, w in enumerate(weights):
                    await matvec(dev, w, x, out=ys[i % len(ys)], target=plan, xq=xq, **var)
            t, method = await time_plan(dev, plan, y, repeats)
            await dev.check(f"matvec {layout} {rows}x{cols} {var}")
            out.append({"layout": layout, "rows": rows, "cols": cols, "bytes": moved,
                        "seconds": t, "gbs": moved / t / 1e9, "method": method, "copies": copies,
                        "dispatches": len(plan), "variant": dict(var),
                        "independent": independent})
            plan.destroy()
    finally:
        for w in weights:
            w.destroy(dev)
        dev.destroy_buffer(x)
        for b in ys:
            dev.destroy_buffer(b)
        if xq is not None:
            xq.destroy(dev)
    return out


def machine() -> str:
    import platform
    if sys.platform == "emscripten":
        from js import navigator
        return f"Pyodide {platform.python_version()}, {navigator.userAgent}"
    return f"CPython {platform.python_version()}, {platform.platform()}, {platform.processor()}"


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m app.bench kernels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="CPU-adapter sizes (lavapipe, SwiftShader)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated subset")
    ap.add_argument("--shapes", default=None, help="comma-separated ROWSxCOLS, e.g. 4096x4096")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per measurement")
    ap.add_argument("--q8", action="store_true", help="quantized layouts use the int8-dot path "
                    "(x quantized once per step by quantize_x, outside the timed plan)")
    ap.add_argument("--sweep", default=None, help="variants to compare on the same weights: "
                    "semicolon-separated k=v lists of matvec() arguments, e.g. "
                    "'v4=0;v4=1;v4=1,tpr=16,rpt=2' (keys tpr, rpt, v4, fine)")
    ap.add_argument("--independent", action="store_true", help="each weight copy writes its own "
                    "output: no hazard between consecutive dispatches (they may overlap)")
    ap.add_argument("--browser", action="store_true", help="(python -m app.bench only) run in "
                    "headless Chromium through the harness page")
    return ap.parse_args(list(argv))


async def main(argv=(), dev: Device | None = None) -> dict:
    """Run the benchmark, print the table; returns the results. Works natively, in the page and
    in Node (app/bench/node/run.mjs)."""
    args = parse(argv)
    dev = dev or await open_device()
    shapes = ([tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes
              else SMALL_SHAPES if args.small else SHAPES)
    layouts = [s for s in args.layouts.split(",") if s]
    variants = [{}]
    if args.sweep:
        variants = [{k: int(v) for k, v in (kv.split("=") for kv in part.split(",") if kv)}
                    for part in args.sweep.split(";")]
        for var in variants:
            for key in ("v4", "fine"):
                if key in var:
                    var[key] = bool(var[key])
    rotate, pass_bytes = (64 * MiB, 256 * MiB) if args.small else (512 * MiB, 4 * GiB)
    print(f"machine: {machine()}")
    print(f"adapter: {describe(dev)}; features {sorted(dev.features)}; max storage binding "
          f"{dev.limits['maxStorageBufferBindingSize'] / MiB:.0f} MiB", flush=True)
    peak = await probe(dev, 128 * MiB if args.small else GiB, pass_bytes, args.repeats)
    print(f"probe_read: {peak['bytes'] / MiB:.0f} MiB per dispatch, {peak['gbs']:.1f} GB/s "
          f"({peak['method']})", flush=True)
    # The fixed cost of one dependent dispatch (launch + barrier): the probe over 64 KiB, 1000
    # times in a row. "net" below is the bandwidth with it taken out: what the kernel's own
    # streaming reaches (a model's matvecs pay the floor too: they depend on each other).
    floor = (await probe(dev, 64 << 10, 0, args.repeats, count=1000))["seconds"]
    print(f"dispatch floor: {floor * 1e6:.2f} us per dependent dispatch (64 KiB probe)", flush=True)
    results = {"machine": machine(), "adapter": describe(dev), "probe": peak,
               "floor_s": floor, "matvec": []}
    try:
        from ..kernels.matvec import matvec
    except ImportError as e:
        print(f"app.kernels.matvec is missing ({e}): no matvec rows measured")
        results["error"] = f"app.kernels.matvec missing: {e}"
        return results
    if args.q8:
        print("--q8: q4_1/q5_1/q8_0a/q4_k/q5_k/q6_ka through matvec_q8 (int8 x, dot4I8Packed)")
    print(f"{'layout':7s} {'rows x cols':>14s} {'MB':>8s} {'us':>10s} {'GB/s':>8s} {'of peak':>8s} "
          f"{'net':>6s}")
    for rows, cols in shapes:
        for layout in layouts:
            try:
                rs = await bench_matvec(dev, matvec, layout, rows, cols, rotate, pass_bytes,
                                        args.repeats, q8=args.q8, variants=variants,
                                        independent=args.independent)
            except Exception as e:  # noqa: BLE001 - one failing layout must not end the table
                print(f"{layout:7s} {f'{rows}x{cols}':>14s} error: {type(e).__name__}: {e}",
                      flush=True)
                results["matvec"].append({"layout": layout, "rows": rows, "cols": cols,
                                          "error": str(e)})
                continue
            for r in rs:
                r["of_peak"] = r["gbs"] / peak["gbs"]
                net = r["seconds"] - floor
                r["net_of_peak"] = r["bytes"] / net / 1e9 / peak["gbs"] if net > 0 else None
                results["matvec"].append(r)
                tag = ",".join(f"{k}={v}" for k, v in r["variant"].items())
                print(f"{layout:7s} {f'{rows}x{cols}':>14s} {r['bytes'] / 1e6:8.2f} "
                      f"{r['seconds'] * 1e6:10.1f} {r['gbs']:8.1f} {r['of_peak']:8.0%} "
                      f"{'-' if r['net_of_peak'] is None else format(r['net_of_peak'], '.0%'):>6s}"
                      f" {tag}",
                      flush=True)
    return results
