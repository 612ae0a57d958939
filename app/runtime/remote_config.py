"""The remote provider's settings and where they are kept (on this device only).

    {"enabled": bool, "base_url": "https://host[:port]/v1", "api_key": str, "model": str,
     "mode": "local" | "remote" | "auto"}

enabled   the user's opt-in. False (the default): nothing is ever sent anywhere, whatever the
          mode says.
base_url  the API root, as OpenAI's SDKs take it (".../v1"); requests go to
          <base_url>/chat/completions and <base_url>/completions. http or https, no user:password@,
          no query string or fragment (a key belongs in api_key, never in a URL).
api_key   sent only as "Authorization: Bearer <key>" to base_url; may be empty (local servers).
model     the server's model name.
mode      local: never remote; remote: every request remote; auto (default): remote only when
          the local engine cannot serve the request (hybrid.py).

Stores: FileConfigStore natively (a JSON file, mode 0600, in the user's config dir),
MemoryConfigStore (tests, or a session that must not persist), and the worker's IndexedDB store
(remote_browser.py). The key is never in repr(), public() or a log line.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from .remote_errors import RemoteConfigError

MODES = ("local", "remote", "auto")
FIELDS = ("enabled", "base_url", "api_key", "model", "mode")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: how messages, logs and events name the server."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}" if u.netloc else ""


@dataclass(frozen=True)
class RemoteConfig:
    enabled: bool = False
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    model: str = ""
    mode: str = "auto"

    def __repr__(self) -> str:
        return (f"RemoteConfig(enabled={self.enabled}, base_url={self.base_url!r}, "
                f"api_key={'***' if self.api_key else ''!r}, model={self.model!r}, "
                f"mode={self.mode!r})")

    @property
    def host(self) -> str:
        return origin(self.base_url)

    @property
    def effective_mode(self) -> str:
        """The mode in force: "local" whenever the user has not enabled the remote provider."""
        return self.mode if self.enabled else "local"

    def updated(self, changes: dict) -> "RemoteConfig":
        """A checked copy with `changes` applied (keys of FIELDS; api_key None clears it).
        RemoteConfigError names the first problem."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise RemoteConfigError(f"unknown remote setting(s) {sorted(unknown)}; settings are "
                                    f"{', '.join(FIELDS)}")
        if "api_key" in changes and changes["api_key"] is None:
            changes = {**changes, "api_key": ""}
        return replace(self, **changes).checked()

    def checked(self) -> "RemoteConfig":
        if not isinstance(self.enabled, bool):
            raise RemoteConfigError(f"enabled must be true or false, got {self.enabled!r}")
        if self.mode not in MODES:
            raise RemoteConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("base_url", "api_key", "model"):
            if not isinstance(getattr(self, name), str):
                raise RemoteConfigError(f"{name} must be a string")
        key = self.api_key.strip()
        if any(c in key for c in "\r\n\t ") or not key.isprintable():
            # a line break would let the key inject headers; spaces are a paste accident
            raise RemoteConfigError("api_key contains spaces or control characters; paste the "
                                    "key alone")
        url = self.base_url.strip().rstrip("/")
        if url:
            u = urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise RemoteConfigError(f"base_url must be an http(s) URL such as "
                                        f"https://api.example.com/v1, got {url!r}")
            if u.username is not None or u.password is not None:
                raise RemoteConfigError("base_url must not contain user:password@; put the key "
                                        "in api_key")
            if u.query or u.fragment:
                raise RemoteConfigError("base_url must not have a query string or fragment; a "
                                        "key belongs in api_key, never in a URL")
        if self.enabled and not (url and self.model.strip()):
            raise RemoteConfigError("to enable the remote provider, set base_url (e.g. "
                                    "https://api.example.com/v1) and model first")
        return replace(self, base_url=url, api_key=key, model=self.model.strip())

    def public(self) -> dict:
        """What the page may show: everything but the key ("has_api_key" instead), plus
        "insecure": the key and the chats would cross the network unencrypted (http to a host
        other than this machine)."""
        u = urlsplit(self.base_url)
        return {"enabled": self.enabled, "base_url": self.base_url, "model": self.model,
                "mode": self.mode, "has_api_key": bool(self.api_key),
                "insecure": u.scheme == "http" and (u.hostname or "") not in LOOPBACK}

    def to_dict(self) -> dict:
        """Everything, the key included: for the store only."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "RemoteConfig":
        """A stored dict (unknown keys from newer versions ignored); an invalid one -> the
        default (disabled), so a damaged file can never send anything anywhere."""
        try:
            return cls(**{k: v for k, v in (d or {}).items() if k in FIELDS}).checked()
        except (RemoteConfigError, TypeError):
            return cls()


class MemoryConfigStore:
    """Keeps the settings in this process only."""

    def __init__(self, data: dict | None = None):
        self.data = dict(data) if data else None

    async def load(self) -> dict | None:
        return dict(self.data) if self.data else None

    async def save(self, data: dict) -> None:
        self.data = dict(data)


def default_config_dir() -> Path:
    """$LOCALLLM_CONFIG_DIR, else $XDG_CONFIG_HOME/localllm, else ~/.config/localllm."""
    env = os.environ.get("LOCALLLM_CONFIG_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "localllm"


class FileConfigStore:
    """remote.json in the config dir, readable by this user only (file 0600, dir 0700). Written
    to a temporary file (created 0600, never wider) then renamed: a crash leaves the old file."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_config_dir() / "remote.json"

    async def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None                  # unreadable: treated as not configured (disabled)

    async def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)         # the umask can only narrow it, but be explicit
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                fd = None
                json.dump(data, f)
        finally:
            if fd is not None:
                os.close(fd)
        os.replace(tmp, self.path)
