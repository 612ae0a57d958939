"""Transformers as the oracle for the real-model tests (tests/gpu/test_model_real.py and
tests/gpu/test_golden.py).

The oracle: transformers (torch CPU) loading the SAME GGUF file,
    AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
which dequantizes every tensor with gguf-py (exact: a quantized weight is d * q (+ m), and f32
holds that product exactly) and runs the forward pass in f32 (eager attention).

References are cached on disk (LOCALLLM_TEST_CACHE, default ~/.cache/localllm-tests/reference),
keyed by the model file's sha256, the prompt ids, the number of tokens and the library versions,
so only the first run pays for torch (~15 s to load a model). Each entry is one .npz:
    tokens  int64 (n_new,)            greedy ids (argmax at each step, transformers' KV cache)
    logits  f32   (len(prompt) + n_new, vocab)   one forward over prompt + tokens; row i
                                       predicts the token at position i + 1

    python -m tests.real_models golden PATH "message" N   # the golden text (see test_golden.py)
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.fixtures_tokenizer import CACHE

REFERENCE_CACHE = CACHE / "reference"
SCHEMA = 2            # bump when the way a reference is computed changes
_sha_memo: dict[str, str] = {}
_hf_models: dict[str, object] = {}


def file_sha256(path: Path) -> str:
    key = os.fspath(path)
    if key not in _sha_memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]


async def chat_prompt(path: Path, message: str) -> tuple[list[int], set[int]]:
    """(prompt ids, stop ids) of one user message through the model's chat template, with OUR
    tokenizer: both engines then run on the same ids, so these tests check the model alone."""
    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource
    from app.tokenizer import Tokenizer
    from app.tokenizer.chat import ChatFormat
    src = FileSource(path)
    try:
        tok = await Tokenizer.from_gguf(await read_gguf(src))
    finally:
        src.close()
    chat = await ChatFormat.load(tok)
    return chat.prompt_ids([{"role": "user", "content": message}]), chat.stop_ids()


@dataclass
class Reference:
    tokens: list[int]          # greedy continuation (no stop ids: always n_new tokens)
    logits: np.ndarray         # f32 (len(prompt) + n_new, vocab)

    def margin(self, row: int) -> float:
        """top-1 minus top-2 logit of a row: how far the greedy choice is from a tie."""
        top2 = np.partition(self.logits[row], -2)[-2:]
        return float(top2[1] - top2[0])


def _hf_model(path: Path):
    """The transformers model of a GGUF file (loaded once per process)."""
    key = os.fspath(path)
    if key not in _hf_models:
        _hf_models.clear()          # one f32 model in memory at a time (gemma3: ~1.1 GB)
        try:
            import torch
            from transformers import AutoModelForCausalLM
        except ImportError as e:
            raise RuntimeError(f"the transformers oracle needs torch (CPU) and accelerate: pip "
                               f"install torch==2.13.0 accelerate==1.15.0 ({e})") from e
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        m = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(key), gguf_file=os.path.basename(key), dtype=torch.float32,
            attn_implementation="eager")
        _hf_models[key] = m.eval()
    return _hf_models[key]


def _versions() -> str:
    """Part of the cache key. The oracle needs torch (CPU), transformers and accelerate (which
    transformers requires for GGUF loading): fail, do not skip, without them."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return " ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "accelerate"))
    except PackageNotFoundError as e:
        raise RuntimeError(f"the transformers oracle needs {e.name}: pip install torch==2.13.0 "
                           "transformers==5.24.0 accelerate==1.15.0") from None


def _compute(path: Path, prompt: list[int], n_new: int) -> Reference:
    import torch
    m = _hf_model(path)
    tokens: list[int] = []
    with torch.no_grad():
        # Greedy with transformers' KV cache (what generate() does), argmax of the last row;
        # no eos check: always n_new tokens, like our generate() without stop ids.
        out = m(torch.tensor([prompt]), use_cache=True, logits_to_keep=1)
        for i in range(n_new):
            tokens.append(int(torch.argmax(out.logits[0, -1])))
            if i + 1 < n_new:
                out = m(torch.tensor([[tokens[-1]]]), cache=out.cache,
                        use_cache=True, logits_to_keep=1)
        # The logits to compare against: one plain forward (no cache) over prompt + tokens.
        logits = m(torch.tensor([list(prompt) + tokens]), use_cache=False).logits[0]
    return Reference(tokens, np.ascontiguousarray(logits.float().numpy(), dtype=np.float32))


def reference(path: Path, prompt: list[int], n_new: int) -> Reference:
    """The oracle's greedy continuation and logits, from the disk cache or computed (and cached)."""
    key = json.dumps({"schema": SCHEMA, "file": file_sha256(path), "prompt": list(prompt),
                      "n_new": n_new, "versions": _versions()})
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    entry = REFERENCE_CACHE / f"{name}.npz"
    if entry.exists():
        with np.load(entry) as z:
            return Reference([int(t) for t in z["tokens"]], z["logits"])
    ref = _compute(path, prompt, n_new)
    REFERENCE_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(".tmp.npz")
    np.savez(tmp, tokens=np.array(ref.tokens, dtype=np.int64), logits=ref.logits,
             key=np.array(key))
    tmp.rename(entry)
    return ref


def golden_text(path: str, message: str, max_new: int) -> str:
    """The golden reply, from transformers alone: its GGUF tokenizer and chat template, greedy
    generate() stopping at eos, decoded without special tokens."""
    import torch
    from transformers import AutoTokenizer
    folder, name = os.path.dirname(path), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    ids = tok.apply_chat_template([{"role": "user", "content": message}],
                                  add_generation_prompt=True, tokenize=True, return_dict=False)
    m = _hf_model(Path(path))
    with torch.no_grad():
        out = m.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=max_new,
                         repetition_penalty=None, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.eos_token_id)
    return tok.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "golden":
        sys.exit(__doc__)
    print(repr(golden_text(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
