// matvec_q8.wgsl — decode matvec with a quantized weight and an int8-quantized x (quantize_x.wgsl):
//
//   y[v, row0 + r] (+)= sum over x blocks b of (scale terms) * dot(qw, qx_b) * d_x[b]
//                       + (min terms) * sum_x[b]            (+ bias[row0 + r])
//
// The integer dots use dot4I8Packed (4 int8 products + sum per instruction): weight quants are
// put into byte lanes (nibbles 0..15, q5 0..31, q6 0..63, q8 -128..127: all valid signed bytes)
// and dotted with 4 x quants per word. Per layout and 32-element x block (d_x, sum_x from
// quantize_x; sum_x is the exact f32 sum of x):
//   q4_1 / q5_1: d_w * d_x * isum + m_w * sum_x
//   q8_0a      : d_w * d_x * isum
//   q4_k / q5_k: d * sc_j * d_x * isum - dmin * mn_j * sum_x      (sub-block j = x block)
//   q6_ka      : d * d_x * sum over the 2 16-halves of scale_h * (isum_h - 32 * xsum_h)
//                (integer; xsum_h = sum of the 16 x quants, q6 quants taken unsigned 0..63)
// Only the x quantization differs from matvec.wgsl's exact f32 path (error <= d_x / 2 per x).
//
// Bindings (group 0):
//   0  w    : array<u32>         the chunk's bytes; row r starts at word r * row_words
//   1  xq   : array<vec4<u32>>   (NV, cols / 16): x block b = vec4s 2b, 2b + 1 (int8 x 4 per u32)
//   2  xds  : array<vec2<f32>>   (NV, cols / 32): (d_x, sum_x) per block
//   3  y    : array<f32>         (NV, out_rows) f32; rows row0 .. row0 + rows (read too if ACC)
//   4  p    : Params uniform
//   5  bias : array<f32>         (out_rows,) only with BIAS
// Defines: one of Q4_1, Q5_1, Q8_0A (unit = 32 elements = 1 x block), Q4_K, Q5_K, Q6_KA
// (unit = 64 elements = 2 x blocks; define PAIR); NV, RPT, NACC, RED, BIAS, ACC as in matvec.wgsl.
// Override TPR (threads per row). Workgroup 256 = 256 / TPR row groups x TPR lanes, each thread
// RPT rows; lanes walk units u = lane, lane + TPR, ...; a workgroup-memory tree adds the TPR
// partial sums. Dispatch grid(ceil(rows / (RPT * 256 / TPR))).

#include lib/mv_unpack

override TPR: u32 = 32u;
const WG: u32 = 256u;
const NV: u32 = {{NV}}u;
const RPT: u32 = {{RPT}}u;
const M4: u32 = 0x0F0F0F0Fu;

struct Params {
    rows: u32, cols: u32, units: u32, row_words: u32,
    row0: u32, out_rows: u32,
    xs: u32,   // x blocks per vector (cols / 32)
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> xds: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
#if BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

var<workgroup> red: array<f32, {{RED}}>;
var<private> acc: array<f32, {{NACC}}>;

// One unit's x: block A (words a0, a1 = elements 0..15, 16..31) and, for 64-element units,
// block B; ds = (d_A, sum_A, d_B, sum_B); hs = x-quant sums of the four 16-element halves (q6_ka).
struct XQ { a0: vec4<u32>, a1: vec4<u32>, b0: vec4<u32>, b1: vec4<u32>, ds: vec4<f32>, hs: vec4<i32> }

fn d4(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y) + dot4I8Packed(a.z, b.z) +
           dot4I8Packed(a.w, b.w);
}
fn hsum(a: vec4<u32>) -> i32 { return d4(a, vec4<u32>(0x01010101u)); }

// x blocks A = ba, B = bb (block indices within the vector; v * xs added here).
fn xq2(v: u32, ba: u32, bb: u32) -> XQ {
    let o = v * p.xs;
    let a0 = xq[2u * (o + ba)]; let a1 = xq[2u * (o + ba) + 1u];
#if PAIR
    let b0 = xq[2u * (o + bb)]; let b1 = xq[2u * (o + bb) + 1u];
    let da = xds[o + ba]; let db = xds[o + bb];
#else
    let b0 = a0; let b1 = a1;
    let da = xds[o + ba]; let db = da;
#endif
#if Q6_KA
    let hs = vec4<i32>(hsum(a0), hsum(a1), hsum(b0), hsum(b1));
#else
    let hs = vec4<i32>(0);
#endif
    return XQ(a0, a1, b0, b1, vec4<f32>(da, db), hs);
}

fn w4(b: u32) -> vec4<u32> { return vec4<u32>(w[b], w[b + 1u], w[b + 2u], w[b + 3u]); }

