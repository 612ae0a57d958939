// lib/quant_blocks.wgsl — decode the internal weight layouts (app/kernels/layouts.py) to f32.
//
// The including shader declares the weight chunk it reads, under this exact name:
//     @group(0) @binding(N) var<storage, read> wq: array<u32>;   // one chunk, internal layout
// Element indices are chunk-local: e = row * cols + col over the chunk's rows (row-major), so a
// row's blocks are consecutive and block b covers elements [b * QK, (b + 1) * QK).
//
// Functions, for every layout L in f32 f16 bf16 q4_1 q5_1 q8_0a q4_k q5_k q6_ka:
//   fn dq_L(e: u32) -> f32             element e
//   fn dq4_L(e: u32) -> vec4<f32>      elements e .. e + 3; e % 4 == 0, and e + 3 inside the chunk
//                                      (always true for the block layouts; for f32/f16/bf16 the
//                                      caller keeps the tail of an odd-sized chunk on dq_L)
// With defines={"LAYOUT": "<L>"}:  fn dq(e) and fn dq4(e) forward to the chosen layout.
//
// Pieces a matvec can hoist (block index b, in-block element j with j % 4 == 0). Each block layout
// is "w = a * q + c" per sub-block, with q small non-negative integers (q6_ka: q - 32):
//   q4_1:  q4_1_ac(b) -> vec2(d, m)                 q4_1_q4(b, j)  -> vec4<f32> q in 0..15
//   q5_1:  q5_1_ac(b) -> vec2(d, m)                 q5_1_q4(b, j)  -> q in 0..31
//   q8_0a: q8_0a_d(b) -> d  (c = 0)                 q8_0a_q4(b, j) -> q in -128..127
//   q4_k:  q4_k_ac(b, s) -> vec2(d*sc, -dmin*mn)    q4_k_q4(b, j)  -> q in 0..15  (s = j / 32)
//   q5_k:  q5_k_ac(b, s) -> vec2(d*sc, -dmin*mn)    q5_k_q4(b, j)  -> q in 0..31  (s = j / 32)
//   q6_ka: q6_ka_a(b, g) -> d*scale[g]  (c = 0)     q6_ka_q4(b, j) -> q - 32, -32..31 (g = j / 16)
// (sum_j w_j x_j = a * sum_j q_j x_j + c * sum_j x_j: a matvec needs one a, c per sub-block.)
//
// Exactness: every product a * q is exact in f32 (f16 d has 11 significant bits, d*sc <= 18,
// times q <= 24 bits), so a * q + c rounds once, as gguf-py's numpy does (fma or not): the
// results are bit-identical to gguf.quants.dequantize (up to the sign of zero for Q4_0/Q5_0,
// whose offset form q*d + m gives +0 where d*(q-8) gives -0 for negative d).
// No optional feature is used (f16 read with unpack2x16float).

// ---- shared helpers ---------------------------------------------------------------------------

// Byte i (0..3) of each of the 4 bytes of `w`, as a vec4 of u32.
fn qb_bytes4(w: u32) -> vec4<u32> {
    return vec4<u32>(w & 0xFFu, (w >> 8u) & 0xFFu, (w >> 16u) & 0xFFu, w >> 24u);
}

// Low (hi = 0) or high (hi = 1) nibbles of the 4 bytes of `w`.
fn qb_nib4(w: u32, hi: u32) -> vec4<f32> {
    return vec4<f32>(qb_bytes4((w >> (hi * 4u)) & 0x0F0F0F0Fu));
}

// The 4 bytes of `w` as signed int8 values.
fn qb_i8x4(w: u32) -> vec4<f32> {
    let s = bitcast<i32>(w);
    return vec4<f32>(vec4<i32>((s << 24u) >> 24u, (s << 16u) >> 24u, (s << 8u) >> 24u, s >> 24u));
}

// Byte `i` of block-relative word range starting at word `w0`.
fn qb_byte(w0: u32, i: u32) -> u32 {
    return (wq[w0 + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xFFu;
}

// ---- f32: one element per word ----------------------------------------------------------------
fn dq_f32(e: u32) -> f32 { return bitcast<f32>(wq[e]); }
fn dq4_f32(e: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<f32>(wq[e]), bitcast<f32>(wq[e + 1u]), bitcast<f32>(wq[e + 2u]),
                     bitcast<f32>(wq[e + 3u]));
}

// ---- f16: element e in the low (e even) or high half of word e / 2 ----------------------------
fn dq_f16(e: u32) -> f32 {
    let v = unpack2x16float(wq[e >> 1u]);
    return select(v.x, v.y, (e & 1u) == 1u);
}
fn dq4_f16(e: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(wq[e >> 1u]), unpack2x16float(wq[(e >> 1u) + 1u]));
}

