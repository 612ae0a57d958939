"""OpenAI-shaped chat completions over LocalLLM.chat: `rt.chat_completions.create(...)`.

(In Python `rt.chat` is the chat method, so the object is `rt.chat_completions`; the JS facade
offers the usual `llm.chat.completions.create`.)

    r = await rt.chat_completions.create(messages=[...], max_tokens=64)
    r["choices"][0]["message"]["content"]
    async for chunk in await rt.chat_completions.create(messages=[...], stream=True):
        chunk["choices"][0]["delta"].get("content", "")

Result: {"id": "chatcmpl-...", "object": "chat.completion", "created": unix seconds, "model",
"choices": [{"index": 0, "message": {"role": "assistant", "content"}, "finish_reason",
"logprobs": None | {"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}}],
"usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}.
Stream: chunks {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {...},
"finish_reason": None | ..., "logprobs"}]}: the first delta has the role, then content deltas,
the last chunk an empty delta, the finish_reason and "usage".
finish_reason is "stop" or "length" as OpenAI's, or "abort" (interrupted: OpenAI has no such
case; it is kept rather than disguised). Options OpenAI has and LocalLLM lacks (n > 1, tools,
response_format) raise ValueError; logprobs is a bool with top_logprobs (0..20) as in OpenAI.
"""
from __future__ import annotations

import secrets
import time

from .errors import NotLoadedError

OPTIONS = ("temperature", "top_p", "top_k", "min_p", "stop", "seed", "repetition_penalty",
           "presence_penalty", "frequency_penalty", "truncate")


def _usage(u: dict) -> dict:
    return {"prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
            "total_tokens": u["prompt_tokens"] + u["completion_tokens"]}


def _logprobs(entries: list[dict]) -> dict:
    return {"content": [{"token": e["token"], "logprob": e["logprob"],
                         "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]}
                                          for t in e["top_logprobs"]]} for e in entries]}


class ChatCompletions:
    def __init__(self, runtime):
        self._rt = runtime

    async def create(self, *, messages, model: str | None = None, stream: bool = False,
                     max_tokens: int | None = None, max_completion_tokens: int | None = None,
                     n: int = 1, logprobs: bool = False, top_logprobs: int | None = None,
                     **options):
        """OpenAI's chat.completions.create on the loaded model (see the module doc).
        `model`, when given, must be the loaded one (NotLoadedError otherwise: switch_model
        first). max_tokens (or max_completion_tokens) defaults to LocalLLM.chat's 256."""
        if n != 1:
            raise ValueError(f"n={n}: LocalLLM generates one choice per request (n=1)")
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unsupported option(s) {sorted(unknown)}; supported: "
                             f"{', '.join(OPTIONS)}, max_tokens, logprobs, top_logprobs")
        loaded = self._rt.status()["model"]
        if model is not None and (loaded is None or model.lower() != loaded.lower()):
            raise NotLoadedError(f"model {model!r} is not loaded (loaded: {loaded!r}); call "
                                 f"switch_model({model!r}) first, or leave model out")
        k = int(top_logprobs or 0) if logprobs else 0
        if logprobs and k == 0:
            k = 1                      # logprobs of the chosen tokens; LocalLLM needs k >= 1
        limit = max_completion_tokens if max_completion_tokens is not None else max_tokens
        kwargs = {**options, "logprobs": k}
        if limit is not None:
            kwargs["max_tokens"] = limit
        cid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
        if stream:
            items = await self._rt.chat(messages, stream=True, **kwargs)
            return self._chunks(items, cid, created, loaded, bool(logprobs), top_logprobs or 0)
        r = await self._rt.chat(messages, **kwargs)
        lp = None
        if logprobs:
            lp = _logprobs([{**e, "top_logprobs": e["top_logprobs"][:top_logprobs or 0]}
                            for e in r["logprobs"]])
        return {"id": cid, "object": "chat.completion", "created": created, "model": r["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": r["text"]},
                             "finish_reason": r["finish_reason"], "logprobs": lp}],
                "usage": _usage(r["usage"])}

    @staticmethod
    async def _chunks(items, cid, created, model, want_lp: bool, top: int):
        def chunk(delta: dict, finish=None, entries=None) -> dict:
            lp = None
            if want_lp and entries:
                lp = _logprobs([{**e, "top_logprobs": e["top_logprobs"][:top]} for e in entries])
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": lp,
                                                 "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        try:
            async for item in items:
                if item["delta"] or item.get("logprobs"):
                    yield chunk({"content": item["delta"]}, entries=item.get("logprobs"))
                if "finish_reason" in item:
                    last = chunk({}, item["finish_reason"])
                    last["usage"] = _usage(item["usage"])
                    yield last
        finally:
            await items.aclose()
