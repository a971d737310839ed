// Optimizers over one flat parameter buffer, as torch.optim computes them (REFERENCE.md).
// The step count lives on the GPU. Adam runs as two dispatches: adam_prepare (one invocation)
// advances the count to t and writes the step's factors, lr/(1 − β1ᵗ) and √(1 − β2ᵗ), and adam
// applies them to every element. SGD reads the count before the caller advances it.
//
// PyTorch forms its scalar factors (1 − β, 1 − βᵗ, 1 − lr·wd, …) in double precision and rounds
// each to f32 once; the host does the same for the constant ones, and the kernel computes
// 1 − βᵗ as −expm1(t·ln β) so that it keeps full f32 precision when βᵗ is close to 1.

struct Params {
    len: u32,
    flags: u32,  // adam: bit 0 AdamW (decoupled decay), bit 1 amsgrad; sgd: bit 0 nesterov;
                 // both: bit 2 maximize
    lr: f32,
    weight_decay: f32,
    decay: f32,  // AdamW: 1 − lr·wd
    beta2: f32,  // adam
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    ln_beta1: f32,
    ln_beta2: f32,
    eps: f32,
    momentum: f32,
    one_minus_dampening: f32, // sgd
}

const DECOUPLED: u32 = 1u;
const AMSGRAD: u32 = 2u;
const NESTEROV: u32 = 1u;
const MAXIMIZE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: array<u32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;     // adam: first moment; sgd: momentum buffer
@group(0) @binding(5) var<storage, read_write> v: array<f32>;     // adam: second moment
@group(0) @binding(6) var<storage, read_write> v_max: array<f32>; // adam with amsgrad
// adam_prepare
@group(0) @binding(7) var<storage, read_write> step_count: array<u32>;
@group(0) @binding(8) var<storage, read_write> factors_out: array<f32>; // [step size, √(1 − β2ᵗ)]
// adam
@group(0) @binding(9) var<storage, read> factors: array<f32>;

fn element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

// The gradient, negated when maximizing.
fn signed_grad(i: u32) -> f32 {
    return select(grad[i], -grad[i], (p.flags & MAXIMIZE) != 0u);
}

@compute @workgroup_size(1)
fn adam_prepare() {
    let step = step_count[0] + 1u;
    step_count[0] = step;
    let t = f32(step);
    factors_out[0] = p.lr / one_minus_power(p.ln_beta1, t);
    factors_out[1] = sqrt(one_minus_power(p.ln_beta2, t));
}

@compute @workgroup_size(256)
fn adam(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wg, groups, lid);
    if i >= p.len {
        return;
    }
    var g = signed_grad(i);
    var w = param[i];
    if (p.flags & DECOUPLED) != 0u {
        w *= p.decay;
    } else if p.weight_decay != 0.0 {
        g += p.weight_decay * w;
    }
    let m_new = m[i] + p.one_minus_beta1 * (g - m[i]);
    let v_new = p.beta2 * v[i] + p.one_minus_beta2 * (g * g);
    m[i] = m_new;
    v[i] = v_new;
    var v_hat = v_new;
    if (p.flags & AMSGRAD) != 0u {
        v_hat = max(v_max[i], v_new);
        v_max[i] = v_hat;
    }
    let denom = sqrt(v_hat) / factors[1] + p.eps;
    param[i] = w - factors[0] * (m_new / denom);
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
    var g = signed_grad(i);
    let w = param[i];
    if p.weight_decay != 0.0 {
        g += p.weight_decay * w;
    }
    if p.momentum != 0.0 {
        var buf = g;
        if step[0] != 0u {
            buf = p.momentum * m[i] + p.one_minus_dampening * g;
        }
        m[i] = buf;
        g = select(buf, g + p.momentum * buf, (p.flags & NESTEROV) != 0u);
    }
    param[i] = w - p.lr * g;
}