// ---- bf16: the top 16 bits of an f32, two per word ---------------------------------------------
fn dq_bf16(e: u32) -> f32 {
    let w = wq[e >> 1u];
    return bitcast<f32>(select(w << 16u, w & 0xFFFF0000u, (e & 1u) == 1u));
}
fn dq4_bf16(e: u32) -> vec4<f32> {
    let a = wq[e >> 1u];
    let b = wq[(e >> 1u) + 1u];
    return bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xFFFF0000u, b << 16u, b & 0xFFFF0000u));
}

// ---- q4_1: 5 words per 32 elements: [0] d | m << 16, [1..4] qs[16] -----------------------------
// q[j] = qs[j] & 0xF (j < 16), qs[j - 16] >> 4 (j >= 16); w = q * d + m
fn q4_1_ac(b: u32) -> vec2<f32> { return unpack2x16float(wq[b * 5u]); }
fn q4_1_q4(b: u32, j: u32) -> vec4<f32> {
    return qb_nib4(wq[b * 5u + 1u + ((j & 15u) >> 2u)], j >> 4u);
}
fn dq4_q4_1(e: u32) -> vec4<f32> {
    let b = e >> 5u;
    let ac = q4_1_ac(b);
    return q4_1_q4(b, e & 31u) * ac.x + ac.y;
}
fn dq_q4_1(e: u32) -> f32 { return dq4_q4_1(e & ~3u)[e & 3u]; }

// ---- q5_1: 6 words per 32: [0] d | m << 16, [1] qh, [2..5] qs[16] -------------------------------
// q[j] = (low nibble as q4_1) | ((qh >> j) & 1) << 4; w = q * d + m
fn q5_1_ac(b: u32) -> vec2<f32> { return unpack2x16float(wq[b * 6u]); }
fn q5_1_q4(b: u32, j: u32) -> vec4<f32> {
    let lo = qb_nib4(wq[b * 6u + 2u + ((j & 15u) >> 2u)], j >> 4u);
    let h = (wq[b * 6u + 1u] >> j) & 0xFu;
    let hi = vec4<u32>(h & 1u, (h >> 1u) & 1u, (h >> 2u) & 1u, h >> 3u) * 16u;
    return lo + vec4<f32>(hi);
}
fn dq4_q5_1(e: u32) -> vec4<f32> {
    let b = e >> 5u;
    let ac = q5_1_ac(b);
    return q5_1_q4(b, e & 31u) * ac.x + ac.y;
}
fn dq_q5_1(e: u32) -> f32 { return dq4_q5_1(e & ~3u)[e & 3u]; }

// ---- q8_0a: 9 words per 32: [0] d | 0 << 16, [1..8] qs[32] int8; w = q * d ----------------------
fn q8_0a_d(b: u32) -> f32 { return unpack2x16float(wq[b * 9u]).x; }
fn q8_0a_q4(b: u32, j: u32) -> vec4<f32> { return qb_i8x4(wq[b * 9u + 1u + (j >> 2u)]); }
fn dq4_q8_0a(e: u32) -> vec4<f32> {
    let b = e >> 5u;
    return q8_0a_q4(b, e & 31u) * q8_0a_d(b);
}
fn dq_q8_0a(e: u32) -> f32 { return dq4_q8_0a(e & ~3u)[e & 3u]; }

// ---- K-quant 6-bit scale/min pairs (get_scale_min_k4), scales[12] at word w0 of the block ------
// sub-block s < 4: sc = sb[s] & 63, mn = sb[s + 4] & 63
// s >= 4:          sc = (sb[s + 4] & 0xF) | (sb[s - 4] >> 6) << 4,
//                  mn = (sb[s + 4] >> 4)  | (sb[s] >> 6) << 4
fn qk_scale_min(w0: u32, s: u32) -> vec2<f32> {
    if (s < 4u) {
        return vec2<f32>(f32(qb_byte(w0, s) & 63u), f32(qb_byte(w0, s + 4u) & 63u));
    }
    let x = qb_byte(w0, s + 4u);
    return vec2<f32>(f32((x & 0xFu) | ((qb_byte(w0, s - 4u) >> 6u) << 4u)),
                     f32((x >> 4u) | ((qb_byte(w0, s) >> 6u) << 4u)));
}
// (d * sc, -(dmin * mn)) of sub-block s of a K-quant block starting at word w0.
fn qk_ac(w0: u32, s: u32) -> vec2<f32> {
    let dm = unpack2x16float(wq[w0]);
    let sm = qk_scale_min(w0 + 1u, s);
    return vec2<f32>(dm.x * sm.x, -(dm.y * sm.y));
}

