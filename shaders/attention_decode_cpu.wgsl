// attention_decode_cpu.wgsl — attention_decode.wgsl's computation without workgroup barriers or
// workgroup memory, for CPU adapters (SwiftShader, lavapipe), where barriers cost far more than
// redundant arithmetic: SmolLM2-135M decode at position 36 in headless Chromium (SwiftShader),
// the GPU kernel's split pass took 430 ms per dispatch, this one 0.26 ms (python -m app.bench
// profile --browser; a loaded 2-core machine, so absolute times are inflated).
// Same bindings, partials layout, defines and override constants as attention_decode.wgsl, so
// app/kernels/attention.py binds either one:
//
//   keys j in [lo, kv_len), kv_len = step.kv_len, lo = max(0, kv_len - WINDOW) (WINDOW 0: lo = 0)
//   s_j   = SCALE * dot(q[h], K[j, h / GROUP])          (GROUP = n_heads / n_kv_heads: GQA/MQA)
//   s_j   = SOFTCAP * tanh(s_j / SOFTCAP)               when SOFTCAP > 0
//   out[h] = sum_j softmax(s)_j V[j, h / GROUP]
//
// Pass 1 (COMBINE undefined): one invocation per (split, head), CWG splits per workgroup; grid
// (MAX_SPLITS / CWG, n_heads). [lo, kv_len) is cut into MAX_SPLITS chunks of ceil((kv_len - lo) /
// MAX_SPLITS) keys; the invocation walks its chunk key by key with an online softmax, the query
// and the head_dim/4 vec4 accumulators in private memory (CPU registers / L1), and writes its
// partial (m, l, o). Splits past kv_len write the neutral partial (m = NEG, l = 0, o = 0).
// Pass 2 (COMBINE): one invocation per (vec4 column, head), CWG columns per workgroup; grid
// (ceil(HD4 / CWG), n_heads). Each reads the MAX_SPLITS (m, l) itself (redundant across columns,
// but a few hundred bytes from cache beats a barrier) and its column of every split's o:
//   M = max_s m_s,  L = sum_s l_s e^(m_s - M),  out[h] = sum_s o_s e^(m_s - M) / L
//
// Bindings, pass 1:                                  pass 2 (COMBINE):
//   0 q        : array<vec4<f32>> (n_heads, head_dim)    0 partials (read)
//   1 k_cache  : (max_ctx, n_kv_heads, head_dim)         1 out : array<vec4<f32>> (n_heads, head_dim)
//   2 v_cache  : same layout
//   3 partials : array<vec4<f32>> (n_heads, MAX_SPLITS, 1 + head_dim/4):
//                vec4 0 = (m, l, 0, 0), vec4 1.. = o = sum_j e^(s_j - m) V[j] (unnormalised)
//   4 step     : Step (lib/step.wgsl), kv_len used
// Cache rows are f32 (array<vec4<f32>>) or, with KV_F16, packed f16 (array<vec2<u32>>, 4 values).
// Defines: HEAD_DIM (multiple of 4, <= 256), MAX_SPLITS, KV_F16, COMBINE.
// Override constants (pass 1): N_KV, GROUP, SCALE, SOFTCAP, WINDOW. Workgroup: CWG = 8 (one
// 256-bit SIMD row on lavapipe, two 4-wide ones on SwiftShader).

#include lib/step

const HD4: u32 = {{HEAD_DIM}}u / 4u;      // vec4s per head (1 .. 64)
const MAX_SPLITS: u32 = {{MAX_SPLITS}}u;
const CWG: u32 = 8u;
const NEG: f32 = -3.0e38;                // "minus infinity" that stays finite

#if COMBINE
@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = wg.x * CWG + lid;
    let h = wg.y;
    if (col >= HD4) {
        return;
    }
    let first = h * MAX_SPLITS;
    var mx = NEG;
    for (var s = 0u; s < MAX_SPLITS; s++) {
        mx = max(mx, partials[(first + s) * (HD4 + 1u)].x);
    }
    var o = vec4<f32>(0.0);
    var l = 0.0;
    for (var s = 0u; s < MAX_SPLITS; s++) {
        let b = (first + s) * (HD4 + 1u);
        let ml = partials[b];
        let w = exp(ml.x - mx);   // 0 for empty splits (m = NEG), whose l and o are 0 anyway
        l += ml.y * w;
        o += partials[b + 1u + col] * w;
    }
    out[h * HD4 + col] = o / l;
}
#else
override N_KV: u32;
override GROUP: u32;
override SCALE: f32;
override SOFTCAP: f32 = 0.0;
override WINDOW: u32 = 0u;

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
#include lib/kv_read
#include lib/attend_keys
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let split = wg.x * CWG + lid;
    let h = wg.y;
    if (split >= MAX_SPLITS) {
        return;
    }
    let kvh = h / GROUP;
    let kv_len = step.kv_len;
    var lo = 0u;
    if (WINDOW > 0u && kv_len > WINDOW) {
        lo = kv_len - WINDOW;
    }
    let chunk = max((kv_len - lo + MAX_SPLITS - 1u) / MAX_SPLITS, 1u);
    let start = lo + split * chunk;
    let end = min(start + chunk, kv_len);
    let base = (h * MAX_SPLITS + split) * (HD4 + 1u);
    if (start >= kv_len) {   // empty split: neutral partial
        partials[base] = vec4<f32>(NEG, 0.0, 0.0, 0.0);
        for (var d = 0u; d < HD4; d++) {
            partials[base + 1u + d] = vec4<f32>(0.0);
        }
        return;
    }
    var qr: array<vec4<f32>, HD4>;   // this head's query, pre-scaled
    for (var d = 0u; d < HD4; d++) {
        qr[d] = q[h * HD4 + d] * SCALE;
    }
    let r = attend_keys(&qr, kvh, start, end);
    partials[base] = vec4<f32>(r.m, r.l, 0.0, 0.0);
    for (var d = 0u; d < HD4; d++) {
        partials[base + 1u + d] = r.o[d];
    }
}
#endif
