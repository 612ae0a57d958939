// probe_read.wgsl — the adapter's achievable streaming-read bandwidth (app/bench/kernels.py), and
// the pseudo-random data it (and the benchmark's weights) read.
//
// Entry `main`, the probe: each invocation sums the vec4<u32> words of `data` at
//   i = gid, gid + S, gid + 2S, ...      S = 256 * num_workgroups.x (grid stride)
// four loads per loop trip, then writes its sum to sink[gid] so the loads cannot be dropped.
// Consecutive invocations read consecutive 16-byte words: every byte of `data` is read once.
//   0  data : array<vec4<u32>>  (n,)                          read
//   1  sink : array<u32>        (256 * num_workgroups.x,)     written (4 B per invocation)
// Workgroup 256; dispatch (G, 1, 1), G <= 65535, chosen by the caller (~16 words per invocation).
// Bytes moved = 16 n (read) + 1024 G (written, small next to the read).
//
// Entry `fill`: data[i] = pseudo-random vec4<u32> from a hash of (i, SEED), each 16-bit half
// masked to (h & 0x83FF) | 0x3000: as f16 that is +-[0.125, 0.25) (sign and mantissa random), and
// any f32/bf16 read of those words is finite and normal. So every weight layout (f32, f16, bf16
// and the quant blocks' f16 scales) decodes to finite values; quant fields keep random low bits.
//   0  data : array<vec4<u32>>  (n,)   written
// Override constant SEED. Workgroup 256; dispatch (G, 1, 1), G <= 65535, grid stride as above.

override SEED: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> data: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = arrayLength(&data);
    let s = nwg.x * 256u;
    var acc = vec4<u32>(0u);
    var i = gid.x;
    // Four independent loads in flight per trip.
    for (; i + 3u * s < n; i += 4u * s) {
        acc += (data[i] ^ data[i + s]) + (data[i + 2u * s] ^ data[i + 3u * s]);
    }
    for (; i < n; i += s) {
        acc += data[i];
    }
    sink[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}

// PCG-style integer hash (one multiply-xorshift round).
fn hash(x: u32) -> u32 {
    let s = x * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = arrayLength(&data);
    let s = nwg.x * 256u;
    let key = hash(SEED);
    for (var i = gid.x; i < n; i += s) {
        let h = vec4<u32>(hash((4u * i) ^ key), hash((4u * i + 1u) ^ key),
                          hash((4u * i + 2u) ^ key), hash((4u * i + 3u) ^ key));
        data[i] = (h & vec4<u32>(0x83FF83FFu)) | vec4<u32>(0x30003000u);
    }
}
