// attention_decode.wgsl — one query token per head against the KV cache, split over the KV
// range (flash-decoding), then combined.
//
//   keys j in [lo, kv_len), kv_len = step.kv_len, lo = max(0, kv_len - WINDOW) (WINDOW 0: lo = 0)
//   s_j   = SCALE * dot(q[h], K[j, h / GROUP])          (GROUP = n_heads / n_kv_heads: GQA/MQA)
//   s_j   = SOFTCAP * tanh(s_j / SOFTCAP)               when SOFTCAP > 0 (Gemma-2 logit capping)
//   out[h] = sum_j softmax(s)_j V[j, h / GROUP]
//
// Decode is latency-bound at short contexts (a few hundred keys, < 1 MB), so both passes are
// written to keep each invocation's global loads independent and in flight together (constant
// trip counts, so the driver can unroll and batch them) with a handful of barriers per 64-key tile.
//
// Pass 1 (entry main, COMBINE undefined): workgroup (split, h) of 256 invocations. The range
// [lo, kv_len) is cut into chunks of  chunk = TK * ceil(ceil((kv_len - lo) / MAX_SPLITS) / TK)
// keys (a whole number of 64-key tiles); split s takes [lo + s*chunk, lo + (s+1)*chunk) ∩ [lo,
// kv_len). The grid is always (MAX_SPLITS, n_heads); the number of splits doing work follows
// kv_len at run time, so one recorded dispatch serves every step: up to 64 * MAX_SPLITS keys every
// busy split runs one tile, longer ranges use all splits. An empty split writes the neutral
// partial (m = NEG, l = 0, o = 0).
// Per tile (online softmax over tiles):
//   K phase: invocation (key kk = lid / KP, part = lid % KP) dots vec4s part, part + KP, ... of
//            K row kk with q (workgroup memory), partial dots summed through workgroup memory.
//   softmax: every invocation takes the tile max from the 64 scores (16 vec4 reads), then, as
//            (key group grp = lid / HD4, vec4 column col = lid % HD4), p = e^(s - m) for its
//            keys grp, grp + NGRP, ... and o += p V[key, col] (VPT independent loads); o and l
//            are kept per key group and summed through workgroup memory at the end (the
//            running max m is workgroup-uniform).
// No per-invocation arrays: H100 runs showed q or V rows held in registers cost occupancy (up
// to 3x slower split pass) more than the latency they hide.
// Keys past the range read the last valid row (finite) and get score NEG, weight 0.
// Pass 2 (COMBINE defined): workgroup h of 256: invocation (split group grp, column col) reads
// o of splits grp, grp + NG2, ... (all at once, before the weights are known); (m, l) of every
// split go through workgroup memory:
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
// Defines: HEAD_DIM (multiple of 4, <= 256), MAX_SPLITS (multiple of 4), KV_F16, COMBINE.
// Override constants: N_KV, GROUP, SCALE, SOFTCAP, WINDOW. Workgroup: 256.
// Workgroup memory: pass 1 < 7 KiB, pass 2 < 4.5 KiB. Dispatch: pass 1 (MAX_SPLITS, n_heads),
// pass 2 (n_heads).

#include lib/step

const HD4: u32 = {{HEAD_DIM}}u / 4u;      // vec4s per head (1 .. 64)
const MAX_SPLITS: u32 = {{MAX_SPLITS}}u;
const WG: u32 = 256u;
const TK: u32 = 64u;                     // keys per tile, and the smallest chunk
const NEG: f32 = -3.0e38;                // "minus infinity" that stays finite
const NGRP: u32 = min(WG / HD4, TK);     // V phase: key groups (4 .. 64)

override N_KV: u32;
override GROUP: u32;
override SCALE: f32;
override SOFTCAP: f32 = 0.0;
override WINDOW: u32 = 0u;

#if COMBINE
const NG2: u32 = min(WG / HD4, MAX_SPLITS);     // split groups
const SPT: u32 = (MAX_SPLITS + NG2 - 1u) / NG2;  // splits per invocation

@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

var<workgroup> m_s: array<vec4<f32>, MAX_SPLITS / 4u>;   // m of split s at [s / 4][s % 4]
var<workgroup> l_s: array<f32, MAX_SPLITS>;
var<workgroup> red_s: array<vec4<f32>, WG>;             // per split-group weighted o sums
var<workgroup> lred_s: array<f32, NG2>;                 // per split-group weighted l sums

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let first = wg.x * MAX_SPLITS;
    let col = lid % HD4;
    let grp = lid / HD4;
    var orr: array<vec4<f32>, SPT>;
    if (grp < NG2) {   // fetch o of my splits now (index clamped; unused past MAX_SPLITS)
        for (var r = 0u; r < SPT; r++) {
            let s = min(grp + r * NG2, MAX_SPLITS - 1u);
            orr[r] = partials[(first + s) * (HD4 + 1u) + 1u + col];
        }
    }
    if (lid < MAX_SPLITS) {
        let ml = partials[(first + lid) * (HD4 + 1u)];
        m_s[lid / 4u][lid % 4u] = ml.x;
        l_s[lid] = ml.y;
    }
    workgroupBarrier();
    var mx = NEG;
    for (var i = 0u; i < MAX_SPLITS / 4u; i++) {
        let v = m_s[i];
        mx = max(mx, max(max(v.x, v.y), max(v.z, v.w)));
    }
    var acc = vec4<f32>(0.0);
    var lsum = 0.0;
    if (grp < NG2) {
        for (var r = 0u; r < SPT; r++) {
            let s = grp + r * NG2;
            if (s < MAX_SPLITS) {
                let w = exp(m_s[s / 4u][s % 4u] - mx);
                acc += orr[r] * w;
                lsum += l_s[s] * w;
            }
        }
    }
    red_s[lid] = acc;
    if (grp < NG2 && col == 0u) {
        lred_s[grp] = lsum;
    }
    workgroupBarrier();
    if (lid < HD4) {
        var o = red_s[lid];
        var l = lred_s[0];
        for (var g = 1u; g < NG2; g++) {
            o += red_s[g * HD4 + lid];
            l += lred_s[g];
        }
        out[wg.x * HD4 + lid] = o / l;
    }
}
#else
const KP: u32 = WG / TK;                    // K phase: invocations per key (4)
const KPT: u32 = (HD4 + KP - 1u) / KP;      // vec4s each of them dots
const KEXACT: bool = HD4 % KP == 0u;        // no vec4 index past the row
const VPT: u32 = (TK + NGRP - 1u) / NGRP;   // V phase: keys per invocation per tile
const VEXACT: bool = TK % NGRP == 0u;       // every key group gets VPT keys of the tile

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
#include lib/kv_read
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> step: Step;

