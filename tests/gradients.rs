//! Linear, ReLU and cross-entropy backward on the GPU against central finite differences of the
//! same model evaluated on the CPU in f64.

mod common;
use common::{gpu, random};
use wgml::gpu::{DType, Program, Tensor};
use wgml::kernels::data::BatchLayout;
use wgml::loss::{CrossEntropyLoss, Reduction, Targets};
use wgml::nn::{Layer, Sequential};

/// f64 cross-entropy of `layers` (`p` their state_dict in order) over the rows of `x`, each of
/// `shape`, against class targets (negative ones ignored), reduced as `reduction` says.
/// Dropout scales element j of layer `index` in row r by `keeps(r, index, j)`.
fn cpu_loss(
    (layers, p): (&[Layer], &[Vec<f64>]),
    shape: &[usize],
    (x, y): (&[f32], &[i32]),
    reduction: Reduction,
    keeps: &dyn Fn(usize, usize, usize) -> f64,
) -> f64 {
    let features: usize = shape.iter().product();
    let (mut total, mut counted) = (0.0, 0.0);
    for (r, &target) in y.iter().enumerate() {
        if target < 0 {
            continue;
        }
        let h = x[r * features..(r + 1) * features]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let z = cpu_forward(layers, p, shape.to_vec(), h, &|index, j| keeps(r, index, j));
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse - z[target as usize];
        counted += 1.0;
    }
    match reduction {
        Reduction::Mean => total / counted,
        _ => total,
    }
}

/// The `keeps` of a model without dropout.
fn no_dropout(_: usize, _: usize, _: usize) -> f64 {
    unreachable!("this model has no dropout")
}

/// One forward, loss (`reduction`) and backward pass of `model` on x and class targets y, in a
/// fresh training workspace: the loss, with every gradient left in the model's buffers.
fn loss_and_gradients(
    model: &Sequential,
    x: (&Tensor, BatchLayout),
    y: &Tensor,
    reduction: Reduction,
) -> f64 {
    let g = gpu();
    let rows = y.len();
    let ws = model.workspace(g, rows).unwrap();
    let (forward, out) = model.forward_program(g, x, &ws).unwrap();
    let loss_out = Tensor::zeros(g, &[1], DType::F32).unwrap();
    let cursor = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let grad = ws.output_grad(rows).unwrap();
    let ce = CrossEntropyLoss::new()
        .reduction(reduction)
        .prepare(g, &out, Targets::Classes(y), &grad, &loss_out, &cursor)
        .unwrap();
    let mut program = Program::new();
    program.append(forward);
    program.append(ce.program.clone());
    program.append(model.backward_program(g, x, &ws).unwrap());
    program.run(g).unwrap();
    f64::from(loss_out.to_vec::<f32>(g).unwrap()[0])
}

#[test]
fn model_gradients_match_finite_differences() {
    let g = gpu();
    let layers = [
        Layer::Linear {
            in_features: 7,
            out_features: 5,
        },
        Layer::Relu,
        Layer::Linear {
            in_features: 5,
            out_features: 3,
        },
    ];
    let cases = [
        (Reduction::Mean, BatchLayout::Rows),
        (Reduction::Sum, BatchLayout::Rows),
        (Reduction::Mean, BatchLayout::Columns),
    ];
    for (reduction, layout) in cases {
        let model = Sequential::new(g, &layers, 11).unwrap();
        let rows = 6;
        let x_host = random(rows * 7, -1.0, 1.0, 5);
        let y_host = [0i32, 2, -100, 1, 1, 0];
        // The same samples feature-major: x_host[r·7 + j] at j·rows + r.
        let x_stored: Vec<f32> = match layout {
            BatchLayout::Rows => x_host.clone(),
            BatchLayout::Columns => (0..rows * 7)
                .map(|i| x_host[(i % rows) * 7 + i / rows])
                .collect(),
        };
        let x = Tensor::from_slice(g, &x_stored, &layout.shape(rows, 7)).unwrap();
        let x = (&x, layout);
        let y = Tensor::from_slice(g, &y_host, &[rows]).unwrap();
        let gpu_loss = loss_and_gradients(&model, x, &y, reduction);

        let loss = |p: &[Vec<f64>]| {
            let data = (&x_host[..], &y_host[..]);
            cpu_loss((&layers, p), &[7], data, reduction, &no_dropout)
        };
        let state = model.params().state_dict(g).unwrap();
        let mut p: Vec<Vec<f64>> = state
            .iter()
            .map(|(_, _, v)| v.iter().map(|&f| f64::from(f)).collect())
            .collect();
        let cpu = loss(&p);
        assert!(
            (gpu_loss - cpu).abs() < 1e-5,
            "{reduction:?} {layout:?}: loss {gpu_loss} vs {cpu}"
        );

        for (k, (name, _, _)) in state.iter().enumerate() {
            let grad = model.params().grad(name).unwrap().to_vec::<f32>(g).unwrap();
            for i in 0..grad.len() {
                let h = 1e-5;
                let orig = p[k][i];
                p[k][i] = orig + h;
                let up = loss(&p);
                p[k][i] = orig - h;
                let down = loss(&p);
                p[k][i] = orig;
                let fd = (up - down) / (2.0 * h);
                assert!(
                    (f64::from(grad[i]) - fd).abs() < 1e-4,
                    "{reduction:?} {layout:?} {name}[{i}]: GPU gradient {} vs finite difference {fd}",
                    grad[i]
                );
            }
        }
    }
}

