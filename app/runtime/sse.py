"""Server-sent events (the WHATWG "event stream" format), parsed from text as it arrives.

    events, rest = parse_sse(rest + decoder.decode(chunk))       # per network chunk
    events, _ = parse_sse(rest + decoder.decode(b"", final=True), final=True)   # at the end

The caller decodes bytes with an incremental UTF-8 decoder (a chunk may end inside a character)
and keeps `rest`, the text of the event not yet complete, for the next call: a chunk boundary
may fall anywhere, inside a field name, a value or a CR LF pair.

Format: lines end with CR LF, LF or CR; a blank line ends an event; "data:" lines accumulate
(joined with "\\n"); "event:" sets the type; lines starting with ":" are comments (servers send
them as keep-alives); "id:", "retry:" and unknown fields are ignored (no reconnection here); one
space after the colon is dropped. An event without data is not dispatched, nor is an unfinished
event when the stream ends (as in browsers' EventSource). "[DONE]" is just data here: the
OpenAI layer (remote_shape.py) gives it its meaning.
"""
from __future__ import annotations

import re

_EOL = re.compile(r"\r\n|\r|\n")


def parse_sse(text: str, final: bool = False) -> tuple[list[dict], str]:
    """Complete events in `text` -> ([{"event": type, "data": str}, ...], rest): `rest` is the
    unconsumed tail (the start of the next event) to prepend to the next chunk's text. With
    final=True the text is the stream's end: a trailing CR is a line end, rest is ""."""
    events: list[dict] = []
    data: list[str] = []
    kind = ""
    consumed = 0                 # end of the last blank line: everything before is done
    start = 0                    # start of the current line
    for m in _EOL.finditer(text):
        if not final and m.group() == "\r" and m.end() == len(text):
            break                # a CR at the end may be the first half of CR LF: wait
        line = text[start:m.start()]
        start = m.end()
        if line == "":
            if data:
                events.append({"event": kind or "message", "data": "\n".join(data)})
            data, kind, consumed = [], "", start
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
    return events, "" if final else text[consumed:]
