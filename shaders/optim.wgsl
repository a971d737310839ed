// Optimizers over one flat parameter buffer, as torch.optim computes them (docs/semantics.md).
// The step count lives on the GPU. Adam runs as two dispatches: adam_prepare (one invocation)
// advances the count to t, with any other counters of the step (counter.wgsl, which the host
// appends), and writes the step's factors, lr/(1 − β1ᵗ) and √(1 − β2ᵗ); adam applies them to
// every element. SGD and Adadelta read the count before the host's advance dispatch moves it.
//
// PyTorch forms its scalar factors (1 − β, 1 − βᵗ, 1 − lr·wd, …) in double precision and rounds
// each to f32 once; the host does the same for the constant ones, and the kernel computes
// 1 − βᵗ as −expm1(t·ln β) so that it keeps full f32 precision when βᵗ is close to 1.
//
// adam updates four elements per invocation (vec4 loads cost a CPU adapter little more than
// scalar ones; adam_wide, in optim_wide.wgsl, updates eight where 64-bit integers allow), and
// adam_tail the rest. All flush subnormal moments to zero: a moment that small moves no f32
// weight, and subnormal arithmetic runs many times slower on CPUs.

// Adam keeps v_max (AMSGrad); fixed per pipeline so that plain Adam never touches it.
override AMSGRAD: bool = false;

struct Params {
    len: u32,
    flags: u32,  // adam: bit 0 AdamW (decoupled decay), bit 1 amsgrad; sgd: bit 0 nesterov;
                 // all: bit 2 maximize
    weight_decay: f32,
    beta2: f32,  // adam
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    ln_beta1: f32,
    ln_beta2: f32,
    eps: f32,
    momentum: f32,
    one_minus_dampening: f32, // sgd
    rho: f32,                 // adadelta
    one_minus_rho: f32,
}

const DECOUPLED: u32 = 1u;
const NESTEROV: u32 = 1u;
const MAXIMIZE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: array<u32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;     // adam: first moment; sgd: momentum buffer; adadelta: square average
@group(0) @binding(5) var<storage, read_write> v: array<f32>;     // adam: second moment; adadelta: accumulated delta
@group(0) @binding(6) var<storage, read_write> v_max: array<f32>; // adam with amsgrad
// The same buffers four elements at a time (adam).
@group(0) @binding(2) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> v4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> v_max4: array<vec4<f32>>;
// adam_prepare, which counts through counter.wgsl's counter0 (the step count) and the others
@group(0) @binding(8) var<storage, read_write> factors_out: array<f32>; // [step size, √(1 − β2ᵗ), lr]
// Every update: [(step size, √(1 − β2ᵗ)), (lr, AdamW's 1 − lr·wd)]. The second pair is the host's,
// written when the dispatch is made and again by a learning-rate schedule between steps.
@group(0) @binding(9) var<storage, read> factors: array<vec2<f32>>;

fn element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

// The gradient, negated when maximizing.
fn signed_grad(i: u32) -> f32 {
    return select(grad[i], -grad[i], (p.flags & MAXIMIZE) != 0u);
}

// The gradient with the L2 penalty folded in (SGD, Adadelta): signed_grad + wd·w.
fn penalized_grad(i: u32, w: f32) -> f32 {
    let g = signed_grad(i);
    return select(g, g + p.weight_decay * w, p.weight_decay != 0.0);
}

@compute @workgroup_size(1)
fn adam_prepare() {
    let t = f32(counter0[0] + 1u);
    advance_counters();
    factors_out[0] = factors_out[2] / one_minus_power(p.ln_beta1, t);
    factors_out[1] = sqrt(one_minus_power(p.ln_beta2, t));
}

// Adam's moments and parameters for up to four elements.
struct AdamState {
    w: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
    v_max: vec4<f32>,
}

const MIN_NORMAL: f32 = 1.17549435e-38;

fn flush_subnormal(x: vec4<f32>) -> vec4<f32> {
    return select(x, vec4(0.0), abs(x) < vec4(MIN_NORMAL));
}

// f: the step's factors, [step size, √(1 − β2ᵗ)]; decay: AdamW's 1 − lr·wd.
fn adam_update(grad: vec4<f32>, s: AdamState, f: vec2<f32>, decay: f32) -> AdamState {
    var g = select(grad, -grad, (p.flags & MAXIMIZE) != 0u);
    var out = s;
    if (p.flags & DECOUPLED) != 0u {
        out.w *= decay;
    } else if p.weight_decay != 0.0 {
        g += p.weight_decay * s.w;
    }
    out.m = flush_subnormal(s.m + p.one_minus_beta1 * (g - s.m));
    out.v = flush_subnormal(p.beta2 * s.v + p.one_minus_beta2 * (g * g));
    var v_hat = out.v;
    if AMSGRAD {
        out.v_max = max(s.v_max, out.v);
        v_hat = out.v_max;
    }
    let denom = sqrt(v_hat) / f.y + p.eps;
    out.w -= f.x * (out.m / denom);
    return out;
}

