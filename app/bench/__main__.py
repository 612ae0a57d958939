"""python -m app.bench dispatch | kernels  (see app/bench/__init__.py and docs/benchmarks.md)

    dispatch [--n 300] [--no-browser]     host us/dispatch, per call vs replay, native + Chromium
    kernels [options] [--browser]         matvec GB/s vs the probe's peak (natively, or in
                                          headless Chromium with --browser); --help for options
    tokenizer [--tokens 20000]            GGUF vocab conversion, encode and stream-decode speed,
                                          natively and in headless Chromium
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys


def dispatch(argv) -> int:
    from . import dispatch as d
    ap = argparse.ArgumentParser(prog="python -m app.bench dispatch")
    ap.add_argument("--n", type=int, default=300, help="dispatches in the plan")
    ap.add_argument("--no-browser", action="store_true", help="skip headless Chromium")
    args = ap.parse_args(argv)
    from ..gpu import open_device

    async def native():
        return await d.measure(await open_device(), args.n)
    print(d.report(asyncio.run(native())), flush=True)
    if not args.no_browser:
        from .browser import chromium, run_py
        with chromium() as page:
            r = run_py(page, "from app.bench.dispatch import measure\n"
                             f"result = await measure(dev, {args.n})")["result"]
        print(d.report(r), flush=True)
    return 0


def kernels(argv) -> int:
    from . import kernels as k
    args = k.parse(argv)
    if not args.browser:
        asyncio.run(k.main(argv))
        return 0
    from .browser import chromium, run_py
    rest = [a for a in argv if a != "--browser"]
    with chromium() as page:
        reply = run_py(page, "from app.bench.kernels import main\n"
                             f"result = await main({json.dumps(rest)})")
    print(reply["stdout"], end="")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("dispatch", "kernels", "tokenizer"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "tokenizer":
        from .tokenizer import main as tokenizer
        return tokenizer(argv[1:])
    return {"dispatch": dispatch, "kernels": kernels}[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
