"""Gated MLP activations (shaders/glu.wgsl) and logit soft-capping (shaders/softcap.wgsl), f32.

    y = act(gate) * up        act = silu (SwiGLU: Llama, Qwen, Phi-3) or gelu_tanh (GeGLU: Gemma)
    x = cap * tanh(x / cap)   in place (Gemma-2 final logits)

Like app/kernels/norm.py, an output aliasing an input is written through that input's binding
(WebGPU forbids overlapping a writable binding with another), and no per-call uniform is made.
"""
from __future__ import annotations

from ..gpu import Buffer, Device
from .grid import grid

ACTIVATIONS = ("silu", "gelu_tanh")


def _span(buf: Buffer, n: int, what: str) -> tuple:
    if buf.size < 4 * n:
        raise ValueError(f"{what}: buffer {buf.label!r} holds {buf.size} bytes, needs {4 * n}")
    return (buf, 0, 4 * n)


async def glu(dev: Device, gate: Buffer, up: Buffer | None, n: int, kind: str = "silu",
              out: Buffer | None = None, fused_ffn: int | None = None, target=None) -> Buffer:
    """out (n,) = act(gate) * up elementwise. `out` may be gate or up (in place).

    Fused gate/up (HF gate_up_proj, Phi-3): pass up=None and fused_ffn=ffn; `gate` then holds
    (n / ffn, 2 * ffn) rows, gate in the first half of each row and up in the second, and out is
    (n / ffn, ffn). The fused form cannot write in place. Returns out."""
    if kind not in ACTIVATIONS:
        raise ValueError(f"glu: activation {kind!r} is not one of {ACTIVATIONS}")
    if n <= 0:
        raise ValueError(f"glu of {n} elements")
    if out is None:
        out = dev.create_buffer(4 * n, kind="activations", label="glu.out")
    constants = None
    if fused_ffn is not None:
        if up is not None or fused_ffn <= 0 or n % fused_ffn:
            raise ValueError(f"glu: fused needs up=None and n ({n}) a multiple of fused_ffn "
                             f"({fused_ffn})")
        if out is gate:
            raise ValueError("glu: the fused form cannot write in place")
        defines = {"FUSED": True, "ACT": kind, "Y": "y"}
        constants = {"FFN": fused_ffn}
        binds = [_span(gate, 2 * n, "glu gate_up"), _span(out, n, "glu out")]
    else:
        if up is None or up is gate:
            raise ValueError("glu: needs separate gate and up buffers (or up=None, fused_ffn)")
        defines = {"FUSED": False, "ACT": kind, "G_ACCESS": "read", "U_ACCESS": "read",
                   "Y_BUF": False}
        binds = [_span(gate, n, "glu gate"), _span(up, n, "glu up")]
        if out is gate:
            defines.update(G_ACCESS="read_write", Y="gate")
        elif out is up:
            defines.update(U_ACCESS="read_write", Y="up")
        else:
            defines.update(Y_BUF=True, Y="y")
            binds.append(_span(out, n, "glu out"))
    pipe = await dev.pipeline("glu", "main", constants, defines)
    (dev if target is None else target).dispatch(pipe, [dev.bind(pipe, binds)], grid(-(-n // 256)))
    return out


async def softcap(dev: Device, x: Buffer, n: int, cap: float, target=None) -> Buffer:
    """x (n,) = cap * tanh(x / cap), in place. Returns x."""
    if n <= 0 or not cap > 0:
        raise ValueError(f"softcap of {n} elements with cap {cap}")
    pipe = await dev.pipeline("softcap", "main", {"CAP": float(cap)})
    bg = dev.bind(pipe, [_span(x, n, "softcap x")])
    (dev if target is None else target).dispatch(pipe, [bg], grid(-(-n // 256)))
    return x
