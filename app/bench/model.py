"""Model benchmark: prefill and decode speed of the engine on one model file.

    python -m app.bench model --model PATH [--prompt-tokens 512] [--decode-tokens 128]
                              [--kv f16] [--runs 3] [--decode-q8] [--small] [--json OUT]
    node app/bench/node/run.mjs model --model PATH [same options]   (Pyodide on Dawn)

Random-weight files of real shapes: `python -m app.bench gen-gguf` (gen_gguf.py).

Per run (after one warm-up run that records every plan and compiles every pipeline), on a fresh
sequence of random token ids (model.reset(): no prefix reuse):
  TTFT            wall time of model.prefill(ids): ids written, every prefill chunk replayed, the
                  first token sampled on the GPU and read back
  prefill tok/s   prompt tokens / TTFT
  decode tok/s    N / wall time of model.decode_n(N): N greedy decode steps replayed back to back,
                  one readback of the N ids at the end (llama-bench's tg N); and again with a
                  readback every DECODE_BATCH tokens, as model.generate() streams
  host ms/token   host time in the engine's replay calls during decode_n(N) (model.stats
                  "host_s": Python + the JS/wgpu encode and submit; GPU waits are outside it) / N.
                  On a CPU adapter (lavapipe) the driver does GPU work inside submit, so there
                  this is not host-only time.
  GPU ms/token    (timestamp-query only) one decode plan replay timed by GPU timestamps
  bandwidth       bytes read per decode token / decode time per token, where bytes =
                  weights in their GPU layouts (every matrix the decode step reads, the LM head,
                  the norms, one embedding row) + KV cache rows attended (K and V, all layers,
                  the window on sliding-window layers), averaged over the decode positions
  of peak         bandwidth / the streaming-read peak of app.bench.kernels.probe, measured on the
                  same device in the same run (before the model is loaded)
Reported: the median over --runs runs. Runs natively, in the page and in Node (no numpy).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import struct
import sys
import time

from ..gpu import Device, open_device
from ..kernels.layouts import row_bytes
from .dispatch import describe
from .kernels import machine, probe

MiB, GiB = 1 << 20, 1 << 30
KV_BYTES = {"f16": 2, "f32": 4}


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m app.bench model", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a .gguf file or a safetensors directory")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--kv", choices=sorted(KV_BYTES), default="f16", help="KV cache dtype")
    ap.add_argument("--runs", type=int, default=3, help="measured runs (median reported)")
    ap.add_argument("--decode-q8", action="store_true", help="load_model(decode_q8=True)")
    ap.add_argument("--quantize", default=None, help="load_model(quantize=...) for safetensors")
    ap.add_argument("--small", action="store_true", help="CPU adapters: 128 MiB probe passes")
    ap.add_argument("--json", default=None, help="write the results here as JSON")
    args = ap.parse_args(list(argv))
    if args.prompt_tokens < 1 or args.decode_tokens < 1 or args.runs < 1:
        ap.error("--prompt-tokens, --decode-tokens and --runs must be >= 1")
    return args


def decode_weight_bytes(weights) -> int:
    """Bytes the decode step reads from weights per token (GPU layouts; see the module doc)."""
    def mat(w):
        return 0 if w is None else w.rows * row_bytes(w.layout, w.cols)

    total = mat(weights.output) + weights.output_norm.size
    emb = weights.token_embd
    total += row_bytes(emb.layout, emb.cols)  # one row gathered per token
    for lw in weights.layers:
        total += mat(lw.qkv) if lw.qkv is not None else mat(lw.q) + mat(lw.k) + mat(lw.v)
        total += mat(lw.o) + mat(lw.down)
        total += mat(lw.gate_up) if lw.gate_up is not None else mat(lw.gate) + mat(lw.up)
        biases = ("qkv_bias",) if lw.qkv is not None else ("q_bias", "k_bias", "v_bias")
        for name in ("attn_norm", "ffn_norm", "q_norm", "k_norm", "post_attn_norm",
                     "post_ffw_norm") + biases:
            b = getattr(lw, name, None)
            total += 0 if b is None else b.size
    return total


def kv_bytes_read(cfg, kv: str, first_pos: int, n: int) -> float:
    """Mean K+V bytes attended per decode step at positions first_pos .. first_pos + n - 1."""
    row = 2 * cfg.n_kv_heads * cfg.head_dim * KV_BYTES[kv]  # K and V of one position, one layer
    total = 0
    for p in range(first_pos, first_pos + n):
        for i in range(cfg.n_layers):
            keys = p + 1
            if cfg.is_local(i):
                keys = min(keys, cfg.sliding_window)
            total += keys * row
    return total / n


async def gpu_decode_seconds(dev: Device, model, pos: int) -> float | None:
    """GPU time of one decode step by timestamps (uses the Model's recorded decode plan; returns
    None when the device lacks timestamp-query or the engine's internals differ)."""
    if "timestamp-query" not in dev.features:
        return None
    try:
        plan = model._plans[("decode",)]
        timer = dev.timer()
        times = []
        for k in range(5):
            dev.replay(plan, model.step, struct.pack("<4I", pos + k, 1, pos + k + 1, 0),
                       timer=timer)
            times.append(await timer.seconds())
        timer.destroy()
        return statistics.median(times)
    except Exception as e:  # noqa: BLE001 - an optional extra, never fatal
        print(f"(GPU decode timing unavailable: {type(e).__name__}: {e})")
        return None


async def one_run(model, prompt: list[int], n: int, batch: int) -> dict:
    now = time.perf_counter
    model.reset()
    t0 = now()
    await model.prefill(prompt)
    ttft = now() - t0
    host0 = model.stats["host_s"]
    t0 = now()
    await model.decode_n(n)
    decode = now() - t0
    host = model.stats["host_s"] - host0
    # generate()-style: a readback every `batch` tokens
    model.reset()
    await model.prefill(prompt)
    t0 = now()
    left = n
    while left:
        k = min(batch, left)
        await model.decode_n(k)
        left -= k
    streamed = now() - t0
    return {"ttft_s": ttft, "prefill_tps": len(prompt) / ttft, "decode_s": decode,
            "decode_tps": n / decode, "host_ms_per_token": 1e3 * host / n,
            "decode_batched_tps": n / streamed}


async def main(argv=(), dev: Device | None = None, source=None) -> dict:
    """Run the benchmark, print the table, return the results. `source`: a byte source to load
    instead of --model's path (Node: a JSBufferSource/BlobSource of the file)."""
    from ..models import load_model
    from ..models.model import DECODE_BATCH
    args = parse(argv)
    dev = dev or await open_device()
    res = {"machine": machine(), "adapter": describe(dev), "model": args.model,
           "prompt_tokens": args.prompt_tokens, "decode_tokens": args.decode_tokens,
           "kv": args.kv, "decode_q8": args.decode_q8, "runs": args.runs}
    print(f"machine: {res['machine']}")
    print(f"adapter: {res['adapter']}; features {sorted(dev.features)}", flush=True)
    pass_bytes = 128 * MiB if args.small else GiB
    peak = await probe(dev, 128 * MiB if args.small else GiB, pass_bytes, 5)
    res["probe"] = peak
    print(f"probe_read: {peak['gbs']:.1f} GB/s ({peak['method']})", flush=True)

    t0 = time.perf_counter()
    ctx = args.prompt_tokens + 2 * args.decode_tokens + 8
    model = await load_model(dev, source if source is not None else args.model,
                             context_length=ctx, kv_dtype=args.kv, quantize=args.quantize,
                             decode_q8=args.decode_q8)
    res["load_s"] = time.perf_counter() - t0
    try:
        cfg = model.config
        vocab = model.vocab
        res["config"] = {k: getattr(cfg, k) for k in (
            "family", "n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
            "vocab_size")}
        w_bytes = decode_weight_bytes(model.weights)
        kv = kv_bytes_read(cfg, args.kv, args.prompt_tokens, args.decode_tokens)
        res.update(weights_gpu_bytes=model.weights.nbytes, decode_weight_bytes=w_bytes,
                   decode_kv_bytes=kv)
        print(f"model: {args.model}: {cfg.family}, {cfg.n_layers} layers, dim {cfg.dim}, "
              f"vocab {vocab}; loaded in {res['load_s']:.1f} s; weights on GPU "
              f"{model.weights.nbytes / 1e6:.1f} MB, read per decode token "
              f"{w_bytes / 1e6:.1f} MB + KV {kv / 1e6:.2f} MB", flush=True)
        rng = random.Random()
        # warm-up: every plan (prefill buckets, head, decode) recorded and compiled
        await one_run(model, [rng.randrange(vocab) for _ in range(args.prompt_tokens)],
                      min(args.decode_tokens, 2 * DECODE_BATCH), DECODE_BATCH)
        runs = []
        for _ in range(args.runs):
            ids = [rng.randrange(vocab) for _ in range(args.prompt_tokens)]
            runs.append(await one_run(model, ids, args.decode_tokens, DECODE_BATCH))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        res["runs_detail"] = runs
        res.update(med)
        per_token = med["decode_s"] / args.decode_tokens
        res["bandwidth_gbs"] = (w_bytes + kv) / per_token / 1e9
        res["of_peak"] = res["bandwidth_gbs"] / peak["gbs"]
        plan = getattr(model, "_plans", {}).get(("decode",))
        res["decode_dispatches"] = len(plan) if plan is not None else None
        gpu = await gpu_decode_seconds(dev, model, args.prompt_tokens + args.decode_tokens)
        res["gpu_ms_per_token"] = None if gpu is None else 1e3 * gpu
    finally:
        model.destroy()
    print(report(res), flush=True)
    if args.json and sys.platform != "emscripten":
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {args.json}")
    return res


def report(r: dict) -> str:
    gpu = r.get("gpu_ms_per_token")
    rows = [
        ("prompt tokens / decode tokens", f"{r['prompt_tokens']} / {r['decode_tokens']} "
         f"(KV {r['kv']}{', decode_q8' if r['decode_q8'] else ''}; median of {r['runs']})"),
        ("time to first token", f"{1e3 * r['ttft_s']:.1f} ms"),
        ("prefill", f"{r['prefill_tps']:.1f} tok/s"),
        ("decode (one readback)", f"{r['decode_tps']:.1f} tok/s "
         f"({1e3 * r['decode_s'] / r['decode_tokens']:.3f} ms/token)"),
        ("decode (readback every 4)", f"{r['decode_batched_tps']:.1f} tok/s"),
        ("host time per token", f"{r['host_ms_per_token']:.3f} ms (replay calls)"),
        ("GPU time per token", "n/a (no timestamp-query)" if gpu is None else f"{gpu:.3f} ms"),
        ("dispatches per decode token", str(r.get("decode_dispatches"))),
        ("bandwidth", f"{r['bandwidth_gbs']:.1f} GB/s = {r['of_peak']:.0%} of the probe's "
         f"{r['probe']['gbs']:.1f} GB/s"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def cli(argv) -> int:
    import asyncio
    asyncio.run(main(argv))
    return 0
