// dequant.wgsl — one weight chunk in an internal layout -> f32 values.
//
//   out[out_off + i] = w[e0 + i]   for i < n, w = the chunk's elements (row-major, chunk-local)
//
// Bindings (group 0):
//   0  wq     : array<u32>  one weight chunk, internal layout {{LAYOUT}} (app/kernels/layouts.py)
//   1  out    : array<f32>  a window of the (rows, cols) f32 output, bound at a 256-byte-aligned
//                           offset; out_off skips to the first row this dispatch writes
//   2  params : Params      {n, e0, out_off}
// Variant: defines={"LAYOUT": "f32" | "f16" | "bf16" | "q4_1" | "q5_1" | "q8_0a" | "q4_k" | "q5_k"
// | "q6_ka"} picks the decoder of lib/quant_blocks. No f16 variant: the op is a memory-bound
// format conversion whose output is f32; f16 arithmetic would save nothing.
// Workgroup: 256 invocations, each decodes 4 consecutive elements (dq4; e0 % 4 == 0, the caller
// guarantees it) or the last 1..3 of an odd-sized f32/f16/bf16 range one by one (dq).
// Dispatch: grid(ceil(n / 4 / 256)) from app/kernels/grid.py (counts > 65535 spill into y).

struct Params { n: u32, e0: u32, out_off: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> wq: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

#include lib/quant_blocks

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = ((wg.x + wg.y * nwg.x) * 256u + lid) * 4u;
    let n = params.n;
    if (i >= n) {
        return;
    }
    let o = params.out_off + i;
    if (i + 4u <= n) {
        let v = dq4(params.e0 + i);
        out[o] = v.x;
        out[o + 1u] = v.y;
        out[o + 2u] = v.z;
        out[o + 3u] = v.w;
    } else {
        for (var k = i; k < n; k++) {
            out[params.out_off + k] = dq(params.e0 + k);
        }
    }
}
