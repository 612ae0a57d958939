// embedding.wgsl — gather rows of an embedding table by token id, dequantized and scaled.
//
//   out[t, c] = scale * W[ids[t], c]      t < n_tokens, c < cols
//
// Bindings (group 0):
//   0  wq     : array<u32>  one chunk of W: rows [row0, row0 + rows), internal layout {{LAYOUT}}
//   1  ids    : array<u32>  (n_tokens) token ids
//   2  out    : array<f32>  (n_tokens, cols) written
//   3  params : Params      {n_tokens, cols, row0, rows, total_rows, first, scale}
// A table larger than one storage binding is split by rows into chunks (GPUWeight.chunks); the op
// dispatches once per chunk and every invocation whose id lies outside [row0, row0 + rows) writes
// nothing, so each output row is written by exactly one dispatch. Ids >= total_rows (out of
// range) give a row of zeros, written by the dispatch of the first chunk (first = 1).
// Variant: defines={"LAYOUT": ...} as in dequant.wgsl. No f16 variant: few KiB per token, f32 out.
// Workgroup: 256 invocations, one output element each (scalar dq: cols need not be a multiple of 4
// for f32/f16/bf16, and the op moves one row per token, so vector width buys nothing).
// Dispatch: grid(ceil(n_tokens * cols / 256)).

struct Params {
    n_tokens: u32, cols: u32, row0: u32, rows: u32,
    total_rows: u32, first: u32, scale: f32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> wq: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

#include lib/quant_blocks

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + lid;
    let cols = params.cols;
    if (i >= params.n_tokens * cols) {
        return;
    }
    let t = i / cols;
    let c = i - t * cols;
    let id = ids[t];
    if (id >= params.row0 && id - params.row0 < params.rows) {
        out[i] = dq((id - params.row0) * cols + c) * params.scale;
    } else if (params.first != 0u && id >= params.total_rows) {
        out[i] = 0.0;
    }
}
