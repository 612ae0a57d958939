// matmul_q.wgsl — prefill matrix product with a quantized weight, tiled through workgroup memory:
//
//   Y[t, row0 + r] (+)= sum_k X[t, k] * W[r, k]  (+ bias[row0 + r])      t < n_tokens, r < rows
//
// W is one row chunk (rows x cols, row-major) in an internal layout (app/kernels/layouts.py),
// chosen by one define: F32, F16, BF16, Q4_1, Q5_1, Q8_0A, Q4_K, Q5_K or Q6_KA. f32 math.
//
// Bindings (group 0):
//   0  w    : array<u32>   the chunk's bytes; row r starts at word r * row_words (dense: element r * cols)
//   1  x    : array<f32>   (n_tokens, cols)
//   2  y    : array<f32>   (n_tokens, out_rows); rows row0 .. row0 + rows written (read too if ACC)
//   3  p    : Params       uniform (below)
//   4  bias : array<f32>   (out_rows,), only with the BIAS define
// Defines: one layout; BIAS; ACC (Y += instead of Y =).
//
// Workgroup: 256 invocations computing a 64 (weight rows) x 64 (tokens) tile of Y, 4 x 4 outputs
// per invocation. K advances 32 at a time (one q*_0/q*_1 block, one k-quant sub-block): each
// invocation dequantizes 8 consecutive weights of one row (deq8) and loads 8 x values into
// workgroup memory stored k-major (tw[k][row], tx[k][token], 2 x 8 KiB), so the inner loop
// reads one vec4 of rows and one vec4 of tokens per k. Out-of-range rows, tokens and (dense) k
// are staged as 0, so any shape works.
// Dispatch: (ceil(rows / 64), ceil(n_tokens / 64)).

#include lib/mv_unpack

struct Params {
    rows: u32,       // rows in this chunk
    cols: u32,
    row_words: u32,  // u32 words per row (dense layouts: unused, rows start at element r * cols)
    row0: u32,       // first row of this chunk in Y
    out_rows: u32,   // rows of the whole weight (Y's row stride)
    n_tokens: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
#endif

const TM: u32 = 64u;  // weight rows per tile
const TN: u32 = 64u;  // tokens per tile
const TK: u32 = 32u;  // k per step
var<workgroup> tw: array<vec4<f32>, 512>;  // [TK][TM / 4]
var<workgroup> tx: array<vec4<f32>, 512>;  // [TK][TN / 4]

struct V8 { a: vec4<f32>, b: vec4<f32> }  // 8 consecutive weights of a row

#if F32
fn deq8(rb: u32, e0: u32) -> V8 {  // rb = row * cols (element index); k beyond cols -> 0
    var v: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) {
        if (e0 + i < p.cols) { v[i] = bitcast<f32>(w[rb + e0 + i]); }
    }
    return V8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}
#endif
#if F16
fn deq8(rb: u32, e0: u32) -> V8 {
    var v: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) {
        let e = rb + e0 + i;
        if (e0 + i < p.cols) { v[i] = unpack2x16float(w[e >> 1u])[e & 1u]; }
    }
    return V8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}
#endif
#if BF16
fn deq8(rb: u32, e0: u32) -> V8 {
    var v: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) {
        let e = rb + e0 + i;
        if (e0 + i < p.cols) { v[i] = mv_bf16(w[e >> 1u])[e & 1u]; }
    }
    return V8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}
