// quantize_weight.wgsl — an unquantized weight chunk (safetensors F32 / F16 / BF16) -> 32-element
// quantized blocks in an internal layout of app/kernels/layouts.py, at load time.
//
//   q8_0 -> q8_0a (36 B: [0] d f16 [2] zero u16 [4] qs[32] int8)            w = qs[j] * d
//           d = amax / 127 (f32), id = 1 / d (0 when d == 0), qs[j] = roundf(x[j] * id),
//           roundf = round half away from zero, computed as gguf-py's np_roundf:
//           floor(|v|) + floor(2 (|v| - floor(|v|))), with the sign of v
//   q4   -> q4_1  (20 B: [0] d f16 [2] m f16 [4] qs[16])                   w = q[j] * d + m
//           d = (max - min) / 15 (f32), m = min, id = 1 / d (0 when d == 0),
//           q[j] = clamp(trunc((x[j] - min) * id + 0.5), 0, 15),
//           qs[i] = q[i] | q[i + 16] << 4  (element j < 16: low nibble of byte j; j >= 16: high
//           nibble of byte j - 16)
// Both are gguf-py's (ggml's reference) Q8_0 / Q4_1 quantizers operation for operation in f32.
// WGSL allows x / y to be 2.5 ULP off (SwiftShader's is, and flipped ~4e-4 of the Q8 codes of BF16
// weights, whose few mantissa bits often put x * id on a rounding tie), so the three divisions
// are correctly rounded by div_rn (an exact remainder test); d and m are stored as f16 by an
// integer round-to-nearest-even (f16_bits, as numpy's astype(float16)). What can still differ
// from gguf-py: a device that contracts (x - min) * id + 0.5 into one fma (Q4_1 codes only).
//
// Bindings (group 0):
//   0  src    : array<u32>  one chunk of the source, (rows, cols) row-major, cols % 32 == 0:
//                           SRC f32: one element per word; f16 / bf16: two per word, element 2i
//                           in the low half of word i (little-endian bytes, as in the file)
//   1  dst    : array<u32>  (n_blocks * 9 | 5 words) the chunk in the internal layout, written
//   2  params : Params      {n_blocks}: blocks in the chunk = rows * cols / 32
// Variant: defines={"SRC": "f32" | "f16" | "bf16"}. Entry points: quantize_q8_0, quantize_q4_1
// (and, with the test-only define DIV_SKEW, div_rn_probe).
// Workgroup: 64 invocations, one per 32-element block (reads its 32 values twice: range, then
// codes; no barriers). Dispatch: grid(ceil(n_blocks / 64)) from app/kernels/grid.py.
// f32 compute only (no optional feature). Inputs must be finite; d = amax / 127 (q8) and min (q4)
// must fit f16 (|.| <= 65504), as for gguf-py, else the stored f16 is +-inf.

struct Params { n_blocks: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

// ---- source decoders (exact; done on the bits so f16 subnormals are never flushed) -----------
fn ld_f32(e: u32) -> f32 { return bitcast<f32>(src[e]); }

fn ld_bf16(e: u32) -> f32 {
    let w = src[e >> 1u];
    return bitcast<f32>(select(w << 16u, w & 0xFFFF0000u, (e & 1u) == 1u));
}

fn ld_f16(e: u32) -> f32 {
    let h = (src[e >> 1u] >> ((e & 1u) * 16u)) & 0xFFFFu;
    let sign = (h & 0x8000u) << 16u;
    let em = h & 0x7FFFu;
    if (em < 0x400u) {  // zero or subnormal: em * 2^-24, exact in f32
        return bitcast<f32>(sign | bitcast<u32>(f32(em) * 5.9604644775390625e-8));
    }
    if (em >= 0x7C00u) {  // inf / nan
        return bitcast<f32>(sign | 0x7F800000u | ((em & 0x3FFu) << 13u));
    }
    return bitcast<f32>(sign | ((em << 13u) + 0x38000000u));  // rebias exponent 15 -> 127
}

fn x_at(e: u32) -> f32 { return ld_{{SRC}}(e); }

// ---- f32 -> f16 bits, round to nearest even (numpy's astype(np.float16)) ----------------------
fn f16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7FFFFFFFu;
    if (a > 0x7F800000u) {
        return sign | 0x7E00u;  // nan
    }
    if (a >= 0x477FF000u) {
        return sign | 0x7C00u;  // >= 65520: rounds to inf
    }
    if (a < 0x38800000u) {
        // below 2^-14: an f16 subnormal, |x| * 2^24 units; round() ties to even; exact scaling.
        return sign | u32(round(bitcast<f32>(a) * 16777216.0));
    }
    // normal: drop 13 mantissa bits with round-to-nearest-even; a carry moves into the exponent.
    return sign | ((a - 0x38000000u + 0xFFFu + ((a >> 13u) & 1u)) >> 13u);
}

