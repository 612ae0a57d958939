"""CPU backend benchmark: prefill and decode tokens/s of the same GGUF on our WebGPU engine
(SwiftShader when the machine has no GPU) and on the CPU backend (llama.cpp in WebAssembly,
wllama) multi-threaded (cross-origin isolated page) and single-threaded (no isolation headers),
in one headless Chromium run, through the real page and the runtime API (window.LocalLLM).

    python -m app.bench cpu [--model PATH] [--prompt-tokens 128] [--tokens 32] [--rounds 3]
                            [--backends webgpu,cpu-mt,cpu-st] [--json OUT]

Each round is a raw completion (complete(), temperature 0) of a fresh prompt of about
--prompt-tokens tokens (no KV reuse) with max_tokens=--tokens; the figures are the runtime's
usage (prefill_tokens_per_s, decode_tokens_per_s), medians over the rounds after one warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"webgpu": ("webgpu", True), "cpu-mt": ("cpu", True), "cpu-st": ("cpu", False)}
TEXT = ("The history of the printing press begins in the fifteenth century, when movable type "
        "changed how books were made, how ideas travelled and how people learned to read. ")

RUN_JS = """async ([model, backend, prompts, n]) => {
  const t0 = performance.now();
  const r = await LocalLLM.init(model, {backend, contextLength: 1024});
  const loadS = (performance.now() - t0) / 1000;
  const runs = [];
  for (const p of prompts) {
    const out = await LocalLLM.complete(p, {temperature: 0, maxTokens: n});
    runs.push(out.usage);
  }
  const info = await LocalLLM.getRuntimeInfo();
  await LocalLLM.unload();
  return {init: r, loadS, runs, info};
}"""


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m app.bench cpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a GGUF file (default: the bundled SmolLM2)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="webgpu,cpu-mt,cpu-st")
    ap.add_argument("--json", help="write the results here")
    return ap.parse_args(argv)


def _prompts(rounds: int, prompt_tokens: int) -> list[str]:
    words = TEXT.split()
    body = " ".join(words[i % len(words)] for i in range(int(prompt_tokens * 0.75)))
    # A different first line per round: no KV-cache prefix is shared between rounds.
    return [f"Note {k}: {body}" for k in range(rounds + 1)]


def _median(runs, key):
    vals = [u[key] for u in runs if u.get(key)]
    return statistics.median(vals) if vals else 0.0


def run(args) -> dict:
    sys.path.insert(0, str(ROOT))
    import build
    from playwright.sync_api import sync_playwright

    from .browser import CHROMIUM_ARGS, Server, launch_chromium
    prompts = _prompts(args.rounds, args.prompt_tokens)
    results = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
               "prompt_tokens": args.prompt_tokens, "tokens": args.tokens, "configs": {}}
    with tempfile.TemporaryDirectory(prefix="localllm-cpu-bench-") as tmp:
        dist = Path(tmp) / "dist"
        build.build(dist)
        model = None
        if args.model:
            target = dist / "models" / Path(args.model).name
            try:
                os.link(args.model, target)
            except OSError:
                shutil.copyfile(args.model, target)
            model = f"models/{target.name}"
        with sync_playwright() as p:
            browser = launch_chromium(p, CHROMIUM_ARGS)
            try:
                for name in args.backends.split(","):
                    backend, isolate = CONFIGS[name]
                    srv = Server(dist, isolate=isolate).start()
                    context = browser.new_context(service_workers="block")
                    try:
                        page = context.new_page()
                        page.goto(srv.url)
                        page.wait_for_function("window.LocalLLM !== undefined", timeout=240_000)
                        r = page.evaluate(RUN_JS, [model, backend, prompts, args.tokens])
                    finally:
                        context.close()
                        srv.stop()
                    runs = r["runs"][1:]                     # the first is the warm-up
                    info = r["info"]
                    results["configs"][name] = {
                        "backend": r["init"]["backend"], "model": r["init"]["model"],
                        "load_s": r["loadS"], "adapter": (info.get("adapter") or {}).get("description"),
                        "cpu": info.get("cpu"),
                        "prompt_tokens": statistics.median(u["prompt_tokens"] for u in runs),
                        "prefill_tok_s": _median(runs, "prefill_tokens_per_s"),
                        "decode_tok_s": _median(runs, "decode_tokens_per_s"),
                        "ttft_s": _median(runs, "time_to_first_token_s"),
                        "completion_tokens": [u["completion_tokens"] for u in runs]}
                    print(report_line(name, results["configs"][name]), flush=True)
            finally:
                browser.close()
    return results


def report_line(name: str, c: dict) -> str:
    threads = f", {c['cpu']['threads']} thread(s)" if c.get("cpu") else ""
    return (f"{name:7s} {c['model']}: prefill {c['prefill_tok_s']:7.1f} tok/s "
            f"({c['prompt_tokens']:.0f} tokens), decode {c['decode_tok_s']:6.1f} tok/s, "
            f"TTFT {c['ttft_s']:.2f} s, load {c['load_s']:.1f} s{threads}"
            + (f" [{c['adapter']}]" if c.get("adapter") else ""))


def main(argv) -> int:
    args = parse(argv)
    results = run(args)
    cfg = results["configs"]
    if "webgpu" in cfg:
        for name in ("cpu-mt", "cpu-st"):
            if name in cfg and cfg["webgpu"]["decode_tok_s"]:
                print(f"{name} / webgpu: decode {cfg[name]['decode_tok_s'] / cfg['webgpu']['decode_tok_s']:.1f}x, "
                      f"prefill {cfg[name]['prefill_tok_s'] / max(cfg['webgpu']['prefill_tok_s'], 1e-9):.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0
