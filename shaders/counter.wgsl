// A step counter kept on the GPU (a batch cursor, an optimizer's step count), advanced by a
// dispatch of the step rather than by a round trip to the host: `advance` on its own, or any
// kernel compiled with this file after its own, which calls advance_counter() from one
// invocation (advance_counter_once: the dispatch's first). Nothing else in that dispatch may
// read what it advances.
//
// With ADAM_FACTORS the counter is an Adam step count t, and the same invocation then forms
// that step's factors, [lr/(1 − β1ᵗ), √(1 − β2ᵗ)], from the host's [lr, 1 − lr·wd, ln β1,
// ln β2]. CPU adapters run this code under a lane mask in every subgroup of the dispatch, so it
// takes few storage accesses: one atomic add, one load, one store. A kernel that advances
// nothing (COUNTING false) has both places bound to a spare buffer, never touched.
//
// PyTorch forms 1 − βᵗ in double precision and rounds it to f32 once; −expm1(t·ln β) keeps full
// f32 precision when βᵗ is close to 1.

override COUNTING: bool = true;
override ADAM_FACTORS: bool = false;

// An optimizer's factors (kernels::optim::FACTORS): the host's, then the step's.
struct Factors {
    host: vec4<f32>,
    step: vec4<f32>,
}

@group(0) @binding(11) var<storage, read_write> adam_factors: Factors;
@group(0) @binding(12) var<storage, read_write> counter: array<atomic<u32>>;

fn advance_counter() {
    if !COUNTING {
        return;
    }
    let t = f32(atomicAdd(&counter[0], 1u) + 1u);
    if ADAM_FACTORS {
        let host = adam_factors.host;
        let step_size = host.x / one_minus_power(host.z, t);
        adam_factors.step = vec4(step_size, sqrt(one_minus_power(host.w, t)), 0.0, 0.0);
    }
}

// advance_counter() from the first invocation of the first workgroup.
fn advance_counter_once(wg: vec3<u32>, lid: u32) {
    if lid == 0u && all(wg == vec3(0u)) {
        advance_counter();
    }
}

// 1 − βᵗ = −expm1(t·ln β), accurate to a few ulps for every t ≥ 1.
fn one_minus_power(ln_beta: f32, t: f32) -> f32 {
    let x = t * ln_beta;
    if x < -0.5 {
        return 1.0 - exp(x);
    }
    // expm1(x) = x(1 + x/2(1 + x/3(1 + …))) for |x| ≤ 0.5: 12 terms reach f32 precision.
    var s = 1.0;
    for (var k = 12.0; k >= 2.0; k -= 1.0) {
        s = 1.0 + x / k * s;
    }
    return -x * s;
}

@compute @workgroup_size(1)
fn advance() {
    advance_counter();
}
