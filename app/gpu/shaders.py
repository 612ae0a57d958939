"""Finds WGSL sources. Natively they live in <repo>/shaders; in the page the same files are
unpacked from py/localllm.zip next to the app/ package in Pyodide's virtual FS."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"


@lru_cache(maxsize=None)
def shader_source(name: str) -> str:
    """Source of shaders/<name>.wgsl (name may include or omit the extension)."""
    path = SHADER_DIR / (name if name.endswith(".wgsl") else name + ".wgsl")
    if path.parent != SHADER_DIR:
        raise ValueError(f"shader name must be a plain file name: {name!r}")
    return path.read_text(encoding="utf-8")
