// rope.wgsl — rotary position embedding, in place on q or k.
//
// For each token t, head h and pair j < ROT/2 (ROT = rotary_dim <= HEAD_DIM; the dims from ROT
// on are left as they are):
//   (a, b) = (x[2j], x[2j+1])           interleaved pairs (GGUF llama, NEOX = false)
//            (x[j], x[j + ROT/2])       half split (NeoX / HF rotate_half, NEOX = true)
//   theta  = (step.pos + t) * inv_freq[j]
//   a' = (a cos theta - b sin theta) * ATTN_FACTOR,  b' = (a sin theta + b cos theta) * ATTN_FACTOR
//
// Bindings (group 0):
//   0  x    : array<f32> (n_tokens, N_HEADS, HEAD_DIM)   read_write; the op binds exactly this
//   1  freq : array<vec2<u32>> (n_tables, HALF_ROT)      inv_freq[j] / 2pi (turns per position) as
//            a 64-bit fixed-point fraction: (hi, lo) = bits 2^-1..2^-32 and 2^-33..2^-64
//   2  step : Step uniform (lib/step.wgsl): pos, n_tokens
// Longrope (Phi-3): table 1 (long factors) when the forward's end > LONG_AFTER (see
// lib/rope_angle.wgsl, rope_table_base); LONG_AFTER = 0: one table.
// Workgroup: 256 invocations, one pair each. Dispatch: grid(ceil(n_tokens * N_HEADS * HALF_ROT /
// 256)) of app/kernels/grid.py.
//
// Precision: the angle is reduced exactly in integers; see lib/rope_angle.wgsl.

#include lib/step
#include lib/rope_angle

override HEAD_DIM: u32;
override N_HEADS: u32;
override HALF_ROT: u32;
override NEOX: bool = false;
override LONG_AFTER: u32 = 0u;
override ATTN_FACTOR: f32 = 1.0;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> freq: array<vec2<u32>>;
@group(0) @binding(2) var<uniform> step: Step;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let p = (wid.x + wid.y * nwg.x) * 256u + lid;
    let rows = arrayLength(&x) / HEAD_DIM;  // n_tokens * N_HEADS
    if (p >= rows * HALF_ROT) {
        return;
    }
    let j = p % HALF_ROT;
    let row = p / HALF_ROT;
    let pos = step.pos + row / N_HEADS;

    let table = rope_table_base(step, LONG_AFTER, HALF_ROT);
    let cs = rope_cos_sin(pos, freq[table + j]) * ATTN_FACTOR;
    let c = cs.x;
    let s = cs.y;

    var i0 = row * HEAD_DIM + 2u * j;
    var i1 = i0 + 1u;
    if (NEOX) {
        i0 = row * HEAD_DIM + j;
        i1 = i0 + HALF_ROT;
    }
    let a = x[i0];
    let b = x[i1];
    x[i0] = a * c - b * s;
    x[i1] = a * s + b * c;
}
