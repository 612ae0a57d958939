"""Command line for the native engine (CPython + wgpu-py).

    python -m app complete --model PATH [--max-tokens N] [--temperature T] [--seed S]
                           [--top-k K] [--top-p P] [--context N] PROMPT
    python -m app chat --model PATH [...] MESSAGE          # one user turn through the chat template

`complete` prints only the raw completion of PROMPT (no chat template) on stdout, streamed as it
is generated; progress, speed and logs go to stderr. A bad model file, an unsupported
architecture or a prompt longer than the context exits with status 1 and the named error's
message on stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("complete", "raw completion of a prompt"),
                        ("chat", "one user message through the model's chat template")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--model", required=True, help="a .gguf file or a safetensors directory")
        c.add_argument("--max-tokens", type=int, default=128)
        c.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
        c.add_argument("--seed", type=int, default=None)
        c.add_argument("--top-k", type=int, default=0)
        c.add_argument("--top-p", type=float, default=1.0)
        c.add_argument("--context", type=int, default=None, help="KV cache length in tokens")
        c.add_argument("--kv", choices=("f16", "f32"), default="f16", help="KV cache dtype")
        c.add_argument("--quantize", choices=("q8_0", "q4"), default=None,
                       help="quantize an F16/BF16/F32 safetensors checkpoint at load")
        c.add_argument("prompt")
    return p


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _tokenizer(model_path: str):
    from .tokenizer import Tokenizer
    if os.path.isdir(model_path):
        tj = os.path.join(model_path, "tokenizer.json")
        tc = os.path.join(model_path, "tokenizer_config.json")
        with open(tj, encoding="utf-8") as f:
            tok_json = f.read()
        cfg = open(tc, encoding="utf-8").read() if os.path.isfile(tc) else None
        return await Tokenizer.load(tok_json, cfg)
    from .formats.gguf import read_gguf
    from .formats.sources import FileSource
    src = FileSource(model_path)
    try:
        return await Tokenizer.from_gguf(await read_gguf(src))
    finally:
        src.close()


async def _run(args) -> int:
    from .gpu import open_device
    from .kernels.sampling import SamplingParams
    from .models import load_model
    from .tokenizer.chat import ChatFormat
    from .tokenizer.stream import StreamDetokenizer

    from .models import ModelSourceError
    params = SamplingParams(temperature=args.temperature, seed=args.seed, top_k=args.top_k,
                            top_p=args.top_p)
    if not os.path.exists(args.model):
        raise ModelSourceError(f"{args.model}: no such file or directory")
    tok = await _tokenizer(args.model)
    dev = await open_device()
    info = dev.info
    _log(f"adapter: {info.vendor} {info.device} {info.description} ({info.backend})")
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 0.5 or done == total:
            last[0] = now
            _log(f"loading: {done / max(total, 1):6.1%} ({done >> 20} / {total >> 20} MiB)")

    model = await load_model(dev, args.model, context_length=args.context, kv_dtype=args.kv,
                             quantize=args.quantize, progress=progress)
    _log(f"loaded {model.config.family} ({model.config.n_layers} layers) in "
         f"{time.perf_counter() - t0:.2f} s")
    if args.command == "chat":
        chat = await ChatFormat.load(tok)
        ids = chat.prompt_ids([{"role": "user", "content": args.prompt}])
        stop = chat.stop_ids()
    else:
        ids = tok.encode(args.prompt, add_special_tokens=True)
        stop = {tok.eos_id} if tok.eos_id is not None else set()
    detok = StreamDetokenizer(tok, stop_ids=stop)
    t1 = time.perf_counter()
    n = 0
    first = None
    async for t in model.generate(ids, params, max_tokens=args.max_tokens, stop_ids=stop):
        if first is None:
            first = time.perf_counter() - t1
        n += 1
        sys.stdout.write(detok.push(t))
        sys.stdout.flush()
    sys.stdout.write(detok.finish())
    sys.stdout.write("\n")
    sys.stdout.flush()
    total = time.perf_counter() - t1
    s = model.stats
    _log(f"{len(ids)} prompt tokens, {n} generated; time to first token {first:.3f} s; decode "
         f"{s['decode_tokens'] / max(s['decode_s'], 1e-9):.1f} tok/s; total {total:.2f} s")
    model.destroy()
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError) as e:   # named errors derive from these
        _log(f"error: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
