"""Remote settings (app/runtime/remote_config.py): validation, what the page may see, and the
native file store (0600, atomic, survives a new process; a damaged file means disabled)."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys

import pytest

from app.runtime.remote_config import (FileConfigStore, RemoteConfig, default_config_dir)
from app.runtime.remote_errors import RemoteConfigError

KEY = "sk-abc123-secret"


def test_defaults_are_disabled_and_local():
    c = RemoteConfig()
    assert c.enabled is False and c.effective_mode == "local"
    # mode "remote" or "auto" do nothing until the user enables the provider
    assert c.updated({"mode": "remote"}).effective_mode == "local"


@pytest.mark.parametrize("changes, words", [
    ({"mode": "cloud"}, "mode must be one of"),
    ({"enabled": "yes"}, "enabled must be true or false"),
    ({"base_url": "ftp://x/v1"}, "http(s) URL"),
    ({"base_url": "api.example.com/v1"}, "http(s) URL"),
    ({"base_url": "https://user:pw@api.example.com/v1"}, "user:password"),
    ({"base_url": "https://api.example.com/v1?key=abc"}, "query string"),
    ({"api_key": "sk-1\r\nX-Evil: 1"}, "control characters"),
    ({"enabled": True, "base_url": "https://api.example.com/v1"}, "set base_url"),
    ({"enabled": True, "model": "m"}, "set base_url"),
    ({"color": "red"}, "unknown remote setting"),
])
def test_invalid_settings_are_refused_with_a_reason(changes, words):
    with pytest.raises(RemoteConfigError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        RemoteConfig().updated(changes)


def test_normalized_and_public_view_hides_the_key():
    c = RemoteConfig().updated({"enabled": True, "base_url": " https://api.example.com/v1/ ",
                                "api_key": f" {KEY} ", "model": " gpt-x ", "mode": "auto"})
    assert (c.base_url, c.api_key, c.model, c.host) == (
        "https://api.example.com/v1", KEY, "gpt-x", "https://api.example.com")
    pub = c.public()
    assert pub == {"enabled": True, "base_url": "https://api.example.com/v1", "model": "gpt-x",
                   "mode": "auto", "has_api_key": True, "insecure": False}
    assert KEY not in repr(c) and KEY not in str(pub)
    assert c.updated({"api_key": None}).api_key == ""
    assert c.updated({"base_url": "http://10.0.0.5:8080/v1"}).public()["insecure"] is True
    assert c.updated({"base_url": "http://127.0.0.1:8080/v1"}).public()["insecure"] is False


def test_damaged_stored_settings_mean_disabled():
    assert RemoteConfig.from_dict({"enabled": True, "base_url": "nope", "model": "m"}) == \
        RemoteConfig()
    assert RemoteConfig.from_dict({"enabled": True, "base_url": "http://h/v1", "model": "m",
                                   "future_field": 1}).enabled is True
    assert RemoteConfig.from_dict(None) == RemoteConfig()


def test_file_store_is_private_atomic_and_read_back_by_a_new_process(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALLLM_CONFIG_DIR", str(tmp_path / "cfg"))
    assert default_config_dir() == tmp_path / "cfg"
    store = FileConfigStore()
    assert asyncio.run(store.load()) is None
    c = RemoteConfig().updated({"enabled": True, "base_url": "http://127.0.0.1:9/v1",
                                "api_key": KEY, "model": "m"})
    old = os.umask(0o000)                   # even a permissive umask gives 0600
    try:
        asyncio.run(store.save(c.to_dict()))
    finally:
        os.umask(old)
    path = tmp_path / "cfg" / "remote.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.with_name("remote.json.tmp").exists()
    assert json.loads(path.read_text())["api_key"] == KEY
    code = ("import asyncio; from app.runtime.remote_config import FileConfigStore, RemoteConfig;"
            "print(RemoteConfig.from_dict(asyncio.run(FileConfigStore().load())).public())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "LOCALLLM_CONFIG_DIR": str(tmp_path / "cfg")},
                         check=True).stdout
    assert "'has_api_key': True" in out and "'enabled': True" in out and KEY not in out
    path.write_text("{broken")
    assert asyncio.run(store.load()) is None
