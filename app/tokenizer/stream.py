"""Streaming detokenizer: token ids in, text out, never a broken character.

Text is released only when it is final, so that the concatenated stream equals
tokenizer.decode(all ids) and every released chunk is a prefix of that text:

- The ids since the last release (the window) are decoded together. While the window's text ends
  in U+FFFD (a UTF-8 sequence still incomplete: an emoji or CJK character split across byte
  tokens) or ends with a SentencePiece byte piece <0xNN> (the byte-fallback decoder turns a run
  of such pieces into text as a whole), the window grows and nothing is released.
- Windows after the first are decoded behind an anchor token whose text is known (a plain "a"):
  the SentencePiece decoder strips the leading space of the first token of a decode, which is
  right at the start of the reply and wrong in the middle; the anchor keeps the window in the
  middle.
- Text that could still grow into a user stop string is held back; when a stop string appears,
  the text before it is released and the stream stops (`stopped` says which stop matched).
- A stop token (eos / end of turn, see chat.ChatFormat.stop_ids) ends the stream; its text is not
  emitted.
"""
from __future__ import annotations

from dataclasses import dataclass

REPLACEMENT = "\ufffd"
ANCHOR_TEXTS = ("a", "A", "0", "x")  # pieces without a leading space


@dataclass(frozen=True)
class StopMatch:
    kind: str                  # "token" (eos / end of turn) or "string" (a user stop string)
    value: object              # the token id, or the stop string
    text: str | None = None    # the token's text, for kind "token"


class StreamDetokenizer:
    def __init__(self, tokenizer, stop_ids=(), stop_strings=(), skip_special_tokens=False):
        self.tok = tokenizer
        self.stop_ids = set(stop_ids)
        self.stop_strings = [s for s in stop_strings if s]
        self.skip_special = skip_special_tokens
        self.ids: list[int] = []
        self._start = 0            # first id of the window not yet turned into text
        self._text = ""            # final text so far (released + held back for stop strings)
        self._released = 0         # characters of _text handed out
        self.stopped: StopMatch | None = None
        self._anchor = self._find_anchor()

    def _find_anchor(self) -> tuple[list[int], str]:
        for piece in ANCHOR_TEXTS:
            i = self.tok.token_to_id(piece)
            if i is not None:
                return [i], self.tok.decode([i], self.skip_special)
        raise ValueError("no anchor token found in the vocabulary")

    def _decode_window(self, end: int) -> str:
        ids = self.ids[self._start:end]
        if self._start == 0:
            return self.tok.decode(ids, self.skip_special)
        anchor_ids, anchor_text = self._anchor
        text = self.tok.decode(anchor_ids + ids, self.skip_special)
        return text[len(anchor_text):]

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text that became final (may be empty)."""
        if self.stopped:
            return ""
        if token_id in self.stop_ids:
            out = self._flush_window(final=True)
            self.stopped = self.stopped or StopMatch("token", token_id, self.tok.decode([token_id]))
            return out + self._release(final=True)
        self.ids.append(token_id)
        return self._flush_window(final=False)

    def finish(self) -> str:
        """End of generation (length limit, ...): release everything left, incomplete or not."""
        if self.stopped:
            return ""
        out = self._flush_window(final=True)
        return out + self._release(final=True)

    def _flush_window(self, final: bool) -> str:
        if self._start == len(self.ids):
            return ""
        text = self._decode_window(len(self.ids))
        if not final and (text.endswith(REPLACEMENT) or self.tok.is_byte_piece(self.ids[-1])):
            return ""
        self._text += text
        self._start = len(self.ids)
        return self._release(final=False)

    def _release(self, final: bool) -> str:
        pending = self._text[self._released:]
        if self.stop_strings and not self.stopped:
            hits = [(pending.find(s), s) for s in self.stop_strings if s in pending]
            if hits:
                at, s = min(hits, key=lambda h: h[0])
                self.stopped = StopMatch("string", s)
                self._text = self._text[:self._released + at]
                pending = pending[:at]
            elif not final:
                pending = pending[:_safe_length(pending, self.stop_strings)]
        self._released += len(pending)
        return pending

    @property
    def text(self) -> str:
        """Everything released so far."""
        return self._text[:self._released]


def _safe_length(text: str, stops: list[str]) -> int:
    """Length of the longest prefix of `text` after which no stop string can still begin:
    any suffix that is a proper prefix of a stop string is held back."""
    longest = max(len(s) for s in stops)
    for start in range(max(0, len(text) - longest + 1), len(text)):
        tail = text[start:]
        if any(s.startswith(tail) for s in stops):
            return start
    return len(text)
