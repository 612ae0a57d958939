// sample_params.wgsl — the sampler's per-step uniform (included by logits_penalty.wgsl and
// sample.wgsl). 64 bytes, rewritten with ONE writeBuffer per step by app/kernels/sampling.py
// (Sampler.write_params); the field order here and in sampling.py's _PARAMS_FMT must match.
//
//   vocab, n_wg       shape: V and ceil(V / 1024) partials of logits_penalty.wgsl
//   greedy            1: argmax (temperature 0 or top_k 1); then temperature is taken as 1 for
//                     the softmax statistics and logprobs
//   top_k             0 = off;  top_p 1 = off;  min_p 0 = off
//   seed, step        counter-based RNG input: draw d of a step uses pcg(seed, step + n, d), where
//                     n = steps taken since configure, kept on the GPU (sample.wgsl result[8])
//   n_logprobs        top-n (id, logprob) pairs to write (0..20)
//   n_draws           draws from the same distribution (1 normally; more only for tests)
//   record            1: counts[chosen] += 1 at the end of the step (penalty bookkeeping)
struct SampleParams {
    vocab: u32, n_wg: u32, greedy: u32, top_k: u32,
    temperature: f32, top_p: f32, min_p: f32, repetition_penalty: f32,
    presence_penalty: f32, frequency_penalty: f32, seed: u32, step: u32,
    n_logprobs: u32, n_draws: u32, record: u32, _pad: u32,
}

fn inv_temperature() -> f32 {
    return select(1.0 / params.temperature, 1.0, params.greedy != 0u);
}
