// lib/rope_angle.wgsl — RoPE angles, shared by rope.wgsl and rope_kv.wgsl.
//
// freq tables: array<vec2<u32>> (n_tables, half_rot): inv_freq[j] / 2pi (turns per position) as a
// 64-bit fixed-point fraction (hi, lo) = bits 2^-1..2^-32 and 2^-33..2^-64 (app/kernels/rope.py).
//
// Precision: the angle is reduced exactly, in integers. pos * f mod 1 turn is computed from the
// 64-bit fraction with u32 wrapping products (pos * hi + high word of pos * lo); what is dropped
// is below 2^-32 turn, so the error does not grow with pos. The remainder after the nearest
// quarter turn becomes an angle in [-pi/4, pi/4] with f32 rounding (< 1e-7 rad), and cos/sin come
// from polynomials there (cos_sin_turn). A plain f32 pos * inv_freq would be off by up to ~2e-3
// rad at pos 32768 (tests/gpu/test_rope.py measures both).
// Needs lib/step (the Step struct) included first.

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

// (cos, sin) of pos * f, f = one (hi, lo) table entry.
fn rope_cos_sin(pos: u32, f: vec2<u32>) -> vec2<f32> {
    return cos_sin_turn(pos * f.x + mul_hi(pos, f.y));   // (pos * f mod 1) * 2^32, wrapping
}

// Index of the first entry of the table to use (0, or half_rot for table 1). Longrope (Phi-3):
// table 1 (long factors) when the forward's end (step.seq_end, or pos + n_tokens when 0) >
// long_after (the original context length), table 0 (short factors) otherwise, as transformers
// decides from max(position_ids) + 1; long_after = 0: one table.
fn rope_table_base(s: Step, long_after: u32, half_rot: u32) -> u32 {
    let end = select(s.pos + s.n_tokens, s.seq_end, s.seq_end > 0u);
    return select(0u, half_rot, long_after > 0u && end > long_after);
}
