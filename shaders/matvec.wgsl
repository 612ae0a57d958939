// matvec.wgsl — decode matrix-vector product with a quantized weight:
//
//   y[v, row0 + r] (+)= sum_k W[r, k] * x[v, k]  (+ bias[row0 + r])      v < NV, r < rows
//
// W is one row chunk (rows x cols, row-major) in an internal layout (app/kernels/layouts.py),
// chosen by one define: F32, F16, BF16, Q4_1, Q5_1, Q8_0A, Q4_K, Q5_K or Q6_KA. The sum is in f32.
//
// Bindings (group 0):
//   0  w    : array<u32>        the chunk's bytes; row r starts at word r * row_words
//   1  x    : array<vec4<f32>>  (NV, cols) f32   [array<f32> when SCALAR; (NV, 2 cols) if GLU_X]
//   2  y    : array<f32>        (NV, out_rows) f32; rows row0 .. row0 + rows written (read too if ACC)
//   3  p    : Params            uniform (below)
//   4  bias : array<f32>        (out_rows,) f32, only with the BIAS define
// Defines: one layout; NV (vectors, 1..8), NV1 (NV == 1); RPT (rows per thread: 1, 2 or 4), R2 /
// R4 (RPT == 2 / 4), VT (f32, vec2<f32>, vec4<f32>: RPT sums); RED = WG * NV; SUBGROUPS (reduce
// with subgroup shuffles; SG_ENABLE adds Dawn's enable directive); BIAS; ACC (y += instead of
// y =); SCALAR (dense layouts whose cols are not a multiple of the vector unit: one element per
// unit, x as scalars); V4 (dense layouts: w bound as array<vec4<u32>>, one 16-byte load per
// unit); FINE (q4_1, q8_0a: 8-element units whose consecutive lanes read consecutive words).
// WG: invocations per workgroup (256; CPU adapters use fewer so that small matrices still give
// each core workgroups); NORED (TPR == 1: no reduction, hence no barrier and no workgroup memory,
// which CPU adapters need: a barrier there costs far more than the arithmetic).
// GLU_X (with ACT = silu or gelu_tanh): x is the fused gate | up buffer (NV, 2 cols) and the
// product's input is formed on load, x[v, k] = ACT(gu[v, k]) * gu[v, cols + k], with glu.wgsl's
// functions (lib/glu_act.wgsl), so the result equals glu.wgsl followed by this matvec bit for bit
// (decode's down projection without the glu dispatch; every row group recomputes the
// activations of the units it walks).
// NORM (NV1, not SCALAR/GLU_X): x = xr * g' and the product's input is rmsnorm(xr) * g' (binding
// B_G: xr (cols,); override EPS). EPI (NV1): also write y * g' into ex (bindings B_EG, B_EX).
// Override constant TPR: threads per row, a power of two 1..WG.
//
// Workgroup: WG invocations = WG / TPR row groups x TPR threads; each thread owns RPT
// consecutive rows. A thread walks units u = lane, lane + TPR, ... (a unit is what one thread
// decodes per step: 4 dense elements, 8-32 quantized ones; see dotu() per layout), loads the
// unit's x values once per vector (xload) and applies them to its RPT rows, keeping NV * RPT
// partial sums in registers. The TPR partial sums of each row are then added by subgroup
// shuffles plus at most one barrier (SUBGROUPS) or a workgroup-memory tree (log2(TPR)
// barriers). Consecutive lanes read consecutive units, so each row's bytes are read contiguously.
// Dispatch: grid(ceil(rows / (RPT * WG / TPR))) from app/kernels/grid.py (spills into y).

#if SG_ENABLE
enable subgroups;
diagnostic(off, subgroup_uniformity);
#endif
#include lib/mv_unpack
#if GLU_X
#include lib/glu_act
#endif

override TPR: u32 = 32u;
const WG: u32 = {{WG}}u;
const NV: u32 = {{NV}}u;
const RPT: u32 = {{RPT}}u;  // rows per thread (1, 2 or 4)
alias VT = {{VT}};  // f32, vec2<f32> or vec4<f32>: one partial sum per row of a thread

struct Params {
    rows: u32,       // rows in this chunk
    cols: u32,
    units: u32,      // units per row (see unit())
    row_words: u32,  // u32 words per row (SCALAR: elements per row)
    row0: u32,       // first row of this chunk in y
    out_rows: u32,   // rows of the whole weight (y's row stride)
    xs: u32,         // x's vector stride, in array elements
    _pad: u32,
}

