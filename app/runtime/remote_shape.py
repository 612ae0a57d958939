"""OpenAI wire shapes <-> LocalLLM's request options and items, for the remote provider.

    body = request_body("chat", messages, options, model, stream=True)
    state = StreamState(); items = state.event(sse_event)        # per server-sent event
    text, finish, usage_counts, model, logprobs = parse_reply("chat", json_body)

Requests: chat -> POST <base>/chat/completions {"messages"}; complete -> POST <base>/completions
{"prompt"} (the raw prompt, no template, as LocalLLM.complete). Always sent: model, max_tokens,
temperature, top_p, stream (+ stream_options.include_usage for streams). Sent only when set,
since strict servers (OpenAI's own) reject unknown keys: stop, seed, presence_penalty,
frequency_penalty, logprobs, and the llama.cpp / vLLM extensions top_k, min_p,
repetition_penalty. truncate is not sent: the server enforces its own context (its 400 becomes
RemoteRequestError).

Finish reasons: "length" stays "length"; "stop" and anything else a server may say
("content_filter", "tool_calls", ...) become "stop"; an interrupted request ends with "abort"
(remote.py). A malformed body or event raises RemoteServerError.
"""
from __future__ import annotations

import json

from .remote_errors import RemoteServerError

DONE = "[DONE]"


def request_body(kind: str, payload, o: dict, model: str, stream: bool) -> dict:
    """The JSON body for `kind` ("chat" | "complete") with LocalLLM's options `o` (the
    already-checked keyword arguments of chat()/complete())."""
    body = {"model": model, ("messages" if kind == "chat" else "prompt"): payload,
            "max_tokens": o["max_tokens"], "temperature": o["temperature"],
            "top_p": o["top_p"], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if o["stop"]:
        body["stop"] = list(o["stop"])
    if o["seed"] is not None:
        body["seed"] = o["seed"]
    for name, off in (("presence_penalty", 0.0), ("frequency_penalty", 0.0), ("top_k", 0),
                      ("min_p", 0.0), ("repetition_penalty", 1.0)):
        if o[name] != off:
            body[name] = o[name]
    if o["logprobs"]:
        if kind == "chat":
            body["logprobs"], body["top_logprobs"] = True, o["logprobs"]
        else:
            body["logprobs"] = o["logprobs"]          # the legacy completions API: an integer
    return body


def finish_reason(value) -> str | None:
    if value is None:
        return None
    return "length" if value == "length" else "stop"


def _counts(u) -> dict | None:
    """The server's usage object -> {prompt_tokens, completion_tokens, cached_tokens}."""
    if not isinstance(u, dict):
        return None
    details = u.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    ints = lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None  # noqa: E731
    return {"prompt_tokens": ints(u.get("prompt_tokens")),
            "completion_tokens": ints(u.get("completion_tokens")), "cached_tokens": ints(cached)}


def _logprobs(kind: str, lp) -> list[dict]:
    """OpenAI logprobs -> LocalLLM entries {"id": None, "token", "logprob", "top_logprobs"}
    (servers do not report token ids)."""
    if not isinstance(lp, dict):
        return []
    if kind == "chat":
        return [{"id": None, "token": e.get("token"), "logprob": e.get("logprob"),
                 "top_logprobs": [{"id": None, "token": t.get("token"),
                                   "logprob": t.get("logprob")}
                                  for t in e.get("top_logprobs") or ()]}
                for e in lp.get("content") or ()]
    tops = lp.get("top_logprobs") or []
    return [{"id": None, "token": tok, "logprob": val,
             "top_logprobs": [{"id": None, "token": t, "logprob": v}
                              for t, v in (tops[i] if i < len(tops) and tops[i] else {}).items()]}
            for i, (tok, val) in enumerate(zip(lp.get("tokens") or (),
                                               lp.get("token_logprobs") or ()))]


def _choice(kind: str, body) -> tuple[dict | None, str]:
    """(choices[0] or None, its text: the delta's / message's content, or the text)."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise RemoteServerError("the remote server's reply has no 'choices' list; is base_url "
                                "an OpenAI-compatible API root (ending in /v1)?")
    if not choices:
        return None, ""
    c = choices[0]
    if not isinstance(c, dict):
        raise RemoteServerError("the remote server's reply has a malformed 'choices' entry")
    if kind == "complete":
        text = c.get("text")
    else:
        part = c.get("delta") if "delta" in c else c.get("message")
        text = part.get("content") if isinstance(part, dict) else None
    return c, text if isinstance(text, str) else ""


def _json_object(text, not_json: str, not_object: str) -> dict:
    """json.loads(text) when it is a JSON object; else RemoteServerError(not_json / not_object)."""
    try:
        body = json.loads(text)
    except ValueError:
        raise RemoteServerError(not_json) from None
    if not isinstance(body, dict):
        raise RemoteServerError(not_object)
    return body


def parse_reply(kind: str, raw: bytes) -> tuple[str, str | None, dict | None, str | None, list]:
    """A non-streamed reply body -> (text, finish_reason, usage counts, model, logprobs)."""
    body = _json_object(raw, "the remote server's reply is not JSON; is base_url an "
                             "OpenAI-compatible API root (ending in /v1)?",
                        "the remote server's reply is not a JSON object")
    c, text = _choice(kind, body)
    if c is None:
        raise RemoteServerError("the remote server's reply has no choice")
    return (text, finish_reason(c.get("finish_reason")) or "stop", _counts(body.get("usage")),
            body.get("model") if isinstance(body.get("model"), str) else None,
            _logprobs(kind, c.get("logprobs")))


class StreamState:
    """Turns a completion stream's events into LocalLLM items (without the final one, which
    remote.py builds when the stream ends). Tracks finish_reason, usage and model as they come:
    servers send usage in a last chunk with empty choices (include_usage), some in the chunk
    carrying finish_reason, some not at all."""

    def __init__(self, kind: str):
        self.kind = kind
        self.finish: str | None = None
        self.counts: dict | None = None
        self.model: str | None = None
        self.done = False                # [DONE] seen
        self.deltas = 0                  # content chunks received

    def event(self, ev: dict) -> list[dict]:
        """Items ({"delta"} and "logprobs" when present) from one event."""
        data = ev["data"]
        if ev["event"] == "error":
            raise RemoteServerError(f"the remote server reported an error mid-stream: "
                                    f"{data[:200]}")
        if data.strip() == DONE:
            self.done = True
            return []
        body = _json_object(data, "the remote server's stream carries an event that is not "
                                  "JSON", "the remote server's stream carries a non-object event")
        if "error" in body and "choices" not in body:
            err = body["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise RemoteServerError(f"the remote server reported an error mid-stream: "
                                    f"{str(msg)[:200]}")
        if isinstance(body.get("model"), str):
            self.model = body["model"]
        counts = _counts(body.get("usage"))
        if counts is not None:
            self.counts = counts
        c, text = _choice(self.kind, body)
        if c is None:
            return []
        fr = finish_reason(c.get("finish_reason"))
        if fr is not None:
            self.finish = fr
        item = {"delta": text}
        lps = _logprobs(self.kind, c.get("logprobs"))
        if lps:
            item["logprobs"] = lps
        if text:
            self.deltas += 1
        return [item] if text or lps else []
