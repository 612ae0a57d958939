// quantize_x.wgsl — x (f32) to int8 per 32-element block, for the int8-dot matvec (matvec_q8.wgsl):
//
//   per block j of 32 consecutive elements (blocks never cross vectors: cols % 32 == 0):
//     amax = max |x|,  d = amax * f32(1/127),  s = 127 / amax (0 when amax == 0)
//     q[i] = clamp(round(x[i] * s), -127, 127)   (round: half to even, WGSL round())
//     sum  = sum of the 32 x in f32 (the EXACT x, not q * d: the q4_1/q5_1/K-quant min terms use it)
//
// d and the product x * s are single correctly-rounded f32 multiplications, so a numpy float32
// reproduction is bit-exact; s (a division, <= 2.5 ULP in WGSL) is stored so tests can use the
// GPU's value.
//
// Bindings (group 0):
//   0  x   : array<vec4<f32>>  (n_vec * cols) f32
//   1  q   : array<u32>        (n_vec * cols / 4) words; word k = elements 4k..4k+3 as int8, byte 0 first
//   2  ds  : array<vec2<f32>>  (n_vec * cols / 32) (d, sum) per block
//   3  inv : array<f32>        (n_vec * cols / 32) s per block (tests only)
//   4  p   : uniform { blocks: u32 }
// Workgroup 256 invocations, one block per invocation; dispatch grid(ceil(blocks / 256)).

struct Params { blocks: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> q: array<u32>;
@group(0) @binding(2) var<storage, read_write> ds: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn q4(v: vec4<f32>, s: f32) -> u32 {
    return pack4xI8(clamp(vec4<i32>(round(v * s)), vec4<i32>(-127), vec4<i32>(127)));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let j = (wg.x + wg.y * nwg.x) * 256u + li;
    if (j >= p.blocks) { return; }
    let o = 8u * j;
    let a0 = x[o]; let a1 = x[o + 1u]; let a2 = x[o + 2u]; let a3 = x[o + 3u];
    let a4 = x[o + 4u]; let a5 = x[o + 5u]; let a6 = x[o + 6u]; let a7 = x[o + 7u];
    let m4 = max(max(max(abs(a0), abs(a1)), max(abs(a2), abs(a3))),
                 max(max(abs(a4), abs(a5)), max(abs(a6), abs(a7))));
    let amax = max(max(m4.x, m4.y), max(m4.z, m4.w));
    let s = select(0.0, 127.0 / amax, amax > 0.0);
    let one = vec4<f32>(1.0);
    let sum = dot(a0 + a1 + a2 + a3, one) + dot(a4 + a5 + a6 + a7, one);
    q[o] = q4(a0, s); q[o + 1u] = q4(a1, s); q[o + 2u] = q4(a2, s); q[o + 3u] = q4(a3, s);
    q[o + 4u] = q4(a4, s); q[o + 5u] = q4(a5, s); q[o + 6u] = q4(a6, s); q[o + 7u] = q4(a7, s);
    ds[j] = vec2<f32>(amax * 0.007874015718698502, sum);  // f32(1/127)
    inv[j] = s;
}