#if V4
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;  // V4: 16-byte loads (below)
#else
@group(0) @binding(0) var<storage, read> w: array<u32>;
#endif
#if SCALAR
@group(0) @binding(1) var<storage, read> x: array<f32>;
#else
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
#endif
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
#endif

#ifndef NORED
var<workgroup> red: array<VT, {{RED}}>;  // WG * NV partial sums (rows in components)
#endif

#if NORM
// NORM (decode, NV1): the product's input is rmsnorm(xr) * g' where x already holds xr * g'
// (written by the matvec producing xr, through its EPI epilogue) and xr (binding B_G) is the raw
// residual stream. Each workgroup first sums xr^2 (its threads stride over xr, then subgroupAdd
// or a tree), and every row's total is scaled:
//   y[r] = inverseSqrt(mean(xr^2) + EPS) * sum_k W[r, k] * x[k]  (+ bias)
// Equal to rmsnorm.wgsl followed by this matvec up to the f32 rounding order (the scale
// multiplies the sum instead of each element). Saves the rmsnorm dispatch and its latency.
@group(0) @binding({{B_G}}) var<storage, read> xr: array<vec4<f32>>;  // 4, or 5 after bias
override EPS: f32 = 1e-6;
var<private> nscale: f32;
#ifndef NORED
var<workgroup> nsum: array<f32, {{WG}}>;
#endif
#endif
#if EPI
// EPI (NV1): besides y, write ex[o] = y[o] * g'[o] for the rows written (g' = eg, or 1 + eg with
// EPI_ADD_ONE): the next rmsnorm's input times its weight, for a NORM matvec to read.
@group(0) @binding({{B_EG}}) var<storage, read> eg: array<f32>;
@group(0) @binding({{B_EX}}) var<storage, read_write> ex: array<f32>;
override EPI_ADD_ONE: bool = false;
#endif

// x's element (SCALAR) or vec4 i: p.xs spans a whole gate | up row under GLU_X, whose up half
// starts cols elements after the gate.
#if SCALAR
fn xat(i: u32) -> f32 {
#if GLU_X
    return {{ACT}}(x[i]) * x[i + p.cols];
#else
    return x[i];
#endif
}
#else
fn xat(i: u32) -> vec4<f32> {
#if GLU_X
    let gt = x[i];
    return vec4<f32>({{ACT}}(gt.x), {{ACT}}(gt.y), {{ACT}}(gt.z), {{ACT}}(gt.w)) * x[i + p.cols / 4u];
#else
    return x[i];
#endif
}
#endif

// The x values one unit multiplies, loaded once and reused for the RPT rows a thread handles (x
// loads, not W loads, were the bottleneck with one row per thread: a 32-element unit of a 4-bit
// layout reads 128 B of x for 20 B of W). Named fields, not an array: arrays of values went to
// local memory on NVIDIA. s = (sum of a0..a3, sum of a4..a7) for the layouts with a min term.
struct X8 { a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
            a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>, s: vec2<f32> }

fn x8(o: u32, d0: u32, d1: u32, d2: u32, d3: u32, d4: u32, d5: u32, d6: u32, d7: u32) -> X8 {
#if SCALAR
    let z = vec4<f32>(0.0);
    return X8(vec4<f32>(xat(o + d0), 0.0, 0.0, 0.0), z, z, z, z, z, z, z, vec2<f32>(0.0));
#else
    let a0 = xat(o + d0); let a1 = xat(o + d1); let a2 = xat(o + d2); let a3 = xat(o + d3);
    let a4 = xat(o + d4); let a5 = xat(o + d5); let a6 = xat(o + d6); let a7 = xat(o + d7);
    let one = vec4<f32>(1.0);
    return X8(a0, a1, a2, a3, a4, a5, a6, a7,
              vec2<f32>(dot(a0 + a1 + a2 + a3, one), dot(a4 + a5 + a6 + a7, one)));
#endif
}

#ifndef SCALAR
// The 4 words of a dense unit at word b (b % 4 == 0): one 16-byte load under V4.
fn w4(b: u32) -> vec4<u32> {
#if V4
    return w[b >> 2u];
#else
    return vec4<u32>(w[b], w[b + 1u], w[b + 2u], w[b + 3u]);
#endif
}

