"""RMSNorm (shaders/rmsnorm.wgsl), optionally fused with the residual add before it, and the
plain residual add (shaders/add.wgsl). All tensors are f32, row-major.

Outputs may alias inputs (in place). WebGPU rejects a dispatch in which a writable binding
overlaps another binding, so an aliased output is not bound twice: the input's binding becomes
read_write and the shader writes the result through it (defines X_ACCESS / {{Y}} / {{S}}).
Shapes are baked into override constants or follow from the bound sizes, so no per-call uniform
is created and a recorded plan keeps nothing alive but the caller's buffers. Dispatch goes to
`dev if target is None else target`: an empty Plan is falsy (it has __len__).

On CPU adapters (dev.is_cpu) rmsnorm takes the shader's CPU variant: one invocation per row,
CPU_WG rows per workgroup, no barrier (a workgroup barrier there costs far more than summing a
row serially). GPUs with subgroups take the REG variant (row in registers, one barrier).
"""
from __future__ import annotations

from ..gpu import Buffer, Device
from .grid import grid


def _span(buf, n: int, what: str) -> tuple:
    """Binding of exactly the first n floats of buf, a Buffer or a (Buffer, offset, size) view
    (shaders take lengths from arrayLength)."""
    if isinstance(buf, tuple):
        b, off, size = buf
        if size < 4 * n:
            raise ValueError(f"{what}: view of {b.label!r} holds {size} bytes, needs {4 * n}")
        return (b, off, 4 * n)
    if buf.size < 4 * n:
        raise ValueError(f"{what}: buffer {buf.label!r} holds {buf.size} bytes, needs {4 * n}")
    return (buf, 0, 4 * n)


CPU_WG = 8  # CPU variant: rows per workgroup (shaders/rmsnorm.wgsl's CWG)
REG_MAX_NPT = 32  # REG variant: most row values one invocation keeps in registers (8192 / 256)


def _row_workgroup(dim: int) -> int:
    # One workgroup per row: 64 invocations cover head_dim-sized rows (QK-norm) without idling
    # most of a 256 workgroup; hidden-size rows use 256.
    return 64 if dim <= 512 else 256


async def rmsnorm(dev: Device, x: Buffer, weight: Buffer, rows: int, dim: int, eps: float,
                  out: Buffer | None = None, add_one: bool = False,
                  residual: Buffer | None = None, residual_out: Buffer | None = None,
                  target=None, cpu: bool | None = None, reg: bool | None = None) -> Buffer:
    """out (rows, dim) = rmsnorm(x) * (weight or 1 + weight); weight is f32 (dim,), shared by all
    rows (rows = n_tokens * n_heads for per-head QK-norm).

    With `residual`: s = x + residual is written to `residual_out` (default: `residual` itself,
    i.e. the residual stream is updated in place) and s is normalized, in one pass.
    `out` may be x (in place); `residual_out` may be x or residual. Returns out.
    `cpu` picks the barrier-free variant (same results; default: dev.is_cpu). `reg` picks the
    register-resident, subgroup-reduced variant (REG; default: when the device has subgroups and
    the row fits REG_MAX_NPT values per invocation)."""
    n = rows * dim
    if n <= 0 or dim <= 0:
        raise ValueError(f"rmsnorm of {rows} x {dim}")
    if out is None:
        out = dev.create_buffer(4 * n, kind="activations", label="rmsnorm.out")
    if weight in (x, out, residual, residual_out):
        raise ValueError("rmsnorm: the weight buffer must not alias an activation")
    binds = [_span(weight, dim, "rmsnorm weight"), _span(x, n, "rmsnorm x")]
    defines = {"X_ACCESS": "read", "Y_BUF": False, "RESIDUAL": residual is not None,
               "S_BUF": False, "RES_ACCESS": "read", "S": "x"}

    if residual is None:
        if residual_out is not None:
            raise ValueError("rmsnorm: residual_out without residual")
        s_to = None
    else:
        if residual is x:
            raise ValueError("rmsnorm: residual must not be x")
        residual_out = residual if residual_out is None else residual_out
        s_to = "x" if residual_out is x else "res" if residual_out is residual else "s_out"

    if out is x:
        if s_to == "x":
            raise ValueError("rmsnorm: out and residual_out are both x")
        defines.update(X_ACCESS="read_write", Y="x")
    elif residual is not None and out in (residual, residual_out):
        raise ValueError("rmsnorm: out must not alias residual or residual_out")
    else:
        defines.update(Y_BUF=True, Y="y", B_Y=len(binds))
        binds.append(_span(out, n, "rmsnorm out"))

    if residual is not None:
        defines.update(B_RES=len(binds), S=s_to)
        binds.append(_span(residual, n, "rmsnorm residual"))
        if s_to == "x":
            defines["X_ACCESS"] = "read_write"
        elif s_to == "res":
            defines["RES_ACCESS"] = "read_write"
        else:
            defines.update(S_BUF=True, B_S=len(binds))
            binds.append(_span(residual_out, n, "rmsnorm residual_out"))

    cpu = getattr(dev, "is_cpu", False) if cpu is None else cpu
    defines["CPU"] = cpu
    consts = {"DIM": dim, "EPS": float(eps), "ADD_ONE": bool(add_one)}
    if not cpu:
        wg = consts["WG"] = _row_workgroup(dim)
        if reg is None:
            reg = "subgroups" in dev.features
        elif reg and "subgroups" not in dev.features:
            raise ValueError("rmsnorm: reg=True needs the device's subgroups feature")
        npt = -(-dim // wg)
        if reg and npt <= REG_MAX_NPT:
            defines.update(REG=True, NPT=npt, SG_ENABLE=dev.backend == "browser")
    pipe = await dev.pipeline("rmsnorm", "main", consts, defines)
    wgs = grid(-(-rows // CPU_WG)) if cpu else grid(rows)
    (dev if target is None else target).dispatch(pipe, [dev.bind(pipe, binds)], wgs)
    return out


async def add(dev: Device, a: Buffer, b: Buffer, n: int, out: Buffer | None = None,
              target=None) -> Buffer:
    """out (n,) = a + b, f32. `out` may be a or b (in place). Returns out."""
    if n <= 0:
        raise ValueError(f"add of {n} elements")
    if a is b:
        raise ValueError("add: a and b are the same buffer")
    if out is None:
        out = dev.create_buffer(4 * n, kind="activations", label="add.out")
    if out is b:
        a, b = b, a  # f32 addition is commutative, so write back through the first operand
    binds = [_span(a, n, "add a"), _span(b, n, "add b")]
    if out is a:
        defines = {"A_ACCESS": "read_write", "C_BUF": False, "OUT": "a"}
    else:
        defines = {"A_ACCESS": "read", "C_BUF": True, "OUT": "c"}
        binds.append(_span(out, n, "add out"))
    pipe = await dev.pipeline("add", "main", None, defines)
    (dev if target is None else target).dispatch(pipe, [dev.bind(pipe, binds)], grid(-(-n // 256)))
    return out
