"""`python -m app chat --model FILE` without a message: an interactive chat on stdin, through a
real subprocess with the bundled SmolLM2 (greedy). Two turns (the second reuses the first's KV
prefix), then /reset and the first message again (the same reply: the history was cleared),
then end of input (exit 0). The progress bar goes to stderr, replies to stdout."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_interactive_chat(gpu, smollm2_gguf):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "app", "chat", "--model", str(smollm2_gguf),
                        "--max-tokens", "12", "--context", "256"],
                       input="Hello!\nWhat is the capital of France?\n\n/reset\nHello!\n",
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    usage = re.findall(r"^(\d+) prompt tokens \((\d+) cached\), (\d+) generated", r.stderr, re.M)
    assert len(usage) == 3, r.stderr              # the blank line was not a turn
    (p1, c1, _), (p2, c2, _), (p3, c3, _) = [tuple(map(int, u)) for u in usage]
    assert p2 > p1 and c2 >= p1                   # turn 2 = turn 1's prompt + reply + question
    assert p3 == p1                               # after /reset: the first prompt again
    first = r.stdout.split("\n")[0]
    assert first and r.stdout.endswith(first + "\n") and r.stdout.count(first) >= 2
    assert "(new conversation)" in r.stderr
    assert re.search(r"^upload\s+\d", r.stderr, re.M) and re.search(r"^compile", r.stderr, re.M)
    print(f"\ninteractive chat, 3 turns: {took:.1f} s; stdout {r.stdout!r}")
