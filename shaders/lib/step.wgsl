// lib/step.wgsl — per-step parameters shared by position-dependent kernels (RoPE, KV-cache
// writes, attention). One small uniform buffer, rewritten once per step with a single
// writeBuffer before a recorded dispatch plan is replayed; kernels never get these values baked in.
//
//   pos      : position of the first token of this step in the sequence
//   n_tokens : tokens processed this step (1 when decoding, the prompt chunk when prefilling)
//   kv_len   : valid KV-cache entries after this step's writes (= pos + n_tokens)
//   seq_end  : 0, or the end position of the whole forward this step is a chunk of (a prompt
//              prefilled in chunks): longrope picks its factor table from the length of the
//              whole forward, as transformers does, not from the chunk's
struct Step { pos: u32, n_tokens: u32, kv_len: u32, seq_end: u32 }
