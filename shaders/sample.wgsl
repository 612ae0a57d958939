// sample.wgsl — second (last) sampling pass: one workgroup turns the penalized logits of
// logits_penalty.wgsl into the chosen token id, its logprob and the top-n logprobs.
//
// Semantics (HF transformers' warper order; llama.cpp agrees):
//   greedy (temperature 0 or top_k 1): chosen = argmax z, ties -> lowest id.
//   otherwise, with w(z) = exp((z - max z) / T):
//     top-k  keep z >= k-th largest z (ties at the k-th value kept, as HF's TopKLogitsWarper)
//     top-p  over the top-k set, keep the smallest descending prefix whose mass reaches
//            top_p * (top-k mass); tokens tied with the last one of that prefix are kept too
//     min-p  keep w(z) >= min_p (= prob >= min_p * max prob; applied after top-k/top-p as HF)
//     draw   u = pcg(seed, step, d) in [0, 1) (24 bits); the token where the CDF of the kept
//            weights crosses u * (kept mass). The CDF runs in a fixed order (invocation-major
//            over i = lid + 256 s), not id order: any fixed order gives the same distribution.
//   (llama.cpp's default chain applies temperature AFTER top-k/top-p/min-p; top-k does not
//   depend on T, top-p and min-p do: here they see z / T, as in HF.)
//   logprobs: log_softmax(z / T) over the FULL vocab (after penalties and temperature, before
//            top-k/top-p/min-p truncation; T taken as 1 when greedy), as OpenAI's API reports.
//
// Bindings (group 0):
//   0 adj    : array<f32>        (V,)  penalized logits (logits_penalty.wgsl)
//   1 part   : array<vec4<f32>>  (n_wg,) per-chunk (max, argmax bits, sum exp) partials
//   2 params : SampleParams      uniform (sample_params.wgsl)
//   3 counts : array<u32>        (V,)  counts[chosen] += 1 when params.record
//   4 result : array<u32>        (DRAWS + n_draws,) written:
//        [0] chosen id   [1] its logprob (f32 bits)   [2] n_logprobs   [3] kept tokens
//        [4] max z   [5] sum exp((z - max) / T)   [6] cut value (kept: z >= cut; -inf = none)   [7] kept mass
//        [8] RNG steps taken since the sampler was configured: read at the start of a step,
//            incremented at its end, so a replayed decode plan needs no per-step write
//            (Sampler.configure zeroes it)
//        [16 + 2r], [17 + 2r] (r < n_logprobs): r-th most likely (id, logprob f32 bits);
//                               ties -> lowest id (if more than 236 tokens tie at the n-th value,
//                               which of those ids appear is not defined; their values are equal)
//        [56 + d]   (d < n_draws): draw d (draw 0 is the chosen id)
// Workgroup: 256 invocations; dispatch (1, 1, 1).
// Passes over the V logits (each invocation reads i = lid + 256 s): greedy 0; top-k 4; top-p 4;
// the kept mass 1; each draw reads only the ~V/256 entries of one invocation's stripe;
// logprobs 4 + 1.

#include sample_params
#include sample_radix

@group(0) @binding(0) var<storage, read> adj: array<f32>;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: SampleParams;
@group(0) @binding(3) var<storage, read_write> counts: array<u32>;
@group(0) @binding(4) var<storage, read_write> result: array<u32>;

const WG: u32 = 256u;
const MAX_LOGPROBS: u32 = 20u;
const HEADER: u32 = 16u;
const DRAWS: u32 = 56u;  // HEADER + 2 * MAX_LOGPROBS
const STEP_WORD: u32 = 8u;
const LOWEST: f32 = -3.402823e38;

var<private> g_max: f32;
var<private> g_inv_t: f32;
var<private> g_cut: u32;
var<workgroup> aux: array<f32, 256>;
var<workgroup> chosen_w: u32;
var<workgroup> step_w: u32;   // result[8] as read at the start of this step
var<private> g_step: u32;

fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

fn uniform01(d: u32) -> f32 {
    let h = pcg(params.seed + pcg(params.step + g_step + pcg(d)));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

fn kept(z: f32) -> bool {
    return order_key(z) >= g_cut && weight(z) >= params.min_p;
}

// One draw: the kept token at which the CDF crosses `goal` (0 <= goal < kept mass).
// `mine` is this invocation's kept mass, aux its inclusive prefix sums.
fn draw(lid: u32, goal: f32, mine: f32) -> u32 {
    workgroupBarrier();
    let t = pick(lid, aux[lid] > goal && mine > 0.0, mine > 0.0);  // the owning stripe
    let rem1 = goal - select(0.0, aux[max(t, 1u) - 1u], t > 0u);
    let ns = (params.vocab - t + WG - 1u) / WG;                      // entries in stripe t
    let c = (ns + WG - 1u) / WG;                                     // of them per invocation
    let s0 = lid * c;
    let s1 = min(ns, s0 + c);
    var sub = 0.0;
    for (var s = s0; s < s1; s++) {
        let z = adj[t + s * WG];
        if (kept(z)) {
            sub += weight(z);
        }
    }
    sc_f[lid] = sub;
    sc_u[lid] = 0u;
    workgroupBarrier();
    scan_inclusive(lid);
    let l = pick(lid, sc_f[lid] > rem1 && sub > 0.0, sub > 0.0);
    if (lid == l) {
        let rem2 = rem1 - select(0.0, sc_f[max(l, 1u) - 1u], l > 0u);
        var run = 0.0;
        var last = NONE;
        var found = NONE;
        for (var s = s0; s < s1; s++) {
            let i = t + s * WG;
            let z = adj[i];
            if (kept(z)) {
                run += weight(z);
                last = i;
                if (run > rem2) {
                    found = i;
                    break;
                }
            }
        }
        chosen_w = select(found, last, found == NONE);  // rounding fallback: last kept entry
    }
    return workgroupUniformLoad(&chosen_w);
}

// Top-n (id, logprob) pairs into result[16 ..]: the n-th largest key by radix select, then the
// entries above it (< n of them) and up to 236 tied with it are gathered and ranked.
fn top_logprobs(lid: u32, log_s: f32) {
    let n = min(params.n_logprobs, MAX_LOGPROBS);
    let tn = radix_select(lid, false, n, 0.0, 0u);
    if (lid == 0u) {
        atomicStore(&pick_a, 0u);
        atomicStore(&pick_b, MAX_LOGPROBS);
    }
    workgroupBarrier();
    for (var i = lid; i < params.vocab; i += WG) {
        let z = adj[i];
        let k = order_key(z);
        var slot = NONE;
        if (k > tn) {
            slot = atomicAdd(&pick_a, 1u);
        } else if (k == tn) {
            slot = atomicAdd(&pick_b, 1u);
        }
        if (slot < WG) {
            sc_u[slot] = i;
            sc_f[slot] = z;
        }
    }
    workgroupBarrier();
    let above = atomicLoad(&pick_a);
    let end = min(atomicLoad(&pick_b), WG);
    if (lid < above || (lid >= MAX_LOGPROBS && lid < end)) {
        let id = sc_u[lid];
        let z = sc_f[lid];
        var rank = 0u;
        for (var j = 0u; j < end; j++) {
            if ((j < above || j >= MAX_LOGPROBS) && (sc_f[j] > z || (sc_f[j] == z && sc_u[j] < id))) {
                rank += 1u;
            }
        }
        if (rank < n) {
            result[HEADER + 2u * rank] = id;
            result[HEADER + 2u * rank + 1u] = bitcast<u32>((z - g_max) * g_inv_t - log_s);
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    g_inv_t = inv_temperature();
    if (lid == 0u) {
        step_w = result[STEP_WORD];
    }
    workgroupBarrier();
    g_step = step_w;
    // 1. Combine the per-chunk partials: max, argmax (ties -> lowest id), sum exp((z - max) / T).
    var m = LOWEST;
    var a = NONE;
    var s = 0.0;
    for (var w = lid; w < params.n_wg; w += WG) {
        let p = part[w];
        let pa = bitcast<u32>(p.y);
        if (p.x > m || (p.x == m && pa < a)) {
            s = p.z + s * exp((m - p.x) * g_inv_t);
            m = p.x;
            a = pa;
        } else {
            s += p.z * exp((p.x - m) * g_inv_t);
        }
    }
    sc_f[lid] = m;
    sc_u[lid] = a;
    aux[lid] = s;
    workgroupBarrier();
    for (var off = WG / 2u; off > 0u; off = off / 2u) {
        if (lid < off) {
            let m2 = sc_f[lid + off];
            let a2 = sc_u[lid + off];
            let m1 = sc_f[lid];
            if (m2 > m1 || (m2 == m1 && a2 < sc_u[lid])) {
                aux[lid] = aux[lid + off] + aux[lid] * exp((m1 - m2) * g_inv_t);
                sc_f[lid] = m2;
                sc_u[lid] = a2;
            } else {
                aux[lid] = aux[lid] + aux[lid + off] * exp((m2 - m1) * g_inv_t);
            }
        }
        workgroupBarrier();
    }
    g_max = sc_f[0];
    let argmax = sc_u[0];
    let total = aux[0];
    let log_s = log(total);
    workgroupBarrier();

    // 2. The cut, the kept mass and the draws.
    var chosen = argmax;
    var n_kept = 1u;
    var kept_mass = 1.0;
    g_cut = order_key(g_max);
    if (params.greedy == 0u) {
        var cut = 0u;
        if (params.top_k > 0u && params.top_k < params.vocab) {
            cut = radix_select(lid, false, params.top_k, 0.0, 0u);
        }
        if (params.top_p < 1.0) {
            cut = radix_select(lid, true, 0u, params.top_p, cut);
        }
        g_cut = cut;
        var mine = 0.0;
        var nk = 0u;
        for (var i = lid; i < params.vocab; i += WG) {
            let z = adj[i];
            if (kept(z)) {
                mine += weight(z);
                nk += 1u;
            }
        }
        workgroupBarrier();
        sc_f[lid] = mine;
        sc_u[lid] = nk;
        workgroupBarrier();
        scan_inclusive(lid);
        aux[lid] = sc_f[lid];
        n_kept = sc_u[WG - 1u];
        kept_mass = sc_f[WG - 1u];
        for (var d = 0u; d < params.n_draws; d++) {
            let id = draw(lid, uniform01(d) * kept_mass, mine);
            if (d == 0u) {
                chosen = id;
            }
            if (lid == 0u) {
                result[DRAWS + d] = id;
            }
        }
    } else if (lid == 0u) {
        for (var d = 0u; d < params.n_draws; d++) {
            result[DRAWS + d] = argmax;
        }
    }
    workgroupBarrier();

    // 3. Logprobs, header, penalty bookkeeping.
    if (params.n_logprobs > 0u) {
        top_logprobs(lid, log_s);
    }
    if (lid == 0u) {
        result[0] = chosen;
        result[1] = bitcast<u32>((adj[chosen] - g_max) * g_inv_t - log_s);
        result[2] = min(params.n_logprobs, MAX_LOGPROBS);
        result[3] = n_kept;
        result[4] = bitcast<u32>(g_max);
        result[5] = bitcast<u32>(total);
        // key 0 (no top-k / top-p cut) and the keys below -inf's are NaN patterns: report -inf
        result[6] = select(bitcast<u32>(key_value(g_cut)), 0xFF800000u, g_cut < 0x00800000u);
        result[7] = bitcast<u32>(kept_mass);
        result[STEP_WORD] = g_step + 1u;
        if (params.record != 0u) {
            counts[chosen] += 1u;
        }
    }
}
