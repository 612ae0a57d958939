"""Finds and preprocesses WGSL sources.

Natively the files live in <repo>/shaders; in the page the same files are unpacked from
py/localllm.zip next to the app/ package in Pyodide's virtual FS.

WGSL has no preprocessor, so variants (f16 vs f32 compute, a layout, a reduction strategy) are
made with a tiny one, applied before compilation and part of the pipeline cache key:

    #if NAME / #ifdef NAME     keep the lines when defines[NAME] is truthy
    #ifndef NAME               keep the lines when it is missing or falsy
    #else / #endif
    {{NAME}}                   replaced by str(defines[NAME])
    #include NAME              the (preprocessed) text of shaders/NAME.wgsl, e.g. lib/f16

Directive lines must start with '#' (after spaces). Unknown {{NAME}}s are errors.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"
_SUBST = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_including: set[str] = set()


@lru_cache(maxsize=None)
def shader_source(name: str) -> str:
    """Raw source of shaders/<name>.wgsl (name may include or omit the extension)."""
    path = (SHADER_DIR / (name if name.endswith(".wgsl") else name + ".wgsl")).resolve()
    if SHADER_DIR.resolve() not in path.parents:
        raise ValueError(f"shader name must stay inside shaders/: {name!r}")
    return path.read_text(encoding="utf-8")


def preprocess(source: str, defines: dict | None = None, name: str = "<shader>") -> str:
    defines = defines or {}
    out, stack = [], []  # stack of (active_before, condition_true, in_else)
    active = True
    for lineno, line in enumerate(source.splitlines(), 1):
        s = line.strip()
        if s.startswith("#"):
            word, _, arg = s[1:].partition(" ")
            arg = arg.strip()
            if word in ("if", "ifdef", "ifndef"):
                cond = bool(defines.get(arg))
                cond = not cond if word == "ifndef" else cond
                stack.append((active, cond))
                active = active and cond
            elif word == "else":
                if not stack:
                    raise ValueError(f"{name}:{lineno}: #else without #if")
                outer, cond = stack[-1]
                stack[-1] = (outer, not cond)
                active = outer and not cond
            elif word == "endif":
                if not stack:
                    raise ValueError(f"{name}:{lineno}: #endif without #if")
                active = stack.pop()[0]
            elif word == "include":
                if active:
                    if arg in _including:
                        raise ValueError(f"{name}:{lineno}: #include cycle through {arg}")
                    _including.add(arg)
                    try:
                        out.append(preprocess(shader_source(arg), defines, arg).rstrip("\n"))
                    finally:
                        _including.discard(arg)
                    continue
            else:
                raise ValueError(f"{name}:{lineno}: unknown directive #{word}")
            out.append("")  # keep line numbers stable for compiler messages
            continue
        if not active:
            out.append("")
            continue

        def sub(m):
            if m.group(1) not in defines:
                raise ValueError(f"{name}:{lineno}: {{{{{m.group(1)}}}}} is not defined")
            v = defines[m.group(1)]
            return ("true" if v else "false") if isinstance(v, bool) else str(v)
        out.append(_SUBST.sub(sub, line))
    if stack:
        raise ValueError(f"{name}: unterminated #if")
    return "\n".join(out) + "\n"
