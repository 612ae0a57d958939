// glu.wgsl — gated MLP activation:  y[t, j] = act(gate[t, j]) * up[t, j]
//
// act = silu or gelu_tanh, from lib/glu_act.wgsl (shared with matvec.wgsl's GLU_X input).
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

#include lib/glu_act

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
