"""Where a decode step's GPU time goes, op by op.

    python -m app.bench profile --model PATH [--decode-q8] [--reps 20]

Records the model's decode plan, then replays sub-plans holding only the dispatches of one
shader (in their recorded order, same bind groups) with GPU timestamps around the pass, and
prints per shader: dispatches per token, GPU microseconds per token, microseconds per dispatch.
The sub-plans compute garbage (their inputs are whatever the buffers hold) but touch exactly the
memory and grid of the real step, so their time is the op's time; the sum over shaders exceeds
the whole step by the overlap the GPU finds between dependent dispatches (little: a compute pass
serializes dispatches that share writable buffers). A plan of as many empty dispatches
measures the per-dispatch floor.
"""
from __future__ import annotations

import argparse
import statistics
import struct
import sys

from ..gpu import open_device
from ..gpu.plan import Plan


async def _time(dev, plan, reps: int) -> float:
    timer = dev.timer()
    try:
        times = []
        for _ in range(reps):
            dev.replay(plan, timer=timer)
            times.append(await timer.seconds())
        return statistics.median(times)
    finally:
        timer.destroy()


async def run(args, dev=None, source=None) -> int:
    """`dev`/`source`: the page's device and a byte source of the file (--browser)."""
    from ..models import load_model
    dev = dev or await open_device()
    model = await load_model(dev, source or args.model, context_length=args.context,
                             decode_q8=args.decode_q8)
    ids = [1 + (i * 7919) % (model.vocab - 2) for i in range(args.pos)]
    await model.prefill(ids)
    await model.decode_n(4)
    full = await model._plan(("decode",))
    dev.write(model.step, struct.pack("<4I", model.pos, 1, model.pos + 1, 0))
    total = await _time(dev, full, args.reps)
    groups: dict = {}
    for d in full.dispatches:
        groups.setdefault(d.pipeline.key[:2] + (tuple(sorted(d.pipeline.key[3] or ())),), []).append(d)
    rows = []
    for key, ds in groups.items():
        sub = Plan(dev, str(key))
        sub.dispatches = list(ds)
        t = await _time(dev, sub, args.reps)
        name = key[0] if key[1] == "main" else f"{key[0]}:{key[1]}"
        flags = ",".join(f"{k}" for k, v in key[2] if v is True)
        rows.append((t, name, flags, len(ds)))
    empty = await dev.pipeline("token_store", "main")
    floor = Plan(dev, "floor")
    bg = dev.bind(empty, [(model.sampler.result, 0, 4), model.history, model.step])
    for _ in range(len(full.dispatches)):
        floor.dispatch(empty, [bg], (1, 1, 1))
    t_floor = await _time(dev, floor, args.reps)
    print(f"# {args.model}: decode step at position {model.pos}, {len(full.dispatches)} "
          f"dispatches, GPU {total * 1e6:.0f} us per token; {len(full.dispatches)} one-thread "
          f"dispatches take {t_floor * 1e6:.0f} us ({t_floor / len(full.dispatches) * 1e6:.2f} us "
          f"each)")
    print(f"{'shader':28} {'defines':34} {'n':>4} {'us/token':>9} {'us/disp':>8} {'share':>6}")
    for t, name, flags, n in sorted(rows, reverse=True):
        print(f"{name:28} {flags[:34]:34} {n:4d} {t * 1e6:9.1f} {t / n * 1e6:8.2f} "
              f"{t / total:6.1%}")
    print(f"{'sum of parts':63} {sum(r[0] for r in rows) * 1e6:9.1f}")
    model.destroy()
    return 0


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m app.bench profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--pos", type=int, default=128, help="prompt length before the step")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--decode-q8", action="store_true")
    ap.add_argument("--browser", action="store_true", help="in headless Chromium (python -m "
                    "app.bench only)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.browser:
        import json
        from .browser import run_with_model
        rest = [a for a in argv if a != "--browser"]
        reply = run_with_model(args.model, "from app.bench.profile import parse, run\n"
                               f"await run(parse({json.dumps(rest)}), dev, src)")
        print(reply["stdout"], end="")
        return 0
    import asyncio
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
