// repack.wgsl — raw GGUF blocks whose size is not a multiple of 4 bytes -> the aligned internal
// layouts of app/kernels/layouts.py. Exact: only byte moves, plus m = -8d / -16d in f16.
//
//   Q4_0 (18 B: d, qs[16])            -> q4_1  (20 B: d, m = -8 d, qs[16])
//   Q5_0 (22 B: d, qh[4], qs[16])     -> q5_1  (24 B: d, m = -16 d, qh, qs[16])
//   Q8_0 (34 B: d, qs[32])            -> q8_0a (36 B: d, 0u16, qs[32])
//   Q6_K (210 B: ql, qh, scales, d)   -> q6_ka (212 B: the same, 0u16)
//
// Bindings (group 0):
//   0  src    : array<u32>  raw GGUF bytes of whole blocks, little-endian, zero-padded to 4 bytes;
//                           blocks start at any even byte offset, read by word extraction
//   1  dst    : array<u32>  (n_words) the internal layout, written
//   2  params : Params      {n_words}
// Entry points: repack_q4_0, repack_q5_0, repack_q8_0, repack_q6_k.
// Workgroup: 256 invocations, one per output word. Dispatch: grid(ceil(n_words / 256)).
// m = -8 d is computed as f32 (exact: a power-of-two multiple of an f16) and rounded back with
// pack2x16float, exact whenever the result is a finite f16 (|d| < 8188 for Q4_0, < 4094 for Q5_0).

struct Params { n_words: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

// 4 bytes starting at byte offset b (any alignment); the last byte, b + 3, must exist.
fn src_u32(b: u32) -> u32 {
    let w = b >> 2u;
    let s = (b & 3u) * 8u;
    if (s == 0u) {
        return src[w];
    }
    return (src[w] >> s) | (src[w + 1u] << (32u - s));
}

// 2 bytes starting at byte offset b, in the low half.
fn src_u16(b: u32) -> u32 {
    let w = b >> 2u;
    let s = (b & 3u) * 8u;
    if (s <= 16u) {
        return (src[w] >> s) & 0xFFFFu;
    }
    return (src[w] >> 24u) | ((src[w + 1u] & 0xFFu) << 8u);
}

// d (f16 bits) | (factor * d as f16) << 16
fn d_and_m(d: u32, factor: f32) -> u32 {
    let m = pack2x16float(vec2<f32>(unpack2x16float(d).x * factor, 0.0)) & 0xFFFFu;
    return d | (m << 16u);
}

fn word_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + lid;
}

// 32-element blocks: word 0 = d | hi << 16, word k > 0 = the raw block's bytes 2 + 4 (k - 1) ...
fn repack_32(i: u32, src_bytes: u32, dst_words: u32, factor: f32) {
    let blk = i / dst_words;
    let k = i - blk * dst_words;
    let base = blk * src_bytes;
    if (k == 0u) {
        let d = src_u16(base);
        dst[i] = select(d, d_and_m(d, factor), factor != 0.0);
    } else {
        dst[i] = src_u32(base + 4u * k - 2u);
    }
}

@compute @workgroup_size(256)
fn repack_q4_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = word_index(wg, nwg, lid);
    if (i < params.n_words) { repack_32(i, 18u, 5u, -8.0); }
}

@compute @workgroup_size(256)
fn repack_q5_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = word_index(wg, nwg, lid);
    if (i < params.n_words) { repack_32(i, 22u, 6u, -16.0); }
}

@compute @workgroup_size(256)
fn repack_q8_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = word_index(wg, nwg, lid);
    if (i < params.n_words) { repack_32(i, 34u, 9u, 0.0); }  // factor 0: high half stays 0
}

// Q6_K: words 0..51 = raw bytes 4k .. 4k + 3, word 52 = d (raw bytes 208, 209) | 0 << 16.
@compute @workgroup_size(256)
fn repack_q6_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = word_index(wg, nwg, lid);
    if (i >= params.n_words) {
        return;
    }
    let blk = i / 53u;
    let k = i - blk * 53u;
    let base = blk * 210u;
    if (k == 52u) {
        dst[i] = src_u16(base + 208u);  // not src_u32: bytes 210, 211 may lie past the end
    } else {
        dst[i] = src_u32(base + 4u * k);
    }
}
