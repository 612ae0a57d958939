"""CpuModel (app/cpu/model.py): the model interface over a wllama engine, checked with a scripted
engine standing in for wllama's stream (the browser tier runs the real one:
tests/browser/test_cpu_backend_browser.py) and the real SmolLM2 tokenizer.

Checked: ids come from the chunks' logprob entries in order (several per chunk too); llama.cpp's
request fields (prompt text, max_tokens capped by the context, every sampling field, n_probs);
the prompt text re-tokenizes to the same ids; an end-of-generation stop yields one of the
caller's stop ids; leaving early aborts the stream (and only then); usage counters from
llama.cpp's timings, else wall-clock; a prompt-count mismatch is recorded; reset() turns off
prompt caching once; a too-long prompt is a ContextLengthError; a bos llama.cpp adds itself is
left out of the text.
"""
from __future__ import annotations

import asyncio
import random

import pytest

from app.cpu.model import SAMPLERS, CpuInfo, CpuModel, sampling_fields
from app.kernels.sampling import SampleResult, SamplingParams
from app.models import ContextLengthError

INFO = {"eot": 2, "eos": 2, "eog": [0, 2, 4], "bos": 1, "add_bos": False, "threads": 2}


class Stream:
    def __init__(self, chunks):
        self.chunks, self.aborts = list(chunks), 0

    def abort(self):
        self.aborts += 1

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.chunks:
            raise StopAsyncIteration
        await asyncio.sleep(0)
        return self.chunks.pop(0)


class Engine:
    def __init__(self, script, info=INFO):
        self.script, self.info, self.started, self.closed = list(script), dict(info), [], False

    def start(self, opts):
        self.started.append(opts)
        self.stream = Stream(self.script.pop(0))
        return self.stream

    async def exit(self):
        self.closed = True


def tok_chunk(*ids, finish=None, top=()):
    entries = [{"id": i, "token": f"t{i}", "logprob": -0.5,
                "top_logprobs": [{"id": i, "logprob": -0.5}, *top]} for i in ids]
    return {"choices": [{"text": "", "logprobs": {"content": entries} if entries else None,
                         "finish_reason": finish}]}


def final(reason, prompt_tokens, timings=None):
    c = tok_chunk(finish=reason)
    c["usage"] = {"prompt_tokens": prompt_tokens}
    if timings:
        c["timings"] = timings
    return c


@pytest.fixture(scope="module")
def tok(smollm2_gguf):
    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource
    from app.tokenizer import Tokenizer

    async def load():
        src = FileSource(str(smollm2_gguf))
        try:
            return await Tokenizer.from_gguf(await read_gguf(src))
        finally:
            src.close()
    return asyncio.run(load())


def model(tok, script, ctx=64, info=INFO):
    return CpuModel(Engine(script, info), tok, None, ctx,
                    CpuInfo(2, True, True, "b1", "3.13.0"))


async def collect(gen, n=None):
    out = []
    async for x in gen:
        out.append(x)
        if n is not None and len(out) == n:
            break
    await gen.aclose()
    return out


def test_ids_request_fields_and_timings(tok):
    ids = tok.encode("The capital of France is", add_special_tokens=True)
    timings = {"cache_n": 0, "prompt_n": len(ids), "prompt_ms": 50.0, "predicted_n": 4,
               "predicted_ms": 30.0}
    m = model(tok, [[tok_chunk(11), tok_chunk(12, 13), tok_chunk(14),
                     final("length", len(ids), timings)]])
    params = SamplingParams(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05,
                            repetition_penalty=1.1, presence_penalty=0.2,
                            frequency_penalty=0.1, seed=7)
    out = asyncio.run(collect(m.generate(ids, params, max_tokens=4)))
    assert out == [11, 12, 13, 14]
    opts = m.engine.started[0]
    assert tok.encode(opts["prompt"], add_special_tokens=True) == ids
    assert opts["max_tokens"] == 4 and opts["cache_prompt"] is True and opts["n_probs"] == 1
    assert (opts["temperature"], opts["top_k"], opts["top_p"], opts["min_p"]) == (0.7, 40, 0.9, 0.05)
    assert (opts["repeat_penalty"], opts["presence_penalty"], opts["frequency_penalty"]) == \
        (1.1, 0.2, 0.1)
    assert opts["seed"] == 7 and opts["samplers"] == SAMPLERS and opts["repeat_last_n"] == 64
    assert m.engine.stream.aborts == 0                   # it finished: nothing to abort
    s = m.stats
    assert s["prefill_tokens"] == len(ids) and s["prefill_s"] == pytest.approx(0.05)
    assert s["decode_tokens"] == 3 and s["decode_s"] == pytest.approx(0.03)
    assert s["prompt_mismatches"] == 0 and m.cached == ids + [11, 12, 13, 14]


