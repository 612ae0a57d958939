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
// CPU (define, for CPU adapters: SwiftShader, lavapipe, where a barrier costs far more than the
// arithmetic): one invocation per row summing it serially, no workgroup memory and no barrier;
// CWG = 8 rows per workgroup, dispatch grid(ceil(rows / 8)); WG is unused.

#if SG_ENABLE
enable subgroups;
#endif

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

// y[j] = s[j] * scale * (w[i] or 1 + w[i]), j = row base + i: the output of both variants. s is
// read back from where the first pass left it (the residual output when fused).
fn put(j: u32, i: u32, scale: f32) {
#if RESIDUAL
    let s = {{S}}[j];
#else
    let s = x[j];
#endif
    var g = w[i];
    if (ADD_ONE) {
        g += 1.0;
    }
    {{Y}}[j] = s * scale * g;
}

#if CPU
const CWG: u32 = 8u;

// s[i] of the row at base (RESIDUAL: x + res, written to the residual stream {{S}}).
fn s_at(i: u32) -> f32 {
#if RESIDUAL
    let s = x[i] + res[i];
    {{S}}[i] = s;
    return s;
#else
    return x[i];
#endif
}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = (wid.x + wid.y * nwg.x) * CWG + lid;
    if (row >= arrayLength(&x) / DIM) {
        return;
    }
    let base = row * DIM;
    // Four interleaved partial sums (element i goes to lane i % 4): a quarter of the serial
    // rounding chain, and 4-wide SIMD arithmetic.
    var acc = vec4<f32>(0.0);
    let n4 = DIM / 4u * 4u;
    for (var i = 0u; i < n4; i += 4u) {
        let v = vec4<f32>(s_at(base + i), s_at(base + i + 1u), s_at(base + i + 2u),
                          s_at(base + i + 3u));
        acc += v * v;
    }
    for (var i = n4; i < DIM; i++) {
        let v = s_at(base + i);
        acc.x += v * v;
    }
    let ss = (acc.x + acc.y) + (acc.z + acc.w);
    let scale = inverseSqrt(ss / f32(DIM) + EPS);
    for (var i = 0u; i < DIM; i++) {
        put(base + i, i, scale);
    }
}
#else
#if REG
// REG (GPUs with subgroups; the decode path): the row lives in registers, NPT = ceil(DIM / WG)
// values per invocation (element lid + k * WG: coalesced), the weight is loaded in the same pass
// so that its latency overlaps x's, and the sum of squares is reduced by subgroupAdd plus one
// barrier and a read of the WG / subgroup_size partials: one global-memory round trip and one
// barrier per row instead of two round trips and log2(WG) barriers (9 us -> ~3 us for one
// 4096-wide row on an H100). Same result as the tree up to the order of the f32 additions.
const NPT: u32 = {{NPT}}u;
var<workgroup> partial: array<f32, 64>;  // one per subgroup (subgroup size >= 4, WG <= 256)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sgs: u32,
        @builtin(subgroup_invocation_id) sgi: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= arrayLength(&x) / DIM) {
        return;  // whole workgroup
    }
    let base = row * DIM;
    var sv: array<f32, NPT>;
    var gv: array<f32, NPT>;
    var ss = 0.0;
    for (var k = 0u; k < NPT; k++) {
        let i = lid + k * WG;
        if (i < DIM) {
#if RESIDUAL
            let v = x[base + i] + res[base + i];
            {{S}}[base + i] = v;
#else
            let v = x[base + i];
#endif
            sv[k] = v;
            gv[k] = w[i];
            ss += v * v;
        }
    }
    let t = subgroupAdd(ss);
    if (sgi == 0u) {
        partial[lid / sgs] = t;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var j = 0u; j < WG / sgs; j++) {
        total += partial[j];
    }
    let scale = inverseSqrt(total / f32(DIM) + EPS);
    for (var k = 0u; k < NPT; k++) {
        let i = lid + k * WG;
        if (i < DIM) {
            var g = gv[k];
            if (ADD_ONE) {
                g += 1.0;
            }
            {{Y}}[base + i] = sv[k] * scale * g;
        }
    }
}
#else
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
        put(base + i, i, scale);
    }
}
#endif
#endif
