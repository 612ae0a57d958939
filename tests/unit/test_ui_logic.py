"""The dashboard's pure logic (app/ui): wording of sizes/speeds/progress, error advice, the
conversation book and its persistence, the chart geometry, the settings form's checks, the
model cards' facts, and the storage/memory lines. The DOM half is tested in the browser tier
(tests/browser/test_dashboard_browser.py)."""
import json
import random

import pytest

from app.ui import chart, errors
from app.ui import format as fmt
from app.ui.cache import usage_line
from app.ui.chat import reply_footer
from app.ui.conversations import (Conversation, ConversationBook, MemoryChatStore, TITLE_CHARS,
                                  title_of)
from app.ui.models import card_facts
from app.ui.settings import GenSettings, SettingsError, from_json, parse
from app.ui.stats import memory_line


def test_sizes_speeds_durations_and_rates_read_naturally():
    assert fmt.size(None) == "—"
    assert fmt.size(512) == "512 B"
    assert fmt.size(98_362_432) == "93.8 MB"
    assert fmt.size(386_404_992) == "369 MB"
    assert fmt.size(3 * 2**30 + 2**29) == "3.50 GB"
    assert fmt.speed(None) == "—" and fmt.speed(5 * 2**20) == "5.0 MB/s"
    assert fmt.duration(0.4217) == "0.42 s" and fmt.duration(3.14) == "3.1 s"
    assert fmt.duration(42) == "42 s" and fmt.duration(185) == "3 min 05 s"
    assert fmt.duration(3725) == "1 h 02 min"
    assert fmt.rate(0) == "—" and fmt.rate(17.234) == "17.2 tok/s" and fmt.rate(812.4) == "812 tok/s"
    assert fmt.params(134_515_008) == "135M" and fmt.params(1_235_814_400) == "1.2B"


def test_progress_line_shows_bytes_speed_and_time_left_per_phase():
    label, line = fmt.progress_line({"phase": "download", "loaded_bytes": 10 * 2**20,
                                     "total_bytes": 40 * 2**20, "speed_bps": 5 * 2**20,
                                     "eta_s": 6.0})
    assert label == "Downloading"
    assert line == "10.0 MB of 40.0 MB · 5.0 MB/s · 6.0 s left"
    # No speed yet, no time left; a finished phase shows no time left.
    assert fmt.progress_line({"phase": "upload", "loaded_bytes": 2**20, "total_bytes": 2**20,
                              "eta_s": 0.0})[1] == "1.0 MB of 1.0 MB"
    assert fmt.progress_line({"phase": "compile", "text": "Compiling GPU kernels"}) == (
        "Compiling GPU kernels", "Compiling GPU kernels")
    assert fmt.progress_line({"phase": "cache"})[0] == "Reading from this device"


@pytest.mark.parametrize("name,action", [
    ("DeviceLostError", "retry"), ("QuotaError", "cache"), ("QuotaExceededError", "cache"),
    ("DownloadError", "retry"), ("PromptTooLongError", "clear"), ("EngineStartError", "reload"),
    ("WebGPUUnavailableError", None), ("BadMagicError", None), ("TruncatedFileError", None),
    ("RemoteUnauthorizedError", "retry"), ("UnsupportedArchitectureError", None),
    ("SomethingNewError", "retry")])
def test_every_named_error_gets_a_title_a_remedy_and_the_right_action(name, action):
    adv = errors.advice(name)
    assert adv.title and adv.remedy.endswith(".")
    assert adv.action == action
    assert (adv is errors.GENERIC) == (name == "SomethingNewError")


def test_gguf_errors_share_one_advice_that_names_the_format():
    assert errors.advice("TensorOverlapError") is errors.advice("BadMagicError")
    assert "gguf" in errors.advice("BadMagicError").remedy.lower()


def test_conversation_book_titles_orders_persists_and_reloads(run):
    store = MemoryChatStore()
    book = ConversationBook(store)
    run(book.load())
    first = book.current
    assert first.messages == [] and book.ordered() == []
    long = "Explain   the\nKV cache " + "in detail " * 20
    first.add("user", long)
    assert first.title == title_of(long) and len(first.title) == TITLE_CHARS
    assert first.title.startswith("Explain the KV cache") and first.title.endswith("…")
    first.add("assistant", "It stores keys.", model="m",
              usage={"decode_tokens_per_s": 12.5, "completion_tokens": 4})
    run(book.save())
    second = book.new()
    assert second is not first
    assert book.new() is second            # an empty current chat is reused
    second.add("user", "Second chat")
    second.updated = first.updated + 10
    run(book.save(second))
    assert [c.id for c in book.ordered()] == [second.id, first.id]
    # A fresh book over the same store sees both, newest current; a damaged record is skipped.
    store.rows["broken"] = json.dumps({"title": "no id"})
    again = ConversationBook(store)
    run(again.load())
    assert [c.id for c in again.ordered()] == [second.id, first.id]
    assert again.current.id == second.id
    restored = again.items[first.id]
    assert restored.to_dict() == first.to_dict()
    assert restored.decode_rates() == [12.5]


