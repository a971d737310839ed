//! Plain CPU versions of every kernel, in f64 where it matters: the oracle for tests.
//!
//! Written for clarity, not speed; each mirrors one kernel's documented semantics.

use crate::kernels::cross_entropy::Reduction;
use crate::kernels::optim::{AdamConfig, SgdConfig};

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

/// `dy · [y > 0]`.
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

/// Targets for [`cross_entropy`].
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per element (N·D).
    Classes(&'a [i32]),
    /// Probabilities, laid out like the input (N × C × D).
    Probabilities(&'a [f32]),
}

/// Cross-entropy as PyTorch defines it (docs/semantics.md), on an input laid out N × C × D: the
/// reduced loss (per element for `None`) and its gradient w.r.t. the input.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy(
    logits: &[f32],
    targets: Targets,
    classes: usize,
    inner: usize,
    weight: Option<&[f32]>,
    ignore_index: i32,
    reduction: Reduction,
    smoothing: f32,
) -> (Vec<f32>, Vec<f32>) {
    let eps = f64::from(smoothing);
    let cf = classes as f64;
    let w = |c: usize| weight.map_or(1.0, |w| f64::from(w[c]));
    let weight_sum: f64 = (0..classes).map(w).sum();
    let rows = logits.len() / classes.max(1);
    let at = |r: usize, c: usize| (r / inner) * classes * inner + r % inner + c * inner;
    let mut losses = vec![0.0f64; rows];
    // Gradients before the reduction's scale.
    let mut grad = vec![0.0f64; logits.len()];
    let mut denom = 0.0f64;
    for (r, loss) in losses.iter_mut().enumerate() {
        let x = |c: usize| f64::from(logits[at(r, c)]);
        let max = (0..classes).map(x).fold(f64::NEG_INFINITY, f64::max);
        let log_sum = (0..classes).map(|c| (x(c) - max).exp()).sum::<f64>().ln();
        let log_p = |c: usize| (x(c) - max) - log_sum;
        match targets {
            Targets::Classes(t) => {
                if t[r] == ignore_index {
                    continue;
                }
                let y = t[r] as usize;
                denom += w(y);
                let smooth: f64 = -(0..classes).map(|c| w(c) * log_p(c)).sum::<f64>();
                *loss = (1.0 - eps) * -w(y) * log_p(y) + eps / cf * smooth;
                for c in 0..classes {
                    let p = log_p(c).exp();
                    let hard = w(y) * (p - if c == y { 1.0 } else { 0.0 });
                    grad[at(r, c)] = (1.0 - eps) * hard + eps / cf * (p * weight_sum - w(c));
                }
            }
            Targets::Probabilities(t) => {
                denom += 1.0;
                let y = |c: usize| f64::from(t[at(r, c)]) * (1.0 - eps) + eps / cf;
                *loss = -(0..classes).map(|c| w(c) * y(c) * log_p(c)).sum::<f64>();
                let wy: f64 = (0..classes).map(|c| w(c) * y(c)).sum();
                for c in 0..classes {
                    grad[at(r, c)] = log_p(c).exp() * wy - w(c) * y(c);
                }
            }
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

/// One SGD step on `param` in f64, as `torch.optim.SGD` computes it; `momentum_buffer` starts
/// empty.
pub fn sgd_step(
    config: &SgdConfig,
    param: &mut [f64],
    grad: &[f64],
    momentum_buffer: &mut Vec<f64>,
) {
    let (lr, wd) = (f64::from(config.lr), f64::from(config.weight_decay));
    let (mu, damp) = (f64::from(config.momentum), f64::from(config.dampening));
    let first = momentum_buffer.is_empty();
    momentum_buffer.resize(param.len(), 0.0);
    for i in 0..param.len() {
        let mut g = if config.maximize { -grad[i] } else { grad[i] };
        g += wd * param[i];
        if mu != 0.0 {
            let b = &mut momentum_buffer[i];
            *b = if first { g } else { mu * *b + (1.0 - damp) * g };
            g = if config.nesterov { g + mu * *b } else { *b };
        }
        param[i] -= lr * g;
    }
}

/// `cross_entropy(x·Wᵀ + b, targets)` with class targets, as [`crate::kernels::linear_cross_entropy`]
/// computes it, in f64 and one row of logits at a time (so it runs at any number of classes).
#[derive(Clone, Copy, Debug)]
pub struct LinearCrossEntropy<'a> {
    /// Inputs, N × D.
    pub x: &'a [f32],
    /// The Linear layer's weight, V × D.
    pub weight: &'a [f32],
    /// Its bias (V), if any.
    pub bias: Option<&'a [f32]>,
    /// Class targets (N).
    pub targets: &'a [i32],
    /// Features per row (D).
    pub features: usize,
    /// Per-class weights (V), if any.
    pub class_weight: Option<&'a [f32]>,
    /// The target that contributes nothing.
    pub ignore_index: i32,
    /// How per-row losses are combined.
    pub reduction: Reduction,
    /// Label smoothing ε.
    pub smoothing: f32,
}

/// What [`LinearCrossEntropy::run`] returns, in f64.
#[derive(Clone, Debug, Default)]
pub struct LinearCrossEntropyResult {
    /// The reduced loss, or one per row for `Reduction::None`.
    pub loss: Vec<f64>,
    /// d(loss)/dx, N × D (empty without gradients).
    pub dx: Vec<f64>,
    /// d(loss)/dW, V × D (empty without gradients).
    pub dweight: Vec<f64>,
    /// d(loss)/db, V (empty without gradients).
    pub dbias: Vec<f64>,
}

impl LinearCrossEntropy<'_> {
    /// Classes (V).
    pub fn classes(&self) -> usize {
        self.weight.len() / self.features
    }

    fn class_weight(&self, c: usize) -> f64 {
        self.class_weight.map_or(1.0, |w| f64::from(w[c]))
    }

    fn counts(&self, t: i32) -> bool {
        t != self.ignore_index && t >= 0 && (t as usize) < self.classes()
    }

    /// Row r's logits z = x_r·Wᵀ + b.
    pub fn logits(&self, r: usize) -> Vec<f64> {
        let d = self.features;
        let x = &self.x[r * d..(r + 1) * d];
        (0..self.classes())
            .map(|c| {
                let w = &self.weight[c * d..(c + 1) * d];
                let dot: f64 = x
                    .iter()
                    .zip(w)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                dot + self.bias.map_or(0.0, |b| f64::from(b[c]))
            })
            .collect()
    }

    /// The gradient's scale (1/denominator for mean, 0 when that is 0; else 1) and the mean's
    /// denominator Σ w_y over the rows that count.
    pub fn scale(&self) -> (f64, f64) {
        let denom: f64 = (self.targets.iter())
            .filter(|&&t| self.counts(t))
            .map(|&t| self.class_weight(t as usize))
            .sum();
        match self.reduction {
            Reduction::Mean if denom == 0.0 => (0.0, denom),
            Reduction::Mean => (1.0 / denom, denom),
            _ => (1.0, denom),
        }
    }

    /// Row r's loss and d(loss)/dz (before the reduction's scale) from its logits.
    pub fn row(&self, r: usize, z: &[f64]) -> (f64, Vec<f64>) {
        let t = self.targets[r];
        if !self.counts(t) {
            return (0.0, vec![0.0; z.len()]);
        }
        let (y, eps, v) = (t as usize, f64::from(self.smoothing), z.len() as f64);
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = z.iter().map(|&zc| (zc - max).exp()).sum::<f64>().ln();
        let log_p = |c: usize| (z[c] - max) - log_sum;
        let weight_sum: f64 = (0..z.len()).map(|c| self.class_weight(c)).sum();
        let w_y = self.class_weight(y);
        let smooth: f64 = -(0..z.len())
            .map(|c| self.class_weight(c) * log_p(c))
            .sum::<f64>();
        let loss = (1.0 - eps) * -w_y * log_p(y) + eps / v * smooth;
        let dz = (0..z.len())
            .map(|c| {
                let p = log_p(c).exp();
                let hard = w_y * (p - if c == y { 1.0 } else { 0.0 });
                (1.0 - eps) * hard + eps / v * (p * weight_sum - self.class_weight(c))
            })
            .collect();
        (loss, dz)
    }

    /// The loss and, when `grads`, every gradient.
    pub fn run(&self, grads: bool) -> LinearCrossEntropyResult {
        let (n, d, v) = (self.targets.len(), self.features, self.classes());
        let (scale, denom) = self.scale();
        let mut out = LinearCrossEntropyResult::default();
        if grads {
            out.dx = vec![0.0; n * d];
            out.dweight = vec![0.0; v * d];
            out.dbias = vec![0.0; v];
        }
        let mut losses = Vec::with_capacity(n);
        for r in 0..n {
            let (loss, dz) = self.row(r, &self.logits(r));
            losses.push(loss);
            if !grads {
                continue;
            }
            for (c, &g) in dz.iter().enumerate() {
                let g = g * scale;
                out.dbias[c] += g;
                for k in 0..d {
                    out.dx[r * d + k] += g * f64::from(self.weight[c * d + k]);
                    out.dweight[c * d + k] += g * f64::from(self.x[r * d + k]);
                }
            }
        }
        out.loss = match self.reduction {
            Reduction::None => losses,
            Reduction::Sum => vec![losses.iter().sum()],
            Reduction::Mean => vec![losses.iter().sum::<f64>() / denom],
        };
        out
    }
}

/// Max pooling of an NCHW `x` of `shape` as `torch.nn.functional.max_pool2d` with
/// `return_indices` (docs/semantics.md): the output and each maximum's flat index in its plane.
pub fn max_pool2d(
    x: &[f32],
    shape: [usize; 4],
    pool: &crate::kernels::pool::MaxPool2d,
) -> (Vec<f32>, Vec<u32>) {
    let [n, c, h, w] = shape;
    let (kh, kw) = pool.kernel;
    let (sh, sw) = pool.stride.unwrap_or(pool.kernel);
    let (ph, pw) = pool.padding;
    let (dh, dw) = pool.dilation;
    let oh = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
    let ow = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    let (mut y, mut indices) = (Vec::new(), Vec::new());
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let (mut best, mut at) = (f32::NEG_INFINITY, None);
                for u in 0..kh {
                    for v in 0..kw {
                        let (r, s) = (
                            (i * sh + u * dh) as i64 - ph as i64,
                            (j * sw + v * dw) as i64 - pw as i64,
                        );
                        if r < 0 || s < 0 || r >= h as i64 || s >= w as i64 {
                            continue;
                        }
                        let k = r as usize * w + s as usize;
                        let value = x[plane * h * w + k];
                        if at.is_none() || value > best || value.is_nan() {
                            (best, at) = (value, Some(k));
                        }
                    }
                }
                y.push(best);
                indices.push(at.unwrap_or(0) as u32);
            }
        }
    }
    (y, indices)
}

