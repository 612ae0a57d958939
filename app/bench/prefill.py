"""Prefill benchmark: app.kernels.matmul_q TFLOP/s per weight layout, f32 path and f16 variant.

    python -m app.bench.prefill [--tokens 512] [--shapes 4096x4096,14336x4096] [--layouts ...]
                                [--flush 8,16] [--repeats 5]

For each shape (rows x cols) and layout: random finite weights generated on the GPU the way
app/bench/kernels.py does (probe_read.wgsl `fill`), X (tokens, cols) f32 filled the same way;
matmul_q is recorded R times into a Plan (R chosen so one replay takes ~25 ms), warmed up for
>= 50 ms of replays, then timed with GPU timestamps (dev.timer(), median of --repeats replays;
wall clock + readback without timestamp-query). FLOP = 2 tokens rows cols per dispatch.
Variants: "f32" (f16=False) and, with shader-f16, "f16 fN" (f16=True, F16_FLUSH = N); with
chromium-experimental-subgroup-matrix (Dawn: `node app/bench/node/run.mjs prefill`, run with
LOCALLLM_DAWN=...;enable-dawn-features=allow_unsafe_apis), "sgmat": quantize_x of X plus
app/kernels/matmul_sgmat.py per dispatch (the quantization is timed too).
"""
from __future__ import annotations

import argparse
import asyncio
import time

from ..gpu import Device, open_device
from ..kernels import matmul_q as mq
from ..kernels import matmul_sgmat as sg
from ..kernels.matvec import quantize_x
from .dispatch import describe
from .kernels import LAYOUTS, fill, machine, random_weight, time_plan


async def bench(dev: Device, layout: str, rows: int, cols: int, tokens: int, f16: bool,
                repeats: int) -> tuple[float, str]:
    w = await random_weight(dev, layout, rows, cols)
    x = dev.create_buffer(4 * tokens * cols, kind="activations", label="bench.x")
    await fill(dev, x, 2)
    y = dev.create_buffer(4 * tokens * rows, kind="activations", label="bench.y")
    xq = await quantize_x(dev, x, cols, n_vec=tokens) if f16 == "sgmat" else None

    async def record(target):
        if xq is not None:
            await quantize_x(dev, x, cols, n_vec=tokens, target=target, out=xq)
            await sg.matmul_sgmat(dev, w, xq, tokens, out=y, target=target)
        else:
            await mq.matmul_q(dev, w, x, tokens, out=y, target=target, f16=f16)
    try:
        one = dev.plan("probe")
        await record(one)
        t0 = time.perf_counter()
        dev.replay(one)
        await dev.read(y, 0, 4)  # pipeline + first run
        t0 = time.perf_counter()
        dev.replay(one)
        await dev.read(y, 0, 4)
        reps = max(1, min(200, int(0.025 / max(time.perf_counter() - t0, 1e-6))))
        plan = dev.plan(f"matmul_q {layout}")
        for _ in range(reps):
            await record(plan)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.05:  # warm-up >= 50 ms (clocks up)
            dev.replay(plan)
            await dev.read(y, 0, 4)
        t, method = await time_plan(dev, plan, y, repeats)
        await dev.check(f"matmul_q {layout} {rows}x{cols}")
    finally:
        w.destroy(dev)
        dev.destroy_buffer(x)
        dev.destroy_buffer(y)
        if xq is not None:
            xq.destroy(dev)
    return t, method


async def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m app.bench.prefill", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--shapes", default="4096x4096,14336x4096", help="ROWSxCOLS,...")
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--flush", default=str(mq.F16_FLUSH), help="F16_FLUSH values for f16")
    ap.add_argument("--no-f32", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    dev = await open_device()
    print(f"machine: {machine()}")
    print(f"adapter: {describe(dev)}; features {sorted(dev.features)}", flush=True)
    variants = [] if args.no_f32 else [("f32", False, mq.F16_FLUSH)]
    if "shader-f16" in dev.features:
        variants += [(f"f16 f{n}", True, int(n)) for n in args.flush.split(",")]
    if sg.available(dev.features, getattr(dev.info, "subgroup_matrix", ()),
                    getattr(dev.info, "subgroup_sizes", (0, 0))):
        variants += [("sgmat", "sgmat", mq.F16_FLUSH)]
    default_flush = mq.F16_FLUSH
    print(f"{'layout':7s} {'rows x cols':>12s} {'tokens':>6s} " +
          " ".join(f"{v[0]:>10s}" for v in variants) + "   (TFLOP/s)", flush=True)
    for shape in args.shapes.split(","):
        rows, cols = (int(v) for v in shape.split("x"))
        for layout in args.layouts.split(","):
            cells = []
            for name, f16, flush in variants:
                if f16 == "sgmat" and not sg.fits(layout, cols):
                    cells.append(f"{'-':>10s}")
                    continue
                mq.F16_FLUSH = flush
                try:
                    t, method = await bench(dev, layout, rows, cols, args.tokens, f16, args.repeats)
                    cells.append(f"{2 * args.tokens * rows * cols / t / 1e12:10.3g}")
                except Exception as e:  # noqa: BLE001 - one failure must not end the table
                    cells.append(f"{'ERR':>10s}")
                    print(f"  {layout} {name}: {type(e).__name__}: {e}", flush=True)
                finally:
                    mq.F16_FLUSH = default_flush
            print(f"{layout:7s} {f'{rows}x{cols}':>12s} {args.tokens:6d} " + " ".join(cells),
                  flush=True)
    print(f"timing: {method}")


if __name__ == "__main__":
    asyncio.run(main())
