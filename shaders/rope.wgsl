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
// Longrope (Phi-3): table 1 (long factors) is used when the forward's end (step.seq_end, or
// pos + n_tokens when 0) > LONG_AFTER (the original context length), table 0 (short factors)
// otherwise, as transformers decides from max(position_ids) + 1; LONG_AFTER = 0: one table.
// Workgroup: 256 invocations, one pair each. Dispatch: grid(ceil(n_tokens * N_HEADS * HALF_ROT /
// 256)) of app/kernels/grid.py.
//
// Precision: the angle is reduced exactly, in integers. pos * f mod 1 turn is computed from the
// 64-bit fraction with u32 wrapping products (pos * hi + high word of pos * lo); what is dropped
// is below 2^-32 turn, so the error does not grow with pos. The remainder after the nearest
// quarter turn becomes an angle in [-pi/4, pi/4] with f32 rounding (< 1e-7 rad), and cos/sin come
// from polynomials there (cos_sin_turn). A plain f32 pos * inv_freq would be off by up to ~2e-3
// rad at pos 32768 (tests/gpu/test_rope.py measures both).

#include lib/step

override HEAD_DIM: u32;
override N_HEADS: u32;
override HALF_ROT: u32;
override NEOX: bool = false;
override LONG_AFTER: u32 = 0u;
override ATTN_FACTOR: f32 = 1.0;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> freq: array<vec2<u32>>;
@group(0) @binding(2) var<uniform> step: Step;

// High 32 bits of the 64-bit product a * b, from 16-bit halves (WGSL has no mulhi).
fn mul_hi(a: u32, b: u32) -> u32 {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let lo_lo = a0 * b0;
    let hi_lo = a1 * b0;
    let lo_hi = a0 * b1;
    let mid = (lo_lo >> 16u) + (hi_lo & 0xffffu) + (lo_hi & 0xffffu);
    return a1 * b1 + (hi_lo >> 16u) + (lo_hi >> 16u) + (mid >> 16u);
}

// (cos, sin) of the angle turn * 2 pi / 2^32, to a few f32 ulp on any adapter. The built-ins
// are not used: WGSL only promises 2^-11 absolute for them on [-pi, pi], and SwiftShader (Chrome
// without a GPU) is that coarse (measured 2^-12.4). The nearest quarter turn q comes from the
// top bits; the rest, |r| <= pi/4, goes through Taylor polynomials (truncation < 2e-9).
fn cos_sin_turn(turn: u32) -> vec2<f32> {
    let q = (turn + 0x20000000u) >> 30u;                                  // quadrant 0..3
    let r = f32(bitcast<i32>(turn - (q << 30u))) * 1.4629180792671596e-9;  // * 2 pi / 2^32
    let r2 = r * r;
    let sr = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0
             + r2 * (1.0 / 362880.0)))));
    let cr = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0
             + r2 * (-1.0 / 3628800.0)))));
    switch q {
        case 0u: { return vec2<f32>(cr, sr); }
        case 1u: { return vec2<f32>(-sr, cr); }
        case 2u: { return vec2<f32>(-cr, -sr); }
        default: { return vec2<f32>(sr, -cr); }
    }
}

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

    var table = 0u;
    let end = select(step.pos + step.n_tokens, step.seq_end, step.seq_end > 0u);
    if (LONG_AFTER > 0u && end > LONG_AFTER) {
        table = HALF_ROT;
    }
    let f = freq[table + j];
    let turn = pos * f.x + mul_hi(pos, f.y);           // (pos * f mod 1) * 2^32, wrapping
    let cs = cos_sin_turn(turn) * ATTN_FACTOR;
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
