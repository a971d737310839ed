// Optimizers over one flat parameter buffer, as torch.optim computes them (REFERENCE.md).
// The step count lives on the GPU: a kernel uses t = step[0] + 1, and the caller advances
// step[0] after it.

struct Params {
    len: u32,
    flags: u32, // adam: bit 0 AdamW (decoupled decay), bit 1 amsgrad; sgd: bit 0 nesterov;
                // both: bit 2 maximize
    lr: f32,
    weight_decay: f32,
    beta1: f32,     // adam
    beta2: f32,     // adam
    eps: f32,       // adam
    momentum: f32,  // sgd
    dampening: f32, // sgd
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

fn element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

// The gradient, negated when maximizing.
fn signed_grad(i: u32) -> f32 {
    return select(grad[i], -grad[i], (p.flags & MAXIMIZE) != 0u);
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
    let t = f32(step[0] + 1u);
    var g = signed_grad(i);
    var w = param[i];
    if (p.flags & DECOUPLED) != 0u {
        w *= 1.0 - p.lr * p.weight_decay;
    } else if p.weight_decay != 0.0 {
        g += p.weight_decay * w;
    }
    let m_new = m[i] + (1.0 - p.beta1) * (g - m[i]);
    let v_new = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = m_new;
    v[i] = v_new;
    var v_hat = v_new;
    if (p.flags & AMSGRAD) != 0u {
        v_hat = max(v_max[i], v_new);
        v_max[i] = v_hat;
    }
    let bc1 = 1.0 - pow(p.beta1, t);
    let bc2 = 1.0 - pow(p.beta2, t);
    let denom = sqrt(v_hat) / sqrt(bc2) + p.eps;
    param[i] = w - (p.lr / bc1) * m_new / denom;
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
            buf = p.momentum * m[i] + (1.0 - p.dampening) * g;
        }
        m[i] = buf;
        g = select(buf, g + p.momentum * buf, (p.flags & NESTEROV) != 0u);
    }
    param[i] = w - p.lr * g;
}
