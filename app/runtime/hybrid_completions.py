"""OpenAI-shaped chat completions over HybridLLM: `rt.chat_completions.create(...)`, as
openai.py's over LocalLLM, plus "provider" ("local" | "remote") on the result and on every
chunk. openai.py builds the shapes; this adds the provider and keeps usage honest: when a
remote server reported no usage, the result's (or the last chunk's) "usage" is None rather than
invented counts.

A streamed create() waits for the first item before returning, so that every chunk (the role
chunk first) can name its provider; errors before the first token are raised by create().
"""
from __future__ import annotations

from .openai import ChatCompletions


def _with_counts(item: dict) -> tuple[dict, bool]:
    """(item with usage counts that openai.py can add up, whether the counts were reported)."""
    u = item.get("usage")
    if u is None or (u.get("prompt_tokens") is not None and u.get("completion_tokens") is not None):
        return item, True
    return {**item, "usage": {**u, "prompt_tokens": u.get("prompt_tokens") or 0,
                              "completion_tokens": u.get("completion_tokens") or 0}}, False


class _View:
    """What ChatCompletions needs of a runtime (chat, status), recording the provider."""

    def __init__(self, rt):
        self._rt = rt
        self.provider = None
        self.reported = True

    def status(self) -> dict:
        s = self._rt.status()
        cfg = self._rt.remote.config
        remote = cfg.effective_mode == "remote" or (cfg.effective_mode == "auto"
                                                    and s["state"] == "error")
        return {**s, "model": cfg.model} if remote else s

    async def chat(self, messages, *, stream: bool = False, **options):
        r = await self._rt.chat(messages, stream=stream, **options)
        if not stream:
            self.provider = r["provider"]
            r, self.reported = _with_counts(r)
            return r
        first = await r.__anext__()
        self.provider = first["provider"]
        return self._items(first, r)

    async def _items(self, first, rest):
        try:
            item = first
            while True:
                item, reported = _with_counts(item)
                self.reported = self.reported and reported
                yield item
                if "finish_reason" in item:
                    return
                item = await rest.__anext__()
        finally:
            await rest.aclose()


class HybridCompletions:
    def __init__(self, runtime):
        self._rt = runtime

    async def create(self, **params):
        """openai.ChatCompletions.create's arguments and shapes, + "provider"."""
        view = _View(self._rt)
        out = await ChatCompletions(view).create(**params)
        if not params.get("stream"):
            out["provider"] = view.provider
            if not view.reported:
                out["usage"] = None
            return out
        return self._chunks(out, view)

    @staticmethod
    async def _chunks(chunks, view: _View):
        try:
            async for chunk in chunks:
                chunk["provider"] = view.provider
                if "usage" in chunk and not view.reported:
                    chunk["usage"] = None
                yield chunk
        finally:
            await chunks.aclose()
