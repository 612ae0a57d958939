// sample_count.wgsl — penalty bookkeeping: counts[ids[j]] += 1 for every recorded token id.
//
// Bindings (group 0):
//   0 ids    : array<u32>          (n,)  token ids (ids >= V are ignored)
//   1 counts : array<atomic<u32>>  (V,)  occurrences of each token in the context
//   2 shape  : vec4<u32>           uniform (n, V, 0, 0)
// Workgroup: 256 invocations, one id each. Dispatch: grid(ceil(n / 256)) (app/kernels/grid.py).

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> shape: vec4<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = (wg.x + wg.y * nwg.x) * 256u + lid.x;
    if (j < shape.x) {
        let id = ids[j];
        if (id < shape.y) {
            atomicAdd(&counts[id], 1u);
        }
    }
}
