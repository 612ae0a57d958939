"""The chat: the conversation's messages, the composer, streaming replies, Stop, Regenerate,
Clear, Copy, and the conversation list (kept on this device by app/ui/conversations.py).

Replies are rendered as sanitized Markdown (app/ui/markdown.py) while they stream: the text so
far is re-rendered at most every RENDER_EVERY seconds and once more at the end. User messages
are plain text (textContent). Enter sends, Shift+Enter is a newline.
"""
from __future__ import annotations

import asyncio
import time

from . import format as fmt
from .dom import Handlers, clear, el
from .toasts import error_fields

RENDER_EVERY = 0.08
NEAR_BOTTOM_PX = 80


def reply_footer(meta: dict) -> str:
    """The small line under a reply: speed, tokens, and why it ended early (pure)."""
    u = meta.get("usage") or {}
    parts = []
    if u.get("decode_tokens_per_s"):
        parts.append(fmt.rate(u["decode_tokens_per_s"]))
    if u.get("completion_tokens"):
        parts.append(f"{u['completion_tokens']} tokens")
    finish = meta.get("finish_reason")
    if finish == "abort":
        parts.append("stopped")
    elif finish == "length":
        parts.append("cut at max tokens")
    if meta.get("provider") == "remote":
        parts.append("remote server")
    return " · ".join(parts)


