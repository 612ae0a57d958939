"""One request on the loaded model: token ids in, ordered stream items out.

Streamed and non-streamed requests both run `generate` below and differ only in whether the
caller sees the items one by one (service.py joins them for stream=False), so for the same seed
the concatenated deltas are the non-streamed text by construction.

Items: {"delta": str} while generating ("logprobs": [entry] too when asked: then one item per
token, delta possibly ""); the last item also carries "finish_reason" (stop | length | abort)
and "usage" (usage.py). A logprobs entry: {"id", "token", "logprob", "top_logprobs":
[{"id", "token", "logprob"}]}; the stop token (eos / end of turn) has none, as it has no text.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ..kernels.sampling import SamplingParams
from ..tokenizer.stream import StreamDetokenizer
from .usage import empty_usage, stats_mark, usage


@dataclass
class Request:
    kind: str                       # "chat" | "complete"
    payload: object                 # messages (list of dicts) | prompt (str)
    params: SamplingParams
    max_tokens: int
    stop: list[str]
    truncate: str
    t_call: float
    ids: list[int] | None = None    # prompt ids, built at call time when a model was ready
    serial: int = -1                # the load they were built for (rebuilt if it changed)
    aborted: bool = False           # interrupt(), switch/unload, or the consumer went away
    finished: bool = False          # its last item was put (or it failed)
    model: str | None = None        # the model id it ran on
    items: asyncio.Queue = field(default_factory=asyncio.Queue)
    ticket: object = None


def logprob_entry(tok, result) -> dict:
    return {"id": result.id, "token": tok.decode([result.id]), "logprob": result.logprob,
            "top_logprobs": [{"id": i, "token": tok.decode([i]), "logprob": lp}
                             for i, lp in result.top]}


async def generate(model, tok, stop_ids: set, req: Request, put) -> None:
    """Run `req` (its ids already built) on `model`, calling put(item) for each item. The abort
    flag is read after every token the model yields (tokens come in readback batches, see
    Model.generate); leaving the loop closes the model's generator, which ends the decode."""
    if req.aborted:
        put({"delta": "", "finish_reason": "abort",
             "usage": empty_usage(req.t_call, time.perf_counter(), len(req.ids or ()))})
        return
    want_lp = req.params.logprobs > 0
    detok = StreamDetokenizer(tok, stop_ids=stop_ids, stop_strings=req.stop)
    before = stats_mark(model.stats)
    n, t_first, cached, finish = 0, None, 0, None
    gen = model.generate(req.ids, req.params, max_tokens=req.max_tokens, stop_ids=stop_ids,
                         **({"with_logprobs": True} if want_lp else {}))
    try:
        async for out in gen:
            if t_first is None:
                t_first = time.perf_counter()
            tid = out.id if want_lp else out
            n += 1
            text = detok.push(tid)
            item = {"delta": text}
            if want_lp and tid not in stop_ids:
                item["logprobs"] = [logprob_entry(tok, out)]
            if text or "logprobs" in item:
                put(item)
            if detok.stopped:
                finish = "stop"
                break
            if req.aborted:
                finish = "abort"
                break
            # The native backend's readbacks block without yielding to the event loop: yield
            # here so that interrupt() callers and stream consumers run between tokens.
            await asyncio.sleep(0)
    finally:
        await gen.aclose()
    if t_first is not None:
        # Read after the generation: the CPU backend learns it from llama.cpp's last chunk.
        cached = model.stats.get("prefill_reused", 0)
    if finish is None:
        finish = "abort" if req.aborted else "length"
    tail = detok.finish()
    t_end = time.perf_counter()
    put({"delta": tail, "finish_reason": finish,
         "usage": usage(len(req.ids), n, cached, before, stats_mark(model.stats), req.t_call,
                        t_first, t_end)})
