// attention_decode.wgsl — one query token per head against the KV cache, split over the KV
// range (flash-decoding), then combined.
//
//   keys j in [lo, kv_len), kv_len = step.kv_len, lo = max(0, kv_len - WINDOW) (WINDOW 0: lo = 0)
//   s_j   = SCALE * dot(q[h], K[j, h / GROUP])          (GROUP = n_heads / n_kv_heads: GQA/MQA)
//   s_j   = SOFTCAP * tanh(s_j / SOFTCAP)               when SOFTCAP > 0 (Gemma-2 logit capping)
//   out[h] = sum_j softmax(s)_j V[j, h / GROUP]
//
// Pass 1 (entry main, COMBINE undefined): workgroup (split, h). The range [lo, kv_len) is cut into
// chunks of  chunk = max(ceil((kv_len - lo) / MAX_SPLITS), CHUNK_MIN)  keys; split s takes
// [lo + s*chunk, lo + (s+1)*chunk) ∩ [lo, kv_len). The grid is always (MAX_SPLITS, n_heads) and the
// number of splits doing work, ceil((kv_len - lo) / chunk), follows kv_len at run time, so one
// recorded dispatch serves every step: short contexts run few splits of CHUNK_MIN keys, long ones
// all MAX_SPLITS. An empty split writes the neutral partial (m = NEG, l = 0, o = 0).
// Each split runs an online softmax over tiles of 64 keys: invocation t scores key t of the tile
// (q in workgroup memory, a row of K read as vec4s); then the head_dim/4 vec4 columns of V are
// spread over the 64 invocations, NGRP = 64 / (head_dim/4) key groups each taking every NGRP-th
// key, summed through workgroup memory at the end.
// Pass 2 (COMBINE defined): workgroup h, invocation t owns vec4 column t:
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
// Defines: HEAD_DIM (multiple of 4, <= 256), KV_F16, COMBINE. Override constants: N_KV, GROUP,
// SCALE, SOFTCAP, WINDOW, MAX_SPLITS, CHUNK_MIN. Workgroup: 64. Workgroup memory < 2.3 KiB.
// Dispatch: pass 1 (MAX_SPLITS, n_heads), pass 2 (n_heads).

#include lib/step

const HD4: u32 = {{HEAD_DIM}}u / 4u;   // vec4s per head
const WG: u32 = 64u;
const NGRP: u32 = WG / HD4;           // V-phase key groups: 4, 3, 2, 2, 1 for hd 64, 80, 96, 128, 256
const NEG: f32 = -3.0e38;             // "minus infinity" that stays finite

override N_KV: u32;
override GROUP: u32;
override SCALE: f32;
override SOFTCAP: f32 = 0.0;
override WINDOW: u32 = 0u;
override MAX_SPLITS: u32;
override CHUNK_MIN: u32 = 64u;

#if COMBINE
@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let first = wg.x * MAX_SPLITS;
    var mx = NEG;
    for (var s = 0u; s < MAX_SPLITS; s++) {
        mx = max(mx, partials[(first + s) * (HD4 + 1u)].x);
    }
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s < MAX_SPLITS; s++) {
        let base = (first + s) * (HD4 + 1u);
        let ml = partials[base];
        let w = exp(ml.x - mx);
        l += ml.y * w;
        if (lid < HD4) {
            acc += partials[base + 1u + lid] * w;
        }
    }
    if (lid < HD4) {
        out[wg.x * HD4 + lid] = acc / l;
    }
}
#else
@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
#if KV_F16
@group(0) @binding(1) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec2<u32>>;
fn unpack4(w: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn load_k(i: u32) -> vec4<f32> { return unpack4(k_cache[i]); }
fn load_v(i: u32) -> vec4<f32> { return unpack4(v_cache[i]); }
#else
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<f32>>;
fn load_k(i: u32) -> vec4<f32> { return k_cache[i]; }
fn load_v(i: u32) -> vec4<f32> { return v_cache[i]; }
#endif
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> step: Step;

var<workgroup> q_s: array<vec4<f32>, HD4>;   // this head's query, pre-scaled
var<workgroup> p_s: array<f32, WG>;          // scores, then probabilities, of the current tile
var<workgroup> o_s: array<vec4<f32>, WG>;    // per-key-group outputs for the final sum

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let split = wg.x;
    let h = wg.y;
    let kvh = h / GROUP;
    let kv_len = step.kv_len;
    var lo = 0u;
    if (WINDOW > 0u && kv_len > WINDOW) {
        lo = kv_len - WINDOW;
    }
    let chunk = max((kv_len - lo + MAX_SPLITS - 1u) / MAX_SPLITS, CHUNK_MIN);
    let start = lo + split * chunk;
    let end = min(start + chunk, kv_len);
    let base = (h * MAX_SPLITS + split) * (HD4 + 1u);
    if (start >= kv_len) {   // empty split (uniform: depends on the workgroup and the uniform only)
        for (var d = lid; d <= HD4; d += WG) {
            partials[base + d] = select(vec4<f32>(0.0), vec4<f32>(NEG, 0.0, 0.0, 0.0), d == 0u);
        }
        return;
    }
    for (var d = lid; d < HD4; d += WG) {
        q_s[d] = q[h * HD4 + d] * SCALE;
    }
    let col = lid % HD4;   // V phase: vec4 column ...
    let grp = lid / HD4;   // ... and key group (invocations with grp >= NGRP idle there)
    var m = NEG;
    var l = 0.0;
    var o = vec4<f32>(0.0);
    for (var t0 = start; t0 < end; t0 += WG) {
        workgroupBarrier();   // q_s written (first tile); p_s no longer read (later tiles)
        let cnt = min(WG, end - t0);
        var s = NEG;
        if (lid < cnt) {
            let kb = ((t0 + lid) * N_KV + kvh) * HD4;
            var acc = 0.0;
            for (var d = 0u; d < HD4; d++) {
                acc += dot(q_s[d], load_k(kb + d));
            }
            if (SOFTCAP > 0.0) {   // tanh saturates to +-1 in f32 beyond 15; clamp avoids overflow
                acc = SOFTCAP * tanh(clamp(acc / SOFTCAP, -15.0, 15.0));
            }
            s = acc;
        }
        p_s[lid] = s;
        workgroupBarrier();
        var tmax = NEG;
        for (var i = 0u; i < cnt; i++) {
            tmax = max(tmax, p_s[i]);
        }
        let m_new = max(m, tmax);
        let alpha = exp(m - m_new);
        workgroupBarrier();   // every invocation has read the scores
        p_s[lid] = select(0.0, exp(s - m_new), lid < cnt);
        workgroupBarrier();
        var psum = 0.0;
        for (var i = 0u; i < cnt; i++) {
            psum += p_s[i];
        }
        l = l * alpha + psum;
        m = m_new;
        o *= alpha;
        if (grp < NGRP) {
            for (var i = grp; i < cnt; i += NGRP) {
                o += p_s[i] * load_v(((t0 + i) * N_KV + kvh) * HD4 + col);
            }
        }
    }
    o_s[lid] = o;
    workgroupBarrier();
    if (lid < HD4) {
        var acc = o_s[lid];
        for (var g = 1u; g < NGRP; g++) {
            acc += o_s[g * HD4 + lid];
        }
        partials[base + 1u + lid] = acc;
    }
    if (lid == 0u) {
        partials[base] = vec4<f32>(m, l, 0.0, 0.0);
    }
}
#endif
