// add.wgsl — elementwise sum, the residual add:  c[i] = a[i] + b[i]
//
// Bindings (group 0):
//   0  a : array<f32> (n,)   read; read_write (A_ACCESS) when the sum is written back into a
//   1  b : array<f32> (n,)   read
//   2  c : array<f32> (n,)   written; only when C_BUF (c does not alias a)
// OUT names the array the sum goes to (a or c). n = arrayLength(&b): the op binds exactly n
// floats of every buffer. Workgroup: 256 invocations, one element each.
// Dispatch: grid(ceil(n / 256)) of app/kernels/grid.py (counts above 65535 spill into y).

@group(0) @binding(0) var<storage, {{A_ACCESS}}> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
#if C_BUF
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i < arrayLength(&b)) {
        {{OUT}}[i] = a[i] + b[i];
    }
}