// ---- q4_k: 36 words per 256: [0] d | dmin << 16, [1..3] scales[12], [4..35] qs[128] -------------
// element 64c + 32h + l (h = 0/1, l < 32): q = (qs[32c + l] >> 4h) & 0xF, sub-block s = 2c + h
fn q4_k_ac(b: u32, s: u32) -> vec2<f32> { return qk_ac(b * 36u, s); }
fn q4_k_q4(b: u32, j: u32) -> vec4<f32> {
    return qb_nib4(wq[b * 36u + 4u + (j >> 6u) * 8u + ((j & 31u) >> 2u)], (j >> 5u) & 1u);
}
fn dq4_q4_k(e: u32) -> vec4<f32> {
    let b = e >> 8u;
    let j = e & 255u;
    let ac = q4_k_ac(b, j >> 5u);
    return q4_k_q4(b, j) * ac.x + ac.y;
}
fn dq_q4_k(e: u32) -> f32 { return dq4_q4_k(e & ~3u)[e & 3u]; }

// ---- q5_k: 44 words per 256: [0] d | dmin, [1..3] scales, [4..11] qh[32], [12..43] qs[128] -----
// as q4_k, plus bit 4 of q = (qh[l] >> s) & 1 for element 32s + l
fn q5_k_ac(b: u32, s: u32) -> vec2<f32> { return qk_ac(b * 44u, s); }
fn q5_k_q4(b: u32, j: u32) -> vec4<f32> {
    let lo = qb_nib4(wq[b * 44u + 12u + (j >> 6u) * 8u + ((j & 31u) >> 2u)], (j >> 5u) & 1u);
    let h = (wq[b * 44u + 4u + ((j & 31u) >> 2u)] >> (j >> 5u)) & 0x01010101u;
    return lo + vec4<f32>(qb_bytes4(h) * 16u);
}
fn dq4_q5_k(e: u32) -> vec4<f32> {
    let b = e >> 8u;
    let j = e & 255u;
    let ac = q5_k_ac(b, j >> 5u);
    return q5_k_q4(b, j) * ac.x + ac.y;
}
fn dq_q5_k(e: u32) -> f32 { return dq4_q5_k(e & ~3u)[e & 3u]; }

// ---- q6_ka: 53 words per 256: [0..31] ql[128], [32..47] qh[64], [48..51] scales[16] int8,
// [52] d | 0 << 16. Element 128h + 32i + l (h = 0/1, i = 0..3, l < 32):
//   q = ((ql[64h + 32(i & 1) + l] >> 4(i >> 1)) & 0xF) | ((qh[32h + l] >> 2i) & 3) << 4
//   w = d * scales[(128h + 32i + l) / 16] * (q - 32)
fn q6_ka_a(b: u32, g: u32) -> f32 {
    let sc = (bitcast<i32>(wq[b * 53u + 48u + (g >> 2u)]) << (24u - (g & 3u) * 8u)) >> 24u;
    return unpack2x16float(wq[b * 53u + 52u]).x * f32(sc);
}
fn q6_ka_q4(b: u32, j: u32) -> vec4<f32> {
    let h = j >> 7u;
    let i = (j >> 5u) & 3u;
    let l = j & 31u;
    let lo = qb_bytes4((wq[b * 53u + h * 16u + (i & 1u) * 8u + (l >> 2u)] >> ((i >> 1u) * 4u))
                       & 0x0F0F0F0Fu);
    let hi = qb_bytes4((wq[b * 53u + 32u + h * 8u + (l >> 2u)] >> (i * 2u)) & 0x03030303u);
    return vec4<f32>(vec4<i32>(lo | (hi << vec4<u32>(4u))) - 32);
}
fn dq4_q6_ka(e: u32) -> vec4<f32> {
    let b = e >> 8u;
    let j = e & 255u;
    return q6_ka_q4(b, j) * q6_ka_a(b, j >> 4u);
}
fn dq_q6_ka(e: u32) -> f32 { return dq4_q6_ka(e & ~3u)[e & 3u]; }

#ifdef LAYOUT
// ---- the layout chosen by defines={"LAYOUT": ...} ----------------------------------------------
fn dq(e: u32) -> f32 { return dq_{{LAYOUT}}(e); }
fn dq4(e: u32) -> vec4<f32> { return dq4_{{LAYOUT}}(e); }
#endif