/// The input gradient of [`max_pool2d`]: each dy added, in f64, at its maximum's index.
pub fn max_pool2d_backward(dy: &[f32], indices: &[u32], shape: [usize; 4]) -> Vec<f32> {
    let [n, c, h, w] = shape;
    let per_plane = dy.len() / (n * c).max(1);
    let mut dx = vec![0f64; n * c * h * w];
    for (o, (&g, &at)) in dy.iter().zip(indices).enumerate() {
        dx[o / per_plane * h * w + at as usize] += f64::from(g);
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// conv2d of an NCHW `x` by `weight` (`[out, in, kh, kw]`) + `bias`, in f64, as
/// `torch.nn.functional.conv2d` with zero padding.
pub fn conv2d(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &crate::kernels::conv::Conv2dShape,
    opts: &crate::kernels::conv::Conv2dOptions,
) -> Vec<f32> {
    let mut y = vec![0f64; shape.output().iter().product()];
    for_each_tap(shape, opts, |yi, xi, wi| {
        y[yi] += f64::from(x[xi]) * f64::from(weight[wi]);
    });
    let plane = shape.out_height * shape.out_width;
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            let o = i / plane % shape.out_channels;
            (v + bias.map_or(0.0, |b| f64::from(b[o]))) as f32
        })
        .collect()
}