def test_regenerate_clear_and_delete_keep_the_book_consistent(run):
    store = MemoryChatStore()
    book = ConversationBook(store)
    c = book.current
    c.add("user", "a")
    c.add("assistant", "b")
    assert c.drop_last_reply().content == "b"
    assert c.drop_last_reply() is None     # ends with the user's message: nothing to drop
    assert [m.content for m in c.messages] == ["a"]
    run(book.save())
    assert c.id in store.rows
    c.clear()
    run(book.save())                        # an emptied conversation is removed from storage
    assert c.id not in store.rows and c.title == "New chat"
    c.add("user", "x")
    run(book.save())
    other = book.new()
    other.add("user", "y")
    run(book.save())
    run(book.delete(other.id))
    assert other.id not in store.rows and book.current.id == c.id
    run(book.delete(c.id))
    assert store.rows == {} and book.current.messages == []


def test_messages_for_the_model_skip_failed_and_empty_replies():
    book = ConversationBook(MemoryChatStore())
    c = book.current
    c.add("user", "q1")
    c.add("assistant", "", error={"name": "DeviceLostError", "message": "lost"})
    c.add("user", "q2")
    c.add("assistant", "a2")
    c.add("assistant", "")
    assert book.messages_for_model("Be brief.") == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    assert book.messages_for_model("  ")[0] == {"role": "user", "content": "q1"}
    with pytest.raises(ValueError):
        c.add("system", "no")


def test_chart_bars_fill_the_box_and_scale_to_a_nice_ceiling():
    rng = random.Random()
    values = [rng.uniform(0.5, 900) for _ in range(rng.randint(9, 40))]
    found, ceiling = chart.bars(values, 240, 64)
    shown = values[-chart.MAX_BARS:]
    assert [b.value for b in found] == pytest.approx(shown)
    assert ceiling >= max(shown) and ceiling < 2.5 * max(shown)
    for b in found:
        assert 0 <= b.x and b.x + b.w <= 240 + 1e-9
        assert b.y + b.h == pytest.approx(64) and 0 <= b.h <= 64
        assert b.h == pytest.approx(64 * b.value / ceiling)
    assert chart.bars([], 240, 64) == ([], 0.0)
    assert [chart.nice_ceiling(v) for v in (0.7, 3, 17, 21, 240, 1000)] == [1, 5, 20, 25, 250, 1000]


def test_settings_are_checked_and_damaged_storage_falls_back_to_defaults():
    s = parse("Be brief.", "0.3", "0.9", " 128 ")
    assert s == GenSettings("Be brief.", 0.3, 0.9, 128)
    assert s.options() == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 128}
    for bad in (("", "hot", "0.9", "1"), ("", "2.5", "0.9", "1"), ("", "1", "0", "1"),
                ("", "1", "1.5", "1"), ("", "1", "0.9", "0"), ("", "1", "0.9", "1.5"),
                ("", "1", "0.9", "9000")):
        with pytest.raises(SettingsError):
            parse(*bad)
    assert from_json(None) == GenSettings()
    assert from_json("{not json") == GenSettings()
    assert from_json(json.dumps({"temperature": 9})) == GenSettings()
    assert from_json(json.dumps({"system": "x", "max_tokens": 64})) == GenSettings("x", 0.7, 0.95, 64)


def test_model_card_facts_show_badges_memory_and_why_disabled():
    base = {"id": "m", "name": "M", "family": "llama", "params": 134_515_008,
            "quantization": "Q4_1", "size": 98_362_432, "size_exact": True,
            "memory_bytes": 150 * 2**20, "license": "apache-2.0", "backend": "webgpu",
            "runnable": None}
    f = card_facts({**base, "bundled": True, "cached": True})
    assert f["badges"] == [("bundled", "bundled"), ("cached", "cached")]
    assert f["meta"] == "llama · 135M · Q4_1 · 93.8 MB · needs 150 MB GPU memory · apache-2.0"
    assert f["action"] == "Load" and f["disabled_reason"] is None
    f = card_facts({**base, "partial": True, "cached_bytes": 98_362_432 // 4})
    assert f["badges"] == [("partial", "partly downloaded 25%")] and f["action"] == "Resume download"
    f = card_facts({**base, "backend": "cpu", "user_added": True, "size_exact": False})
    assert ("cpu", "runs on CPU") in f["badges"] and ("user", "added by you") in f["badges"]
    assert "~93.8 MB" in f["meta"] and f["action"] == "Download 93.8 MB"
    f = card_facts({**base, "backend": None, "runnable": "needs 9 GB; this GPU allows 4 GB"})
    assert f["disabled_reason"] == "needs 9 GB; this GPU allows 4 GB"


def test_storage_and_memory_lines():
    text, frac = usage_line({"models": [{"bytes": 5}, {"bytes": 0}], "usage": 2**30,
                             "quota": 4 * 2**30, "persisted": True})
    assert text == "1.00 GB of 4.00 GB used · 1 model stored · kept by the browser (persistent)"
    assert frac == 0.25
    assert usage_line({"models": [], "usage": 0, "quota": None}) == ("0 B used · 0 models stored", None)
    assert memory_line(None) == ("—", None, False)
    text, frac, near = memory_line({"total": 95 * 2**20, "budget": 100 * 2**20})
    assert text == "95.0 MB of 100 MB (95%)" and near
    assert memory_line({"total": 2**20, "budget": None}) == ("1.0 MB in use", None, False)


def test_reply_footer_says_speed_tokens_and_why_it_ended():
    assert reply_footer({"usage": {"decode_tokens_per_s": 20.0, "completion_tokens": 8},
                         "finish_reason": "abort"}) == "20.0 tok/s · 8 tokens · stopped"
    assert reply_footer({"finish_reason": "length", "provider": "remote"}) == (
        "cut at max tokens · remote server")
    assert reply_footer({}) == ""
    assert isinstance(Conversation("x").to_dict()["messages"], list)
