"""Decode-path correctness on the machine at hand: the decode plan's logits at each step against
the prefill path's logits (model.logits) for the same tokens.

    python -m app.bench check-decode --model M.gguf [--steps 16] [--prompt 24] [--tol 1e-3]
    node app/bench/node/run.mjs check-decode --model M.gguf          # Pyodide on Dawn

The decode plan (matvec kernels with the folded rmsnorms, split attention, rope_kv) and the
prefill plan (matmul_q, attention_prefill, rmsnorm) share no kernel but the embedding and the
sampler, so agreement checks the decode kernels the GPU actually picked (on an H100: FINE and
vec4 matvec units, NORM/EPI folding, subgroup reductions), which the test suite's CPU adapters
do not run. Step i feeds the token sampled before it at position P + i (P = prompt length) and
leaves that position's logits in the model's logits buffer; model.logits(prompt + tokens) gives
the same row from one prefill forward. Error per step: max |decode - prefill| / max |prefill|;
the tolerance (default 1e-3) is far above f32 reordering (~1e-6) and far below a wrong kernel
(errors ~1). Random prompt ids, greedy decoding. No numpy (runs in Pyodide).
"""
from __future__ import annotations

import argparse
import random
import struct
import sys


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m app.bench check-decode", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=24)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--tol", type=float, default=1e-3)
    return ap.parse_args(list(argv))


async def run(args, dev=None, source=None) -> dict:
    from ..gpu import open_device
    from ..models import load_model
    dev = dev or await open_device()
    model = await load_model(dev, source or args.model, context_length=args.context)
    try:
        v = model.vocab
        prompt = [random.randrange(v) for _ in range(args.prompt)]
        toks = [await model.prefill(prompt)]
        rows = []
        for _ in range(args.steps):
            toks.append(await model.decode_one())
            rows.append(struct.unpack(f"<{v}f", await dev.read(model.logits_buf, 0, 4 * v)))
        ref = await model.logits(prompt + toks[:-1])
        p = len(prompt)
        errs = []
        for i, row in enumerate(rows):
            r = struct.unpack_from(f"<{v}f", ref, 4 * v * (p + i))
            scale = max(abs(a) for a in r)
            errs.append(max(abs(a - b) for a, b in zip(row, r)) / scale)
        worst = max(errs)
        ok = worst <= args.tol
        print(f"{args.model}: {model.config.family}, {args.steps} decode steps after a "
              f"{p}-token prompt; adapter {dev.info.vendor} {dev.info.device} "
              f"({dev.backend}); max |decode - prefill| / max |logit| = {worst:.2e} per step "
              f"max, {sum(errs) / len(errs):.2e} mean -> {'OK' if ok else 'FAIL'} "
              f"(tol {args.tol:g})", flush=True)
        return {"ok": ok, "worst": worst, "errors": errs}
    finally:
        model.destroy()


def main(argv=None) -> int:
    import asyncio
    args = parse(sys.argv[1:] if argv is None else argv)
    return 0 if asyncio.run(run(args))["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