/// Orders the planner must get right: a ReLU after a fused ReLU, Linear layers back to back.
#[test]
fn unusual_layer_orders_match_finite_differences() {
    let g = gpu();
    let linear = |i, o| Layer::Linear {
        in_features: i,
        out_features: o,
    };
    let layers = [
        linear(4, 6),
        Layer::Relu,
        Layer::Relu,
        linear(6, 5),
        linear(5, 3),
    ];
    let model = Sequential::new(g, &layers, 3).unwrap();
    let rows = 5;
    let x_host = random(rows * 4, -1.0, 1.0, 9);
    let y_host = [0i32, 2, 1, 1, 0];
    let x = Tensor::from_slice(g, &x_host, &[rows, 4]).unwrap();
    let x = (&x, BatchLayout::Rows);
    let y = Tensor::from_slice(g, &y_host, &[rows]).unwrap();
    let gpu_loss = loss_and_gradients(&model, x, &y, Reduction::Mean);
    let state = model.params().state_dict(g).unwrap();
    let mut p: Vec<Vec<f64>> = (state.iter())
        .map(|(_, _, v)| v.iter().map(|&f| f64::from(f)).collect())
        .collect();
    let loss = |p: &[Vec<f64>]| {
        let data = (&x_host[..], &y_host[..]);
        cpu_loss((&layers, p), &[4], data, Reduction::Mean, &no_dropout)
    };
    let cpu = loss(&p);
    assert!((gpu_loss - cpu).abs() < 1e-5, "loss {gpu_loss} vs {cpu}");
    for (k, (name, _, _)) in state.iter().enumerate() {
        let grad = model.params().grad(name).unwrap().to_vec::<f32>(g).unwrap();
        for i in 0..grad.len() {
            let orig = p[k][i];
            p[k][i] = orig + 1e-5;
            let up = loss(&p);
            p[k][i] = orig - 1e-5;
            let down = loss(&p);
            p[k][i] = orig;
            let fd = (up - down) / 2e-5;
            assert!(
                (f64::from(grad[i]) - fd).abs() < 1e-4,
                "{name}[{i}]: {} vs {fd}",
                grad[i]
            );
        }
    }
}

/// f64 forward of one sample (`shape`, values `h`) through `layers`, `p` their state_dict in
/// order; dropout scales element j of layer `index` by `keeps(index, j)`.
fn cpu_forward(
    layers: &[Layer],
    p: &[Vec<f64>],
    mut shape: Vec<usize>,
    mut h: Vec<f64>,
    keeps: &dyn Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut k = 0;
    for (index, layer) in layers.iter().enumerate() {
        h = match *layer {
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel: (kh, kw),
                options,
            } => {
                let (w, b) = (&p[k], &p[k + 1]);
                k += 2;
                let (ih, iw) = (shape[1], shape[2]);
                let (sh, sw) = options.stride;
                let (ph, pw) = options.padding;
                let (dh, dw) = options.dilation;
                let oh = (ih + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
                let ow = (iw + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
                let mut y = vec![0.0; out_channels * oh * ow];
                for o in 0..out_channels {
                    for i in 0..oh {
                        for j in 0..ow {
                            let mut s = b[o];
                            for c in 0..in_channels {
                                for u in 0..kh {
                                    for v in 0..kw {
                                        let r = (i * sh + u * dh) as i64 - ph as i64;
                                        let q = (j * sw + v * dw) as i64 - pw as i64;
                                        if r >= 0 && q >= 0 && r < ih as i64 && q < iw as i64 {
                                            let x = h[(c * ih + r as usize) * iw + q as usize];
                                            s += w[((o * in_channels + c) * kh + u) * kw + v] * x;
                                        }
                                    }
                                }
                            }
                            y[(o * oh + i) * ow + j] = s;
                        }
                    }
                }
                shape = vec![out_channels, oh, ow];
                y
            }
            Layer::MaxPool2d(pool) => {
                let (c, ih, iw) = (shape[0], shape[1], shape[2]);
                let (oh, ow) = pool.output_size((ih, iw)).unwrap();
                let (kh, kw) = pool.kernel;
                let (sh, sw) = pool.stride.unwrap_or(pool.kernel);
                let mut y = vec![f64::NEG_INFINITY; c * oh * ow];
                for ch in 0..c {
                    for i in 0..oh {
                        for j in 0..ow {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let x = h[(ch * ih + i * sh + u) * iw + j * sw + v];
                                    let at = (ch * oh + i) * ow + j;
                                    y[at] = y[at].max(x);
                                }
                            }
                        }
                    }
                }
                shape = vec![c, oh, ow];
                y
            }
            Layer::Linear {
                in_features,
                out_features,
            } => {
                let (w, b) = (&p[k], &p[k + 1]);
                k += 2;
                shape = vec![out_features];
                (0..out_features)
                    .map(|o| {
                        (0..in_features)
                            .map(|i| w[o * in_features + i] * h[i])
                            .sum::<f64>()
                            + b[o]
                    })
                    .collect()
            }
            Layer::Relu => h.iter().map(|v| v.max(0.0)).collect(),
            Layer::Dropout { .. } => (h.iter().enumerate())
                .map(|(j, v)| v * keeps(index, j))
                .collect(),
            Layer::Flatten => {
                shape = vec![h.len()];
                h
            }
        };
    }
    h
}