// ---- correctly rounded a / b (a >= 0, b > 0, finite, quotient and b normal f32) ---------------
// The device's a / b is within a few ULP; r = a - q * b is then exact in f32 (q * b split into
// exact 12-bit x 12-bit partial products, Dekker's method; fusing those into an fma cannot change
// them, all partial products being exact. Honest caveat: a compiler that fused a - p with p's own
// product q * b would break the method; none of lavapipe, SwiftShader, NVIDIA/Vulkan did, as the
// bit-exact tests there show), and q is stepped by one ULP while it is more than half
// an ULP (r beyond b * ulp(q) / 2) from a / b. Ties cannot occur: b here is 15, 127 or an f32
// whose exact reciprocal is not a 25-bit mantissa.
fn split_hi(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) & 0xFFFFF000u); }

fn div_rn(a: f32, b: f32) -> f32 {
#ifdef DIV_SKEW
    var q = (a / b) * {{DIV_SKEW}};  // test seam: a device whose division is a few ULP off
#else
    var q = a / b;
#endif
    if (a == 0.0) {
        return q;
    }
    let b_hi = split_hi(b);
    let b_lo = b - b_hi;
    for (var it = 0u; it < 4u; it++) {
        let q_hi = split_hi(q);
        let q_lo = q - q_hi;
        let p = q * b;
        // q b = p + p_err exactly; r = a - q b, exact
        let p_err = ((q_hi * b_hi - p) + q_hi * b_lo + q_lo * b_hi) + q_lo * b_lo;
        let r = (a - p) - p_err;
        // b ulp(q) / 2 = b * 2^(exponent of q) * 2^-24
        let half = b * bitcast<f32>(bitcast<u32>(q) & 0x7F800000u) * 5.9604644775390625e-8;
        if (r > half) {
            q = bitcast<f32>(bitcast<u32>(q) + 1u);
        } else if (r < -half) {
            q = bitcast<f32>(bitcast<u32>(q) - 1u);
        } else {
            break;
        }
    }
    return q;
}

// gguf-py's np_roundf: round half away from zero, exactly (no x + 0.5 rounding).
fn roundf(v: f32) -> f32 {
    let a = abs(v);
    let f = floor(a);
    return sign(v) * (f + floor(2.0 * (a - f)));
}

fn block_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn quantize_q8_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let b = block_index(wg, nwg, lid);
    if (b >= params.n_blocks) {
        return;
    }
    let e0 = b * 32u;
    var amax = 0.0;
    for (var j = 0u; j < 32u; j++) {
        amax = max(amax, abs(x_at(e0 + j)));
    }
    let d = div_rn(amax, 127.0);
    let id = select(div_rn(1.0, d), 0.0, d == 0.0);
    let o = b * 9u;
    dst[o] = f16_bits(d);  // high half: the zero u16 of q8_0a
    for (var k = 0u; k < 8u; k++) {
        var word = 0u;
        for (var i = 0u; i < 4u; i++) {
            let q = i32(roundf(x_at(e0 + 4u * k + i) * id));  // -127 .. 127
            word |= (bitcast<u32>(q) & 0xFFu) << (8u * i);
        }
        dst[o + 1u + k] = word;
    }
}

@compute @workgroup_size(64)
fn quantize_q4_1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let b = block_index(wg, nwg, lid);
    if (b >= params.n_blocks) {
        return;
    }
    let e0 = b * 32u;
    var mx = x_at(e0);
    var mn = mx;
    for (var j = 1u; j < 32u; j++) {
        let x = x_at(e0 + j);
        mx = max(mx, x);
        mn = min(mn, x);
    }
    let d = div_rn(mx - mn, 15.0);
    let id = select(div_rn(1.0, d), 0.0, d == 0.0);
    let o = b * 5u;
    dst[o] = f16_bits(d) | (f16_bits(mn) << 16u);
    for (var k = 0u; k < 4u; k++) {
        var word = 0u;
        for (var i = 0u; i < 4u; i++) {
            let j = 4u * k + i;  // byte j holds elements j (low nibble) and j + 16 (high nibble)
            let lo = u32(clamp(trunc((x_at(e0 + j) - mn) * id + 0.5), 0.0, 15.0));
            let hi = u32(clamp(trunc((x_at(e0 + j + 16u) - mn) * id + 0.5), 0.0, 15.0));
            word |= (lo | (hi << 4u)) << (8u * i);
        }
        dst[o + 1u + k] = word;
    }
}

#ifdef DIV_SKEW
// Test seam (tests/gpu/test_quantize_weight.py): dst[i] = bits of div_rn(a, b) for the f32 pair
// (a, b) = src[2i], src[2i + 1], i < params.n_blocks, the first quotient skewed by DIV_SKEW.
@compute @workgroup_size(64)
fn div_rn_probe(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = block_index(wg, nwg, lid);
    if (i < params.n_blocks) {
        dst[i] = bitcast<u32>(div_rn(bitcast<f32>(src[2u * i]), bitcast<f32>(src[2u * i + 1u])));
    }
}
#endif
