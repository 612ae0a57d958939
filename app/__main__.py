"""Command line for the native engine (CPython + wgpu-py), through the runtime API (LocalLLM).

    python -m app complete --model FILE_OR_ID [--max-tokens N] [--temperature T] [--seed S]
                           [--top-k K] [--top-p P] [--context N] [--kv f16|f32] PROMPT
    python -m app chat --model FILE_OR_ID [...] MESSAGE   # one user turn through the chat template
    python -m app chat --model FILE_OR_ID [...]           # interactive chat on stdin
    python -m app models                                  # the catalog: id, size, cached

FILE_OR_ID: a .gguf file, a safetensors folder, or a catalog id (`models` lists them; a model
not on disk yet is downloaded into ~/.cache/localllm/models, or $LOCALLLM_CACHE).
`complete` prints only the raw completion of PROMPT (no chat template) on stdout, streamed as it
is generated; `chat MESSAGE` prints only the reply. Progress, speed and logs go to stderr. A bad
model file, an unknown id, an unsupported architecture or a prompt longer than the context exits
with status 1 and the named error's message on stderr ("error: Name: message").

Interactive chat: each line on stdin is a user message; the reply streams to stdout followed by
a newline. The conversation is kept (its KV cache prefix is reused; the oldest turns are dropped
when it outgrows the context); `/reset` starts over, `/exit` or end of input quits (status 0).
Ctrl-C stops the reply being generated.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading

from .cli_progress import ProgressBar

INTERACTIVE_HELP = "commands: /reset (new conversation), /exit (or end of input)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("complete", "raw completion of a prompt"),
                        ("chat", "chat through the model's chat template (interactive without "
                                 "a MESSAGE)")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--model", required=True,
                       help="a .gguf file, a safetensors directory or a catalog id")
        c.add_argument("--max-tokens", type=int, default=128)
        c.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
        c.add_argument("--seed", type=int, default=None)
        c.add_argument("--top-k", type=int, default=0)
        c.add_argument("--top-p", type=float, default=1.0)
        c.add_argument("--context", type=int, default=None, help="KV cache length in tokens")
        c.add_argument("--kv", choices=("f16", "f32"), default="f16", help="KV cache dtype")
        c.add_argument("--quantize", choices=("q8_0", "q4"), default=None,
                       help="quantize an F16/BF16/F32 safetensors checkpoint at load")
        c.add_argument("--hf-token", default=None,
                       help="Hugging Face token for gated models (sent only to the model's own URLs)")
        c.add_argument("--remote-url", default=None,
                       help="opt-in fallback: an OpenAI-compatible API root (https://host/v1), "
                            "used when the local engine cannot run (key: $LOCALLLM_REMOTE_API_KEY)")
        c.add_argument("--remote-model", default=None, help="the remote server's model name")
        c.add_argument("--remote-mode", choices=("auto", "remote"), default="auto",
                       help="auto: remote only when local cannot serve (default); remote: always")
        if name == "complete":
            c.add_argument("prompt")
        else:
            c.add_argument("prompt", nargs="?", default=None, metavar="MESSAGE",
                           help="one message; without it, an interactive chat on stdin")
    sub.add_parser("models", help="list the model catalog (id, size, cached)")
    return p


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _log_usage(u: dict, finish: str) -> None:
    # None: not known (a remote server that reports no usage)
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    _log(f"{f(u['prompt_tokens'], 'd')} prompt tokens ({f(u['cached_tokens'], 'd')} cached), "
         f"{f(u['completion_tokens'], 'd')} generated ({finish}); time to first token "
         f"{f(u['time_to_first_token_s'], '.3f')} s; prefill "
         f"{f(u['prefill_tokens_per_s'], '.1f')} tok/s; decode "
         f"{f(u['decode_tokens_per_s'], '.1f')} tok/s; total {u['e2e_latency_s']:.2f} s")


def _with_remote(rt, args):
    """HybridLLM over `rt` with the command line's remote settings (kept in memory only; the
    key from $LOCALLLM_REMOTE_API_KEY, never from an argument: those show in `ps`)."""
    import os

    from .runtime.hybrid import HybridLLM
    from .runtime.remote_config import MemoryConfigStore, RemoteConfig
    cfg = RemoteConfig().updated({"enabled": True, "base_url": args.remote_url,
                                  "model": args.remote_model or "", "mode": args.remote_mode,
                                  "api_key": os.environ.get("LOCALLLM_REMOTE_API_KEY", "")})
    hybrid = HybridLLM(rt, store=MemoryConfigStore(cfg.to_dict()))
    hybrid.on("provider", lambda d: _log(f"note: this request goes to {d['host']} "
                                         f"({d['reason']})"))
    return hybrid


async def _print_stream(rt, stream) -> tuple[str, dict]:
    """Write the deltas to stdout as they come, then a newline; Ctrl-C interrupts the reply.
    Returns (text, last item)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, rt.interrupt)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):   # not the main thread / Windows
        handled = False
    parts, last = [], None
    try:
        async for item in stream:
            sys.stdout.write(item["delta"])
            sys.stdout.flush()
            parts.append(item["delta"])
            last = item
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
    sys.stdout.write("\n")
    sys.stdout.flush()
    _log_usage(last["usage"], last["finish_reason"])
    return "".join(parts), last