/// Conv2d, pooling, Flatten and dropout through the planner: the GPU's gradients against
/// central differences of an f64 forward with the same dropout masks.
#[test]
fn image_models_match_finite_differences() {
    use wgml::kernels::conv::Conv2dOptions;
    use wgml::kernels::pool::MaxPool2d;
    use wgml::nn::Module;
    let g = gpu();
    let input = [2usize, 7, 6];
    let layers = [
        Layer::Conv2d {
            in_channels: 2,
            out_channels: 3,
            kernel: (3, 3),
            options: Conv2dOptions {
                padding: (1, 1),
                ..Default::default()
            },
        },
        Layer::Relu,
        Layer::MaxPool2d(MaxPool2d::default()),
        Layer::Conv2d {
            in_channels: 3,
            out_channels: 4,
            kernel: (2, 3),
            options: Conv2dOptions::default(),
        },
        Layer::Relu,
        Layer::Flatten,
        Layer::Dropout { p: 0.3 },
        Layer::Linear {
            in_features: 8,
            out_features: 5,
        },
    ];
    let model = Sequential::with_input(g, &input, &layers, 5).unwrap();
    let rows = 3;
    let features: usize = input.iter().product();
    let x_host = random(rows * features, -1.0, 1.0, 21);
    let y_host = [4i32, 0, 2];
    let x = Tensor::from_slice(g, &x_host, &[rows, 2, 7, 6]).unwrap();
    let x = (&x, BatchLayout::Rows);
    let y = Tensor::from_slice(g, &y_host, &[rows]).unwrap();
    let gpu_loss = loss_and_gradients(&model, x, &y, Reduction::Mean);

    let Module::Dropout(dropout) = model.modules()[6].clone() else {
        panic!("module 6 is the dropout");
    };
    // The workspace's own counter, never advanced: step 0.
    let keeps = |r: usize, _: usize, j: usize| {
        let kept = dropout.keeps((r * 8 + j) as u32, 0);
        if kept {
            1.0 / (1.0 - f64::from(dropout.p))
        } else {
            0.0
        }
    };
    let loss = |p: &[Vec<f64>]| {
        let data = (&x_host[..], &y_host[..]);
        cpu_loss((&layers, p), &input, data, Reduction::Mean, &keeps)
    };
    let state = model.params().state_dict(g).unwrap();
    let mut p: Vec<Vec<f64>> = (state.iter())
        .map(|(_, _, v)| v.iter().map(|&f| f64::from(f)).collect())
        .collect();
    let cpu = loss(&p);
    assert!((gpu_loss - cpu).abs() < 1e-5, "loss {gpu_loss} vs {cpu}");
    let mut checked = 0;
    for (k, (name, _, _)) in state.iter().enumerate() {
        let grad = model.params().grad(name).unwrap().to_vec::<f32>(g).unwrap();
        for i in 0..grad.len() {
            let orig = p[k][i];
            p[k][i] = orig + 1e-5;
            let up = loss(&p);
            p[k][i] = orig - 1e-5;
            let down = loss(&p);
            p[k][i] = orig;
            let fd = (up - down) / 2e-5;
            assert!(
                (f64::from(grad[i]) - fd).abs() < 1e-4,
                "{name}[{i}]: {} vs {fd}",
                grad[i]
            );
            checked += usize::from(fd != 0.0);
        }
    }
    // Dropout and ReLU zero some gradients, but most must be live for the test to mean much.
    assert!(checked > 100, "only {checked} nonzero gradients");
}
