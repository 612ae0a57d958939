"""The SSE parser (app/runtime/sse.py) and the stream's OpenAI mapping (remote_shape.py):
chunk boundaries anywhere (inside a field, a multi-byte character, a CR LF pair), comments,
multi-line data, [DONE], usage chunks, finish reasons, malformed events."""
from __future__ import annotations

import codecs
import json
import random

import pytest

from app.runtime.remote_errors import RemoteServerError
from app.runtime.remote_shape import StreamState, parse_reply, request_body
from app.runtime.sse import parse_sse

STREAM = (": keep-alive comment\r\n"
          "data: {\"a\": \"héllo wörld ☃ 🙂\"}\r\n\r\n"
          "event: update\n"
          "data: line one\n"
          "data:line two\n"
          "data:  two spaces\n"
          "id: 7\n"
          "retry: 1000\n"
          "\n"
          "\r"                               # a blank line alone: no data, nothing dispatched
          "data: cr-only\r\r"
          "data\n\n"                         # a field without colon: data ""
          "data: [DONE]\n\n")
EXPECTED = [{"event": "message", "data": "{\"a\": \"héllo wörld ☃ 🙂\"}"},
            {"event": "update", "data": "line one\nline two\n two spaces"},
            {"event": "message", "data": "cr-only"},
            {"event": "message", "data": ""},
            {"event": "message", "data": "[DONE]"}]


def feed(raw: bytes, cuts: list[int]) -> list[dict]:
    """Parse `raw` delivered in pieces split at `cuts`, as remote.py does."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    events, rest, last = [], "", 0
    for cut in cuts + [len(raw)]:
        got, rest = parse_sse(rest + decoder.decode(raw[last:cut]))
        events += got
        last = cut
    got, rest = parse_sse(rest + decoder.decode(b"", final=True), final=True)
    assert rest == ""
    return events + got


def test_whole_stream_in_one_piece():
    assert feed(STREAM.encode(), []) == EXPECTED


def test_every_single_split_point():
    raw = STREAM.encode()
    for i in range(1, len(raw)):
        assert feed(raw, [i]) == EXPECTED, f"split at byte {i}: {raw[:i][-10:]!r}"


def test_random_many_way_splits_and_byte_by_byte():
    raw = STREAM.encode()
    rng = random.Random()
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(2, 40)))
        assert feed(raw, cuts) == EXPECTED, cuts
    assert feed(raw, list(range(1, len(raw)))) == EXPECTED


def test_trailing_cr_waits_for_a_possible_lf():
    events, rest = parse_sse("data: x\r\n\r")
    assert events == [] and rest == "data: x\r\n\r"
    events, rest = parse_sse(rest + "\n")           # it was CR LF: one blank line
    assert events == [{"event": "message", "data": "x"}] and rest == ""
    events, _ = parse_sse("data: y\r\r", final=True)
    assert events == [{"event": "message", "data": "y"}]


def test_unfinished_event_at_the_end_is_dropped_and_rest_kept():
    events, rest = parse_sse("data: a\n\ndata: partial")
    assert events == [{"event": "message", "data": "a"}] and rest == "data: partial"
    assert parse_sse(rest, final=True) == ([], "")


def _events(*objs) -> list[dict]:
    return [{"event": "message", "data": o if isinstance(o, str) else json.dumps(o)}
            for o in objs]


def chunk(content=None, finish=None, **extra):
    return {"model": "srv-model", "choices": [{"index": 0, "delta": {} if content is None
                                               else {"content": content},
                                               "finish_reason": finish}], **extra}


def test_stream_state_deltas_finish_usage_and_done():
    st = StreamState("chat")
    items = []
    for ev in _events({"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
                      chunk("Hel"), chunk("lo"), chunk(None, "length"),
                      {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                                                "prompt_tokens_details": {"cached_tokens": 4}}},
                      "[DONE]"):
        items += st.event(ev)
    assert items == [{"delta": "Hel"}, {"delta": "lo"}]
    assert st.finish == "length" and st.done and st.model == "srv-model"
    assert st.counts == {"prompt_tokens": 9, "completion_tokens": 2, "cached_tokens": 4}


@pytest.mark.parametrize("server_reason, ours", [("stop", "stop"), ("length", "length"),
                                                 ("content_filter", "stop"),
                                                 ("tool_calls", "stop")])
def test_finish_reasons_map_to_ours(server_reason, ours):
    st = StreamState("chat")
    st.event(_events(chunk("x", server_reason))[0])
    assert st.finish == ours


def test_completions_stream_and_reply_use_text():
    st = StreamState("complete")
    ev = _events({"choices": [{"text": " Paris", "finish_reason": None}]})[0]
    assert st.event(ev) == [{"delta": " Paris"}]
    text, finish, counts, model, _ = parse_reply("complete", json.dumps(
        {"model": "m", "choices": [{"text": " Paris.", "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 2}}).encode())
    assert (text, finish, counts["completion_tokens"], model) == (" Paris.", "stop", 2, "m")


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '{"object": "x"}',
                                  '{"error": {"message": "overloaded"}}'])
def test_malformed_events_raise_remote_server_error(data):
    with pytest.raises(RemoteServerError):
        StreamState("chat").event({"event": "message", "data": data})
    with pytest.raises(RemoteServerError):
        parse_reply("chat", data.encode())


def test_request_body_sends_standard_options_and_extensions_only_when_set():
    o = {"max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
         "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
         "stop": [], "seed": None, "logprobs": 0, "truncate": "error"}
    body = request_body("chat", [{"role": "user", "content": "hi"}], o, "m", True)
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "stream": True,
                    "stream_options": {"include_usage": True}}
    body = request_body("complete", "p", {**o, "top_k": 40, "seed": 3, "stop": ["\n"],
                                          "logprobs": 2}, "m", False)
    assert body["prompt"] == "p" and body["top_k"] == 40 and body["seed"] == 3
    assert body["stop"] == ["\n"] and body["logprobs"] == 2 and "stream_options" not in body
