// lib/kv_read.wgsl — the KV cache as the attention kernels read it: bindings 1 (K) and 2 (V) of
// group 0, rows of (n_kv_heads, head_dim) values, one vec4 of values per array element:
//   f32 cache            Raw = vec4<f32>
//   KV_F16 (packed f16)  Raw = vec2<u32>, 2 values per u32 (pack2x16float: low half = even element)
// dec(raw) -> the 4 values as vec4<f32>; load_k(i) / load_v(i) read and decode element i.
#if KV_F16
alias Raw = vec2<u32>;
fn dec(w: Raw) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
#else
alias Raw = vec4<f32>;
fn dec(w: Raw) -> vec4<f32> { return w; }
#endif
@group(0) @binding(1) var<storage, read> k_cache: array<Raw>;
@group(0) @binding(2) var<storage, read> v_cache: array<Raw>;
fn load_k(i: u32) -> vec4<f32> { return dec(k_cache[i]); }
fn load_v(i: u32) -> vec4<f32> { return dec(v_cache[i]); }