// Elements 4i..4i+3 for i < len / 4.
@compute @workgroup_size(256)
fn adam(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Before any branch: one load for all lanes on CPU adapters.
    let f = factors[0];
    let decay = factors[1].y;
    let i = element(wg, groups, lid);
    if i >= p.len / 4u {
        return;
    }
    var s = AdamState(param4[i], m4[i], v4[i], vec4(0.0));
    if AMSGRAD {
        s.v_max = v_max4[i];
    }
    s = adam_update(grad4[i], s, f, decay);
    param4[i] = s.w;
    m4[i] = s.m;
    v4[i] = s.v;
    if AMSGRAD {
        v_max4[i] = s.v_max;
    }
}

// Elements adam's wider invocations left: the last len % TAIL_WIDTH, one per invocation.
override TAIL_WIDTH: u32 = 4u;

@compute @workgroup_size(8)
fn adam_tail(@builtin(local_invocation_index) lid: u32) {
    let f = factors[0];
    let decay = factors[1].y;
    let i = p.len / TAIL_WIDTH * TAIL_WIDTH + lid;
    if i >= p.len {
        return;
    }
    var s = AdamState(vec4(param[i]), vec4(m[i]), vec4(v[i]), vec4(0.0));
    if AMSGRAD {
        s.v_max = vec4(v_max[i]);
    }
    s = adam_update(vec4(grad[i]), s, f, decay);
    param[i] = s.w.x;
    m[i] = s.m.x;
    v[i] = s.v.x;
    if AMSGRAD {
        v_max[i] = s.v_max.x;
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

// torch.optim.SGD: g += wd·p; with momentum, buf = g on the first step, else
// momentum·buf + (1 − dampening)·g, and g = nesterov ? g + momentum·buf : buf; p -= lr·g.
@compute @workgroup_size(256)
fn sgd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wg, groups, lid);
    if i >= p.len {
        return;
    }
    let w = param[i];
    var g = penalized_grad(i, w);
    if p.momentum != 0.0 {
        var buf = g;
        if step[0] != 0u {
            buf = p.momentum * m[i] + p.one_minus_dampening * g;
        }
        m[i] = buf;
        g = select(buf, g + p.momentum * buf, (p.flags & NESTEROV) != 0u);
    }
    param[i] = w - factors[1].x * g;
}

// Adadelta, as torch.optim.Adadelta: a running average of squared gradients (square_avg, in m)
// and of squared updates (acc_delta, in v) scale each step.
struct AdadeltaState {
    w: vec4<f32>,
    square_avg: vec4<f32>,
    acc_delta: vec4<f32>,
}

// One Adadelta step of four elements with learning rate `lr`.
fn adadelta_update(grad: vec4<f32>, s: AdadeltaState, lr: f32) -> AdadeltaState {
    var g = select(grad, -grad, (p.flags & MAXIMIZE) != 0u);
    g = select(g, g + p.weight_decay * s.w, p.weight_decay != 0.0);
    let square_avg = s.square_avg * p.rho + p.one_minus_rho * g * g;
    let delta = sqrt(s.acc_delta + p.eps) / sqrt(square_avg + p.eps) * g;
    let acc_delta = s.acc_delta * p.rho + p.one_minus_rho * delta * delta;
    return AdadeltaState(s.w - lr * delta, square_avg, acc_delta);
}

// Element i alone.
fn adadelta_one(i: u32) {
    let s = adadelta_update(vec4(grad[i]), AdadeltaState(vec4(param[i]), vec4(m[i]), vec4(v[i])), factors[1].x);
    param[i] = s.w.x;
    m[i] = s.square_avg.x;
    v[i] = s.acc_delta.x;
}

@compute @workgroup_size(256)
fn adadelta(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wg, groups, lid);
    if i < p.len {
        adadelta_one(i);
    }
}

// The elements past the last whole group of TAIL_WIDTH that adadelta_wide updates.
@compute @workgroup_size(8)
fn adadelta_tail(@builtin(local_invocation_index) lid: u32) {
    let i = p.len / TAIL_WIDTH * TAIL_WIDTH + lid;
    if i < p.len {
        adadelta_one(i);
    }
}