var<workgroup> q_s: array<vec4<f32>, HD4>;        // this head's query, pre-scaled
var<workgroup> dot_s: array<f32, WG>;              // partial dots, (key, part)
var<workgroup> s4_s: array<vec4<f32>, TK / 4u>;    // tile scores, key i at [i / 4][i % 4]
var<workgroup> sc_s: array<f32, TK>;               // the same scores, scalar-indexed
var<workgroup> o_s: array<vec4<f32>, WG>;          // per key-group o for the final sum
var<workgroup> l_s: array<f32, NGRP>;              // per key-group l

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let split = wg.x;
    let h = wg.y;
    let kvh = h / GROUP;
    let kv_len = step.kv_len;
    var lo = 0u;
    if (WINDOW > 0u && kv_len > WINDOW) {
        lo = kv_len - WINDOW;
    }
    let per = (kv_len - lo + MAX_SPLITS - 1u) / MAX_SPLITS;
    let chunk = max((per + TK - 1u) / TK, 1u) * TK;
    let start = lo + split * chunk;
    let end = min(start + chunk, kv_len);
    let base = (h * MAX_SPLITS + split) * (HD4 + 1u);
    if (start >= kv_len) {   // empty split (uniform: depends on the workgroup and the uniform only)
        for (var d = lid; d <= HD4; d += WG) {
            partials[base + d] = select(vec4<f32>(0.0), vec4<f32>(NEG, 0.0, 0.0, 0.0), d == 0u);
        }
        return;
    }
    let kk = lid / KP;     // K phase: key of the tile ...
    let part = lid % KP;   // ... and which vec4s of its row
    let col = lid % HD4;   // V phase: vec4 column ...
    let grp = lid / HD4;   // ... and key group (grp >= NGRP idle there)
    for (var d = lid; d < HD4; d += WG) {
        q_s[d] = q[h * HD4 + d] * SCALE;
    }
    workgroupBarrier();
    let last = end - 1u;
    var m = NEG;
    var l = 0.0;
    var o = vec4<f32>(0.0);
    for (var t0 = start; t0 < end; t0 += TK) {
        let kb = (min(t0 + kk, last) * N_KV + kvh) * HD4;
        var acc = 0.0;
        for (var i = 0u; i < KPT; i++) {   // q is 0 past the row: the clamped read adds 0
            let d = min(part + i * KP, HD4 - 1u);
            let qv = select(vec4<f32>(0.0), q_s[d], KEXACT || part + i * KP < HD4);
            acc += dot(qv, dec(k_cache[kb + d]));
        }
        dot_s[lid] = acc;
        workgroupBarrier();   // partial dots written; scores of the previous tile all read
        if (lid < TK) {
            var s = 0.0;
            for (var p = 0u; p < KP; p++) {
                s += dot_s[lid * KP + p];
            }
            if (SOFTCAP > 0.0) {   // tanh saturates to +-1 in f32 beyond 15; clamp avoids overflow
                s = SOFTCAP * tanh(clamp(s / SOFTCAP, -15.0, 15.0));
            }
            s = select(NEG, s, t0 + lid < end);
            s4_s[lid / 4u][lid % 4u] = s;
            sc_s[lid] = s;
        }
        workgroupBarrier();   // scores written
        var tmax = NEG;
        for (var i = 0u; i < TK / 4u; i++) {
            let v = s4_s[i];
            tmax = max(tmax, max(max(v.x, v.y), max(v.z, v.w)));
        }
        let m_new = max(m, tmax);   // finite: the tile holds at least one key
        let alpha = exp(m - m_new);
        m = m_new;
        l *= alpha;
        o *= alpha;
        if (grp < NGRP) {
            for (var r = 0u; r < VPT; r++) {
                let i = grp + r * NGRP;
                if (VEXACT || i < TK) {
                    let p = exp(sc_s[i] - m_new);   // 0 for keys past the range
                    l += p;
                    o += p * dec(v_cache[(min(t0 + i, last) * N_KV + kvh) * HD4 + col]);
                }
            }
        }
    }
    o_s[lid] = o;
    if (grp < NGRP && col == 0u) {
        l_s[grp] = l;
    }
    workgroupBarrier();
    if (lid < HD4) {
        var acc = o_s[lid];
        for (var g = 1u; g < NGRP; g++) {
            acc += o_s[g * HD4 + lid];
        }
        partials[base + 1u + lid] = acc;
    }
    if (lid == 0u) {
        var ls = 0.0;
        for (var g = 0u; g < NGRP; g++) {
            ls += l_s[g];
        }
        partials[base] = vec4<f32>(m, ls, 0.0, 0.0);
    }
}
#endif
