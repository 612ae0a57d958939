// softcap.wgsl — logit soft-capping in place (Gemma-2 final logits):  x = CAP * tanh(x / CAP)
//
// Bindings (group 0):
//   0  x : array<f32> (n,)   read_write; the op binds exactly n floats
// Workgroup: 256 invocations, one element each.
// Dispatch: grid(ceil(n / 256)) of app/kernels/grid.py.
// tanh's argument is clamped to +-10: tanh(10) = 1 - 4e-9 rounds to 1 in f32, so nothing is lost,
// and implementations that build tanh from sinh/cosh return NaN for large |x| (inf / inf).

override CAP: f32;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i < arrayLength(&x)) {
        x[i] = CAP * tanh(clamp(x[i] / CAP, -10.0, 10.0));
    }
}
