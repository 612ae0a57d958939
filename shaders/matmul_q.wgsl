// matmul_q.wgsl — prefill matrix product with a quantized weight, tiled through workgroup memory:
//
//   Y[t, row0 + r] (+)= sum_k X[t, k] * W[r, k]  (+ bias[row0 + r])      t < n_tokens, r < rows
//
// W is one row chunk (rows x cols, row-major) in an internal layout (app/kernels/layouts.py),
// chosen by one define: F32, F16, BF16, Q4_1, Q5_1, Q8_0A, Q4_K, Q5_K or Q6_KA.
//
// Bindings (group 0):
//   0  w    : array<u32>   the chunk's bytes; row r starts at r * row_stride (dense layouts: an
//                          element index, 16-bit values two per word; quantized: a word index)
//   1  x    : array<f32>   (n_tokens, cols); array<vec4<f32>> with the X4 define (cols % 4 == 0)
//   2  y    : array<f32>   (n_tokens, out_rows); rows row0 .. row0 + rows written (read too if ACC)
//   3  p    : Params       uniform (below)
//   4  bias : array<f32>   (out_rows,), only with the BIAS define
// Defines: one layout; BIAS; ACC (Y += instead of Y =); X4; SHADER_F16 (f16-compute variant, needs
// the shader-f16 feature). Override constant FLUSH (SHADER_F16 only, default 8): k steps summed
// in f16 before they are added into the f32 accumulators.
//
// Workgroup: 256 invocations computing a 128 (weight rows) x 128 (tokens) tile of Y, 8 x 8 outputs
// per invocation in 16 named vec4 accumulators: rows 4cr .. 4cr+3 and 64+4cr .., tokens 4ct ..
// and 64+4ct .. (cr = li % 16, ct = li / 16). K advances TK per step through tiles stored k-major
// (tw[k][row], tx[k][token]) so the inner loop reads 2 vec4 of rows and 2 vec4 of tokens per k:
//   f32 path:   TK = 16, tiles f32, 2 x 8 KiB, products and sums in f32;
//   SHADER_F16: TK = 32, tiles f16, 2 x 8 KiB; vec4<f16> products summed in f16 over FLUSH
//               consecutive k, then converted to f32 and added (error: tests/gpu/test_matmul_q.py).
// Staging (see main): consecutive invocations decode 8-weight pieces of the same row and load
// vec4s of x of the same token, so a warp's global loads touch few cache lines; stores into the
// tiles are XOR-swizzled (sw, sx) to avoid bank conflicts. The next step's raw words are fetched
// into registers before the current step's products, so global memory latency overlaps the math. Out-of-range rows, tokens and (dense) k are staged as 0.
// No function-local arrays or dynamic indexing of values anywhere: an earlier version with them
// (var v: array<f32, 8> in deq8, array accumulators) ran q5_1, q5_k, q6_ka, f16 and bf16 ~7x
// slower on an H100 (NVIDIA Vulkan), most likely from local-memory spills (not seen in SASS).
// Dispatch: (ceil(rows / 128), ceil(n_tokens / 128)).

#if SHADER_F16
enable f16;
#endif
#include lib/mv_unpack

#include lib/matmul_params

@group(0) @binding(0) var<storage, read> w: array<u32>;
#if X4
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
#endif

#if SHADER_F16
alias FT = f16;
const TK: u32 = 32u;
const TX1: u32 = 32u;    // token offset of each thread's second x vec4
override FLUSH: u32 = 8u;
var<workgroup> tw: array<vec4<f16>, 1024>;  // [TK][128 / 4]
var<workgroup> tx: array<vec4<f16>, 1024>;
#else
alias FT = f32;
const TK: u32 = 16u;
const TX1: u32 = 64u;
var<workgroup> tw: array<vec4<f32>, 512>;   // [TK][128 / 4]
var<workgroup> tx: array<vec4<f32>, 512>;
#endif

struct R8 { a: vec4<u32>, b: vec4<u32> }  // raw words behind 8 weights (layout-specific)
struct V8 { a: vec4<f32>, b: vec4<f32> }  // 8 consecutive values

// fetch(rb, e0): the words holding elements e0 .. e0+7 of the row starting at rb (e0 % 8 == 0);
// decode(r, rb, e0): those 8 weights as f32. Dense layouts give 0 for columns >= cols.

