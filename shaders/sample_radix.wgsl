// sample_radix.wgsl — workgroup-wide helpers of shaders/sample.wgsl (included there; it expects
// `params`, `adj`, WG = 256 and the private g_max / g_inv_t to be declared by the includer).
//
// order_key(z): f32 -> u32 whose unsigned order is the float order (sign bit flipped for z >= 0,
//   all bits flipped for z < 0; -0 is taken as +0).
// radix_select: exact k-th largest key (count mode) or top-p cut (mass mode) by 4 rounds of 8-bit
//   digits, most significant first. Each round is one pass over the V penalized logits building a
//   256-bin histogram in workgroup memory, then a scan over the bins picks the digit. Masses are
//   accumulated as 64-bit fixed point (w * 2^40 in a (hi, lo) u32 pair; w = exp((z - max) / T) is
//   in (0, 1]) so the sums are exact integers and do not depend on the order of the atomics:
//   the same logits always give the same cut (reproducible sampling). Weights below 2^-40 of the
//   top token count as 0 for the top-p cut only (at most V * 2^-40 of the mass).
// Each invocation first merges runs of equal digits in registers before one atomicAdd per run:
//   the first digit (sign + exponent bits) puts most logits in a handful of bins.

const NONE: u32 = 0xFFFFFFFFu;
const TWO_M40: f32 = 9.094947e-13;  // 2^-40

var<workgroup> h_cnt: array<atomic<u32>, 256>;
var<workgroup> h_lo: array<atomic<u32>, 256>;
var<workgroup> h_hi: array<atomic<u32>, 256>;
var<workgroup> sc_u: array<u32, 256>;
var<workgroup> sc_f: array<f32, 256>;
var<workgroup> pick_a: atomic<u32>;
var<workgroup> pick_b: atomic<u32>;
var<workgroup> pick_r: u32;

fn order_key(z: f32) -> u32 {
    var b = bitcast<u32>(z);
    if (b == 0x80000000u) {
        b = 0u;
    }
    return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}

fn key_value(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7FFFFFFFu, (k >> 31u) == 1u));
}

// Weight of a penalized logit relative to the top one: exp((z - max) / T), in (0, 1].
fn weight(z: f32) -> f32 {
    return exp((z - g_max) * g_inv_t);
}

// Inclusive prefix sums of sc_u and sc_f over the 256 positions (Kogge-Stone).
fn scan_inclusive(lid: u32) {
    for (var off = 1u; off < WG; off = off * 2u) {
        var u = 0u;
        var f = 0.0;
        if (lid >= off) {
            u = sc_u[lid - off];
            f = sc_f[lid - off];
        }
        workgroupBarrier();
        sc_u[lid] += u;
        sc_f[lid] += f;
        workgroupBarrier();
    }
}

// Lowest invocation with `ok`; if none, the highest with `nonempty` (0 if none either).
// The result is workgroup-uniform.
fn pick(lid: u32, ok: bool, nonempty: bool) -> u32 {
    if (lid == 0u) {
        atomicStore(&pick_a, NONE);
        atomicStore(&pick_b, 0u);
    }
    workgroupBarrier();
    if (ok) {
        atomicMin(&pick_a, lid);
    }
    if (nonempty) {
        atomicMax(&pick_b, lid + 1u);
    }
    workgroupBarrier();
    if (lid == 0u) {
        var r = atomicLoad(&pick_a);
        if (r == NONE) {
            r = max(atomicLoad(&pick_b), 1u) - 1u;
        }
        pick_r = r;
    }
    return workgroupUniformLoad(&pick_r);
}

fn flush(b: u32, c: u32, lo: u32, hi: u32) {
    if (c == 0u) {
        return;
    }
    atomicAdd(&h_cnt[b], c);
    if ((lo | hi) != 0u) {
        let old = atomicAdd(&h_lo[b], lo);
        atomicAdd(&h_hi[b], hi + select(0u, 1u, old + lo < old));
    }
}

// Histogram of digit (key >> shift) & 255 over keys >= floor whose bits above the digit equal
// `prefix`: counts, and fixed-point masses when use_mass.
fn histogram(lid: u32, use_mass: bool, shift: u32, hmask: u32, prefix: u32, floor: u32) {
    var cur = NONE;
    var c = 0u;
    var lo = 0u;
    var hi = 0u;
    for (var i = lid; i < params.vocab; i += WG) {
        let z = adj[i];
        let k = order_key(z);
        if (k < floor || (k & hmask) != prefix) {
            continue;
        }
        let b = (k >> shift) & 255u;
        if (b != cur) {
            flush(cur, c, lo, hi);
            cur = b;
            c = 0u;
            lo = 0u;
            hi = 0u;
        }
        c += 1u;
        if (use_mass) {
            let w = weight(z) * 256.0;            // w * 2^40 = wh * 2^32 + wl
            let wh = u32(w);
            let wl = u32((w - f32(wh)) * 4294967296.0);
            let nlo = lo + wl;
            hi += wh + select(0u, 1u, nlo < lo);
            lo = nlo;
        }
    }
    flush(cur, c, lo, hi);
}

// Count mode (use_mass false): the key t of the target_count-th largest key >= floor, so
//   count(key > t) < target_count <= count(key >= t)   (ties at t all counted, as HF's top-k).
// Mass mode: the key t with mass(key > t) < frac * total <= mass(key >= t) over keys >= floor
//   (the smallest prefix of the descending order whose mass reaches frac; ties at t kept).
// When the target exceeds the total, t is the smallest key >= floor (nothing is cut).
fn radix_select(lid: u32, use_mass: bool, target_count: u32, frac: f32, floor: u32) -> u32 {
    var prefix = 0u;
    var rem_c = target_count;
    var rem_m = 0.0;
    for (var level = 0u; level < 4u; level++) {
        let shift = 24u - 8u * level;
        let hmask = select(0xFFFFFFFFu << (shift + 8u), 0u, level == 0u);
        atomicStore(&h_cnt[lid], 0u);
        atomicStore(&h_lo[lid], 0u);
        atomicStore(&h_hi[lid], 0u);
        workgroupBarrier();
        histogram(lid, use_mass, shift, hmask, prefix, floor);
        workgroupBarrier();
        // Position p holds digit 255 - p: prefix sums over positions = suffix sums over digits.
        let d = 255u - lid;
        let cnt = atomicLoad(&h_cnt[d]);
        let mass = f32(atomicLoad(&h_hi[d])) * (1.0 / 256.0) + f32(atomicLoad(&h_lo[d])) * TWO_M40;
        sc_u[lid] = cnt;
        sc_f[lid] = mass;
        workgroupBarrier();
        scan_inclusive(lid);
        if (level == 0u) {
            rem_m = frac * sc_f[WG - 1u];
        }
        var ok = sc_u[lid] >= rem_c && cnt > 0u;
        if (use_mass) {
            ok = sc_f[lid] >= rem_m && mass > 0.0;
        }
        let p = pick(lid, ok, cnt > 0u);
        if (p > 0u) {
            rem_c -= sc_u[p - 1u];
            rem_m -= sc_f[p - 1u];
        }
        prefix |= (255u - p) << shift;
    }
    return max(prefix, floor);
}
