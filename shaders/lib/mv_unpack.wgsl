// lib/mv_unpack.wgsl — small bit-unpacking helpers shared by matvec.wgsl, matvec_q8.wgsl and
// matmul_q.wgsl. Every helper takes u32 words holding 4 bytes b0..b3 (little-endian: b0 = bits
// 0..7) and returns the values in byte order (all conversions exact in f32). Named scalars and
// vectors only: no function-local arrays and no dynamic indexing of values, which NVIDIA's
// compiler may place in (slow) local memory.

// Small unsigned ints (< 2^23) to f32 without the int->float conversion (quarter rate on NVIDIA):
// OR them into the mantissa of 2^23 and subtract 2^23 + bias. Exact.
fn mv_u2f(v: vec4<u32>, bias: f32) -> vec4<f32> {
    return bitcast<vec4<f32>>(v | vec4<u32>(0x4B000000u)) - (8388608.0 + bias);
}

// (b_i >> s) & 0xF for the 4 bytes: s = 0 gives the low nibbles, s = 4 the high nibbles.
fn mv_nib(q: u32, s: u32) -> vec4<f32> {
    return mv_u2f((vec4<u32>(q) >> vec4<u32>(s, s + 8u, s + 16u, s + 24u)) & vec4<u32>(0xFu), 0.0);
}

// (b_i >> s) & mask for the 4 bytes, as u32 (q5 / q6 high bits).
fn mv_bits(q: u32, s: u32, mask: u32) -> vec4<u32> {
    return (vec4<u32>(q) >> vec4<u32>(s, s + 8u, s + 16u, s + 24u)) & vec4<u32>(mask);
}

// Bits s..s+3 of a u32 (one bit per value), as u32 0/1: the q5_1 high bits of elements s..s+3.
fn mv_bit4(qh: u32, s: u32) -> vec4<u32> {
    return (vec4<u32>(qh) >> vec4<u32>(s, s + 1u, s + 2u, s + 3u)) & vec4<u32>(1u);
}

// The 4 bytes as signed int8 (q8_0a quants).
fn mv_i8(q: u32) -> vec4<f32> {  // (byte ^ 0x80) - 128 = the signed value
    return mv_u2f(((vec4<u32>(q) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu)) ^ vec4<u32>(0x80u), 128.0);
}

// Byte i (0..3) of a word as a signed int8 (q6_k scales).
fn mv_i8_at(q: u32, i: u32) -> f32 {
    return f32(bitcast<i32>(q << (24u - 8u * i)) >> 24u);
}

// Byte k of the 12 packed q4_k/q5_k scale bytes held in words s0, s1, s2.
fn mv_sbyte(s0: u32, s1: u32, s2: u32, k: u32) -> u32 {
    let wsel = select(select(s2, s1, k < 8u), s0, k < 4u);
    return (wsel >> (8u * (k & 3u))) & 0xFFu;
}

// (scale, min) of q4_k/q5_k sub-block j (0..7): ggml's get_scale_min_k4 on the 6-bit pairs.
fn mv_scale_min(s0: u32, s1: u32, s2: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(mv_sbyte(s0, s1, s2, j) & 63u), f32(mv_sbyte(s0, s1, s2, j + 4u) & 63u));
    }
    let a = mv_sbyte(s0, s1, s2, j + 4u);
    let lo = mv_sbyte(s0, s1, s2, j - 4u);
    let hi = mv_sbyte(s0, s1, s2, j);
    return vec2<f32>(f32((a & 0xFu) | ((lo >> 6u) << 4u)), f32((a >> 4u) | ((hi >> 6u) << 4u)));
}

// (scale, min) of sub-blocks 2c and 2c + 1 (c = 0..3) at once -> (sc0, mn0, sc1, mn1), without
// mv_scale_min's branch: the lanes of a warp hold different c, so a branch there runs both paths
// one after the other. Bytes (2c) & 3 and (2c + 1) & 3 of each scale word, then both formulas
// and a select (c < 2: j < 4).
fn mv_scale_min2(s0: u32, s1: u32, s2: u32, c: u32) -> vec4<f32> {
    let sh = vec2<u32>(16u * (c & 1u)) + vec2<u32>(0u, 8u);
    let m8 = vec2<u32>(0xFFu);
    let lo = (vec2<u32>(s0) >> sh) & m8;
    let mid = (vec2<u32>(s1) >> sh) & m8;
    let hi = (vec2<u32>(s2) >> sh) & m8;
    let first = vec4<u32>(lo.x & 63u, mid.x & 63u, lo.y & 63u, mid.y & 63u);
    let sc = (hi & vec2<u32>(0xFu)) | ((lo >> vec2<u32>(6u)) << vec2<u32>(4u));
    let mn = (hi >> vec2<u32>(4u)) | ((mid >> vec2<u32>(6u)) << vec2<u32>(4u));
    return vec4<f32>(select(first, vec4<u32>(sc.x, mn.x, sc.y, mn.y), c >= 2u));
}

// bf16 pair in one word: element 0 in the low half.
fn mv_bf16(q: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(q << 16u), bitcast<f32>(q & 0xFFFF0000u));
}

// 8 consecutive 16-bit values starting at half `odd` (0/1) of word r0: the words r0..r4 realigned
// so that value 2i is the low half of result word i (the f16 / bf16 dense layouts of matmul_q,
// whose rows start at any half-word when cols is odd).
fn mv_align16(r: vec4<u32>, r4: u32, odd: bool) -> vec4<u32> {
    let nxt = vec4<u32>(r.y, r.z, r.w, r4);
    return select(r, (r >> vec4<u32>(16u)) | (nxt << vec4<u32>(16u)), vec4<bool>(odd));
}