// Two consecutive x vec4s (the dense 8-element units).
fn x2(o: u32) -> X8 {
    let z = vec4<f32>(0.0);
    return X8(xat(o), xat(o + 1u), z, z, z, z, z, z, vec2<f32>(0.0));
}
#endif

#if SCALAR
// Dense layouts, any cols: unit = 1 element; rb = row * cols is an element index.
fn xload(o: u32, u: u32) -> X8 { return x8(o + u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u); }
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let e = rb + u;
#if F32
    return bitcast<f32>(w[e]) * X.a0.x;
#endif
#if F16
    return unpack2x16float(w[e >> 1u])[e & 1u] * X.a0.x;
#endif
#if BF16
    return mv_bf16(w[e >> 1u])[e & 1u] * X.a0.x;
#endif
}
#else
#if F32
// f32, cols % 4 == 0: unit = 4 elements = 4 words. (xat once per distinct vec4: NORM sums x^2
// there.)
fn xload(o: u32, u: u32) -> X8 {
    let z = vec4<f32>(0.0);
    return X8(xat(o + u), z, z, z, z, z, z, z, vec2<f32>(0.0));
}
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    return dot(bitcast<vec4<f32>>(w4(rb + 4u * u)), X.a0);
}
#endif
#if F16
// f16, cols % 8 == 0: unit = 8 elements = 4 words (element pairs, low half first).
fn xload(o: u32, u: u32) -> X8 { return x2(o + 2u * u); }
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let q = w4(rb + 4u * u);
    return dot(vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y)), X.a0) +
           dot(vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w)), X.a1);
}
#endif
#if BF16
// bf16, cols % 8 == 0: unit = 8 elements = 4 words.
fn xload(o: u32, u: u32) -> X8 { return x2(o + 2u * u); }
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let q = w4(rb + 4u * u);
    return dot(vec4<f32>(mv_bf16(q.x), mv_bf16(q.y)), X.a0) +
           dot(vec4<f32>(mv_bf16(q.z), mv_bf16(q.w)), X.a1);
}
#endif
#endif
// Nibbles masked in place (no shift where the nibble already lies in the 23 mantissa bits), ORed
// into 2^23's mantissa, and scaled back by an exact power of two: bits = 2^23 + 2^k n, so
// bits * 2^-k - 2^(23-k) = n exactly (the multiply-add has one rounding of an exact value).
// 11 integer ops per 8 values instead of mv_nib's 15 (the exact path is ALU-heavy on NVIDIA).
// Used by q4_1 and q4_k.
const NIB_M = 0x4B000000u;
fn nib_lo(q: u32) -> vec4<f32> {  // low nibbles of bytes 0..3 (mv_nib(q, 0u))
    let b = vec4<u32>(q & 0xFu, q & 0xF00u, q & 0xF0000u, (q >> 24u) & 0xFu) | vec4<u32>(NIB_M);
    return bitcast<vec4<f32>>(b) * vec4<f32>(1.0, 0.00390625, 1.52587890625e-05, 1.0) -
           vec4<f32>(8388608.0, 32768.0, 128.0, 8388608.0);
}
fn nib_hi(q: u32) -> vec4<f32> {  // high nibbles of bytes 0..3 (mv_nib(q, 4u))
    let b = vec4<u32>(q & 0xF0u, q & 0xF000u, (q >> 16u) & 0xF0u, q >> 28u) | vec4<u32>(NIB_M);
    return bitcast<vec4<f32>>(b) * vec4<f32>(0.0625, 0.000244140625, 0.0625, 1.0) -
           vec4<f32>(524288.0, 2048.0, 524288.0, 8388608.0);
}
#if Q4_1
#if FINE
// q4_1 FINE: unit = one qs word i of block u/4 (i = u % 4): elements 4i..4i+3 (low nibbles, x in
// a0) and 16+4i..16+4i+3 (high, a1). The 4 lanes of a block are consecutive, so a warp's W and x
// loads are contiguous runs (coalesced) and the d|m word is shared by 4 lanes; a 1-block unit
// instead has lanes 20 B (W) and 128 B (x) apart, which costs L1 wavefronts, not DRAM bytes.
fn xload(o: u32, u: u32) -> X8 {
    let k = o + 8u * (u >> 2u) + (u & 3u);
    let a0 = xat(k); let a1 = xat(k + 4u); let z = vec4<f32>(0.0);
    return X8(a0, a1, z, z, z, z, z, z, vec2<f32>(dot(a0 + a1, vec4<f32>(1.0)), 0.0));
}
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let b = rb + 5u * (u >> 2u);
    let dm = unpack2x16float(w[b]);
    let q = w[b + 1u + (u & 3u)];
    return dm.x * (dot(nib_lo(q), X.a0) + dot(nib_hi(q), X.a1)) + dm.y * X.s.x;
}
#else
// q4_1: unit = 1 block = 32 elements = 5 words [d|m, qs x4]. Word i of qs holds elements
// 4i..4i+3 (low nibbles) and 16+4i..16+4i+3 (high). sum = d * sum(q x) + m * sum(x).
fn xload(o: u32, u: u32) -> X8 { return x8(o + 8u * u, 0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u); }
fn q4blk(dmw: u32, q: vec4<u32>, X: X8) -> f32 {
    let dm = unpack2x16float(dmw);
    let sq = dot(nib_lo(q.x), X.a0) + dot(nib_lo(q.y), X.a1) + dot(nib_lo(q.z), X.a2) +
             dot(nib_lo(q.w), X.a3) + dot(nib_hi(q.x), X.a4) + dot(nib_hi(q.y), X.a5) +
             dot(nib_hi(q.z), X.a6) + dot(nib_hi(q.w), X.a7);
    return dm.x * sq + dm.y * (X.s.x + X.s.y);
}
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let b = rb + 5u * u;
    return q4blk(w[b], vec4<u32>(w[b + 1u], w[b + 2u], w[b + 3u], w[b + 4u]), X);
}
#endif
#endif
#if Q5_1
// q5_1: unit = 1 block = 32 elements = 6 words [d|m, qh, qs x4]; bit 4 of element j is qh bit j.
fn xload(o: u32, u: u32) -> X8 { return x8(o + 8u * u, 0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u); }
fn q5(qw: u32, s: u32, qh: u32, j: u32) -> vec4<f32> {
    return mv_u2f(mv_bits(qw, s, 0xFu) | (mv_bit4(qh, j) << vec4<u32>(4u)), 0.0);
}
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let b = rb + 6u * u;
    let dm = unpack2x16float(w[b]);
    let qh = w[b + 1u];
    let q0 = w[b + 2u]; let q1 = w[b + 3u]; let q2 = w[b + 4u]; let q3 = w[b + 5u];
    let sq = dot(q5(q0, 0u, qh, 0u), X.a0) + dot(q5(q1, 0u, qh, 4u), X.a1) +
             dot(q5(q2, 0u, qh, 8u), X.a2) + dot(q5(q3, 0u, qh, 12u), X.a3) +
             dot(q5(q0, 4u, qh, 16u), X.a4) + dot(q5(q1, 4u, qh, 20u), X.a5) +
             dot(q5(q2, 4u, qh, 24u), X.a6) + dot(q5(q3, 4u, qh, 28u), X.a7);
    return dm.x * sq + dm.y * (X.s.x + X.s.y);
}
#endif
#if Q8_0A
#if FINE
// q8_0a FINE: unit = qs words 2i, 2i + 1 of block u/4 (i = u % 4): elements 8i .. 8i + 7 (x in
// a0, a1). As q4_1's FINE units: consecutive lanes read consecutive words and x runs, d is
// shared by the block's 4 lanes.
fn xload(o: u32, u: u32) -> X8 { return x2(o + 8u * (u >> 2u) + 2u * (u & 3u)); }
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let b = rb + 9u * (u >> 2u);
    let q = b + 1u + 2u * (u & 3u);
    return unpack2x16float(w[b]).x * (dot(mv_i8(w[q]), X.a0) + dot(mv_i8(w[q + 1u]), X.a1));
}
#else
// q8_0a: unit = 1 block = 32 elements = 9 words [d|0, qs x8 int8]. sum = d * sum(q x).
fn xload(o: u32, u: u32) -> X8 { return x8(o + 8u * u, 0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u); }
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let b = rb + 9u * u;
    let d = unpack2x16float(w[b]).x;
    let sq = dot(mv_i8(w[b + 1u]), X.a0) + dot(mv_i8(w[b + 2u]), X.a1) +
             dot(mv_i8(w[b + 3u]), X.a2) + dot(mv_i8(w[b + 4u]), X.a3) +
             dot(mv_i8(w[b + 5u]), X.a4) + dot(mv_i8(w[b + 6u]), X.a5) +
             dot(mv_i8(w[b + 7u]), X.a6) + dot(mv_i8(w[b + 8u]), X.a7);
    return d * sq;
}
#endif
#endif
#if Q4_K
// q4_k: super-block of 256 = 36 words; unit = 1/8 super-block = 8 words read: header (d|dmin,
// 3 scale words) + 4 qs words. Unit u: super-block u/8, pair c = (u/2)%4, half h = u%2: qs bytes
// 32c + 16h .. +16 give elements 64c + 16h + t (low nibble, sub-block 2c; x in a0..a3) and
// 64c + 32 + 16h + t (high nibble, sub-block 2c + 1; a4..a7).
// sum = d*sc*sum(q x) - dmin*mn*sum(x) per sub-block.
fn xload(o: u32, u: u32) -> X8 {
    let k = o + 64u * (u >> 3u) + 16u * ((u >> 1u) & 3u) + 4u * (u & 1u);
    return x8(k, 0u, 1u, 2u, 3u, 8u, 9u, 10u, 11u);
}
// The header and the unit's qs are 16-byte aligned (144-byte super-blocks): two w4() loads.
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let c = (u >> 1u) & 3u;
    let b = rb + 36u * (u >> 3u);
    let hd = w4(b);                                    // d|dmin, scale words s0, s1, s2
    let q = w4(b + 4u + 8u * c + 4u * (u & 1u));
    let dd = unpack2x16float(hd.x);
    let m = mv_scale_min2(hd.y, hd.z, hd.w, c);
    let lo = dot(nib_lo(q.x), X.a0) + dot(nib_lo(q.y), X.a1) + dot(nib_lo(q.z), X.a2) +
             dot(nib_lo(q.w), X.a3);
    let hi = dot(nib_hi(q.x), X.a4) + dot(nib_hi(q.y), X.a5) + dot(nib_hi(q.z), X.a6) +
             dot(nib_hi(q.w), X.a7);
    return dd.x * (m.x * lo + m.z * hi) - dd.y * (m.y * X.s.x + m.w * X.s.y);
}
#endif
#if Q5_K
// q5_k: super-block of 256 = 44 words [d|dmin, scales x3, qh x8, qs x32]; unit as q4_k
// (12 words read: header 4, qh 4, qs 4). Bit 4 of element 64c + l is bit 2c of qh byte l, of
// element 64c + 32 + l bit 2c + 1.
fn xload(o: u32, u: u32) -> X8 {
    let k = o + 64u * (u >> 3u) + 16u * ((u >> 1u) & 3u) + 4u * (u & 1u);
    return x8(k, 0u, 1u, 2u, 3u, 8u, 9u, 10u, 11u);
}
fn q5k(qw: u32, s: u32, hw: u32, hs: u32) -> vec4<f32> {
    return mv_u2f(mv_bits(qw, s, 0xFu) | (mv_bits(hw, hs, 1u) << vec4<u32>(4u)), 0.0);
}
// Header, qh and qs runs are 16-byte aligned (176-byte super-blocks): three w4() loads.
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let c = (u >> 1u) & 3u;
    let h = u & 1u;
    let b = rb + 44u * (u >> 3u);
    let hd = w4(b);                                    // d|dmin, scale words s0, s1, s2
    let q = w4(b + 12u + 8u * c + 4u * h);
    let hw = w4(b + 4u + 4u * h);
    let dd = unpack2x16float(hd.x);
    let m = mv_scale_min2(hd.y, hd.z, hd.w, c);
    let sl = 2u * c;
    let sh = 2u * c + 1u;
    let lo = dot(q5k(q.x, 0u, hw.x, sl), X.a0) + dot(q5k(q.y, 0u, hw.y, sl), X.a1) +
             dot(q5k(q.z, 0u, hw.z, sl), X.a2) + dot(q5k(q.w, 0u, hw.w, sl), X.a3);
    let hi = dot(q5k(q.x, 4u, hw.x, sh), X.a4) + dot(q5k(q.y, 4u, hw.y, sh), X.a5) +
             dot(q5k(q.z, 4u, hw.z, sh), X.a6) + dot(q5k(q.w, 4u, hw.w, sh), X.a7);
    return dd.x * (m.x * lo + m.z * hi) - dd.y * (m.y * X.s.x + m.w * X.s.y);
}
#endif
#if Q6_KA
// q6_ka: super-block of 256 = 53 words [ql x32, qh x16, scales x4 int8, d|0]; unit = 1/8
// super-block, 9 words read: half hf = (u/4)%2, l group g = u%4 (l = 8g .. 8g+7): ql words
// 16hf + 2g + i and 16hf + 8 + 2g + i, qh words 32 + 8hf + 2g + i (i < 2), 2 scale words, d.
// Element 128hf + l + 32k (k < 4) has scale index 8hf + l/16 + 2k (x in a(2k), a(2k+1)).
// w = d * scale * (q - 32).
fn xload(o: u32, u: u32) -> X8 {
    let k = o + 64u * (u >> 3u) + 32u * ((u >> 2u) & 1u) + 2u * (u & 3u);
    return x8(k, 0u, 1u, 8u, 9u, 16u, 17u, 24u, 25u);
}
fn q6(lo: u32, s: u32, hi: u32, s2: u32) -> vec4<f32> {
    return mv_u2f(mv_bits(lo, s, 0xFu) | (mv_bits(hi, s2, 3u) << vec4<u32>(4u)), 32.0);
}
fn dotu(rb: u32, u: u32, X: X8) -> f32 {
    let hf = (u >> 2u) & 1u;
    let g = u & 3u;
    let b = rb + 53u * (u >> 3u);
    let d = unpack2x16float(w[b + 52u]).x;
    // scales of k = 0..3: bytes si0 + 2k (si0 = 8hf + g/2): bytes sh, sh + 2 of sw0, then of sw1
    let si0 = 8u * hf + (g >> 1u);
    let sw0 = w[b + 48u + (si0 >> 2u)];
    let sw1 = w[b + 49u + (si0 >> 2u)];
    let sh = si0 & 3u;
    let sc = vec4<f32>(mv_i8_at(sw0, sh), mv_i8_at(sw0, sh + 2u), mv_i8_at(sw1, sh),
                       mv_i8_at(sw1, sh + 2u));
    let la = b + 16u * hf + 2u * g;
    let ha = b + 32u + 8u * hf + 2u * g;
    let qa0 = w[la]; let qa1 = w[la + 1u]; let qb0 = w[la + 8u]; let qb1 = w[la + 9u];
    let h0 = w[ha]; let h1 = w[ha + 1u];
    let t = vec4<f32>(dot(q6(qa0, 0u, h0, 0u), X.a0) + dot(q6(qa1, 0u, h1, 0u), X.a1),
                      dot(q6(qb0, 0u, h0, 2u), X.a2) + dot(q6(qb1, 0u, h1, 2u), X.a3),
                      dot(q6(qa0, 4u, h0, 4u), X.a4) + dot(q6(qa1, 4u, h1, 4u), X.a5),
                      dot(q6(qb0, 4u, h0, 6u), X.a6) + dot(q6(qb1, 4u, h1, 6u), X.a7));
    return d * dot(sc, t);
}
#endif

