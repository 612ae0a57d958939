// glu.wgsl — gated MLP activation:  y[t, j] = act(gate[t, j]) * up[t, j]
//
//   silu(g)      = g / (1 + exp(-g))                                        (SwiGLU)
//   gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))           (GeGLU)
//                = g / (1 + exp(-2 u)),  u = sqrt(2/pi) (g + 0.044715 g^3)
// gelu_tanh is evaluated in the second (identical) form: no tanh, so no 1 + tanh cancellation
// for negative g and no NaN from tanh of large |u| (tanh through sinh/cosh overflows). Where the
// exp argument passes 80 the result is 0 (see gated); g is clamped to +-20 inside u (u is +-300
// there: the gate is exactly 0 or 1 in f32) so g^3 cannot overflow.
//
// Bindings (group 0), ACT is silu or gelu_tanh:
//   FUSED (HF gate_up_proj, e.g. Phi-3):
//     0  gu : array<f32> (n_tokens, 2 FFN)   read; gate = gu[t, j], up = gu[t, FFN + j]
//     1  y  : array<f32> (n_tokens, FFN)     written
//   otherwise:
//     0  gate : array<f32> (n,)   read; read_write (G_ACCESS) when y goes there
//     1  up   : array<f32> (n,)   read; read_write (U_ACCESS) when y goes there
//     2  y    : array<f32> (n,)   written; only when Y_BUF
//   Y names the array y is written to (gate, up or y; WebGPU forbids binding an output that
//   overlaps an input, so an aliased output is written through the input's binding).
// n = arrayLength of the output (the op binds exactly n floats). Workgroup: 256 invocations, one
// element each. Dispatch: grid(ceil(n / 256)) of app/kernels/grid.py.

override FFN: u32 = 1u;  // FUSED only: the output row length

#if FUSED
@group(0) @binding(0) var<storage, read> gu: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(0) var<storage, {{G_ACCESS}}> gate: array<f32>;
@group(0) @binding(1) var<storage, {{U_ACCESS}}> up: array<f32>;
#if Y_BUF
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#endif
#endif

// g / (1 + exp(a)); 0 once a > 80, where the true value is below |g| e^-80 (1e-33 for any
// gate that is not itself astronomically large) and exp could overflow.
fn gated(g: f32, a: f32) -> f32 {
    return select(g / (1.0 + exp(min(a, 80.0))), 0.0, a > 80.0);
}

fn silu(g: f32) -> f32 {
    return gated(g, -g);
}

fn gelu_tanh(g: f32) -> f32 {
    let c = clamp(g, -20.0, 20.0);
    return gated(g, -1.5957691216057308 * (c + 0.044715 * c * c * c));  // -2 sqrt(2/pi) (...)
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= arrayLength(&{{Y}})) {
        return;
    }
#if FUSED
    let k = (i / FFN) * 2u * FFN + i % FFN;
    y[i] = {{ACT}}(gu[k]) * gu[k + FFN];
#else
    {{Y}}[i] = {{ACT}}(gate[i]) * up[i];
#endif
}