fn fetch16(rb: u32, e0: u32) -> R8 {  // f16 / bf16: 5 words cover 8 values at any half-word
    let q = (rb + e0) >> 1u;
    return R8(vec4<u32>(w[q], w[q + 1u], w[q + 2u], w[q + 3u]), vec4<u32>(w[q + 4u], 0u, 0u, 0u));
}
fn mask8(v: V8, e0: u32) -> V8 {  // zero the values of columns >= cols
    let k = vec4<u32>(e0) + vec4<u32>(0u, 1u, 2u, 3u);
    let n = vec4<u32>(p.cols);
    return V8(select(vec4<f32>(0.0), v.a, k < n), select(vec4<f32>(0.0), v.b, k + 4u < n));
}

#if F32
fn ld(e: u32, k: u32) -> u32 {  // w[e] when column k exists, else 0
    if (k < p.cols) { return w[e]; }
    return 0u;
}
fn fetch(rb: u32, e0: u32) -> R8 {
    let e = rb + e0;
    return R8(vec4<u32>(ld(e, e0), ld(e + 1u, e0 + 1u), ld(e + 2u, e0 + 2u), ld(e + 3u, e0 + 3u)),
              vec4<u32>(ld(e + 4u, e0 + 4u), ld(e + 5u, e0 + 5u), ld(e + 6u, e0 + 6u), ld(e + 7u, e0 + 7u)));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    return V8(bitcast<vec4<f32>>(r.a), bitcast<vec4<f32>>(r.b));
}
#endif
#if F16
fn fetch(rb: u32, e0: u32) -> R8 { return fetch16(rb, e0); }
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let h = mv_align16(r.a, r.b.x, ((rb + e0) & 1u) == 1u);
    return mask8(V8(vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y)),
                    vec4<f32>(unpack2x16float(h.z), unpack2x16float(h.w))), e0);
}
#endif
#if BF16
fn fetch(rb: u32, e0: u32) -> R8 { return fetch16(rb, e0); }
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let h = mv_align16(r.a, r.b.x, ((rb + e0) & 1u) == 1u);
    let lo = bitcast<vec4<f32>>(h << vec4<u32>(16u));           // values 0, 2, 4, 6
    let hi = bitcast<vec4<f32>>(h & vec4<u32>(0xFFFF0000u));    // values 1, 3, 5, 7
    return mask8(V8(vec4<f32>(lo.x, hi.x, lo.y, hi.y), vec4<f32>(lo.z, hi.z, lo.w, hi.w)), e0);
}
#endif
#if Q4_1
// Elements 8pp .. 8pp+7 of block e0/32 (pp = e0/8 % 4): nibbles (pp >= 2: high) of qs bytes
// 8(pp%2) .. +8.
fn fetch(rb: u32, e0: u32) -> R8 {
    let b = rb + 5u * (e0 >> 5u);
    let wi = b + 1u + 2u * ((e0 >> 3u) & 1u);
    return R8(vec4<u32>(w[b], w[wi], w[wi + 1u], 0u), vec4<u32>(0u));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let s = 4u * ((e0 >> 4u) & 1u);
    let dm = unpack2x16float(r.a.x);
    return V8(mv_u2f(mv_bits(r.a.y, s, 0xFu), 0.0) * dm.x + dm.y,
              mv_u2f(mv_bits(r.a.z, s, 0xFu), 0.0) * dm.x + dm.y);
}
#endif
#if Q5_1
// As q4_1, plus bit 4 of element j from bit j of qh (word 1).
fn fetch(rb: u32, e0: u32) -> R8 {
    let b = rb + 6u * (e0 >> 5u);
    let wi = b + 2u + 2u * ((e0 >> 3u) & 1u);
    return R8(vec4<u32>(w[b], w[b + 1u], w[wi], w[wi + 1u]), vec4<u32>(0u));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let pp = (e0 >> 3u) & 3u;
    let s = 4u * (pp >> 1u);
    let dm = unpack2x16float(r.a.x);
    let qa = mv_bits(r.a.z, s, 0xFu) | (mv_bit4(r.a.y, 8u * pp) << vec4<u32>(4u));
    let qb = mv_bits(r.a.w, s, 0xFu) | (mv_bit4(r.a.y, 8u * pp + 4u) << vec4<u32>(4u));
    return V8(mv_u2f(qa, 0.0) * dm.x + dm.y, mv_u2f(qb, 0.0) * dm.x + dm.y);
}
#endif
#if Q8_0A
fn fetch(rb: u32, e0: u32) -> R8 {
    let b = rb + 9u * (e0 >> 5u);
    let wi = b + 1u + 2u * ((e0 >> 3u) & 3u);
    return R8(vec4<u32>(w[b], w[wi], w[wi + 1u], 0u), vec4<u32>(0u));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let d = unpack2x16float(r.a.x).x;
    return V8(mv_i8(r.a.y) * d, mv_i8(r.a.z) * d);
}
#endif
#if Q4_K
// Element 64c + 32hi + l (l = l0 .. l0+7): nibble hi of qs byte 32c + l, sub-block 2c + hi.
fn fetch(rb: u32, e0: u32) -> R8 {
    let ee = e0 & 255u;
    let b = rb + 36u * (e0 >> 8u);
    let wi = b + 4u + 8u * (ee >> 6u) + ((ee & 31u) >> 2u);
    return R8(vec4<u32>(w[b], w[b + 1u], w[b + 2u], w[b + 3u]), vec4<u32>(w[wi], w[wi + 1u], 0u, 0u));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let ee = e0 & 255u;
    let hi = (ee >> 5u) & 1u;
    let dd = unpack2x16float(r.a.x);
    let sm = mv_scale_min(r.a.y, r.a.z, r.a.w, 2u * (ee >> 6u) + hi);
    let f = dd.x * sm.x;
    let m = dd.y * sm.y;
    return V8(mv_u2f(mv_bits(r.b.x, 4u * hi, 0xFu), 0.0) * f - m,
              mv_u2f(mv_bits(r.b.y, 4u * hi, 0xFu), 0.0) * f - m);
}
#endif
#if Q5_K
// As q4_k; bit 4 of element 64c + 32hi + l is bit 2c + hi of qh byte l.
fn fetch(rb: u32, e0: u32) -> R8 {
    let ee = e0 & 255u;
    let b = rb + 44u * (e0 >> 8u);
    let wi = b + 12u + 8u * (ee >> 6u) + ((ee & 31u) >> 2u);
    let hw = b + 4u + ((ee & 31u) >> 2u);
    return R8(vec4<u32>(w[b], w[b + 1u], w[b + 2u], w[b + 3u]),
              vec4<u32>(w[wi], w[wi + 1u], w[hw], w[hw + 1u]));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let ee = e0 & 255u;
    let hi = (ee >> 5u) & 1u;
    let j = 2u * (ee >> 6u) + hi;
    let dd = unpack2x16float(r.a.x);
    let sm = mv_scale_min(r.a.y, r.a.z, r.a.w, j);
    let f = dd.x * sm.x;
    let m = dd.y * sm.y;
    let qa = mv_bits(r.b.x, 4u * hi, 0xFu) | (mv_bits(r.b.z, j, 1u) << vec4<u32>(4u));
    let qb = mv_bits(r.b.y, 4u * hi, 0xFu) | (mv_bits(r.b.w, j, 1u) << vec4<u32>(4u));
    return V8(mv_u2f(qa, 0.0) * f - m, mv_u2f(qb, 0.0) * f - m);
}
#endif
#if Q6_KA
// Element 128h + 32g + l (l = l0 .. l0+7): low 4 bits = nibble g/2 of ql byte 64h + 32(g%2) + l,
// high 2 bits = bits 2g of qh byte 32h + l, scale index 8h + l/16 + 2g; w = d * scale * (q - 32).
fn fetch(rb: u32, e0: u32) -> R8 {
    let ee = e0 & 255u;
    let h = ee >> 7u;
    let g = (ee >> 5u) & 3u;
    let l0 = ee & 31u;
    let b = rb + 53u * (e0 >> 8u);
    let si = 8u * h + (l0 >> 4u) + 2u * g;
    let li = b + 16u * h + 8u * (g & 1u) + (l0 >> 2u);
    let hi = b + 32u + 8u * h + (l0 >> 2u);
    return R8(vec4<u32>(w[b + 52u], w[b + 48u + (si >> 2u)], w[li], w[li + 1u]),
              vec4<u32>(w[hi], w[hi + 1u], 0u, 0u));
}
fn decode(r: R8, rb: u32, e0: u32) -> V8 {
    let ee = e0 & 255u;
    let g = (ee >> 5u) & 3u;
    let si = 8u * (ee >> 7u) + ((ee & 31u) >> 4u) + 2u * g;
    let f = unpack2x16float(r.a.x).x * mv_i8_at(r.a.y, si & 3u);
    let s = 4u * (g >> 1u);
    let qa = mv_bits(r.a.z, s, 0xFu) | (mv_bits(r.b.x, 2u * g, 3u) << vec4<u32>(4u));
    let qb = mv_bits(r.a.w, s, 0xFu) | (mv_bits(r.b.y, 2u * g, 3u) << vec4<u32>(4u));
    return V8(mv_u2f(qa, 32.0) * f, mv_u2f(qb, 32.0) * f);
}
#endif

