"""Chat prompts and stop conditions.

A model's chat template comes from tokenizer_config.json (`chat_template`) or the GGUF
(`tokenizer.chat_template`) and is rendered with transformers' conventions (messages, tools=None,
documents=None, add_generation_prompt, and the named special tokens bos_token, eos_token, ...).
The rendered prompt already holds its bos token, so it is encoded with add_special_tokens=False.

Fallback for models without a template (base models): plain completion. The prompt is the message
contents (system prompt first) joined by a blank line, with no role markers; it is encoded with
add_special_tokens=True (the tokenizer's own bos rule), and generation stops at eos or a user stop
string only.

Stop conditions: eos, the end-of-turn tokens that the template writes (END_OF_TURN that occur in
the template text and in the vocabulary) or that the GGUF names (eot/eom token ids), and user stop
strings (handled by stream.StreamDetokenizer).
"""
from __future__ import annotations

from .backend import TemplateBackend, template_backend
from .tokenizer import Tokenizer

END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|end|>",
               "<|END_OF_TURN_TOKEN|>", "<|return|>", "<|call|>", "<turn|>", "</s>",
               "<|endoftext|>", "<|end_of_text|>")


class ChatFormat:
    def __init__(self, tokenizer: Tokenizer, templates: TemplateBackend | None,
                 template: str | None = None):
        self.tokenizer = tokenizer
        self.template = template if template is not None else tokenizer.chat_template
        self.templates = templates

    @classmethod
    async def load(cls, tokenizer: Tokenizer, template: str | None = None) -> "ChatFormat":
        tmpl = template if template is not None else tokenizer.chat_template
        return cls(tokenizer, await template_backend() if tmpl else None, tmpl)

    @property
    def has_template(self) -> bool:
        return bool(self.template)

    def render(self, messages: list[dict], system: str | None = None,
               add_generation_prompt: bool = True, **extra) -> str:
        """The prompt text. `system`, when given, becomes a leading system message (replacing one
        already there)."""
        msgs = [dict(m) for m in messages]
        if system is not None:
            msgs = [{"role": "system", "content": system}] + [m for m in msgs
                                                              if m.get("role") != "system"]
        if not self.template:
            return "\n\n".join(str(m.get("content", "")) for m in msgs)
        context = {**self.tokenizer.special_tokens, "messages": msgs, "tools": None,
                   "documents": None, "add_generation_prompt": add_generation_prompt, **extra}
        return self.templates.render(self.template, context)

    def prompt_ids(self, messages: list[dict], system: str | None = None,
                   add_generation_prompt: bool = True, **extra) -> list[int]:
        text = self.render(messages, system, add_generation_prompt, **extra)
        return self.tokenizer.encode(text, add_special_tokens=not self.template)

    def end_of_turn_tokens(self) -> list[str]:
        tok = self.tokenizer
        found = [t for t in END_OF_TURN if self.template and t in self.template]
        found += tok.extra_end_of_turn
        return [t for i, t in enumerate(found) if t not in found[:i] and tok.token_to_id(t) is not None]

    def stop_ids(self) -> set[int]:
        """eos plus the end-of-turn tokens: generation ends when one is sampled."""
        ids = {self.tokenizer.token_to_id(t) for t in self.end_of_turn_tokens()}
        if self.tokenizer.eos_id is not None:
            ids.add(self.tokenizer.eos_id)
        return {i for i in ids if i is not None}
