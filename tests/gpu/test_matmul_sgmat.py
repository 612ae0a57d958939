"""shaders/matmul_sgmat.wgsl (app/kernels/matmul_sgmat.py): the tensor-core prefill product.

The oracle (app/bench/sgmat_check.py: float64 over the same dequantized weights, fresh random x,
bounds from int8 rounding of x and f32 rounding; see its docstring) runs only where the device
has chromium-experimental-subgroup-matrix, which wgpu-py and the CI machines never offer, so it
is not part of this suite (a test that can only skip here would prove nothing): it is run on the
H100 through Dawn with `bash app/bench/sgmat_h100.sh check` (docs/benchmarks.md, "Prefill on
tensor cores"), where all its cases passed.
What runs everywhere: the native device must not take the path, so prefill keeps matmul_q."""
from __future__ import annotations

from app.kernels import matmul_sgmat as sg
from app.kernels.layouts import Chunk, GPUWeight


def test_native_device_keeps_matmul_q(gpu):
    dev = gpu
    w = GPUWeight("w", "q4_1", 64, 128, [Chunk(None, 0, 64)])
    assert sg.FEATURE not in dev.features
    assert not sg.plan(dev, w)
