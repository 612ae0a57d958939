// lib/attend_keys.wgsl — one query against a range of cached keys, walked key by key with an
// online softmax in private memory (registers / L1): the core of the CPU adapters' attention
// kernels (attention_decode_cpu.wgsl, attention_prefill_cpu.wgsl).
//   s_j = dot(qr, K[j, kvh]);  s_j = SOFTCAP * tanh(s_j / SOFTCAP) when SOFTCAP > 0
//   m = max_j s_j,  l = sum_j e^(s_j - m),  o = sum_j e^(s_j - m) V[j, kvh]   (unnormalised)
// The includer provides HD4, NEG, the override constants N_KV and SOFTCAP, and lib/kv_read
// (k_cache, v_cache, dec). An empty range gives m = NEG, l = 0, o = 0 (the neutral partial).

struct Attended {
    m: f32,
    l: f32,
    o: array<vec4<f32>, HD4>,
}

// Keys j in [first, end) of KV head kvh against the pre-scaled query *qr.
fn attend_keys(qr: ptr<function, array<vec4<f32>, HD4>>, kvh: u32, first: u32,
               end: u32) -> Attended {
    var r: Attended;             // o zero-initialized
    r.m = NEG;
    r.l = 0.0;
    for (var j = first; j < end; j++) {
        let kb = (j * N_KV + kvh) * HD4;
        var s = 0.0;
        for (var d = 0u; d < HD4; d++) {
            s += dot((*qr)[d], dec(k_cache[kb + d]));
        }
        if (SOFTCAP > 0.0) {   // tanh saturates to +-1 in f32 beyond 15; clamp avoids overflow
            s = SOFTCAP * tanh(clamp(s / SOFTCAP, -15.0, 15.0));
        }
        if (s > r.m) {   // new running max: rescale (the first key scales the zeros by 0)
            let alpha = exp(r.m - s);
            r.l *= alpha;
            for (var d = 0u; d < HD4; d++) {
                r.o[d] *= alpha;
            }
            r.m = s;
        }
        let e = exp(s - r.m);
        r.l += e;
        for (var d = 0u; d < HD4; d++) {
            r.o[d] += e * dec(v_cache[kb + d]);
        }
    }
    return r;
}
