//! Plain CPU versions of every kernel, in f64 where it matters: the oracle for tests.
//!
//! Written for clarity, not speed; each mirrors one kernel's documented semantics.

use crate::kernels::cross_entropy::Reduction;
use crate::kernels::optim::AdamConfig;

/// C = op(A)·op(B) (+bias) (+ReLU) with the shapes of [`crate::kernels::matmul`].
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for kk in 0..k {
                let av = if trans_a {
                    a[kk * m + i]
                } else {
                    a[i * k + kk]
                };
                let bv = if trans_b {
                    b[j * k + kk]
                } else {
                    b[kk * n + j]
                };
                s += f64::from(av) * f64::from(bv);
            }
            if let Some(bias) = bias {
                s += f64::from(bias[j]);
            }
            c[i * n + j] = if relu { s.max(0.0) } else { s } as f32;
        }
    }
    c
}

/// max(x, 0).
pub fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

/// dy · [y > 0].
pub fn relu_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    y.iter()
        .zip(dy)
        .map(|(&y, &d)| if y > 0.0 { d } else { 0.0 })
        .collect()
}

/// Σ over rows of a rows×cols matrix.
pub fn column_sum(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .map(|j| (0..rows).map(|i| f64::from(x[i * cols + j])).sum::<f64>() as f32)
        .collect()
}

/// Index of the first largest element of each row.
pub fn argmax(x: &[f32], cols: usize) -> Vec<u32> {
    x.chunks(cols)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// Cross-entropy with class-index targets (PyTorch semantics, REFERENCE.md): the reduced loss
/// (per row for `None`) and its gradient w.r.t. the logits.
pub fn cross_entropy(
    logits: &[f32],
    targets: &[i32],
    classes: usize,
    weight: Option<&[f32]>,
    ignore_index: i32,
    reduction: Reduction,
) -> (Vec<f32>, Vec<f32>) {
    let w = |c: usize| weight.map_or(1.0, |w| f64::from(w[c]));
    let mut losses = vec![0.0f64; targets.len()];
    let mut grad = vec![0.0f64; logits.len()];
    let mut denom = 0.0f64;
    for (i, &t) in targets.iter().enumerate() {
        if t == ignore_index {
            continue;
        }
        let t = t as usize;
        let row = &logits[i * classes..(i + 1) * classes];
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let lse = max
            + row
                .iter()
                .map(|&v| (f64::from(v) - max).exp())
                .sum::<f64>()
                .ln();
        losses[i] = -w(t) * (f64::from(row[t]) - lse);
        denom += w(t);
        for c in 0..classes {
            let p = (f64::from(row[c]) - lse).exp();
            grad[i * classes + c] = w(t) * (p - if c == t { 1.0 } else { 0.0 });
        }
    }
    let (loss, scale) = match reduction {
        Reduction::None => (losses.clone(), 1.0),
        Reduction::Sum => (vec![losses.iter().sum()], 1.0),
        Reduction::Mean => (
            vec![losses.iter().sum::<f64>() / denom],
            if denom == 0.0 { 0.0 } else { 1.0 / denom },
        ),
    };
    (
        loss.iter().map(|&v| v as f32).collect(),
        grad.iter().map(|&g| (g * scale) as f32).collect(),
    )
}

/// Moments of one parameter vector, as Adam keeps them.
#[derive(Clone, Debug, Default)]
pub struct AdamMoments {
    /// Steps taken.
    pub step: u32,
    /// First moment.
    pub m: Vec<f64>,
    /// Second moment.
    pub v: Vec<f64>,
    /// Running maximum of v.
    pub v_max: Vec<f64>,
}

/// One Adam / AdamW step on `param` in f64, as `torch.optim` computes it.
pub fn adam_step(config: &AdamConfig, param: &mut [f64], grad: &[f64], state: &mut AdamMoments) {
    let n = param.len();
    if state.m.len() != n {
        *state = AdamMoments {
            step: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
            v_max: vec![0.0; n],
        };
    }
    state.step += 1;
    let t = f64::from(state.step);
    let (lr, wd) = (f64::from(config.lr), f64::from(config.weight_decay));
    let (b1, b2) = (f64::from(config.betas.0), f64::from(config.betas.1));
    for i in 0..n {
        let mut g = if config.maximize { -grad[i] } else { grad[i] };
        if config.decoupled {
            param[i] *= 1.0 - lr * wd;
        } else {
            g += wd * param[i];
        }
        state.m[i] += (1.0 - b1) * (g - state.m[i]);
        state.v[i] = b2 * state.v[i] + (1.0 - b2) * g * g;
        let mut v_hat = state.v[i];
        if config.amsgrad {
            state.v_max[i] = state.v_max[i].max(v_hat);
            v_hat = state.v_max[i];
        }
        let denom = v_hat.sqrt() / (1.0 - b2.powf(t)).sqrt() + f64::from(config.eps);
        param[i] -= lr / (1.0 - b1.powf(t)) * state.m[i] / denom;
    }
}
