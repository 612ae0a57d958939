// rmsnorm.wgsl — RMSNorm over each row, optionally fused with the residual add before it.
//
//   s = x + res                                   (RESIDUAL; s is the new residual stream)
//   y = s * 1 / sqrt(sum(s^2) / DIM + EPS) * g    g = w, or 1 + w when ADD_ONE (Gemma)
//   (without RESIDUAL, s = x)
//
// Bindings (group 0). Outputs may alias inputs, and WebGPU forbids a writable binding that
// overlaps another binding of the same dispatch, so an aliased result is written through the
// input's own binding: the op (app/kernels/norm.py) numbers the bindings and names, through
// Y and S, the array each result goes to (x, y, res or s_out).
//   0      w     : array<f32> (DIM,)         shared by all rows (per-head QK-norm: DIM = head_dim)
//   1      x     : array<f32> (rows, DIM)    read; read_write (X_ACCESS) when y or s goes there
//   B_Y    y     : array<f32> (rows, DIM)    written; only when Y_BUF (y does not alias x)
//   B_RES  res   : array<f32> (rows, DIM)    RESIDUAL; read_write (RES_ACCESS) when s goes there
//   B_S    s_out : array<f32> (rows, DIM)    RESIDUAL && S_BUF: s written to its own buffer
// rows = arrayLength(&x) / DIM: the op binds exactly rows * DIM floats of x.
//
// Workgroup: WG invocations (a power of two <= 256) per row, each striding over the row; the
// sum of squares is reduced through workgroup memory. Dispatch: grid(rows) of app/kernels/grid.py,
// the row is workgroup_id.x + workgroup_id.y * num_workgroups.x. Every element is read and
// written by one invocation only, so in-place use needs no barrier between the two passes.

override DIM: u32;
override EPS: f32;
override ADD_ONE: bool = false;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, {{X_ACCESS}}> x: array<f32>;
#if Y_BUF
@group(0) @binding({{B_Y}}) var<storage, read_write> y: array<f32>;
#endif
#if RESIDUAL
@group(0) @binding({{B_RES}}) var<storage, {{RES_ACCESS}}> res: array<f32>;
#if S_BUF
@group(0) @binding({{B_S}}) var<storage, read_write> s_out: array<f32>;
#endif
#endif

var<workgroup> partial: array<f32, 256>;  // WG <= 256

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= arrayLength(&x) / DIM) {
        return;  // whole workgroup: the spilled grid's last line may be partly unused
    }
    let base = row * DIM;

    // Pass 1: s (written to the residual stream when fused) and this invocation's sum of squares.
    var ss = 0.0;
    for (var i = lid; i < DIM; i += WG) {
#if RESIDUAL
        let s = x[base + i] + res[base + i];
        {{S}}[base + i] = s;
#else
        let s = x[base + i];
#endif
        ss += s * s;
    }
    partial[lid] = ss;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let scale = inverseSqrt(partial[0] / f32(DIM) + EPS);

    // Pass 2: scale and weight. s is re-read (this invocation wrote it, so it sees its own value).
    for (var i = lid; i < DIM; i += WG) {
#if RESIDUAL
        let s = {{S}}[base + i];
#else
        let s = x[base + i];
#endif
        var g = w[i];
        if (ADD_ONE) {
            g += 1.0;
        }
        {{Y}}[base + i] = s * scale * g;
    }
}