// X[tok, k .. k+3] (k % 4 == 0), 0 outside.
#if X4
fn ldx4(tok: u32, k: u32) -> vec4<f32> {
    if (tok < p.n_tokens && k < p.cols) { return x[(tok * p.cols + k) >> 2u]; }
    return vec4<f32>(0.0);
}
#else
fn ldx(i: u32, ok: bool) -> f32 {
    if (ok) { return x[i]; }
    return 0.0;
}
fn ldx4(tok: u32, k: u32) -> vec4<f32> {
    let i = tok * p.cols + k;
    let ok = tok < p.n_tokens;
    let n = p.cols;
    return vec4<f32>(ldx(i, ok && k < n), ldx(i + 1u, ok && k + 1u < n),
                     ldx(i + 2u, ok && k + 2u < n), ldx(i + 3u, ok && k + 3u < n));
}
#endif

// Tiles: tw[k][row] is element (row & 3) of vec4 k * 32 + ((row >> 2) ^ sw(k)), likewise tx with
// sx(k). The XOR swizzles (< 16, so both 64-row halves keep their vec4s) make the staging stores
// below free of bank conflicts; the compute loop reads vec4s cr ^ sw(k) and 16 + cr ^ sw(k).
#if SHADER_F16
fn sw(k: u32) -> u32 { return 2u * ((k >> 3u) & 3u); }  // 4 threads per row, 8 k each
fn sx(k: u32) -> u32 { return (k >> 2u) & 7u; }         // 8 threads per token, 4 k each
#else
fn sw(k: u32) -> u32 { return 4u * ((k >> 3u) & 1u); }  // 2 threads per row, 8 k each
fn sx(k: u32) -> u32 { return 2u * ((k >> 2u) & 3u); }  // 4 threads per token, 4 k each
#endif

