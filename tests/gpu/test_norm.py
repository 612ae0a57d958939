"""shaders/rmsnorm.wgsl and shaders/add.wgsl (app/kernels/norm.py) against float64 numpy.

Tolerance for RMSNorm, per element, relative to the float64 value:
    |y - ref| <= |ref| * 2^-24 * (dim / 64 + 24)
Each invocation sums its strided share of s^2 (at most dim / 64 terms: the op uses >= 64
invocations per row) and a tree adds log2(WG) <= 8 levels: all terms are positive, so the sum's
relative error is <= (dim / 64 + 8) * 2^-24. The scale 1 / sqrt(mean + eps) halves it and adds
the division and inverseSqrt (<= 2 ulp in WGSL) errors; s * scale * g adds two roundings, and
1 + w one more: < 16 ulp for everything but the sum. Small-magnitude rows (scale 1e-3: mean(x^2)
~ 1e-6, as large as eps) make a wrong or missing eps fail by far more than this.
Measured on lavapipe: <= 5 ulp for dims 64..8192 (the bound is a worst case, 25..152 ulp).
The CPU variant (cpu=True; both variants run here whatever the adapter is) sums a row serially
in 4 interleaved lanes: chains of dim / 4 positive terms, then 2 more additions, so the sum's
relative error is <= (dim / 4 + 2) * 2^-24 and the tolerance becomes 2^-24 * (dim / 8 + 24).
The residual add and `add` are single f32 additions, correctly rounded in WGSL: compared exactly
with the float64 sum rounded to f32.
"""
from __future__ import annotations

import numpy as np
import pytest

from app.kernels.norm import add, rmsnorm


class Recorder:
    """A minimal dispatch plan: `dispatch` records, `replay` runs (the `target` protocol)."""

    def __init__(self, dev):
        self.dev, self.calls = dev, []

    def dispatch(self, pipeline, bind_groups, workgroups):
        self.calls.append((pipeline, bind_groups, workgroups))

    def replay(self):
        for call in self.calls:
            self.dev.dispatch(*call)


def up(gpu, a, kind="activations"):
    return gpu.upload(np.ascontiguousarray(a, np.float32).tobytes(), kind=kind, label="t")


def read(gpu, run, buf, shape):
    return np.frombuffer(run(gpu.read(buf, 0, 4 * int(np.prod(shape)))), np.float32).reshape(shape)


def reference(x, w, eps, add_one, residual=None):
    s = x.astype(np.float64) + (0 if residual is None else residual.astype(np.float64))
    g = w.astype(np.float64) + (1.0 if add_one else 0.0)
    return s / np.sqrt(np.mean(s * s, axis=-1, keepdims=True) + eps) * g, s


def assert_norm_close(y, ref, dim, cpu=False):
    tol = np.abs(ref) * 2.0 ** -24 * (dim / (8 if cpu else 64) + 24)
    err = np.abs(y - ref)
    ratio = (err / (tol + 1e-38)).max()
    assert np.all(err <= tol + 1e-38), f"max err {err.max():.3g}, worst err / tol {ratio:.3g}"


# The three GPU variants: the workgroup-tree reduction, the register-resident subgroup one (REG,
# the default where the device has subgroups) and the CPU adapters' serial one.
KERNELS = [(False, False), (False, True), (True, None)]
KERNEL_IDS = ["tree_kernel", "reg_kernel", "cpu_kernel"]


def inputs(rng, rows, dim, scale=1.0):
    x = (rng.standard_normal((rows, dim)) * scale).astype(np.float32)
    w = (rng.standard_normal(dim) * 0.5 + 1.0).astype(np.float32)
    return x, w