#endif
#if Q4_1
// Elements 8pp .. 8pp+7 of block e0/32: nibbles (pp >= 2: high) of qs bytes 8(pp%2) .. +8.
fn deq8(rb: u32, e0: u32) -> V8 {
    let pp = (e0 >> 3u) & 3u;
    let b = rb + 5u * (e0 >> 5u);
    let dm = unpack2x16float(w[b]);
    let wi = b + 1u + 2u * (pp & 1u);
    let s = 4u * (pp >> 1u);
    return V8(mv_nib(w[wi], s) * dm.x + dm.y, mv_nib(w[wi + 1u], s) * dm.x + dm.y);
}
#endif
#if Q5_1
fn deq8(rb: u32, e0: u32) -> V8 {
    let pp = (e0 >> 3u) & 3u;
    let b = rb + 6u * (e0 >> 5u);
    let dm = unpack2x16float(w[b]);
    let qh = w[b + 1u];
    let wi = b + 2u + 2u * (pp & 1u);
    let s = 4u * (pp >> 1u);
    let qa = mv_nib(w[wi], s) + 16.0 * vec4<f32>(mv_bit4(qh, 8u * pp));
    let qb = mv_nib(w[wi + 1u], s) + 16.0 * vec4<f32>(mv_bit4(qh, 8u * pp + 4u));
    return V8(qa * dm.x + dm.y, qb * dm.x + dm.y);
}
#endif
#if Q8_0A
fn deq8(rb: u32, e0: u32) -> V8 {
    let pp = (e0 >> 3u) & 3u;
    let b = rb + 9u * (e0 >> 5u);
    let d = unpack2x16float(w[b]).x;
    return V8(mv_i8(w[b + 1u + 2u * pp]) * d, mv_i8(w[b + 2u + 2u * pp]) * d);
}
#endif
#if Q4_K
// Element 64c + 32hi + l (l = l0 .. l0+7): nibble hi of qs byte 32c + l, sub-block 2c + hi.
fn deq8(rb: u32, e0: u32) -> V8 {
    let ee = e0 & 255u;
    let c = ee >> 6u;
    let hi = (ee >> 5u) & 1u;
    let l0 = ee & 31u;
    let b = rb + 36u * (e0 >> 8u);
    let dd = unpack2x16float(w[b]);
    let sm = mv_scale_min(w[b + 1u], w[b + 2u], w[b + 3u], 2u * c + hi);
    let f = dd.x * sm.x;
    let m = dd.y * sm.y;
    let wi = b + 4u + 8u * c + (l0 >> 2u);
    return V8(mv_nib(w[wi], 4u * hi) * f - m, mv_nib(w[wi + 1u], 4u * hi) * f - m);
}
#endif
#if Q5_K
// As q4_k; bit 4 of element 64c + 32hi + l is bit 2c + hi of qh byte l.
fn deq8(rb: u32, e0: u32) -> V8 {
    let ee = e0 & 255u;
    let c = ee >> 6u;
    let hi = (ee >> 5u) & 1u;
    let l0 = ee & 31u;
    let b = rb + 44u * (e0 >> 8u);
    let dd = unpack2x16float(w[b]);
    let sm = mv_scale_min(w[b + 1u], w[b + 2u], w[b + 3u], 2u * c + hi);
    let f = dd.x * sm.x;
    let m = dd.y * sm.y;
    let wi = b + 12u + 8u * c + (l0 >> 2u);
    let hw = b + 4u + (l0 >> 2u);
    let qa = mv_nib(w[wi], 4u * hi) + 16.0 * vec4<f32>(mv_bits(w[hw], 2u * c + hi, 1u));
    let qb = mv_nib(w[wi + 1u], 4u * hi) + 16.0 * vec4<f32>(mv_bits(w[hw + 1u], 2u * c + hi, 1u));
    return V8(qa * f - m, qb * f - m);
}
#endif
#if Q6_KA
// Element 128h + 32g + l (l = l0 .. l0+7): low 4 bits = nibble g/2 of ql byte 64h + 32(g%2) + l,
// high 2 bits = bits 2g of qh byte 32h + l, scale index 8h + l/16 + 2g; w = d * scale * (q - 32).
fn deq8(rb: u32, e0: u32) -> V8 {
    let ee = e0 & 255u;
    let h = ee >> 7u;
    let g = (ee >> 5u) & 3u;
    let l0 = ee & 31u;
    let b = rb + 53u * (e0 >> 8u);
    let si = 8u * h + (l0 >> 4u) + 2u * g;
    let f = unpack2x16float(w[b + 52u]).x * mv_i8_at(w[b + 48u + (si >> 2u)], si & 3u);
    let li = b + 16u * h + 8u * (g & 1u) + (l0 >> 2u);
    let hi = b + 32u + 8u * h + (l0 >> 2u);
    let s = 4u * (g >> 1u);
    let qa = vec4<f32>(vec4<i32>(mv_bits(w[li], s, 0xFu) | (mv_bits(w[hi], 2u * g, 3u) << vec4<u32>(4u)))) - 32.0;
    let qb = vec4<f32>(vec4<i32>(mv_bits(w[li + 1u], s, 0xFu) | (mv_bits(w[hi + 1u], 2u * g, 3u) << vec4<u32>(4u)))) - 32.0;
    return V8(qa * f, qb * f);
}
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r0 = wg.x * TM;
    let t0 = wg.y * TN;
    // staging roles: W row li % 64, k part li / 64; X token li / 4, k part li % 4
    let sr = li & 63u;
    let skw = 8u * (li >> 6u);
    let wrow = r0 + sr;
#if F32
    let rb = wrow * p.cols;
#else
#if F16
    let rb = wrow * p.cols;
#else
#if BF16
    let rb = wrow * p.cols;
#else
    let rb = wrow * p.row_words;
#endif
#endif
#endif
    let st = li >> 2u;
    let skx = 8u * (li & 3u);
    let tok = t0 + st;
    // compute roles: rows 4 * (li % 16) .., tokens 4 * (li / 16) ..
    let cr = li & 15u;
    let ct = li >> 4u;
    var acc: array<vec4<f32>, 4>;  // acc[j]: 4 rows for token 4 ct + j
    for (var k0 = 0u; k0 < p.cols; k0 += TK) {
        var wv = V8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (wrow < p.rows) { wv = deq8(rb, k0 + skw); }
        for (var i = 0u; i < 4u; i++) {
            tw[(skw + i) * 16u + (sr >> 2u)][sr & 3u] = wv.a[i];
            tw[(skw + 4u + i) * 16u + (sr >> 2u)][sr & 3u] = wv.b[i];
        }
        for (var i = 0u; i < 8u; i++) {
            let k = k0 + skx + i;
            var xv = 0.0;
            if (tok < p.n_tokens && k < p.cols) { xv = x[tok * p.cols + k]; }
            tx[(skx + i) * 16u + (st >> 2u)][st & 3u] = xv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = tw[kk * 16u + cr];
            let b = tx[kk * 16u + ct];
            acc[0] += a * b.x;
            acc[1] += a * b.y;
            acc[2] += a * b.z;
            acc[3] += a * b.w;
        }
        workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
        let t = t0 + 4u * ct + j;
        for (var i = 0u; i < 4u; i++) {
            let r = r0 + 4u * cr + i;
            if (t < p.n_tokens && r < p.rows) {
                let o = t * p.out_rows + p.row0 + r;
                var val = acc[j][i];
#if BIAS
                val += bias[p.row0 + r];
#endif
#if ACC
                val += y[o];
#endif
                y[o] = val;
            }
        }
    }
}
