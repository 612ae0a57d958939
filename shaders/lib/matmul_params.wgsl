// lib/matmul_params.wgsl — the uniform of the prefill products (matmul_q, matmul_sgmat): one
// chunk of a weight's rows times n_tokens activation rows, written into Y (tokens x out_rows).
struct Params {
    rows: u32,        // rows in this chunk
    cols: u32,
    row_stride: u32,  // dense layouts: elements per row (= cols); quantized: u32 words per row
    row0: u32,        // first row of this chunk in Y
    out_rows: u32,    // rows of the whole weight (Y's row stride)
    n_tokens: u32,
    _a: u32,
    _b: u32,
}
