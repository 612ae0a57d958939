"""python -m app.bench dispatch | kernels | tokenizer | gen-gguf | model | profile | check-decode | cpu  (see docs/benchmarks.md)

    dispatch [--n 300] [--no-browser]     host us/dispatch, per call vs replay, native + Chromium
    kernels [options] [--browser]         matvec GB/s vs the probe's peak (natively, or in
                                          headless Chromium with --browser); --help for options
    tokenizer [--tokens 20000]            GGUF vocab conversion, encode and stream-decode speed,
                                          natively and in headless Chromium
    gen-gguf --shape S --type T OUT.gguf  random-weight GGUF of a real model's shapes (gen_gguf.py)
    model --model PATH [options]          prefill/decode tok/s, TTFT, host time, GB/s (model.py);
                                          --browser: in headless Chromium (fetched over HTTP)
    cpu [--model PATH] [options]          CPU backend (wllama) multi/single-threaded vs WebGPU,
                                          tok/s through the page's runtime API (cpu.py)
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


def model_browser(argv) -> int:
    """The model benchmark in headless Chromium: the page fetches the file from the bench server
    into an ArrayBuffer and loads it from there (JSBufferSource), as a user's page would."""
    from .browser import run_with_model
    from .model import parse
    args = parse(argv)
    reply = run_with_model(args.model, "from app.bench.model import main\n"
                           f"result = await main({json.dumps(argv)}, dev=dev, source=src)")
    print(reply["stdout"], end="")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reply["result"], f, indent=1)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("dispatch", "kernels", "tokenizer", "gen-gguf", "model",
                                          "profile", "check-decode", "cpu"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "tokenizer":
        from .tokenizer import main as tokenizer
        return tokenizer(argv[1:])
    if argv[0] == "gen-gguf":
        from .gen_gguf import main as gen_gguf
        return gen_gguf(argv[1:])
    if argv[0] == "cpu":
        from .cpu import main as cpu
        return cpu(argv[1:])
    if argv[0] == "check-decode":
        from .check_decode import main as check_decode
        return check_decode(argv[1:])
    if argv[0] == "profile":
        from .profile import main as profile
        return profile(argv[1:])
    if argv[0] == "model":
        if "--browser" in argv:
            return model_browser([a for a in argv[1:] if a != "--browser"])
        from .model import cli
        return cli(argv[1:])
    return {"dispatch": dispatch, "kernels": kernels}[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