// W's word offsets of this thread's rows row0 + 0..3, each clamped into the chunk: rows past the
// end are computed from the last row (in bounds) and never stored.
fn rbase(row0: u32) -> vec4<u32> {
    return min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.rows - 1u)) * p.row_words;
}

// One unit against one x vector for the RPT rows at word offsets rb, as a VT (f32, vec2 or vec4:
// rows in components): no loop and no indexing, so the sums stay in registers (a loop over RPT
// rows into a private array, bounded by naga/Tint's loop guards, is not reliably unrolled).
fn dotr(rb: vec4<u32>, u: u32, X: X8) -> VT {
#if R4
    return vec4<f32>(dotu(rb.x, u, X), dotu(rb.y, u, X), dotu(rb.z, u, X), dotu(rb.w, u, X));
#else
#if R2
    return vec2<f32>(dotu(rb.x, u, X), dotu(rb.y, u, X));
#else
    return dotu(rb.x, u, X);
#endif
#endif
}

fn put(v: u32, row: u32, val0: f32) {
    if (row < p.rows) {
        let o = p.row0 + row;
        var val = val0;
#if NORM
        val *= nscale;
#endif
#if BIAS
        val += bias[o];
#endif
#if ACC
        val += y[v * p.out_rows + o];
#endif
        y[v * p.out_rows + o] = val;
#if EPI
        var ge = eg[o];
        if (EPI_ADD_ONE) {
            ge += 1.0;
        }
        ex[o] = val * ge;
#endif
    }
}

