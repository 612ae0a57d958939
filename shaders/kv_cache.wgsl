// kv_cache.wgsl — append this step's keys and values to one layer of the KV cache.
//
//   k_cache[step.pos + t, h, :] = k[t, h, :]     v_cache[step.pos + t, h, :] = v[t, h, :]
//   for t < step.n_tokens (rows at or past MAX_CTX are dropped, never wrapped)
//
// Bindings (group 0):
//   0  k       : array<vec4<f32>>   (n_tokens, n_kv_heads, head_dim) f32, this step's keys
//   1  v       : array<vec4<f32>>   (n_tokens, n_kv_heads, head_dim) f32, this step's values
//   2  k_cache : (MAX_CTX, n_kv_heads, head_dim) row-major, written
//   3  v_cache : same layout as k_cache, written
//   4  step    : Step (shaders/lib/step.wgsl): pos and n_tokens of this step
// Cache element type: f32 (array<vec4<f32>>), or with the KV_F16 define packed f16 — 2 values
// per u32 (pack2x16float, low half = the even element), so 4 values per vec2<u32>. Packing is
// core WGSL: the f16 cache needs no shader-f16 feature.
// Override constants: ROW4 = n_kv_heads * head_dim / 4 (vec4s per cache row), MAX_CTX (rows).
// Workgroup: 64 invocations, one vec4 each. Dispatch: grid(ceil(capacity_rows * ROW4 / 64))
// (app/kernels/grid.py; y spill) where capacity_rows is what the k buffer can hold; invocations
// past step.n_tokens rows return, so one recorded dispatch serves any chunk up to capacity.

#include lib/step

override ROW4: u32;
override MAX_CTX: u32;

@group(0) @binding(0) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> v: array<vec4<f32>>;
#if KV_F16
@group(0) @binding(2) var<storage, read_write> k_cache: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<vec2<u32>>;
fn pack4(x: vec4<f32>) -> vec2<u32> { return vec2<u32>(pack2x16float(x.xy), pack2x16float(x.zw)); }
#else
@group(0) @binding(2) var<storage, read_write> k_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<vec4<f32>>;
fn pack4(x: vec4<f32>) -> vec4<f32> { return x; }
#endif
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wg.x + wg.y * nwg.x) * 64u + lid;   // vec4 index inside this step's rows
    if (i >= step.n_tokens * ROW4 || step.pos + i / ROW4 >= MAX_CTX) {
        return;
    }
    let dst = step.pos * ROW4 + i;
    k_cache[dst] = pack4(k[i]);
    v_cache[dst] = pack4(v[i]);
}
