// matmul.wgsl — dense f32 matrix product, tiled through workgroup memory.
//
//   C (M, N) = A (M, K) @ B (K, N)          all row-major f32
//
// Bindings (group 0):
//   0  a      : array<f32>   (M, K)
//   1  b      : array<f32>   (K, N)
//   2  c      : array<f32>   (M, N)   written
//   3  params : Params       {M, N, K} as u32
// Workgroup: TILE x TILE invocations (TILE is an override constant, default 16; 16*16 = 256 is
// the invocation limit that every adapter grants). Dispatch: (ceil(N/TILE), ceil(M/TILE)).
// Each workgroup stages one TILE x TILE block of A and of B per step along K; out-of-range
// elements are loaded as 0 so any M, N, K works.

override TILE: u32 = 16u;

struct Params { M: u32, N: u32, K: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const MAX_TILE: u32 = 16u;
var<workgroup> tile_a: array<f32, 256>;  // MAX_TILE * MAX_TILE
var<workgroup> tile_b: array<f32, 256>;

@compute @workgroup_size(TILE, TILE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y;
    let col = wg.x * TILE + lid.x;
    var acc = 0.0;
    let steps = (params.K + TILE - 1u) / TILE;
    for (var t = 0u; t < steps; t++) {
        let ka = t * TILE + lid.x;
        let kb = t * TILE + lid.y;
        tile_a[lid.y * TILE + lid.x] = select(0.0, a[row * params.K + ka], row < params.M && ka < params.K);
        tile_b[lid.y * TILE + lid.x] = select(0.0, b[kb * params.N + col], kb < params.K && col < params.N);
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += tile_a[lid.y * TILE + k] * tile_b[k * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (row < params.M && col < params.N) {
        c[row * params.N + col] = acc;
    }
}
