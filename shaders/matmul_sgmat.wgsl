// matmul_sgmat.wgsl — prefill matrix product on the matrix units (tensor cores) through WebGPU
// subgroup matrices (Dawn's chromium-experimental-subgroup-matrix), int8 x int8 -> i32:
//
//   Y[t, row0 + r] (+)= sum_k X[t, k] * W[r, k]  (+ bias[row0 + r])      t < n_tokens, r < rows
//
// X arrives quantized per 32-element block by shaders/quantize_x.wgsl: xq int8 and, per block,
// (d_x, exact f32 sum of x). W is one row chunk in layout Q4_1 (w = d q + m, q 0..15) or Q8_0A
// (w = d q, q int8) (app/kernels/layouts.py). A block of 32 k is exactly one K step of the
// i8 16 x 16 x 32 subgroup-matrix config, so per block b:
//
//   Y[t, r] += d_x[t,b] d_w[r,b] sum_k q_x q_w  +  m_w[r,b] sum_x[t,b]
//
// The integer sum comes from subgroupMatrixMultiplyAccumulate; the result matrix is opaque (no
// per-element access), so it is stored into workgroup memory and each invocation scales the
// entries it owns into f32 accumulators.
//
// Bindings (group 0):
//   0  w    : array<u32>   the chunk's blocks; row r starts at word r * row_stride
//   1  xq   : array<u32>   (n_tokens, cols / 4) int8 x 4 per word (quantize_x q)
//   2  xds  : array<vec2<f32>>  (n_tokens, cols / 32) (d_x, sum_x) (quantize_x ds)
//   3  y    : array<f32>   (n_tokens, out_rows); rows row0 .. row0 + rows written (read if ACC)
//   4  p    : Params uniform
//   5  bias : array<f32>   (out_rows,), only with the BIAS define
// Defines: Q4_1 or Q8_0A; BIAS; ACC (Y += instead of Y =); KB (blocks per barrier round).
//
// Workgroup: one subgroup of 32 invocations (the kernel is chosen only where the adapter's
// subgroup size is exactly 32). Subgroup-matrix loads and stores need workgroup-uniform offsets
// (Tint: "'subgroupMatrixStore' requires argument 1 to be uniform"), so several subgroups per
// workgroup could not each address their own tiles; one subgroup per workgroup makes every offset
// a constant. Output tile 32 weight rows x 32 tokens = 2 x 2 result matrices of 16 x 16; lane l
// owns row l of the tile for all 32 tokens (32 f32 accumulators in 8 named vec4, token-major; no
// arrays: see matmul_q.wgsl on spills).
// Per round of KB blocks (define KB): stage tiles (tx: 32 tokens x 32 int8, tw: 32 rows x 32
// int8, scales, per block), barrier, per block 4 multiply-accumulates into fresh i32 results
// stored to scratch [b][32 t][32 r], barrier, scale into the accumulators, barrier.
// Dispatch: (ceil(rows / 32), ceil(n_tokens / 32)).

enable chromium_experimental_subgroup_matrix;

#include lib/matmul_params

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> xq: array<u32>;
@group(0) @binding(2) var<storage, read> xds: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
#if BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

const TT: u32 = 32u;   // tokens per workgroup
const TR: u32 = 32u;   // weight rows per workgroup
const KB: u32 = {{KB}}u;    // 32-element blocks staged per barrier round
#if Q4_1
const BW: u32 = 5u;    // u32 words per 32-element weight block
#else
const BW: u32 = 9u;
#endif

// Per staged block b (index b * size, so every matrix offset is a multiple of 1024 int8):
var<workgroup> tx: array<i32, 256 * KB>;          // [b][32 tokens][32 int8]
var<workgroup> tw: array<i32, 256 * KB>;          // [b][32 rows][32 int8]
var<workgroup> tdx: array<vec4<f32>, 8 * KB>;     // [b] d_x of tokens 4i .. 4i + 3
var<workgroup> tsx: array<vec4<f32>, 8 * KB>;     // [b] sum_x of the same tokens
var<workgroup> tsc: array<vec2<f32>, 32 * KB>;    // [b] (d_w, m_w) per row
var<workgroup> scratch: array<i32, 1024 * KB>;    // [b][32 tokens][32 rows] i32 block sums

