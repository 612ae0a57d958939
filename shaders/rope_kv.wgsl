// rope_kv.wgsl — decode: RoPE of q and k of one token's fused q | k | v row, and the KV-cache
// append, in one dispatch (rope.wgsl + kv_cache.wgsl for a single token).
//
//   qkv row (f32): q (N_HEADS, HEAD_DIM) | k (N_KV, HEAD_DIM) | v (N_KV, HEAD_DIM)
//   q                  <- rope(q)            in place, at position step.pos
//   k_cache[step.pos]  <- rope(k)            qkv's k itself is read, never written
//   v_cache[step.pos]  <- v
// rope() is rope.wgsl's (interleaved pairs or NEOX half split; dims from 2 HALF_ROT on pass
// through unscaled; cos and sin times ATTN_FACTOR; the table picked by rope_table_base, incl.
// step.seq_end), with the angle code of lib/rope_angle.wgsl. The cache row is written when
// step.n_tokens > 0 and step.pos < MAX_CTX (kv_cache.wgsl's rule for one token).
//
// Bindings (group 0):
//   0  qkv     : array<f32> ((N_HEADS + 2 N_KV) * HEAD_DIM)   read_write (q written)
//   1  freq    : array<vec2<u32>> (n_tables, HALF_ROT)          lib/rope_angle.wgsl's tables
//   2  step    : Step uniform (lib/step.wgsl)
//   3  k_cache : (MAX_CTX, N_KV, HEAD_DIM): array<f32>, or with KV_F16 array<u32> of packed f16
//                pairs (pack2x16float, element 2i in the low half), as kv_cache.wgsl
//   4  v_cache : same layout as k_cache
//
// Work split, one invocation each (flat index p):
//   p <  N_HEADS * HALF_ROT : q head p / HALF_ROT, pair j = p % HALF_ROT, rotated in place: the
//                             invocation reads and writes both elements of its pair, no other
//                             invocation touches them.
//   p >= N_HEADS * HALF_ROT : e = p - N_HEADS * HALF_ROT < N_KV * HEAD_DIM / 2: cache elements
//                             2e, 2e + 1 of the row (= one u32 word of an f16 row: HEAD_DIM is
//                             even, so a word never spans two heads) of k and of v. Each rotated
//                             k element is computed from its own pair, read-only, so in the
//                             NeoX layout the two elements of a word may use different pairs,
//                             and no two invocations write halves of the same word.
// Workgroup: 256 invocations. Dispatch: grid(ceil((N_HEADS * HALF_ROT + N_KV * HEAD_DIM / 2) /
// 256)) of app/kernels/grid.py.

#include lib/step
#include lib/rope_angle

override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV: u32;
override HALF_ROT: u32;
override MAX_CTX: u32;
override NEOX: bool = false;
override LONG_AFTER: u32 = 0u;
override ATTN_FACTOR: f32 = 1.0;

@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> freq: array<vec2<u32>>;
@group(0) @binding(2) var<uniform> step: Step;
#if KV_F16
@group(0) @binding(3) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<u32>;
#else
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>;
#endif

// (cos, sin) * ATTN_FACTOR of pair j at the step's position.
fn cs_of(j: u32) -> vec2<f32> {
    return rope_cos_sin(step.pos, freq[rope_table_base(step, LONG_AFTER, HALF_ROT) + j]) *
           ATTN_FACTOR;
}

// qkv indices (i0, i1) of pair j of the head starting at `head`.
fn pair_at(head: u32, j: u32) -> vec2<u32> {
    if (NEOX) {
        return vec2<u32>(head + j, head + j + HALF_ROT);
    }
    return vec2<u32>(head + 2u * j, head + 2u * j + 1u);
}

// Element d of the rotated k head starting at qkv index `head` (read-only).
fn k_rot(head: u32, d: u32) -> f32 {
    if (d >= 2u * HALF_ROT) {
        return qkv[head + d];                                      // partial rotary: copied
    }
    let second = select((d & 1u) == 1u, d >= HALF_ROT, NEOX);      // b' rather than a'
    let j = select(d >> 1u, select(d, d - HALF_ROT, second), NEOX);
    let i = pair_at(head, j);
    let a = qkv[i.x];
    let b = qkv[i.y];
    let cs = cs_of(j);
    return select(a * cs.x - b * cs.y, a * cs.y + b * cs.x, second);
}

fn store(dst: u32, k0: f32, k1: f32, v0: f32, v1: f32) {  // dst: element index, even
#if KV_F16
    k_cache[dst >> 1u] = pack2x16float(vec2<f32>(k0, k1));
    v_cache[dst >> 1u] = pack2x16float(vec2<f32>(v0, v1));
#else
    k_cache[dst] = k0;
    k_cache[dst + 1u] = k1;
    v_cache[dst] = v0;
    v_cache[dst + 1u] = v1;
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let p = (wid.x + wid.y * nwg.x) * 256u + lid;
    let nq = N_HEADS * HALF_ROT;
    if (p < nq) {
        let j = p % HALF_ROT;
        let i = pair_at((p / HALF_ROT) * HEAD_DIM, j);
        let cs = cs_of(j);
        let a = qkv[i.x];
        let b = qkv[i.y];
        qkv[i.x] = a * cs.x - b * cs.y;
        qkv[i.y] = a * cs.y + b * cs.x;
        return;
    }
    let e = 2u * (p - nq);                       // element of the (N_KV, HEAD_DIM) row, even
    let row = N_KV * HEAD_DIM;
    if (e >= row || step.n_tokens == 0u || step.pos >= MAX_CTX) {
        return;
    }
    let d = e % HEAD_DIM;
    let kh = N_HEADS * HEAD_DIM + e - d;         // qkv index of this k head
    let vi = N_HEADS * HEAD_DIM + row + e;       // qkv index of v element e
    store(step.pos * row + e, k_rot(kh, d), k_rot(kh, d + 1u), qkv[vi], qkv[vi + 1u]);
}