async def _readline() -> str:
    """One line of stdin ("" at end of input), read in a daemon thread: a blocked read must not
    keep the process alive after Ctrl-C."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def read() -> None:
        try:
            line = sys.stdin.readline()
        except Exception as e:  # noqa: BLE001 - handed to the awaiting coroutine
            err = e
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_exception(err))
            return
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(line))

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return await fut


async def _interactive(rt, opts: dict) -> None:
    tty = sys.stdin.isatty()
    if tty:
        _log(INTERACTIVE_HELP)
    history: list[dict] = []
    while True:
        if tty:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = await _readline()
        if not line:
            return
        message = line.rstrip("\r\n")
        command = message.strip()
        if not command:
            continue
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            history.clear()
            _log("(new conversation)")
            continue
        history.append({"role": "user", "content": message})
        stream = await rt.chat(history, stream=True, truncate="oldest", **opts)
        text, _ = await _print_stream(rt, stream)
        history.append({"role": "assistant", "content": text})


async def _models() -> int:
    from .runtime import LocalLLM
    rt = LocalLLM()
    catalog = await rt.catalog()
    rows = []
    for m in catalog.all():
        c = await rt.platform.cached(m)
        size = "?" if m.size is None else f"{m.size / 1e6:,.0f} MB"
        state = "cached" if c["cached"] else "partial" if c["partial"] else ""
        rows.append((m.id + (" (default)" if m.default else ""), size, state))
    width = max(len(r[0]) for r in rows)
    print(f"{'id':<{width}}  {'size':>10}  cached")
    for name, size, state in rows:
        print(f"{name:<{width}}  {size:>10}  {state}")
    return 0


async def _run(args) -> int:
    if args.command == "models":
        return await _models()
    from .runtime import LocalLLM
    rt = LocalLLM()
    if args.remote_url:
        rt = _with_remote(rt, args)
    bar = ProgressBar(sys.stderr)
    rt.on("progress", bar.update)
    rt.on("memory-warning", lambda d: _log(f"warning: {d['text']}"))
    try:
        r = await rt.init(args.model, context_length=args.context, kv_dtype=args.kv,
                          hf_token=args.hf_token,
                          **({"quantize": args.quantize} if args.quantize else {}))
    finally:
        bar.close()
    a = rt.runtime_info()["adapter"]
    if r.get("provider") == "remote":
        _log(f"using the remote model {r['model']}" + (f" ({r['reason']})" if "reason" in r
                                                        else ""))
    else:
        _log(f"adapter: {a['vendor']} {a['device']} {a['description']}")
        _log(f"loaded {r['model']} in {r['load_s']:.2f} s")
    opts = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed,
            "top_k": args.top_k, "top_p": args.top_p}
    try:
        if args.command == "complete":
            await _print_stream(rt, await rt.complete(args.prompt, stream=True, **opts))
        elif args.prompt is not None:
            messages = [{"role": "user", "content": args.prompt}]
            await _print_stream(rt, await rt.chat(messages, stream=True, **opts))
        else:
            await _interactive(rt, opts)
    finally:
        await rt.unload()
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError, LookupError) as e:  # named errors derive from these
        _log(f"error: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