#if NORM
// inverseSqrt(mean(xr^2) + EPS), the same in every invocation of the workgroup.
fn norm_scale(li: u32, sgs: u32) -> f32 {
    var s = 0.0;
#if NORED
    for (var i = 0u; i < p.cols / 4u; i++) {  // no barriers (CPU adapters): each thread alone
        let v = xr[i];
        s += dot(v, v);
    }
#else
    for (var i = li; i < p.cols / 4u; i += WG) {
        let v = xr[i];
        s += dot(v, v);
    }
#if SUBGROUPS
    s = subgroupAdd(s);
    if (li % sgs == 0u) {
        nsum[li / sgs] = s;
    }
    workgroupBarrier();
    s = 0.0;
    for (var j = 0u; j < WG / sgs; j++) {
        s += nsum[j];
    }
#else
    nsum[li] = s;
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        workgroupBarrier();
        if (li < k) {
            nsum[li] += nsum[li + k];
        }
    }
    workgroupBarrier();
    s = nsum[0];
#endif
#endif
    return inverseSqrt(s / f32(p.cols) + EPS);
}
#endif

// After the loop over units, the TPR partial sums of each row are added: lane 0 of each row group
// ends with the row totals in acc.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
#if SUBGROUPS
        @builtin(subgroup_size) sgs: u32,