#if Q4_1
// unit = block u, 5 words [d|m, qs x4]; qs word i: low nibbles = elements 4i.., high = 16 + 4i..
fn xload(v: u32, u: u32) -> XQ { return xq2(v, u, u); }
fn dotu(rb: u32, u: u32, X: XQ) -> f32 {
    let b = rb + 5u * u;
    let dm = unpack2x16float(w[b]);
    let q = w4(b + 1u);
    let isum = d4(q & vec4<u32>(M4), X.a0) + d4((q >> vec4<u32>(4u)) & vec4<u32>(M4), X.a1);
    return dm.x * X.ds.x * f32(isum) + dm.y * X.ds.y;
}
#endif
#if Q5_1
// unit = block u, 6 words [d|m, qh, qs x4]; bit 4 of element j = qh bit j, moved to byte lanes by
// (4 bits * 0x00204081) & 0x01010101 (bit i -> bit 8i; no carries).
fn xload(v: u32, u: u32) -> XQ { return xq2(v, u, u); }
fn spread(h: vec4<u32>) -> vec4<u32> {
    return (((h & vec4<u32>(0xFu)) * vec4<u32>(0x00204081u)) & vec4<u32>(0x01010101u)) << vec4<u32>(4u);
}
fn dotu(rb: u32, u: u32, X: XQ) -> f32 {
    let b = rb + 6u * u;
    let dm = unpack2x16float(w[b]);
    let qh = vec4<u32>(w[b + 1u]);
    let q = w4(b + 2u);
    let lo = (q & vec4<u32>(M4)) | spread(qh >> vec4<u32>(0u, 4u, 8u, 12u));
    let hi = ((q >> vec4<u32>(4u)) & vec4<u32>(M4)) | spread(qh >> vec4<u32>(16u, 20u, 24u, 28u));
    let isum = d4(lo, X.a0) + d4(hi, X.a1);
    return dm.x * X.ds.x * f32(isum) + dm.y * X.ds.y;
}
#endif
#if Q8_0A
// unit = block u, 9 words [d|0, qs x8 int8].
fn xload(v: u32, u: u32) -> XQ { return xq2(v, u, u); }
fn dotu(rb: u32, u: u32, X: XQ) -> f32 {
    let b = rb + 9u * u;
    let d = unpack2x16float(w[b]).x;
    return d * X.ds.x * f32(d4(w4(b + 1u), X.a0) + d4(w4(b + 5u), X.a1));
}
#endif
#if Q4_K
// unit u = elements 64u..64u+63 = super-block u/4, pair c = u%4: 4 header words + qs words
// 4 + 8c .. +8; low nibbles = sub-block 2c (x block 2u), high = sub-block 2c + 1 (x block 2u+1).
fn xload(v: u32, u: u32) -> XQ { return xq2(v, 2u * u, 2u * u + 1u); }
fn dotu(rb: u32, u: u32, X: XQ) -> f32 {
    let c = u & 3u;
    let b = rb + 36u * (u >> 2u);
    let hd = w4(b);                                    // d|dmin, scale words s0, s1, s2
    let dd = unpack2x16float(hd.x);
    let m = mv_scale_min2(hd.y, hd.z, hd.w, c);        // branchless: lanes differ in c
    let qa = w4(b + 4u + 8u * c); let qc = w4(b + 8u + 8u * c);
    let M = vec4<u32>(M4); let F = vec4<u32>(4u);
    let lo = d4(qa & M, X.a0) + d4(qc & M, X.a1);
    let hi = d4((qa >> F) & M, X.b0) + d4((qc >> F) & M, X.b1);
    return dd.x * (m.x * X.ds.x * f32(lo) + m.z * X.ds.z * f32(hi)) -
           dd.y * (m.y * X.ds.y + m.w * X.ds.w);
}
#endif
#if Q5_K
// as q4_k (44-word super-blocks); qh words 4..11: element 64c + l takes bit 2c of qh byte l,
// element 64c + 32 + l bit 2c + 1.
fn xload(v: u32, u: u32) -> XQ { return xq2(v, 2u * u, 2u * u + 1u); }
fn dotu(rb: u32, u: u32, X: XQ) -> f32 {
    let c = u & 3u;
    let b = rb + 44u * (u >> 2u);
    let hd = w4(b);                                    // d|dmin, scale words s0, s1, s2
    let dd = unpack2x16float(hd.x);
    let m = mv_scale_min2(hd.y, hd.z, hd.w, c);        // branchless: lanes differ in c
    let ha = w4(b + 4u); let hc = w4(b + 8u);
    let qa = w4(b + 12u + 8u * c); let qc = w4(b + 16u + 8u * c);
    let M = vec4<u32>(M4); let F = vec4<u32>(4u); let B = vec4<u32>(0x01010101u);
    let sl = vec4<u32>(2u * c); let sh = vec4<u32>(2u * c + 1u);
    let lo = d4((qa & M) | (((ha >> sl) & B) << F), X.a0) +
             d4((qc & M) | (((hc >> sl) & B) << F), X.a1);
    let hi = d4(((qa >> F) & M) | (((ha >> sh) & B) << F), X.b0) +
             d4(((qc >> F) & M) | (((hc >> sh) & B) << F), X.b1);
    return dd.x * (m.x * X.ds.x * f32(lo) + m.z * X.ds.z * f32(hi)) -
           dd.y * (m.y * X.ds.y + m.w * X.ds.w);
}
#endif
#if Q6_KA
// unit u = super-block u/4, half h = (u/2)%2, k = u%2: elements 128h + 32k + l (x block
// 8sb + 4h + k; low nibbles of ql words 16h + 8k .. +8, qh bits 2k) and 128h + 32(k+2) + l (block
// + 2; high nibbles, qh bits 2k + 4); scales 8h + 2k + {0, 1} and 8h + 2k + {4, 5} (per 16).
fn xload(v: u32, u: u32) -> XQ {
    let ba = 8u * (u >> 2u) + 4u * ((u >> 1u) & 1u) + (u & 1u);
    return xq2(v, ba, ba + 2u);
}
fn sc8(q: u32, i: u32) -> i32 { return bitcast<i32>(q << (24u - 8u * i)) >> 24u; }
fn dotu(rb: u32, u: u32, X: XQ) -> f32 {
    let h = (u >> 1u) & 1u;
    let k = u & 1u;
    let b = rb + 53u * (u >> 2u);
    let d = unpack2x16float(w[b + 52u]).x;
    let qa = w4(b + 16u * h + 8u * k); let qc = w4(b + 16u * h + 8u * k + 4u);
    let ha = w4(b + 32u + 8u * h); let hc = w4(b + 36u + 8u * h);
    let sw0 = w[b + 48u + 2u * h]; let sw1 = w[b + 49u + 2u * h];
    let M = vec4<u32>(M4); let F = vec4<u32>(4u); let T = vec4<u32>(0x03030303u);
    let sl = vec4<u32>(2u * k); let sh = vec4<u32>(2u * k + 4u);
    let l0 = d4((qa & M) | (((ha >> sl) & T) << F), X.a0) - 32 * X.hs.x;
    let l1 = d4((qc & M) | (((hc >> sl) & T) << F), X.a1) - 32 * X.hs.y;
    let h0 = d4(((qa >> F) & M) | (((ha >> sh) & T) << F), X.b0) - 32 * X.hs.z;
    let h1 = d4(((qc >> F) & M) | (((hc >> sh) & T) << F), X.b1) - 32 * X.hs.w;
    let lo = sc8(sw0, 2u * k) * l0 + sc8(sw0, 2u * k + 1u) * l1;
    let hi = sc8(sw1, 2u * k) * h0 + sc8(sw1, 2u * k + 1u) * h1;
    return d * (X.ds.x * f32(lo) + X.ds.z * f32(hi));
}
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let rpw = RPT * (WG / TPR);
    let wid = wg.x + wg.y * nwg.x;
    if (wid * rpw >= p.rows) { return; }
    let lane = li % TPR;
    let row0 = wid * rpw + RPT * (li / TPR);
    for (var i = 0u; i < NV * RPT; i++) { acc[i] = 0.0; }
    if (row0 < p.rows) {
        let nr = min(RPT, p.rows - row0);
        for (var u = lane; u < p.units; u += TPR) {
            for (var v = 0u; v < NV; v++) {
                let X = xload(v, u);
                for (var r = 0u; r < RPT; r++) {
                    if (r < nr) { acc[v * RPT + r] += dotu((row0 + r) * p.row_words, u, X); }
                }
            }
        }
    }
    for (var i = 0u; i < NV * RPT; i++) { red[i * WG + li] = acc[i]; }
    for (var s = TPR >> 1u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lane < s) {
            for (var i = 0u; i < NV * RPT; i++) { red[i * WG + li] += red[i * WG + li + s]; }
        }
    }
    if (lane == 0u) {
        for (var r = 0u; r < RPT; r++) {
            let row = row0 + r;
            if (row < p.rows) {
                let o = p.row0 + row;
                for (var v = 0u; v < NV; v++) {
                    var val = red[(v * RPT + r) * WG + li];
#if BIAS
                    val += bias[o];
#endif
#if ACC
                    val += y[v * p.out_rows + o];
#endif
                    y[v * p.out_rows + o] = val;
                }
            }
        }
    }
}
