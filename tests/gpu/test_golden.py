"""Golden test (llama2.c's test_all.py idea): the command line, SmolLM2-135M-Instruct Q4_1 at
temperature 0 on one fixed chat message, must print exactly the text below.

GOLDEN comes from the transformers oracle alone, never from this engine:
    .venv/bin/python -m tests.real_models golden <SmolLM2-135M-Instruct.Q4_1.gguf> \
        "Why is the sky blue?" 40
i.e. transformers 5.24 (torch 2.13 CPU, f32, weights dequantized from this GGUF by gguf-py),
its own GGUF tokenizer and chat template (apply_chat_template, add_generation_prompt=True),
generate(do_sample=False, max_new_tokens=40, eos = <|im_end|>), decoded with
skip_special_tokens=True. The reply does not end within 40 tokens, so the text is cut there.
The run goes through everything of ours: GGUF tokenizer, chat template, prefill, decode,
streaming detokenizer, stdout.

--kv f32: the oracle is f32 throughout. With the default f16 KV cache the attention inputs are
rounded (relative 5e-4), which moves logits by ~1e-3 relative: more than the smallest greedy
margin along this reply can be trusted to absorb, so f16 is not part of the golden contract.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "Why is the sky blue?"
MAX_TOKENS = 40
GOLDEN = ("The answer to this question lies in the intricate dance of light and color. The sky "
          "appears blue because of a phenomenon known as Rayleigh scattering. This occurs when "
          "light encounters molecules of air, which scatter")


def test_cli_chat_golden(gpu, smollm2_gguf):
    # `gpu`: only to skip (locally) or fail (CI) when there is no adapter, like the other GPU
    # tests; the subprocess opens its own device.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "app", "chat", "--model", str(smollm2_gguf),
                        "--max-tokens", str(MAX_TOKENS), "--kv", "f32", "--context", "256",
                        MESSAGE], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    print(f"\ncli chat: {time.perf_counter() - t0:.1f} s; stderr tail: "
          f"{r.stderr.strip().splitlines()[-1:]}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == GOLDEN + "\n", f"\nexpected {GOLDEN!r}\n     got {r.stdout!r}"