def test_max_tokens_is_capped_by_the_context_and_too_long_prompts_fail(tok):
    m = model(tok, [[final("length", 60)]], ctx=64)
    asyncio.run(collect(m.generate(list(range(100, 160)), max_tokens=50)))
    assert m.engine.started[0]["max_tokens"] == 4
    with pytest.raises(ContextLengthError):
        asyncio.run(collect(model(tok, []).generate(list(range(100, 164)))))


def test_an_end_of_generation_stop_yields_the_callers_stop_id(tok):
    m = model(tok, [[tok_chunk(5), final("stop", 3)], [tok_chunk(5), final("stop", 3)]])
    assert asyncio.run(collect(m.generate([7, 8, 9], stop_ids={2, 4}))) == [5, 2]
    assert asyncio.run(collect(m.generate([7, 8, 9], stop_ids={4}))) == [5, 4]


def test_leaving_early_aborts_and_counts_wall_clock(tok):
    m = model(tok, [[tok_chunk(5), tok_chunk(6), tok_chunk(7), final("length", 3)]])
    assert asyncio.run(collect(m.generate([7, 8, 9], max_tokens=10), n=2)) == [5, 6]
    assert m.engine.stream.aborts == 1
    assert m.stats["prefill_tokens"] == 3 and m.stats["decode_tokens"] == 1
    assert m.stats["prefill_s"] > 0


def test_logprobs_give_sample_results(tok):
    m = model(tok, [[tok_chunk(5, top=[{"id": 9, "logprob": -1.5}]), final("length", 3)]])
    out = asyncio.run(collect(m.generate([7, 8, 9], SamplingParams(temperature=0, logprobs=2),
                                         max_tokens=1, with_logprobs=True)))
    assert isinstance(out[0], SampleResult) and out[0].id == 5 and out[0].logprob == -0.5
    assert out[0].top == [(5, -0.5), (9, -1.5)]
    assert m.engine.started[0]["n_probs"] == 2


def test_mismatch_reset_reuse_and_random_seed(tok):
    script = [[tok_chunk(5), final("length", 99, {"cache_n": 0, "prompt_n": 3, "prompt_ms": 1,
                                                  "predicted_n": 1, "predicted_ms": 1})],
              [tok_chunk(6), final("length", 5, {"cache_n": 4, "prompt_n": 1, "prompt_ms": 1,
                                                 "predicted_n": 1, "predicted_ms": 1})],
              [tok_chunk(6), final("length", 5)]]
    m = model(tok, script)
    asyncio.run(collect(m.generate([7, 8, 9], max_tokens=1)))
    assert m.stats["prompt_mismatches"] == 1
    asyncio.run(collect(m.generate([7, 8, 9, 5, 10], max_tokens=1)))
    assert m.stats["prefill_reused"] == 4                # from llama.cpp's cache_n
    m.reset()
    asyncio.run(collect(m.generate([7, 8, 9, 5, 10], max_tokens=1)))
    assert [o["cache_prompt"] for o in m.engine.started] == [True, True, False]
    seeds = {o["seed"] for o in m.engine.started}
    assert all(isinstance(x, int) and 0 <= x < 2**31 for x in seeds)


def test_a_bos_llama_cpp_adds_itself_is_left_out(tok):
    info = {**INFO, "add_bos": True, "bos": 1}
    m = model(tok, [[final("length", 3)]], info=info)
    text, n = m.prompt_text([1, 504, 3575])
    assert n == 3 and text == tok.decode([504, 3575], skip_special_tokens=False)
    plain = model(tok, [])
    assert plain.prompt_text([1, 504])[0] == tok.decode([1, 504], skip_special_tokens=False)


def test_sampling_fields_turn_off_llama_cpp_defaults():
    f = sampling_fields(SamplingParams(temperature=0.0, seed=random.randrange(1000)), 128)
    assert f["top_k"] == 0 and f["min_p"] == 0.0 and f["typical_p"] == 1.0
    assert f["dry_multiplier"] == 0.0 and f["xtc_probability"] == 0.0
    assert f["repeat_last_n"] == 128 and f["temperature"] == 0.0
