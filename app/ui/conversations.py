"""Conversations: the chat history the dashboard shows and keeps on this device.

    book = ConversationBook(store)          # store: BrowserChatStore (IndexedDB) or MemoryChatStore
    await book.load()                       # every saved conversation, newest first
    conv = book.current                     # one is always current (a new, empty one at first)
    conv.add("user", "Hi"); reply = conv.add("assistant", "")
    reply.content += delta ...; await book.save(conv)
    book.messages_for_model(system_prompt)  # [{"role", "content"}] for LocalLLM.chat

Pure Python except BrowserChatStore (static/chat-store.js, IndexedDB "localllm-chats"), so the
bookkeeping is unit-tested in CPython. Nothing here leaves the device.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

TITLE_CHARS = 48


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Message:
    role: str                               # "user" | "assistant"
    content: str
    meta: dict = field(default_factory=dict)   # assistant: model, usage, finish_reason, provider,
    #                                            error (a failed reply is kept, not sent back)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Conversation:
    id: str
    title: str = "New chat"
    created: int = field(default_factory=_now_ms)
    updated: int = field(default_factory=_now_ms)
    messages: list[Message] = field(default_factory=list)

    def add(self, role: str, content: str, **meta) -> Message:
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', got {role!r}")
        m = Message(role, content, dict(meta))
        self.messages.append(m)
        if role == "user" and self.title == "New chat" and content.strip():
            self.title = title_of(content)
        self.touch()
        return m

    def touch(self) -> None:
        self.updated = _now_ms()

    def drop_last_reply(self) -> Message | None:
        """Remove the trailing assistant message (regenerate); the user message it answered
        stays. None when the conversation does not end with a reply."""
        if self.messages and self.messages[-1].role == "assistant":
            self.touch()
            return self.messages.pop()
        return None

    def clear(self) -> None:
        self.messages.clear()
        self.title = "New chat"
        self.touch()

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "created": self.created,
                "updated": self.updated, "messages": [m.to_dict() for m in self.messages]}

    @classmethod
    def from_dict(cls, d: dict) -> "Conversation":
        msgs = [Message(str(m["role"]), str(m.get("content", "")), dict(m.get("meta") or {}))
                for m in d.get("messages") or [] if m.get("role") in ("user", "assistant")]
        return cls(id=str(d["id"]), title=str(d.get("title") or "New chat"),
                   created=int(d.get("created") or _now_ms()),
                   updated=int(d.get("updated") or _now_ms()), messages=msgs)

    def decode_rates(self) -> list[float]:
        """Decode tokens/s of each finished reply, oldest first (the stats chart)."""
        out = []
        for m in self.messages:
            rate = ((m.meta.get("usage") or {}).get("decode_tokens_per_s")
                    if m.role == "assistant" else None)
            if rate:
                out.append(float(rate))
        return out


def title_of(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1].rstrip() + "…"


class MemoryChatStore:
    """The store interface, in memory (tests; and the fallback when IndexedDB is unavailable)."""

    def __init__(self):
        self.rows: dict[str, str] = {}

    async def load_all(self) -> list[dict]:
        return [json.loads(v) for v in self.rows.values()]

    async def put(self, conv: dict) -> None:
        self.rows[conv["id"]] = json.dumps(conv)

    async def delete(self, conv_id: str) -> None:
        self.rows.pop(conv_id, None)


class BrowserChatStore:
    """static/chat-store.js: one IndexedDB record per conversation. JSON text crosses the JS
    boundary both ways (no proxies kept)."""

    def __init__(self, module):
        self._js = module

    @classmethod
    async def open(cls, base: str) -> "BrowserChatStore":
        from pyodide.code import run_js
        from js import URL
        url = str(URL.new("./static/chat-store.js", base).href)
        return cls(await run_js("(url) => import(url)")(url))

    async def load_all(self) -> list[dict]:
        return json.loads(str(await self._js.loadAll()))

    async def put(self, conv: dict) -> None:
        await self._js.put(json.dumps(conv))

    async def delete(self, conv_id: str) -> None:
        await self._js.remove(conv_id)


class ConversationBook:
    def __init__(self, store):
        self.store = store
        self.items: dict[str, Conversation] = {}
        self.current: Conversation = self._new()

    @staticmethod
    def _new() -> Conversation:
        return Conversation(id=uuid.uuid4().hex)

    async def load(self) -> None:
        """Read every saved conversation; the newest becomes current (a new one if none)."""
        for d in await self.store.load_all():
            try:
                c = Conversation.from_dict(d)
            except (KeyError, TypeError, ValueError):
                continue                      # a damaged record is skipped, not fatal
            self.items[c.id] = c
        newest = self.ordered()
        if newest:
            self.current = newest[0]

    def ordered(self) -> list[Conversation]:
        """Saved conversations (those with messages), most recently updated first."""
        return sorted((c for c in self.items.values() if c.messages),
                      key=lambda c: c.updated, reverse=True)

    def new(self) -> Conversation:
        """Start a new conversation (the current one, if empty, is reused)."""
        if self.current.messages:
            self.current = self._new()
        return self.current

    def select(self, conv_id: str) -> Conversation:
        self.current = self.items[conv_id]
        return self.current

    async def save(self, conv: Conversation | None = None) -> None:
        conv = conv or self.current
        if not conv.messages:
            if conv.id in self.items:
                del self.items[conv.id]
                await self.store.delete(conv.id)
            return
        self.items[conv.id] = conv
        await self.store.put(conv.to_dict())

    async def delete(self, conv_id: str) -> None:
        self.items.pop(conv_id, None)
        await self.store.delete(conv_id)
        if self.current.id == conv_id:
            rest = self.ordered()
            self.current = rest[0] if rest else self._new()

    def messages_for_model(self, system_prompt: str = "", conv: Conversation | None = None
                           ) -> list[dict]:
        """What the model is sent: the system prompt, then the turns. Replies that failed or
        are empty are left out (their user message stays)."""
        conv = conv or self.current
        out = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
        for m in conv.messages:
            if m.role == "assistant" and (m.meta.get("error") or not m.content):
                continue
            out.append({"role": m.role, "content": m.content})
        return out
