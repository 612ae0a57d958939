"""Generation settings (system prompt, temperature, top-p, max tokens): the side panel's form,
checked and kept in localStorage so they persist across visits.

parse() is pure (unit-tested): it turns the form's strings into the chat options, or says which
field is wrong.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

KEY = "localllm.generation"


@dataclass
class GenSettings:
    system: str = ""
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512

    def options(self) -> dict:
        """The chat() options these settings give."""
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens}


class SettingsError(ValueError):
    """A field of the form holds a value the engine would refuse; the message names it."""


def parse(system: str, temperature: str, top_p: str, max_tokens: str) -> GenSettings:
    try:
        t = float(temperature)
    except ValueError:
        raise SettingsError("Temperature must be a number from 0 to 2.") from None
    if not 0.0 <= t <= 2.0:
        raise SettingsError("Temperature must be from 0 to 2.")
    try:
        p = float(top_p)
    except ValueError:
        raise SettingsError("Top-p must be a number above 0, at most 1.") from None
    if not 0.0 < p <= 1.0:
        raise SettingsError("Top-p must be above 0 and at most 1.")
    try:
        n = int(str(max_tokens).strip())
    except ValueError:
        raise SettingsError("Max tokens must be a whole number from 1 to 8192.") from None
    if not 1 <= n <= 8192:
        raise SettingsError("Max tokens must be from 1 to 8192.")
    return GenSettings(system=system, temperature=t, top_p=p, max_tokens=n)


def from_json(text: str | None) -> GenSettings:
    """Stored settings; defaults for anything missing or damaged."""
    try:
        d = json.loads(text) if text else {}
        return parse(str(d.get("system", "")), str(d.get("temperature", 0.7)),
                     str(d.get("top_p", 0.95)), str(d.get("max_tokens", 512)))
    except (ValueError, TypeError, AttributeError):
        return GenSettings()


class SettingsForm:
    FIELDS = {"system": "system-prompt", "temperature": "temperature", "top_p": "top-p",
              "max_tokens": "max-tokens"}

    def __init__(self, document):
        from js import localStorage
        from .dom import Handlers
        self.doc = document
        self.value = from_json(localStorage.getItem(KEY))
        for attr, element_id in self.FIELDS.items():
            document.getElementById(element_id).value = str(getattr(self.value, attr))
        self.h = Handlers()
        self.h.on(document.getElementById("gen-form"), "change", lambda _e: self.read())

    def read(self) -> GenSettings | None:
        """The form's settings, stored when valid; None (and a message) when a field is wrong."""
        from js import localStorage
        vals = {a: str(self.doc.getElementById(i).value) for a, i in self.FIELDS.items()}
        status = self.doc.getElementById("gen-status")
        try:
            self.value = parse(**vals)
        except SettingsError as e:
            status.textContent = str(e)
            status.className = "warn small"
            return None
        status.textContent = "Saved on this device."
        status.className = "muted small"
        localStorage.setItem(KEY, json.dumps(asdict(self.value)))
        return self.value
