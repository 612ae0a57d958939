// attention_prefill.wgsl — causal attention of a chunk of queries against the KV cache,
// flash-attention style (tiles of queries x keys, online softmax, nothing of size kv_len stored).
//
//   query t < step.n_tokens sits at position p = step.pos + t and attends keys j in [lo_p, p],
//   lo_p = max(0, p + 1 - WINDOW) (WINDOW 0: lo_p = 0). Rows < step.pos are earlier context
//   (chunked prefill after a previous turn); this step's rows must already be in the cache.
//   s_j = SCALE * dot(q[t, h], K[j, h / GROUP]);  s_j = SOFTCAP * tanh(s_j / SOFTCAP) if SOFTCAP > 0
//   out[t, h] = sum_j softmax(s)_j V[j, h / GROUP]
//
// Bindings (group 0):
//   0 q       : array<vec4<f32>> (n_tokens, n_heads, head_dim)
//   1 k_cache : (max_ctx, n_kv_heads, head_dim), f32 or with KV_F16 packed f16 (array<vec2<u32>>)
//   2 v_cache : same layout
//   3 out     : array<vec4<f32>> (n_tokens, n_heads, head_dim), written
//   4 step    : Step (lib/step.wgsl): pos, n_tokens
// Workgroup: 256 = BQ (16 queries) x 16 lanes; workgroup (x, h) takes queries 16x .. 16x + 15 of
// head h. Dispatch: (ceil(capacity_tokens / 16), n_heads); workgroups past step.n_tokens return.
// Per key tile of BK = 16 keys: (1) scores: invocation (query r, lane c) scores key c, head_dim
// walked in chunks of 64 (16 vec4s) staged in workgroup memory (qc: queries, kc: keys), so the
// footprint does not grow with head_dim; (2) online softmax per query row via s_s/p_s;
// (3) out += P V: invocation (r, c) owns vec4 column c of every 64-wide chunk (NCH registers),
// V staged chunk by chunk in kc. Workgroup memory: 2 x 4 KiB + 2 x 1 KiB = 10 KiB (<= 16 KiB)
// for every head_dim up to 256. Defines: HEAD_DIM (multiple of 4), KV_F16.
// Override constants: N_HEADS, N_KV, GROUP (= N_HEADS / N_KV), SCALE, SOFTCAP, WINDOW.

#include lib/step

const HD4: u32 = {{HEAD_DIM}}u / 4u;
const BQ: u32 = 16u;                  // queries per workgroup
const BK: u32 = 16u;                  // keys per tile (= lanes per query)
const CW4: u32 = 16u;                 // head_dim chunk, in vec4s (64 values)
const NCH: u32 = (HD4 + CW4 - 1u) / CW4;
const NEG: f32 = -3.0e38;

override N_HEADS: u32;
override N_KV: u32;
override GROUP: u32;
override SCALE: f32;
override SOFTCAP: f32 = 0.0;
override WINDOW: u32 = 0u;

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
#include lib/kv_read
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> step: Step;

var<workgroup> qc: array<vec4<f32>, 256>;   // (BQ, CW4) chunk of the queries
var<workgroup> kc: array<vec4<f32>, 256>;   // (BK, CW4) chunk of the keys, then of the values
var<workgroup> s_s: array<f32, 256>;        // (BQ, BK) scores
var<workgroup> p_s: array<f32, 256>;        // (BQ, BK) probabilities (relative to the row max)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.y;
    let q0 = wg.x * BQ;
    let n_tok = step.n_tokens;
    if (q0 >= n_tok) {
        return;   // uniform per workgroup
    }
    let kvh = h / GROUP;
    let r = lid / BK;          // query row in the tile (also the key row when staging K/V)
    let c = lid % BK;          // lane: key of the tile when scoring, vec4 column otherwise
    let t = q0 + r;
    let qvalid = t < n_tok;
    let p = step.pos + t;
    var qlo = 0u;
    if (WINDOW > 0u && p + 1u > WINDOW) {
        qlo = p + 1u - WINDOW;
    }
    // Keys any query of the tile needs: [lo, hi).
    let hi = step.pos + min(q0 + BQ, n_tok);
    var lo = 0u;
    if (WINDOW > 0u && step.pos + q0 + 1u > WINDOW) {
        lo = step.pos + q0 + 1u - WINDOW;
    }
    var m = NEG;
    var l = 0.0;
    var o: array<vec4<f32>, NCH>;
    for (var k0 = lo; k0 < hi; k0 += BK) {
        let key_r = k0 + r;    // key row this invocation stages
        var s = 0.0;
        for (var ch = 0u; ch < NCH; ch++) {
            let d4 = ch * CW4 + c;
            workgroupBarrier();   // qc/kc free
            var qv = vec4<f32>(0.0);
            if (qvalid && d4 < HD4) {
                qv = q[(t * N_HEADS + h) * HD4 + d4];
            }
            qc[lid] = qv;
            var kv = vec4<f32>(0.0);
            if (key_r < hi && d4 < HD4) {
                kv = load_k((key_r * N_KV + kvh) * HD4 + d4);
            }
            kc[lid] = kv;
            workgroupBarrier();
            for (var e = 0u; e < CW4; e++) {
                s += dot(qc[r * CW4 + e], kc[c * CW4 + e]);
            }
        }
        s *= SCALE;
        if (SOFTCAP > 0.0) {   // tanh saturates to +-1 in f32 beyond 15; clamp avoids overflow
            s = SOFTCAP * tanh(clamp(s / SOFTCAP, -15.0, 15.0));
        }
        let key = k0 + c;
        let valid = qvalid && key <= p && key >= qlo;
        s_s[lid] = select(NEG, s, valid);
        workgroupBarrier();
        var tmax = NEG;
        for (var j = 0u; j < BK; j++) {
            tmax = max(tmax, s_s[r * BK + j]);
        }
        let m_new = max(m, tmax);
        let alpha = exp(m - m_new);
        p_s[lid] = select(0.0, exp(s - m_new), valid);
        workgroupBarrier();
        var psum = 0.0;
        for (var j = 0u; j < BK; j++) {
            psum += p_s[r * BK + j];
        }
        l = l * alpha + psum;
        m = m_new;
        for (var ch = 0u; ch < NCH; ch++) {
            let d4 = ch * CW4 + c;
            workgroupBarrier();   // kc free
            var vv = vec4<f32>(0.0);
            if (key_r < hi && d4 < HD4) {
                vv = load_v((key_r * N_KV + kvh) * HD4 + d4);
            }
            kc[lid] = vv;
            workgroupBarrier();
            var acc = o[ch] * alpha;
            for (var j = 0u; j < BK; j++) {
                acc += p_s[r * BK + j] * kc[j * CW4 + c];
            }
            o[ch] = acc;
        }
    }
    if (qvalid) {
        for (var ch = 0u; ch < NCH; ch++) {
            let d4 = ch * CW4 + c;
            if (d4 < HD4) {
                out[(t * N_HEADS + h) * HD4 + d4] = o[ch] / l;
            }
        }
    }
}
