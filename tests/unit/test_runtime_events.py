"""Events (app/runtime/events.py): listeners and the platform relay, and LoadProgress: monotonic,
scaled (platform work to LOAD_SHARE, compile to 1.0), 1.0 exactly once, small steps merged."""
from __future__ import annotations

import logging

import pytest

from app.runtime.events import LOAD_SHARE, Emitter, LoadProgress


def test_on_unsubscribe_relay_and_isolation(caplog):
    relayed, got = [], []
    em = Emitter(lambda n, d: relayed.append((n, d)))
    off = em.on("ready", got.append)
    em.on("ready", lambda d: 1 / 0)          # a broken listener is logged, not fatal
    with caplog.at_level(logging.ERROR, logger="app.runtime"):
        em.emit("ready", {"model": "m", "load_s": 1.0})
    assert got == [{"model": "m", "load_s": 1.0}] and relayed == [("ready", got[0])]
    assert "listener raised" in caplog.text
    off()
    off()                                    # twice is fine
    em.emit("ready", {"model": "n", "load_s": 2.0})
    assert len(got) == 1 and len(relayed) == 2
    with pytest.raises(ValueError, match="unknown event"):
        em.on("finished", print)
    with pytest.raises(ValueError):
        em.emit("local-llm:ready", {})


def test_listeners_get_copies():
    em = Emitter()
    em.on("status", lambda d: d.update(state="tampered"))
    seen = []
    em.on("status", seen.append)
    em.emit("status", {"state": "ready"})
    assert seen == [{"state": "ready"}]


def test_load_progress_is_monotonic_and_ends_at_one():
    out = []
    p = LoadProgress(out.append)
    p.platform({"phase": "download", "loaded_bytes": 50, "total_bytes": 100, "progress": 0.25})
    p.platform({"phase": "download", "loaded_bytes": 40, "total_bytes": 100, "progress": 0.2})
    p.platform({"phase": "upload", "loaded_bytes": 10, "total_bytes": 100})   # no "progress": 0.1
    p.platform({"phase": "upload", "loaded_bytes": 100, "total_bytes": 100, "progress": 1.0})
    p.compile(0, 2, "compiling")
    p.compile(1, 2, "compiling")
    p.compile(2, 2, "ready")
    p.compile(2, 2, "ready")                 # a repeated final step sends nothing
    values = [d["progress"] for d in out]
    assert values == sorted(values)
    assert values[0] == pytest.approx(0.25 * LOAD_SHARE) and values[-1] == 1.0
    assert values.count(1.0) == 1
    assert [d["phase"] for d in out][-1] == "compile"
    assert out[-1]["loaded_bytes"] == 2 and out[-1]["total_bytes"] == 2
    up = [d for d in out if d["phase"] == "upload"]
    assert up[-1]["progress"] == pytest.approx(LOAD_SHARE)


def test_tiny_steps_are_merged_but_phase_changes_are_sent():
    out = []
    p = LoadProgress(out.append)
    for i in range(1001):
        p.platform({"phase": "upload", "loaded_bytes": i, "total_bytes": 1000})
    assert 300 < len(out) < 600
    assert out[-1]["loaded_bytes"] == out[-1]["total_bytes"] == 1000    # a phase's end is sent
    p.platform({"phase": "cache", "loaded_bytes": 0, "total_bytes": 1, "progress": 0.0})
    assert out[-1]["phase"] == "cache" and out[-1]["progress"] == pytest.approx(LOAD_SHARE)
    p.platform({"phase": "weird", "loaded_bytes": 0, "total_bytes": None})
    assert out[-1]["phase"] in ("upload", "cache")