#endif
        @builtin(local_invocation_index) li: u32) {
    let rpw = RPT * (WG / TPR);
    let wid = wg.x + wg.y * nwg.x;
    if (wid * rpw >= p.rows) { return; }  // the grid's unused tail (uniform per workgroup)
#if NORM
#if SUBGROUPS
    nscale = norm_scale(li, sgs);
#else
    nscale = norm_scale(li, 1u);
#endif
#endif
    let lane = li % TPR;
    let row0 = wid * rpw + RPT * (li / TPR);  // this thread's rows: row0 .. row0 + RPT - 1
    var acc: array<VT, NV>;  // [v]: rows row0 + 0..RPT-1 in components (zero-initialized)
    if (row0 < p.rows) {
        let rb = rbase(row0);
        for (var u = lane; u < p.units; u += TPR) {
#if NV1
            acc[0] += dotr(rb, u, xload(0u, u));
#else
            for (var v = 0u; v < NV; v++) { acc[v] += dotr(rb, u, xload(v * p.xs, u)); }
#endif
        }
    }
#ifndef NORED
#if SUBGROUPS
    // Butterfly over the m = min(TPR, subgroup size) lanes of a subgroup that share a row group
    // (invocations li = k * sgs .. k * sgs + sgs - 1 form subgroup k, as on every driver for a
    // 1-D workgroup; TPR and sgs are powers of two, so the xor partners stay in the row group),
    // then, when a row group spans TPR / m subgroups, one barrier and lane 0 adds their totals.
    let m = min(TPR, sgs);
    for (var s = m >> 1u; s > 0u; s >>= 1u) {
#if NV1
        acc[0] += subgroupShuffleXor(acc[0], s);
#else
        for (var v = 0u; v < NV; v++) { acc[v] += subgroupShuffleXor(acc[v], s); }
#endif
    }
    if (TPR > 4u) {  // TPR <= 4 <= every subgroup size: no cross-subgroup step (uniform: override)
        if (lane % m == 0u) {
            for (var v = 0u; v < NV; v++) { red[v * WG + li] = acc[v]; }
        }
        workgroupBarrier();
        if (lane == 0u) {
            for (var j = m; j < TPR; j += m) {
                for (var v = 0u; v < NV; v++) { acc[v] += red[v * WG + li + j]; }
            }
        }
    }
#else
    for (var v = 0u; v < NV; v++) { red[v * WG + li] = acc[v]; }
    for (var s = TPR >> 1u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lane < s) {
            for (var v = 0u; v < NV; v++) { red[v * WG + li] += red[v * WG + li + s]; }
        }
    }
    if (lane == 0u) {
        for (var v = 0u; v < NV; v++) { acc[v] = red[v * WG + li]; }
    }
#endif
#endif
    if (lane == 0u) {
        for (var v = 0u; v < NV; v++) {
            let t = acc[v];
#if R4
            put(v, row0, t.x);
            put(v, row0 + 1u, t.y);
            put(v, row0 + 2u, t.z);
            put(v, row0 + 3u, t.w);
#else
#if R2
            put(v, row0, t.x);
            put(v, row0 + 1u, t.y);
#else
            put(v, row0, t);
#endif
#endif
        }
    }
}