/// Stage blocks kb0 .. kb0 + KB - 1 (past the last block: zeros, which add nothing): x words and
/// scales of the 32 tokens, lane l's weight row as int8 and its (d, m).
fn stage(kb0: u32, l: u32, t0: u32, r0: u32) {
    let xrow = p.cols / 4u;
    let nb = p.cols / 32u;
    let t = t0 + l;
    let okr = r0 + l < p.rows;
    for (var b = 0u; b < KB; b++) {
        let kb = min(kb0 + b, nb - 1u);
        let okb = kb0 + b < nb;
        for (var i = l; i < 256u; i += 32u) {
            let ti = t0 + i / 8u;
            tx[b * 256u + i] = select(0, bitcast<i32>(
                xq[min(ti, p.n_tokens - 1u) * xrow + kb * 8u + i % 8u]), ti < p.n_tokens && okb);
        }
        let ds = select(vec2<f32>(0.0), xds[min(t, p.n_tokens - 1u) * nb + kb],
                        t < p.n_tokens && okb);
        tdx[b * 8u + l / 4u][l % 4u] = ds.x;
        tsx[b * 8u + l / 4u][l % 4u] = ds.y;
        let ok = okr && okb;
        let base = min(r0 + l, p.rows - 1u) * p.row_stride + kb * BW;
        tsc[b * 32u + l] = select(vec2<f32>(0.0), unpack2x16float(w[base]), ok);
        let o = b * 256u + l * 8u;
#if Q4_1
        // nibble word j holds elements 4j .. 4j+3 (low nibbles) and 16+4j .. 16+4j+3 (high)
        for (var j = 0u; j < 4u; j++) {
            let n = select(0u, w[base + 1u + j], ok);
            tw[o + j] = bitcast<i32>(n & 0x0F0F0F0Fu);
            tw[o + 4u + j] = bitcast<i32>((n >> 4u) & 0x0F0F0F0Fu);
        }
#else
        for (var j = 0u; j < 8u; j++) {
            tw[o + j] = select(0, bitcast<i32>(w[base + 1u + j]), ok);
        }
#endif
    }
}

/// Scaled contribution of staged block b to tokens 4i .. 4i + 3 of lane `l`'s row.
fn part(b: u32, l: u32, i: u32, sc: vec2<f32>) -> vec4<f32> {
    let o = b * 1024u + 4u * i * 32u + l;
    let s = vec4<f32>(vec4<i32>(scratch[o], scratch[o + 32u], scratch[o + 64u], scratch[o + 96u]));
    return s * (tdx[b * 8u + i] * sc.x) + tsx[b * 8u + i] * sc.y;
}

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let r0 = wg.x * TR;
    let t0 = wg.y * TT;
    var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
    let nb = p.cols / 32u;
    for (var kb0 = 0u; kb0 < nb; kb0 += KB) {
        stage(kb0, l, t0, r0);
        workgroupBarrier();
        for (var b = 0u; b < KB; b++) {
            let m = b * 1024u;
            let x0 = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>>(&tx, m, false, 32u);
            let x1 = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>>(&tx, m + 512u, false, 32u);
            let w0 = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>>(&tw, m, true, 32u);
            let w1 = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>>(&tw, m + 512u, true, 32u);
            let zero = subgroup_matrix_result<i32, 16, 16>();
            subgroupMatrixStore(&scratch, m, subgroupMatrixMultiplyAccumulate(x0, w0, zero), false, 32u);
            subgroupMatrixStore(&scratch, m + 16u, subgroupMatrixMultiplyAccumulate(x0, w1, zero), false, 32u);
            subgroupMatrixStore(&scratch, m + 512u, subgroupMatrixMultiplyAccumulate(x1, w0, zero), false, 32u);
            subgroupMatrixStore(&scratch, m + 528u, subgroupMatrixMultiplyAccumulate(x1, w1, zero), false, 32u);
        }
        workgroupBarrier();
        for (var b = 0u; b < KB; b++) {
            let sc = tsc[b * 32u + l];
            a0 += part(b, l, 0u, sc); a1 += part(b, l, 1u, sc);
            a2 += part(b, l, 2u, sc); a3 += part(b, l, 3u, sc);
            a4 += part(b, l, 4u, sc); a5 += part(b, l, 5u, sc);
            a6 += part(b, l, 6u, sc); a7 += part(b, l, 7u, sc);
        }
        workgroupBarrier();
    }
    let r = r0 + l;
    if (r >= p.rows) { return; }
    store4(t0, r, a0); store4(t0 + 4u, r, a1); store4(t0 + 8u, r, a2); store4(t0 + 12u, r, a3);
    store4(t0 + 16u, r, a4); store4(t0 + 20u, r, a5); store4(t0 + 24u, r, a6);
    store4(t0 + 28u, r, a7);
}

/// Y[t .. t + 3, row0 + r] (+)= v (+ bias), tokens past n_tokens skipped.
fn store4(t: u32, r: u32, v: vec4<f32>) {
    let col = p.row0 + r;
#if BIAS
    let b = bias[col];
#else
    let b = 0.0;
#endif
    for (var i = 0u; i < 4u; i++) {
        if (t + i < p.n_tokens) {
            let o = (t + i) * p.out_rows + col;
#if ACC
            y[o] = y[o] + v[i] + b;
#else
            y[o] = v[i] + b;
#endif
        }
    }
}