class ChatView:
    def __init__(self, document, llm, toasts, settings, stats, book, markdown,
                 on_device_lost=None, names: dict | None = None):
        self.doc, self.llm, self.toasts = document, llm, toasts
        self.names = names if names is not None else {}   # model id -> name (the picker's)
        self.settings, self.stats, self.book, self.md = settings, stats, book, markdown
        self.on_device_lost = on_device_lost    # async fn(): load the model again
        self.ready = False                      # a model is loaded (or the remote serves)
        self.generating = False
        self.h = Handlers()
        g = document.getElementById
        self.box, self.prompt = g("messages"), g("prompt")
        self.send_btn, self.stop_btn = g("send"), g("stop")
        self.h.task(g("composer"), "submit", lambda _e: self.send())
        self.h.on(self.prompt, "keydown", self._on_key)
        self.h.task(self.stop_btn, "click", lambda _e: self.stop())
        self.h.on(self.box, "click", self._on_click)
        self.h.task(g("new-chat"), "click", lambda _e: self.new_chat())
        self.h.task(g("clear-chat"), "click", lambda _e: self.clear())
        self.h.task(g("delete-chat"), "click", lambda _e: self.delete_chat())
        self.h.on(g("conv-select"), "change", lambda e: asyncio.ensure_future(
            self.select(str(e.target.value))))

    # -- state ------------------------------------------------------------------------------
    def set_ready(self, ready: bool, model_name: str | None = None) -> None:
        self.ready = ready
        self.prompt.disabled = not ready
        self.prompt.placeholder = (f"Message {model_name}" if ready and model_name else
                                   "Message the model" if ready else
                                   "Load a model to start chatting")
        self._buttons()

    def _buttons(self) -> None:
        self.send_btn.disabled = not self.ready or self.generating
        self.send_btn.hidden = self.generating
        self.stop_btn.hidden = not self.generating
        for element_id in ("new-chat", "clear-chat", "delete-chat", "conv-select"):
            self.doc.getElementById(element_id).disabled = self.generating
        self.doc.body.dataset.generating = "1" if self.generating else ""

    # -- rendering --------------------------------------------------------------------------
    def render_all(self) -> None:
        clear(self.box)
        msgs = self.book.current.messages
        if not msgs:
            welcome = el(self.doc, "div", cls="welcome", id="welcome")
            welcome.appendChild(el(self.doc, "h1", "Chat with a language model that runs on "
                                                   "your own GPU."))
            welcome.appendChild(el(self.doc, "p", "Pick a model, watch it download once, then "
                                                  "chat — offline, with nothing sent anywhere."))
            self.box.appendChild(welcome)
        for i, m in enumerate(msgs):
            self.box.appendChild(self._node(m, i))
        self.render_conv_list()
        self.stats.chart(self.book.current.decode_rates())
        self._scroll(force=True)

    def _node(self, m, index: int):
        doc = self.doc
        node = el(doc, "article", cls=f"msg msg-{m.role}", aria_label=(
            "Your message" if m.role == "user" else "Reply"))
        node.dataset.index = str(index)
        head = el(doc, "div", cls="msg-head")
        head.appendChild(el(doc, "span", "You" if m.role == "user" else "Assistant", "who"))
        if m.role == "assistant" and m.meta.get("model"):
            head.appendChild(el(doc, "span", self.names.get(m.meta["model"], m.meta["model"])))
        node.appendChild(head)
        body = el(doc, "div", cls="msg-body")
        node.appendChild(body)
        self._fill(node, m)
        foot = el(doc, "div", cls="msg-foot")
        foot.appendChild(el(doc, "span", reply_footer(m.meta) if m.role == "assistant" else "",
                            "foot-text"))
        copy = el(doc, "button", "Copy", "link", type="button",
                  aria_label="Copy this message")
        copy.dataset.action, copy.dataset.index = "copy", str(index)
        foot.appendChild(copy)
        if m.role == "assistant" and index == len(self.book.current.messages) - 1:
            regen = el(doc, "button", "Regenerate", "link", type="button",
                       aria_label="Regenerate this reply")
            regen.dataset.action = "regenerate"
            foot.appendChild(regen)
        node.appendChild(foot)
        return node

    def _fill(self, node, m) -> None:
        body = node.querySelector(".msg-body")
        if m.role == "user":
            body.textContent = m.content
        else:
            self.md.render_into(body, m.content)
            err = m.meta.get("error")
            if err:
                body.appendChild(el(self.doc, "p", f"{err.get('name')}: {err.get('message')}",
                                    "msg-error"))
        node.dataset.finish = m.meta.get("finish_reason") or ""

    def _scroll(self, force: bool = False) -> None:
        b = self.box
        if force or b.scrollHeight - b.scrollTop - b.clientHeight < NEAR_BOTTOM_PX:
            b.scrollTop = b.scrollHeight

    def render_conv_list(self) -> None:
        sel = self.doc.getElementById("conv-select")
        clear(sel)
        convs = self.book.ordered()
        if self.book.current not in convs:
            convs = [self.book.current] + convs
        for c in convs:
            opt = el(self.doc, "option", c.title, value=c.id)
            opt.selected = c.id == self.book.current.id
            sel.appendChild(opt)

    # -- events -----------------------------------------------------------------------------
    def _on_key(self, event) -> None:
        if event.key == "Enter" and not event.shiftKey and not event.isComposing:
            event.preventDefault()
            if not self.send_btn.disabled:
                asyncio.ensure_future(self.send())

    def _on_click(self, event) -> None:
        btn = event.target.closest("button[data-action]")
        if not btn:
            return
        action = str(btn.dataset.action)
        if action == "copy":
            asyncio.ensure_future(self.copy(int(btn.dataset.index), btn))
        elif action == "regenerate" and not self.generating:
            asyncio.ensure_future(self.regenerate())

    # -- actions ----------------------------------------------------------------------------
    async def send(self) -> None:
        text = str(self.prompt.value)
        if not text.strip() or self.generating or not self.ready:
            return
        if self.settings.read() is None:
            self.toasts.info("Check the generation settings", str(
                self.doc.getElementById("gen-status").textContent))
            return
        self.prompt.value = ""
        conv = self.book.current
        conv.add("user", text)
        await self.book.save(conv)
        self.render_all()
        await self._reply(conv)

    async def regenerate(self) -> None:
        conv = self.book.current
        if self.generating or not self.ready or conv.drop_last_reply() is None:
            return
        await self.book.save(conv)
        self.render_all()
        await self._reply(conv)

    async def _reply(self, conv) -> None:
        settings = self.settings.value
        messages = self.book.messages_for_model(settings.system, conv)
        status = self.llm.status()
        reply = conv.add("assistant", "", model=status.get("model"))
        node = self._node(reply, len(conv.messages) - 1)
        node.classList.add("streaming")
        self.box.appendChild(node)
        self._scroll(force=True)
        self.generating = True
        self._buttons()
        last = 0.0
        try:
            stream = await self.llm.chat(messages, stream=True, truncate="oldest",
                                         **settings.options())
            async for item in stream:
                reply.content += item.get("delta") or ""
                if item.get("provider"):
                    reply.meta["provider"] = item["provider"]
                if item.get("finish_reason"):
                    reply.meta["finish_reason"] = item["finish_reason"]
                if item.get("usage"):
                    reply.meta["usage"] = item["usage"]
                now = time.monotonic()
                if now - last >= RENDER_EVERY:
                    last = now
                    self._fill(node, reply)
                    self._scroll()
        except Exception as e:  # noqa: BLE001 - kept on the message and shown as a toast
            name, message = error_fields(e)
            reply.meta["error"] = {"name": name, "message": message}
            lost = name == "DeviceLostError" and self.on_device_lost is not None
            self.toasts.error(e, retry=self._reload_and_regenerate if lost else self.regenerate)
        finally:
            self.generating = False
            conv.touch()
            await self.book.save(conv)
            self.render_all()
            self._buttons()
            self.stats.reply(reply.meta.get("usage"))
            if self.ready:
                self.prompt.focus()

    async def _reload_and_regenerate(self) -> None:
        """The Retry of a lost GPU: load the model again (a new device), then the reply."""
        if await self.on_device_lost():
            await self.regenerate()

    async def stop(self) -> None:
        """Stop the reply being generated (it keeps the text so far, marked "stopped")."""
        if self.generating:
            await self.llm.interrupt()

    async def copy(self, index: int, button=None) -> None:
        from js import navigator
        text = self.book.current.messages[index].content
        try:
            await navigator.clipboard.writeText(text)
            ok = True
        except Exception:  # noqa: BLE001 - clipboard refused (permissions, insecure origin)
            ok = False
        if button is not None:
            button.textContent = "Copied" if ok else "Copy failed"
            asyncio.get_event_loop().call_later(1.5, lambda: setattr(button, "textContent",
                                                                     "Copy"))

    async def clear(self) -> None:
        if self.generating:
            return
        self.book.current.clear()
        await self.book.save()
        self.render_all()
        self.stats.reply(None)

    async def new_chat(self) -> None:
        if self.generating:
            return
        self.book.new()
        self.render_all()
        self.stats.reply(None)
        self.prompt.focus()

    async def delete_chat(self) -> None:
        if self.generating:
            return
        await self.book.delete(self.book.current.id)
        self.render_all()
        self.stats.reply(None)

    async def select(self, conv_id: str) -> None:
        if self.generating or conv_id not in self.book.items:
            return
        self.book.select(conv_id)
        self.render_all()
        last = next((m for m in reversed(self.book.current.messages)
                     if m.role == "assistant" and m.meta.get("usage")), None)
        self.stats.reply(last.meta.get("usage") if last else None)
