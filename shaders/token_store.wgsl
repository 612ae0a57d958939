// token_store.wgsl — append the token the sampler just chose to the sequence history on the GPU,
// so a decode step can feed the next one without a round trip to the host:
//
//   history[step.pos + step.n_tokens] = result[0]
//
// (the step's tokens occupy positions pos .. pos + n_tokens - 1; the chosen token is the next one).
// Bindings (group 0):
//   0  result  : array<u32>  the sampler's result buffer (shaders/sample.wgsl); word 0 = chosen id
//   1  history : array<u32>  (max_ctx + 1,) token ids by position; writes past its end are dropped
//   2  step    : Step (shaders/lib/step.wgsl)
// Workgroup: 1 invocation. Dispatch: (1, 1, 1).

#include lib/step

@group(0) @binding(0) var<storage, read> result: array<u32>;
@group(0) @binding(1) var<storage, read_write> history: array<u32>;
@group(0) @binding(2) var<uniform> step: Step;

@compute @workgroup_size(1)
fn main() {
    let i = step.pos + step.n_tokens;
    if (i < arrayLength(&history)) {
        history[i] = result[0];
    }
}