/// The gradients of [`conv2d`] from dy, in f64: (dx, dweight, dbias).
pub fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &crate::kernels::conv::Conv2dShape,
    opts: &crate::kernels::conv::Conv2dOptions,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; weight.len()];
    let mut db = vec![0f64; shape.out_channels];
    for_each_tap(shape, opts, |yi, xi, wi| {
        dx[xi] += f64::from(dy[yi]) * f64::from(weight[wi]);
        dw[wi] += f64::from(dy[yi]) * f64::from(x[xi]);
    });
    let plane = shape.out_height * shape.out_width;
    for (i, &g) in dy.iter().enumerate() {
        db[i / plane % shape.out_channels] += f64::from(g);
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (f32s(dx), f32s(dw), f32s(db))
}

/// Calls `f(output index, input index, weight index)` for every tap of every output of a
/// convolution that lands inside the input (padding contributes zeros).
fn for_each_tap(
    shape: &crate::kernels::conv::Conv2dShape,
    opts: &crate::kernels::conv::Conv2dOptions,
    mut f: impl FnMut(usize, usize, usize),
) {
    let s = shape;
    let (kh, kw) = s.kernel;
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            for i in 0..s.out_height {
                for j in 0..s.out_width {
                    let yi = ((n * s.out_channels + o) * s.out_height + i) * s.out_width + j;
                    for c in 0..s.channels {
                        for u in 0..kh {
                            for v in 0..kw {
                                let r = (i * opts.stride.0 + u * opts.dilation.0) as i64
                                    - opts.padding.0 as i64;
                                let q = (j * opts.stride.1 + v * opts.dilation.1) as i64
                                    - opts.padding.1 as i64;
                                if r < 0 || q < 0 || r >= s.height as i64 || q >= s.width as i64 {
                                    continue;
                                }
                                let xi = ((n * s.channels + c) * s.height + r as usize) * s.width
                                    + q as usize;
                                let wi = ((o * s.channels + c) * kh + u) * kw + v;
                                f(yi, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}
