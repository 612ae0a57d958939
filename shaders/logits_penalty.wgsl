// logits_penalty.wgsl — first sampling pass: penalties, then per-workgroup softmax statistics.
//
// For every vocab entry i (V = params.vocab), with c = counts[i] (times token i occurred):
//   z = logits[i]
//   if c > 0: z = (z > 0 ? z / repetition_penalty : z * repetition_penalty)   (HF / llama.cpp)
//             z = z - frequency_penalty * c - presence_penalty                 (OpenAI / llama.cpp)
//   adj[i] = z                                   (penalized logits, NOT divided by temperature)
// and per workgroup w (a chunk of CHUNK = 1024 entries):
//   part[w] = (m_w = max z, a_w = lowest i with z == m_w, s_w = sum exp((z - m_w) * inv_t))
// where inv_t = 1 / temperature, or 1 when the step is greedy (temperature 0 or top_k = 1).
// shaders/sample.wgsl combines the partials into the global max / argmax / softmax sum.
//
// Bindings (group 0):
//   0 logits : array<f32>   (V,)  read (may be longer than V; only the first V are used)
//   1 counts : array<u32>   (V,)  read
//   2 params : SampleParams       uniform (shaders/sample_params.wgsl)
//   3 adj    : array<f32>   (V,)  written
//   4 part   : array<vec4<f32>> (ceil(V / 1024),)  written: (m_w, bitcast<f32>(a_w), s_w, 0)
// Workgroup: 256 invocations, 4 entries each (i = w * 1024 + r * 256 + lid: coalesced).
// Dispatch: (ceil(V / 1024), 1, 1) — at most 256 workgroups for Gemma-3's 262144 entries.
// CPU (define, for CPU adapters: SwiftShader, lavapipe, where each of the 9 barriers costs far
// more than the arithmetic): the same partials, one invocation per 1024-entry chunk walking it
// serially (pass 1: z, adj and the max / lowest argmax; pass 2: the sum of exp over adj, in 4
// interleaved lanes), CWG = 8 chunks per workgroup, no workgroup memory.
// Dispatch: (ceil(V / 8192), 1, 1).

#include sample_params

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<uniform> params: SampleParams;
@group(0) @binding(3) var<storage, read_write> adj: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;

const WG: u32 = 256u;
const PER: u32 = 4u;
const LOWEST: f32 = -3.402823e38;

fn penalize(z0: f32, c: u32) -> f32 {
    if (c == 0u) {
        return z0;
    }
    var z = select(z0 * params.repetition_penalty, z0 / params.repetition_penalty, z0 > 0.0);
    return z - params.frequency_penalty * f32(c) - params.presence_penalty;
}

#if CPU
const CWG: u32 = 8u;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wg.x * CWG + lid;
    let base = chunk * WG * PER;
    if (base >= params.vocab) {
        return;
    }
    let end = min(base + WG * PER, params.vocab);
    let inv_t = inv_temperature();
    var m = LOWEST;
    var a = 0xFFFFFFFFu;
    for (var i = base; i < end; i++) {
        let z = penalize(logits[i], counts[i]);
        adj[i] = z;
        if (z > m) {  // i grows, so '>' keeps the lowest index among ties
            m = z;
            a = i;
        }
    }
    var acc = vec4<f32>(0.0);   // lane i % 4
    let end4 = base + (end - base) / 4u * 4u;
    for (var i = base; i < end4; i += 4u) {
        acc += exp((vec4<f32>(adj[i], adj[i + 1u], adj[i + 2u], adj[i + 3u]) - m) * inv_t);
    }
    for (var i = end4; i < end; i++) {
        acc.x += exp((adj[i] - m) * inv_t);
    }
    part[chunk] = vec4<f32>(m, bitcast<f32>(a), (acc.x + acc.y) + (acc.z + acc.w), 0.0);
}
#else
var<workgroup> wm: array<f32, 256>;
var<workgroup> wa: array<u32, 256>;
var<workgroup> ws: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let base = wg.x * WG * PER;
    let inv_t = inv_temperature();
    var z: array<f32, 4>;
    var m = LOWEST;
    var a = 0xFFFFFFFFu;
    for (var r = 0u; r < PER; r++) {
        let i = base + r * WG + lid;
        z[r] = LOWEST;
        if (i < params.vocab) {
            z[r] = penalize(logits[i], counts[i]);
            adj[i] = z[r];
            if (z[r] > m) {  // i grows with r, so '>' keeps the lowest index among ties
                m = z[r];
                a = i;
            }
        }
    }
    var s = 0.0;
    for (var r = 0u; r < PER; r++) {
        if (base + r * WG + lid < params.vocab) {
            s += exp((z[r] - m) * inv_t);
        }
    }
    wm[lid] = m;
    wa[lid] = a;
    ws[lid] = s;
    workgroupBarrier();
    // Tree reduction of (max, argmax, sum relative to max); ties -> lowest index.
    for (var off = WG / 2u; off > 0u; off = off / 2u) {
        if (lid < off) {
            let m2 = wm[lid + off];
            let a2 = wa[lid + off];
            let s2 = ws[lid + off];
            let m1 = wm[lid];
            if (s2 > 0.0) {
                if (m2 > m1 || (m2 == m1 && a2 < wa[lid])) {
                    ws[lid] = s2 + ws[lid] * exp((m1 - m2) * inv_t);
                    wm[lid] = m2;
                    wa[lid] = a2;
                } else {
                    ws[lid] = ws[lid] + s2 * exp((m2 - m1) * inv_t);
                }
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        part[wg.x] = vec4<f32>(wm[0], bitcast<f32>(wa[0]), ws[0], 0.0);
    }
}
#endif
