// attention_prefill_cpu.wgsl — attention_prefill.wgsl's computation without workgroup barriers or
// workgroup memory, for CPU adapters (SwiftShader, lavapipe), where a barrier costs far more
// than the arithmetic it saves. Same bindings, defines and override constants as
// attention_prefill.wgsl, so app/kernels/attention.py binds either one:
//
//   query t < step.n_tokens sits at position p = step.pos + t and attends keys j in [lo_p, p],
//   lo_p = max(0, p + 1 - WINDOW) (WINDOW 0: lo_p = 0); this step's rows are already in the cache.
//   s_j = SCALE * dot(q[t, h], K[j, h / GROUP]);  s_j = SOFTCAP * tanh(s_j / SOFTCAP) if SOFTCAP > 0
//   out[t, h] = sum_j softmax(s)_j V[j, h / GROUP]
//
// Bindings (group 0):
//   0 q       : array<vec4<f32>> (n_tokens, n_heads, head_dim)
//   1 k_cache : (max_ctx, n_kv_heads, head_dim), f32 or with KV_F16 packed f16 (array<vec2<u32>>)
//   2 v_cache : same layout
//   3 out     : array<vec4<f32>> (n_tokens, n_heads, head_dim), written
//   4 step    : Step (lib/step.wgsl): pos, n_tokens
// One invocation per (query token, head): it walks its keys lo_p .. p one by one with an online
// softmax, the pre-scaled query and the head_dim/4 vec4 accumulators in private memory (CPU
// registers / L1). Workgroup: CWG = 8 consecutive tokens of one head (one 256-bit SIMD row on
// lavapipe, two 4-wide ones on SwiftShader). Dispatch: (ceil(capacity_tokens / CWG), n_heads);
// invocations past step.n_tokens return. Defines: HEAD_DIM (multiple of 4, <= 256), KV_F16.
// Override constants: N_HEADS, N_KV, GROUP (= N_HEADS / N_KV), SCALE, SOFTCAP, WINDOW.

#include lib/step

const HD4: u32 = {{HEAD_DIM}}u / 4u;      // vec4s per head (1 .. 64)
const CWG: u32 = 8u;
const NEG: f32 = -3.0e38;                // "minus infinity" that stays finite

override N_HEADS: u32;
override N_KV: u32;
override GROUP: u32;
override SCALE: f32;
override SOFTCAP: f32 = 0.0;
override WINDOW: u32 = 0u;

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
#include lib/kv_read
#include lib/attend_keys
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x * CWG + lid;
    let h = wg.y;
    if (t >= step.n_tokens) {
        return;
    }
    let kvh = h / GROUP;
    let p = step.pos + t;
    var lo = 0u;
    if (WINDOW > 0u && p + 1u > WINDOW) {
        lo = p + 1u - WINDOW;
    }
    let qb = (t * N_HEADS + h) * HD4;
    var qr: array<vec4<f32>, HD4>;   // this (token, head)'s query, pre-scaled
    for (var d = 0u; d < HD4; d++) {
        qr[d] = q[qb + d] * SCALE;
    }
    let r = attend_keys(&qr, kvh, lo, p + 1u);
    for (var d = 0u; d < HD4; d++) {   // l >= 1: the running max's own key contributes e^0
        out[qb + d] = r.o[d] / r.l;
    }
}