@pytest.mark.parametrize("dim", [64, 100, 576, 640, 2048, 2304, 3072, 131])
@pytest.mark.parametrize("rows", [1, 7])
@pytest.mark.parametrize("cpu,reg", KERNELS, ids=KERNEL_IDS)
def test_rmsnorm_matches_numpy(gpu, run, rows, dim, cpu, reg):
    rng = np.random.default_rng()
    for scale, eps, add_one in ((1.0, 1e-5, False), (1e-3, 1e-6, True)):
        x, w = inputs(rng, rows, dim, scale)
        gx, gw = up(gpu, x), up(gpu, w, "weights")
        out = run(rmsnorm(gpu, gx, gw, rows, dim, eps, add_one=add_one, cpu=cpu, reg=reg))
        assert_norm_close(read(gpu, run, out, (rows, dim)), reference(x, w, eps, add_one)[0], dim,
                          cpu)
        assert np.array_equal(read(gpu, run, gx, (rows, dim)), x)  # x untouched
        for b in (gx, gw, out):
            gpu.destroy_buffer(b)


@pytest.mark.parametrize("n_tokens,n_heads,head_dim", [(1, 16, 128), (5, 8, 256), (3, 14, 64)])
@pytest.mark.parametrize("cpu,reg", KERNELS, ids=KERNEL_IDS)
def test_per_head_qk_norm_in_place(gpu, run, n_tokens, n_heads, head_dim, cpu, reg):
    """Qwen3/Gemma3 QK-norm: rows = n_tokens * n_heads over head_dim, one shared weight,
    (1 + w), in place."""
    rng = np.random.default_rng()
    rows = n_tokens * n_heads
    x, w = inputs(rng, rows, head_dim)
    gx, gw = up(gpu, x), up(gpu, w, "weights")
    out = run(rmsnorm(gpu, gx, gw, rows, head_dim, 1e-6, out=gx, add_one=True, cpu=cpu, reg=reg))
    assert out is gx
    ref = reference(x, w, 1e-6, True)[0]
    assert_norm_close(read(gpu, run, gx, (rows, head_dim)), ref, head_dim, cpu)
    for b in (gx, gw):
        gpu.destroy_buffer(b)


# Where the new residual stream s and the normalized y go: "new" = a fresh buffer.
FUSED_CASES = [("new", "residual"), ("new", "new"), ("x", "residual"), ("new", "x"), ("x", "new")]


@pytest.mark.parametrize("out_to,res_to", FUSED_CASES)
@pytest.mark.parametrize("dim", [576, 2304, 100])
@pytest.mark.parametrize("cpu,reg", KERNELS, ids=KERNEL_IDS)
def test_fused_residual_rmsnorm(gpu, run, dim, out_to, res_to, cpu, reg):
    rng = np.random.default_rng()
    rows = 3
    x, w = inputs(rng, rows, dim)
    r = rng.standard_normal((rows, dim)).astype(np.float32) * 4
    gx, gw, gr = up(gpu, x), up(gpu, w, "weights"), up(gpu, r)
    bufs = {"x": gx, "residual": gr}
    out = bufs.get(out_to)
    res_out = bufs.get(res_to) or up(gpu, np.full((rows, dim), 7.0))
    y = run(rmsnorm(gpu, gx, gw, rows, dim, 1e-6, out=out, residual=gr, residual_out=res_out,
                    cpu=cpu, reg=reg))
    ref, s = reference(x, w, 1e-6, False, r)
    assert_norm_close(read(gpu, run, y, (rows, dim)), ref, dim, cpu)
    assert np.array_equal(read(gpu, run, res_out, (rows, dim)), s.astype(np.float32))
    if res_to != "residual":
        assert np.array_equal(read(gpu, run, gr, (rows, dim)), r)  # residual input untouched
    for b in {gx, gw, gr, y, res_out}:
        gpu.destroy_buffer(b)


def test_rmsnorm_rejects_conflicting_aliases(gpu, run):
    gx, gw, gr = (gpu.create_buffer(4 * 64, kind="activations") for _ in range(3))
    with pytest.raises(ValueError):  # y and s cannot both go to x
        run(rmsnorm(gpu, gx, gw, 1, 64, 1e-6, out=gx, residual=gr, residual_out=gx))
    with pytest.raises(ValueError):
        run(rmsnorm(gpu, gx, gw, 1, 64, 1e-6, out=gr, residual=gr))
    with pytest.raises(ValueError):  # too small for 2 rows
        run(rmsnorm(gpu, gx, gw, 2, 64, 1e-6))
    for b in (gx, gw, gr):
        gpu.destroy_buffer(b)