fn put_w(k: u32, row: u32, v: f32) { tw[k * 32u + ((row >> 2u) ^ sw(k))][row & 3u] = FT(v); }
fn put_x(k: u32, tok: u32, v: f32) { tx[k * 32u + ((tok >> 2u) ^ sx(k))][tok & 3u] = FT(v); }
fn stage_w(v: V8, k: u32, row: u32) {  // tw[k .. k+7][row] = v
    put_w(k, row, v.a.x); put_w(k + 1u, row, v.a.y); put_w(k + 2u, row, v.a.z); put_w(k + 3u, row, v.a.w);
    put_w(k + 4u, row, v.b.x); put_w(k + 5u, row, v.b.y); put_w(k + 6u, row, v.b.z); put_w(k + 7u, row, v.b.w);
}
fn stage_x(v: vec4<f32>, k: u32, tok: u32) {  // tx[k .. k+3][tok] = v
    put_x(k, tok, v.x); put_x(k + 1u, tok, v.y); put_x(k + 2u, tok, v.z); put_x(k + 3u, tok, v.w);
}

fn put1(t: u32, r: u32, v: f32) {  // Y[t, row0 + r] (+)= v (+ bias)
    if (r < p.rows) {
        let o = t * p.out_rows + p.row0 + r;
        var val = v;
#if BIAS
        val += bias[p.row0 + r];
#endif
#if ACC
        val += y[o];
#endif
        y[o] = val;
    }
}
fn put(t: u32, r: u32, v: vec4<f32>) {  // rows r .. r+3 of token t
    if (t < p.n_tokens) {
        put1(t, r, v.x);
        put1(t, r + 1u, v.y);
        put1(t, r + 2u, v.z);
        put1(t, r + 3u, v.w);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r0 = wg.x * 128u;
    let t0 = wg.y * 128u;
    // Staging roles (consecutive invocations share a row / token, so a warp's loads touch few
    // cache lines): f32 path: weight row li / 2 at k 8 (li % 2); x tokens li / 4 + 64 j at
    // k 4 (li % 4). SHADER_F16: weight rows li / 4 + 64 j at k 8 (li % 4); x tokens li / 8 + 32 j
    // at k 4 (li % 8).
#if SHADER_F16
    let sr0 = li >> 2u;
    let sr1 = sr0 + 64u;
    let kw = 8u * (li & 3u);
    let live1 = r0 + sr1 < p.rows;
    let rb1 = (r0 + sr1) * p.row_stride;
    let kx = 4u * (li & 7u);
    let tk0 = t0 + (li >> 3u);
#else
    let sr0 = li >> 1u;
    let kw = 8u * (li & 1u);
    let kx = 4u * (li & 3u);
    let tk0 = t0 + (li >> 2u);
#endif
    let live0 = r0 + sr0 < p.rows;
    let rb0 = (r0 + sr0) * p.row_stride;
    let cr = li & 15u;                      // compute: rows 4cr.. and 64+4cr..
    let ct = li >> 4u;                      // compute: tokens 4ct.. and 64+4ct..
    // s<j><h>: token j (0..3: 4ct + j; 4..7: 64 + 4ct + j - 4), rows h (0: 4cr..; 1: 64 + 4cr..)
    var s00 = vec4<f32>(0.0); var s01 = vec4<f32>(0.0); var s10 = vec4<f32>(0.0); var s11 = vec4<f32>(0.0);
    var s20 = vec4<f32>(0.0); var s21 = vec4<f32>(0.0); var s30 = vec4<f32>(0.0); var s31 = vec4<f32>(0.0);
    var s40 = vec4<f32>(0.0); var s41 = vec4<f32>(0.0); var s50 = vec4<f32>(0.0); var s51 = vec4<f32>(0.0);
    var s60 = vec4<f32>(0.0); var s61 = vec4<f32>(0.0); var s70 = vec4<f32>(0.0); var s71 = vec4<f32>(0.0);
#if SHADER_F16
    // h<j><h>: the same outputs' f16 partial sums over the current FLUSH k
    var h00 = vec4<f16>(0.0); var h01 = vec4<f16>(0.0); var h10 = vec4<f16>(0.0); var h11 = vec4<f16>(0.0);
    var h20 = vec4<f16>(0.0); var h21 = vec4<f16>(0.0); var h30 = vec4<f16>(0.0); var h31 = vec4<f16>(0.0);
    var h40 = vec4<f16>(0.0); var h41 = vec4<f16>(0.0); var h50 = vec4<f16>(0.0); var h51 = vec4<f16>(0.0);
    var h60 = vec4<f16>(0.0); var h61 = vec4<f16>(0.0); var h70 = vec4<f16>(0.0); var h71 = vec4<f16>(0.0);
#endif
    // raw words / x values of the step being staged (fetched one step ahead)
    var rw0 = R8(vec4<u32>(0u), vec4<u32>(0u));
    if (live0) { rw0 = fetch(rb0, kw); }
    var xv0 = ldx4(tk0, kx);
    var xv1 = ldx4(tk0 + TX1, kx);
#if SHADER_F16
    var rw1 = R8(vec4<u32>(0u), vec4<u32>(0u));
    if (live1) { rw1 = fetch(rb1, kw); }
    var xv2 = ldx4(tk0 + 64u, kx);
    var xv3 = ldx4(tk0 + 96u, kx);
#endif
    for (var k0 = 0u; k0 < p.cols; k0 += TK) {
        stage_w(decode(rw0, rb0, k0 + kw), kw, sr0);
        stage_x(xv0, kx, tk0 - t0);
        stage_x(xv1, kx, tk0 - t0 + TX1);
#if SHADER_F16
        stage_w(decode(rw1, rb1, k0 + kw), kw, sr1);
        stage_x(xv2, kx, tk0 - t0 + 64u);
        stage_x(xv3, kx, tk0 - t0 + 96u);
#endif
        workgroupBarrier();
        let kn = k0 + TK;
        if (kn < p.cols) {  // the next step's raw words, in flight during the products below
            if (live0) { rw0 = fetch(rb0, kn + kw); }
            xv0 = ldx4(tk0, kn + kx);
            xv1 = ldx4(tk0 + TX1, kn + kx);
#if SHADER_F16
            if (live1) { rw1 = fetch(rb1, kn + kw); }
            xv2 = ldx4(tk0 + 64u, kn + kx);
            xv3 = ldx4(tk0 + 96u, kn + kx);
#endif
        }
#if SHADER_F16
        for (var kf = 0u; kf < TK; kf += FLUSH) {
            for (var k = kf; k < kf + FLUSH; k++) {
                let a0 = tw[k * 32u + (cr ^ sw(k))];
                let a1 = tw[k * 32u + 16u + (cr ^ sw(k))];
                let b0 = tx[k * 32u + (ct ^ sx(k))];
                let b1 = tx[k * 32u + 16u + (ct ^ sx(k))];
                h00 += a0 * b0.x; h01 += a1 * b0.x; h10 += a0 * b0.y; h11 += a1 * b0.y;
                h20 += a0 * b0.z; h21 += a1 * b0.z; h30 += a0 * b0.w; h31 += a1 * b0.w;
                h40 += a0 * b1.x; h41 += a1 * b1.x; h50 += a0 * b1.y; h51 += a1 * b1.y;
                h60 += a0 * b1.z; h61 += a1 * b1.z; h70 += a0 * b1.w; h71 += a1 * b1.w;
            }
            s00 += vec4<f32>(h00); s01 += vec4<f32>(h01); s10 += vec4<f32>(h10); s11 += vec4<f32>(h11);
            s20 += vec4<f32>(h20); s21 += vec4<f32>(h21); s30 += vec4<f32>(h30); s31 += vec4<f32>(h31);
            s40 += vec4<f32>(h40); s41 += vec4<f32>(h41); s50 += vec4<f32>(h50); s51 += vec4<f32>(h51);
            s60 += vec4<f32>(h60); s61 += vec4<f32>(h61); s70 += vec4<f32>(h70); s71 += vec4<f32>(h71);
            h00 = vec4<f16>(0.0); h01 = vec4<f16>(0.0); h10 = vec4<f16>(0.0); h11 = vec4<f16>(0.0);
            h20 = vec4<f16>(0.0); h21 = vec4<f16>(0.0); h30 = vec4<f16>(0.0); h31 = vec4<f16>(0.0);
            h40 = vec4<f16>(0.0); h41 = vec4<f16>(0.0); h50 = vec4<f16>(0.0); h51 = vec4<f16>(0.0);
            h60 = vec4<f16>(0.0); h61 = vec4<f16>(0.0); h70 = vec4<f16>(0.0); h71 = vec4<f16>(0.0);
        }
#else
        for (var k = 0u; k < TK; k++) {
            let a0 = tw[k * 32u + (cr ^ sw(k))];
            let a1 = tw[k * 32u + 16u + (cr ^ sw(k))];
            let b0 = tx[k * 32u + (ct ^ sx(k))];
            let b1 = tx[k * 32u + 16u + (ct ^ sx(k))];
            s00 += a0 * b0.x; s01 += a1 * b0.x; s10 += a0 * b0.y; s11 += a1 * b0.y;
            s20 += a0 * b0.z; s21 += a1 * b0.z; s30 += a0 * b0.w; s31 += a1 * b0.w;
            s40 += a0 * b1.x; s41 += a1 * b1.x; s50 += a0 * b1.y; s51 += a1 * b1.y;
            s60 += a0 * b1.z; s61 += a1 * b1.z; s70 += a0 * b1.w; s71 += a1 * b1.w;
        }
#endif
        workgroupBarrier();
    }
    let ta = t0 + 4u * ct;
    let tb = ta + 64u;
    let ra = r0 + 4u * cr;
    let rc = ra + 64u;
    put(ta, ra, s00); put(ta, rc, s01); put(ta + 1u, ra, s10); put(ta + 1u, rc, s11);
    put(ta + 2u, ra, s20); put(ta + 2u, rc, s21); put(ta + 3u, ra, s30); put(ta + 3u, rc, s31);
    put(tb, ra, s40); put(tb, rc, s41); put(tb + 1u, ra, s50); put(tb + 1u, rc, s51);
    put(tb + 2u, ra, s60); put(tb + 2u, rc, s61); put(tb + 3u, ra, s70); put(tb + 3u, rc, s71);
}
