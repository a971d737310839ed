// Dropout from a counter-based generator: element i of step t is kept when the first word of
// Philox4x32-10(counter = (i, t, 0, 0), key = seed) maps to u ∈ [0, 1) with u ≥ p, and kept
// elements are scaled by 1/(1 − p). The mask is a function of (seed, step, element): nothing is
// stored or uploaded per step, the backward recomputes the forward's mask, and a resumed run
// draws the same masks. One entry point serves both directions: y = x · m / (1 − p) forward,
// dx = dy · m / (1 − p) backward, from the same mask.

struct Params {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    p: f32,       // the drop probability
    scale: f32,   // 1 / (1 − p)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> step: array<u32>; // [t]
// x and y four at a time (dropout4).
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y4: array<vec4<f32>>;

// The high and low words of a · b.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let low = a0 * b0;
    let mid1 = a1 * b0;
    let mid2 = a0 * b1;
    let carry = ((low >> 16u) + (mid1 & 0xffffu) + (mid2 & 0xffffu)) >> 16u;
    let high = a1 * b1 + (mid1 >> 16u) + (mid2 >> 16u) + carry;
    return vec2(high, a * b);
}

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mul_hi_lo(0xD2511F53u, c.x);
        let p1 = mul_hi_lo(0xCD9E8D57u, c.z);
        c = vec4(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k += vec2(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// The kept element's factor: 1/(1 − p) where element i is kept this step, else 0.
fn factor(i: u32) -> f32 {
    let bits = philox(vec4(i, step[0], 0u, 0u), vec2(p.seed_lo, p.seed_hi)).x;
    let u = f32(bits >> 8u) * (1.0 / 16777216.0);
    return select(0.0, p.scale, u >= p.p);
}

fn linear_index(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn dropout(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    if i < p.len {
        let f = factor(i);
        // select, not a product: a dropped infinity or NaN stays out.
        y[i] = select(0.0, x[i] * f, f != 0.0);
    }
}

// dropout for a length that is a multiple of 4: four elements per invocation, one vec4 load and
// store.
@compute @workgroup_size(256)
fn dropout4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = linear_index(wg, groups, lid);
    if j < p.len / 4u {
        let i = 4u * j;
        let f = vec4(factor(i), factor(i + 1u), factor(i + 2u), factor(i + 3u));
        y4[j] = select(vec4(0.0), x4[j] * f, f != vec4(0.0));
    }
}
