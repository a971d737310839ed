// Optimizers over one flat parameter buffer, as torch.optim computes them (docs/semantics.md).
// The step count t lives on the GPU and counts the step being taken: a dispatch before the
// update advances it (counter.wgsl's `advance`, or the first kernel of a training step), and
// for Adam also forms the step's factors, lr/(1 − β1ᵗ) and √(1 − β2ᵗ), which adam applies to
// every element. An update's last dispatch may advance further counters of the step (a batch
// cursor) through counter.wgsl, which the host appends, from one invocation.
//
// PyTorch forms its scalar factors (1 − β, 1 − βᵗ, 1 − lr·wd, …) in double precision and rounds
// each to f32 once; the host does the same for the constant ones, and counter.wgsl computes
// 1 − βᵗ so that it keeps full f32 precision when βᵗ is close to 1.
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
// Every update: [(lr, AdamW's 1 − lr·wd), (ln β1, ln β2), (step size, √(1 − β2ᵗ)), (0, 0)], the
// host's (written when the dispatch is made, the rate again by a learning-rate schedule between
// steps), then Adam's of the step, formed where its count advances (counter.wgsl).
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
    let f = factors[2];
    let decay = factors[0].y;
    let i = element(wg, groups, lid);
    advance_counter_once(wg, lid);
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
    let f = factors[2];
    let decay = factors[0].y;
    let i = p.len / TAIL_WIDTH * TAIL_WIDTH + lid;
    if lid == 0u {
        advance_counter();
    }
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

// torch.optim.SGD: g += wd·p; with momentum, buf = g on the first step, else
// momentum·buf + (1 − dampening)·g, and g = nesterov ? g + momentum·buf : buf; p -= lr·g.
@compute @workgroup_size(256)
fn sgd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wg, groups, lid);
    advance_counter_once(wg, lid);
    if i >= p.len {
        return;
    }
    let w = param[i];
    var g = penalized_grad(i, w);
    if p.momentum != 0.0 {
        var buf = g;
        if step[0] > 1u {
            buf = p.momentum * m[i] + p.one_minus_dampening * g;
        }
        m[i] = buf;
        g = select(buf, g + p.momentum * buf, (p.flags & NESTEROV) != 0u);
    }
    param[i] = w - factors[0].x * g;
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
    let s = adadelta_update(vec4(grad[i]), AdadeltaState(vec4(param[i]), vec4(m[i]), vec4(v[i])), factors[0].x);
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
    advance_counter_once(wg, lid);
    if i < p.len {
        adadelta_one(i);
    }
}

// The elements past the last whole group of TAIL_WIDTH that adadelta_wide updates.
@compute @workgroup_size(8)
fn adadelta_tail(@builtin(local_invocation_index) lid: u32) {
    let i = p.len / TAIL_WIDTH * TAIL_WIDTH + lid;
    if lid == 0u {
        advance_counter();
    }
    if i < p.len {
        adadelta_one(i);
    }
}