@pytest.mark.parametrize("cpu,reg", KERNELS, ids=KERNEL_IDS)
def test_rmsnorm_rows_spill_into_grid_y(gpu, run, cpu, reg):
    """More than 65535 workgroups (rows; the CPU variant: rows / 8): the workgroup grid spills
    into y; every row must be done once."""
    rng = np.random.default_rng()
    rows, dim = (65535 + 1234) * (8 if cpu else 1) + 3, 8
    x, w = inputs(rng, rows, dim)
    gx, gw = up(gpu, x), up(gpu, w, "weights")
    out = run(rmsnorm(gpu, gx, gw, rows, dim, 1e-5, cpu=cpu, reg=reg))
    assert_norm_close(read(gpu, run, out, (rows, dim)), reference(x, w, 1e-5, False)[0], dim, cpu)
    for b in (gx, gw, out):
        gpu.destroy_buffer(b)


@pytest.mark.parametrize("cpu,reg", KERNELS, ids=KERNEL_IDS)
def test_rmsnorm_records_into_a_plan(gpu, run, cpu, reg):
    """With a target nothing runs until the plan is replayed; the replay reads current contents."""
    rng = np.random.default_rng()
    rows, dim = 2, 640
    x, w = inputs(rng, rows, dim)
    gx, gw = up(gpu, x), up(gpu, w, "weights")
    r = rng.standard_normal((rows, dim)).astype(np.float32)
    gr = up(gpu, r)
    out = up(gpu, np.full((rows, dim), 3.0))
    plan = Recorder(gpu)
    run(rmsnorm(gpu, gx, gw, rows, dim, 1e-6, out=out, residual=gr, target=plan, cpu=cpu, reg=reg))
    assert len(plan.calls) == 1
    assert dict(plan.calls[0][0].key[3])["CPU"] is cpu  # key: (shader, entry, consts, defines)
    assert np.all(read(gpu, run, out, (rows, dim)) == 3.0)
    x2 = rng.standard_normal((rows, dim)).astype(np.float32)
    gpu.write(gx, x2.tobytes())
    plan.replay()
    ref, s = reference(x2, w, 1e-6, False, r)
    assert_norm_close(read(gpu, run, out, (rows, dim)), ref, dim, cpu)
    assert np.array_equal(read(gpu, run, gr, (rows, dim)), s.astype(np.float32))
    for b in (gx, gw, gr, out):
        gpu.destroy_buffer(b)


@pytest.mark.parametrize("n", [1, 100, 255, 257, 4096, 100_003])
@pytest.mark.parametrize("out_to", ["new", "a", "b"])
def test_add_is_exact(gpu, run, n, out_to):
    rng = np.random.default_rng()
    a = rng.standard_normal(n).astype(np.float32)
    b = (rng.standard_normal(n) * 10).astype(np.float32)
    ga, gb = up(gpu, a), up(gpu, b)
    out = {"a": ga, "b": gb}.get(out_to)
    c = run(add(gpu, ga, gb, n, out=out))
    if out is not None:
        assert c is out
    expect = (a.astype(np.float64) + b).astype(np.float32)
    assert np.array_equal(read(gpu, run, c, (n,)), expect)
    if out_to != "b":
        assert np.array_equal(read(gpu, run, gb, (n,)), b)
    for buf in {ga, gb, c}:
        gpu.destroy_buffer(buf)


def test_add_spills_into_grid_y(gpu, run):
    """65535 * 256 + 1000 elements: more workgroups than one grid dimension holds."""
    rng = np.random.default_rng()
    n = 65535 * 256 + 1000
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    ga, gb = up(gpu, a), up(gpu, b)
    run(add(gpu, ga, gb, n, out=ga))
    assert np.array_equal(read(gpu, run, ga, (n,)), (a.astype(np.float64) + b).astype(np.float32))
    for buf in (ga, gb):
        gpu.destroy_buffer(buf)
