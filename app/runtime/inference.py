"""The request half of LocalLLM (service.py): chat() and complete() are checked when called,
take a FIFO turn (turns.py), and run one at a time on the loaded model (generation.py);
interrupt() aborts the running one. Mixed into LocalLLM, whose lifecycle half provides
_loaded, _set, _fail, _turns, _pending, _loads_pending, _state, _error and _memory_check.

A request is checked (options, messages, prompt length) at the call, so PromptTooLongError and
option errors come before any GPU work; if the model changes before its turn, its prompt is
rebuilt with the new tokenizer then. stream=True returns an async iterator of the items;
stream=False joins the same items (so both give the same text for the same seed). A consumer
that leaves a stream early (aclose, or drops it) aborts its generation.
"""
from __future__ import annotations

import asyncio
import time

from ..gpu import DeviceLostError
from .errors import NotLoadedError
from .generation import Request, generate
from .prompt import chat_prompt_ids, check_messages, check_options, raw_prompt_ids


class _Failure:
    """Put on a request's item queue when it failed: the consumer raises `error`."""

    def __init__(self, error: BaseException):
        self.error = error

    @classmethod
    def put(cls, req: Request, error: BaseException) -> None:
        """End `req` with `error`: its consumer raises it."""
        req.finished = True
        req.items.put_nowait(cls(error))


class Inference:
    """chat, complete, interrupt: see the module doc."""

    async def chat(self, messages, *, stream: bool = False, temperature: float = 0.7,
                   top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, max_tokens: int = 256,
                   stop=None, seed: int | None = None, repetition_penalty: float = 1.0,
                   presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                   logprobs: int = 0, truncate: str = "error"):
        """Messages ({"role", "content"}) through the model's chat template.

        stream=False -> {"text", "finish_reason": "stop" | "length" | "abort", "usage",
        "model", "logprobs" (a list, when logprobs > 0)}; stream=True -> an async iterator of
        {"delta"} items whose last one also has "finish_reason", "usage" and "model"
        (generation.py). Generation ends at eos / an end-of-turn token, a `stop` string (not
        included in the text), max_tokens or the context's end. Sampling options as
        app.kernels.sampling.SamplingParams (validated here; seed None = random).
        truncate="oldest" drops the oldest turns to fit the context (prompt.py), else
        PromptTooLongError. usage (usage.py): prompt_tokens, cached_tokens (the prefix reused
        from the KV cache), completion_tokens, prefill_tokens_per_s = tokens actually
        prefilled (prompt_tokens - cached_tokens) / prefill time, decode_tokens_per_s,
        time_to_first_token_s and e2e_latency_s (both from this call, queueing included)."""
        req = self._submit("chat", check_messages(messages), locals())
        return self._items(req) if stream else await self._collect(req)

    async def complete(self, prompt: str, *, stream: bool = False, temperature: float = 0.7,
                       top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0,
                       max_tokens: int = 256, stop=None, seed: int | None = None,
                       repetition_penalty: float = 1.0, presence_penalty: float = 0.0,
                       frequency_penalty: float = 0.0, logprobs: int = 0,
                       truncate: str = "error"):
        """A raw prompt (the tokenizer's bos rule, no template); ends at eos. As chat()."""
        req = self._submit("complete", prompt, locals())
        return self._items(req) if stream else await self._collect(req)

    def interrupt(self) -> bool:
        """Abort the running request (else the next queued one); True if one was aborted.
        Safe to call from another thread (it only sets a flag)."""
        for req in list(self._pending):
            if not req.finished:
                if req.aborted:          # already stopping: a second click must not hit the next
                    return False
                req.aborted = True
                return True
        return False

    def _abort_pending(self) -> None:
        for req in list(self._pending):
            req.aborted = True

    def _submit(self, kind: str, payload, o: dict) -> Request:
        params, max_tokens, stop, truncate = check_options(o)
        if self._loaded is None and self._state != "loading" and not self._loads_pending:
            raise NotLoadedError(self._not_loaded_text())
        req = Request(kind, payload, params, max_tokens, stop, truncate, time.perf_counter())
        if self._loaded is not None:
            self._build_ids(req, self._loaded)       # PromptTooLongError here, before any work
        req.ticket = self._turns.take()
        self._pending.append(req)
        task = asyncio.ensure_future(self._run(req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return req

    def _not_loaded_text(self) -> str:
        if self._state == "error":
            return (f"no model is loaded: the last load failed ({self._error['name']}: "
                    f"{self._error['message']}). Call init() again.")
        return "no model is loaded: call init() (or switch_model()) first."

    @staticmethod
    def _build_ids(req: Request, loaded) -> None:
        ctx = loaded.model.context_length
        if req.kind == "chat":
            req.ids, _ = chat_prompt_ids(loaded.chat, req.payload, ctx, req.truncate)
        else:
            req.ids, _ = raw_prompt_ids(loaded.tok, req.payload, ctx, req.truncate)
        req.serial = loaded.serial

    async def _run(self, req: Request) -> None:
        def put(item: dict) -> None:
            if "finish_reason" in item:
                item["model"] = req.model
                req.finished = True
            req.items.put_nowait(item)

        try:
            async with req.ticket:
                loaded = self._loaded
                req.model = loaded.entry.id if loaded is not None else None
                if not req.aborted:
                    if loaded is None:
                        raise NotLoadedError(self._not_loaded_text())
                    if req.serial != loaded.serial:
                        self._build_ids(req, loaded)
                    self._set(state="generating")
                try:
                    if loaded is None:          # aborted while queued: no GPU work
                        await generate(None, None, set(), req, put)
                    else:
                        stop = loaded.chat_stop if req.kind == "chat" else loaded.raw_stop
                        await generate(loaded.model, loaded.tok, stop, req, put)
                except DeviceLostError as e:
                    self._loaded = None     # its buffers went with the device
                    self._fail(e, req.model)
                    # This request fails now; with cpu_fallback the model is then loaded on
                    # the CPU backend inside this turn, so the next request runs there.
                    _Failure.put(req, e)
                    await self.fall_back_to_cpu(loaded, f"the GPU device was lost ({e})")
                    return
                finally:
                    if self._state == "generating":
                        self._set(state="ready")
                self._memory_check()
        except BaseException as e:
            _Failure.put(req, e)
            if not isinstance(e, Exception):
                raise
        finally:
            self._pending.remove(req)

    async def _items(self, req: Request):
        try:
            while True:
                item = await req.items.get()
                if isinstance(item, _Failure):
                    raise item.error
                yield item
                if "finish_reason" in item:
                    return
        finally:
            if not req.finished:
                req.aborted = True       # the consumer left early: stop generating for it

    async def _collect(self, req: Request) -> dict:
        text, lps, last = [], [], None
        async for item in self._items(req):
            text.append(item["delta"])
            lps.extend(item.get("logprobs", ()))
            last = item
        out = {"text": "".join(text), "finish_reason": last["finish_reason"],
               "usage": last["usage"], "model": last["model"]}
        if req.params.logprobs:
            out["logprobs"] = lps
        return out
