//! Every kernel against `wgml::reference` over odd shapes and extreme values.
// Reference vectors are quoted verbatim from PyTorch (float64), beyond f32 precision.
#![allow(clippy::excessive_precision)]

mod common;
use common::{
    assert_close, assert_torch_close, gpu, random, run_optimizer, run_optimizer_counting,
};
use wgml::gpu::{DType, Tensor};
use wgml::kernels::counter::{advance_dispatch, Advance};
use wgml::kernels::cross_entropy::{
    cross_entropy, CrossEntropyKernel, CrossEntropyOptions, Reduction, Targets,
};
use wgml::kernels::data::{gather_dispatch, pack_bytes, BatchLayout, GatherSource};
use wgml::kernels::elementwise::{relu, relu_backward};
use wgml::kernels::matmul::{matmul, matmul_dispatch, MatmulKernel, MatmulOptions};
use wgml::kernels::optim::{
    adadelta_dispatch, adam_dispatch, sgd_dispatch, AdadeltaConfig, AdamConfig, OptimState,
    SgdConfig, FACTORS,
};
use wgml::kernels::reduce::{argmax, column_sum, count_correct};
use wgml::optim::OptimizerConfig;
use wgml::{reference, Error};

const ODD: [usize; 6] = [1, 7, 63, 65, 129, 10];

fn upload(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).unwrap()
}

#[test]
fn matmul_matches_reference_over_odd_shapes_and_every_option() {
    let shapes = [
        (1, 1, 1),
        (7, 63, 65),
        (65, 129, 7),
        (129, 10, 63),
        (64, 128, 784),
        (1, 65, 129),
        // Multiples of 4 (the subgroup layout's vec4s) off its 16×64 tiles and 8-deep K steps.
        (4, 4, 4),
        (20, 36, 12),
        (68, 132, 788),
        (7, 12, 20),
        // N a multiple of 8 (op(B) read eight at a time along N) off the 64-column tiles.
        (33, 40, 13),
        (17, 72, 24),
        (5, 8, 9),
        // More rows than the tallest subgroup tile (128), with K % 8 = 0 (A read along K).
        (136, 72, 40),
        // The tutorial MLP's other products, whose N or K is 10.
        (64, 10, 128),
        (64, 128, 10),
        (10, 128, 64),
        (9, 6, 8),
        // A long K over few tiles (a weight gradient over a batch's image positions): GPUs
        // split it between more invocations per tile.
        (9, 17, 20_000),
    ];
    let mut seed = 0;
    for &(m, n, k) in &shapes {
        // Every transpose with four epilogues: none, bias, bias + ReLU, gate. Each
        // combination is a pipeline of its own, so the list stays short.
        for flags in 0..16u32 {
            let (ta, tb) = (flags & 1 != 0, flags & 2 != 0);
            let (use_bias, relu_on, use_gate) = match flags >> 2 {
                0 => (false, false, false),
                1 => (true, false, false),
                2 => (true, true, false),
                _ => (false, false, true),
            };
            seed += 1;
            let a = random(m * k, -1.0, 1.0, seed);
            let b = random(k * n, -1.0, 1.0, seed + 1000);
            let bias = random(n, -1.0, 1.0, seed + 2000);
            let a_t = upload(&a, &if ta { [k, m] } else { [m, k] });
            let b_t = upload(&b, &if tb { [n, k] } else { [k, n] });
            let bias_t = upload(&bias, &[n]);
            let gate = random(m * n, -1.0, 1.0, seed + 3000);
            let gate_t = upload(&gate, &[m, n]);
            let mut expected = reference::matmul(
                &a,
                &b,
                m,
                n,
                k,
                ta,
                tb,
                use_bias.then_some(&bias[..]),
                relu_on,
            );
            if use_gate {
                for (e, &g) in expected.iter_mut().zip(&gate) {
                    *e = if g > 0.0 { *e } else { 0.0 };
                }
            }
            for kernel in MatmulKernel::ALL {
                let opts = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    bias: use_bias.then_some(&bias_t),
                    relu: relu_on,
                    gate: use_gate.then_some(&gate_t),
                    row_sums: None,
                    kernel,
                    ..Default::default()
                };
                // The taller subgroup layouts share Subgroup16's epilogue and differ only in their
                // rows, so they run without one: each of their pipelines takes a second or more
                // to compile on lavapipe. Subgroup64Wide stores its second eight of columns
                // through its own, and reads its operands one way only: it runs with each.
                let tall_skip = matches!(
                    kernel,
                    MatmulKernel::Subgroup32 | MatmulKernel::Subgroup64 | MatmulKernel::Subgroup128
                ) && flags >> 2 != 0;
                if tall_skip || !kernel.supports(gpu(), (m, n, k), &opts) {
                    continue;
                }
                let c = matmul(gpu(), &a_t, &b_t, opts).unwrap();
                assert_eq!(c.shape(), [m, n]);
                let what = format!(
                    "{kernel:?} matmul m={m} n={n} k={k} ta={ta} tb={tb} bias={use_bias} relu={relu_on} \
                     gate={use_gate}"
                );
                let got = c.to_vec::<f32>(gpu()).unwrap();
                assert_close(&got, &expected, 1e-5 * k as f32, 1e-5, &what);
            }
        }
    }
}

/// The matrix [rows, planes·plane] held as planes [planes, rows, plane] (an NCHW tensor's
/// channels), and back.
fn to_planes(x: &[f32], rows: usize, plane: usize) -> Vec<f32> {
    let cols = x.len() / rows;
    let mut out = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[(c / plane) * rows * plane + r * plane + c % plane] = x[r * cols + c];
        }
    }
    out
}

/// Σ_k op(A)[i, k] for each row i of op(A) (M×K; A stored K×M when transposed).
fn row_sums_of(a: &[f32], m: usize, k: usize, trans_a: bool) -> Vec<f32> {
    let op_a = |i: usize, kk: usize| {
        f64::from(if trans_a {
            a[kk * m + i]
        } else {
            a[i * k + kk]
        })
    };
    (0..m)
        .map(|i| (0..k).map(|kk| op_a(i, kk)).sum::<f64>() as f32)
        .collect()
}

/// C after one run of the product `opts` describes.
fn run_product(a: &Tensor, b: &Tensor, c: &Tensor, opts: MatmulOptions) -> Vec<f32> {
    matmul_dispatch(gpu(), a, b, c, opts)
        .unwrap()
        .run(gpu())
        .unwrap();
    c.to_vec::<f32>(gpu()).unwrap()
}

/// A read from planes (as a convolution's weight and input gradients read dy in place, with
/// the row sums beside), and C written in planes with a bias per row and ReLU (as its forward
/// writes NCHW), by the subgroup layouts; the others refuse planes.
#[test]
fn matmul_reads_and_writes_planes() {
    // (m, n, k, trans_a, trans_b, plane): A in planes of `plane` along its stored rows.
    let a_cases = [
        (20, 40, 72, false, true, 24),
        (32, 20, 12, true, false, 16),
        (64, 288, 64, false, true, 8),
    ];
    let mut seed = 900;
    for (m, n, k, ta, tb, plane) in a_cases {
        seed += 1;
        let a = random(m * k, -1.0, 1.0, seed);
        let b = random(k * n, -1.0, 1.0, seed + 1);
        let expected = reference::matmul(&a, &b, m, n, k, ta, tb, None, false);
        let sums = row_sums_of(&a, m, k, ta);
        let stored_rows = if ta { k } else { m };
        let a_t = upload(
            &to_planes(&a, stored_rows, plane),
            &if ta { [k, m] } else { [m, k] },
        );
        let b_t = upload(&b, &if tb { [n, k] } else { [k, n] });
        for kernel in [
            MatmulKernel::Auto,
            MatmulKernel::Subgroup16,
            MatmulKernel::Tiled,
        ] {
            let row_sums = Tensor::from_slice(gpu(), &vec![f32::NAN; m], &[m]).unwrap();
            let c = Tensor::zeros(gpu(), &[m, n], DType::F32).unwrap();
            let opts = MatmulOptions {
                trans_a: ta,
                trans_b: tb,
                row_sums: Some(&row_sums),
                a_planes: Some(plane),
                kernel,
                ..Default::default()
            };
            let what = format!("{kernel:?} A in planes of {plane}, m={m} n={n} k={k} ta={ta}");
            let resolved = kernel.resolve(gpu(), (m, n, k), &opts);
            if !resolved.supports(gpu(), (m, n, k), &opts) {
                assert!(
                    !resolved.is_subgroup() || kernel != MatmulKernel::Auto,
                    "{what}"
                );
                assert!(
                    matmul_dispatch(gpu(), &a_t, &b_t, &c, opts).is_err(),
                    "{what}"
                );
                continue;
            }
            let got = run_product(&a_t, &b_t, &c, opts);
            assert_close(&got, &expected, 1e-5 * k as f32, 1e-5, &what);
            let got = row_sums.to_vec::<f32>(gpu()).unwrap();
            assert_close(&got, &sums, 1e-5 * k as f32, 1e-5, &what);
        }
    }
    // (m, n, k, plane): C in planes, bias per row, ReLU; 128 columns or more take the wide tile.
    for (m, n, k, plane) in [(12, 48, 16, 16), (64, 2048, 72, 256), (9, 24, 8, 8)] {
        seed += 1;
        let a = random(m * k, -1.0, 1.0, seed);
        let b = random(k * n, -1.0, 1.0, seed + 1);
        let bias = random(m, -1.0, 1.0, seed + 2);
        let mut expected = reference::matmul(&a, &b, m, n, k, false, false, None, false);
        for (i, e) in expected.iter_mut().enumerate() {
            *e = (*e + bias[i / n]).max(0.0);
        }
        let expected = to_planes(&expected, m, plane);
        let (a_t, b_t, bias_t) = (
            upload(&a, &[m, k]),
            upload(&b, &[k, n]),
            upload(&bias, &[m]),
        );
        for kernel in [
            MatmulKernel::Auto,
            MatmulKernel::Subgroup16,
            MatmulKernel::Subgroup64Wide,
        ] {
            let c = Tensor::zeros(gpu(), &[m, n], DType::F32).unwrap();
            let opts = MatmulOptions {
                bias: Some(&bias_t),
                bias_rows: true,
                relu: true,
                c_planes: Some(plane),
                kernel,
                ..Default::default()
            };
            let what = format!("{kernel:?} C in planes of {plane}, m={m} n={n} k={k}");
            if !kernel
                .resolve(gpu(), (m, n, k), &opts)
                .supports(gpu(), (m, n, k), &opts)
            {
                continue;
            }
            let got = run_product(&a_t, &b_t, &c, opts);
            assert_close(&got, &expected, 1e-5 * k as f32, 1e-5, &what);
        }
    }
}

/// op(A)'s row sums written beside the product (a linear layer's bias gradient beside its
/// weight gradient) by every layout that writes them, over odd shapes, every transpose and
/// each way the subgroup layouts read A; the other layouts refuse, and Auto picks one that
/// writes them.
#[test]
fn matmul_writes_row_sums_beside_the_product() {
    let shapes = [
        (7, 63, 65),
        (65, 129, 7),
        (129, 10, 63),
        (136, 72, 40),
        (10, 128, 64),
        (128, 784, 64),
        (1, 4, 8),
        (9, 17, 20_000),
    ];
    let mut seed = 500;
    for &(m, n, k) in &shapes {
        for flags in 0..4u32 {
            let (ta, tb) = (flags & 1 != 0, flags & 2 != 0);
            seed += 1;
            let a = random(m * k, -1.0, 1.0, seed);
            let b = random(k * n, -1.0, 1.0, seed + 1000);
            let a_t = upload(&a, &if ta { [k, m] } else { [m, k] });
            let b_t = upload(&b, &if tb { [n, k] } else { [k, n] });
            let expected = reference::matmul(&a, &b, m, n, k, ta, tb, None, false);
            let sums = row_sums_of(&a, m, k, ta);
            for kernel in [MatmulKernel::Auto].into_iter().chain(MatmulKernel::ALL) {
                let row_sums = Tensor::from_slice(gpu(), &vec![f32::NAN; m], &[m]).unwrap();
                let c = Tensor::zeros(gpu(), &[m, n], DType::F32).unwrap();
                let opts = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    row_sums: Some(&row_sums),
                    kernel,
                    ..Default::default()
                };
                let what = format!("{kernel:?} row sums m={m} n={n} k={k} ta={ta} tb={tb}");
                let result = matmul_dispatch(gpu(), &a_t, &b_t, &c, opts);
                if !kernel.sums_rows() && kernel != MatmulKernel::Auto {
                    let err = result.err().expect(&what).to_string();
                    assert!(err.contains("does not write row sums"), "{what}: {err}");
                    continue;
                }
                if !kernel
                    .resolve(gpu(), (m, n, k), &opts)
                    .supports(gpu(), (m, n, k), &opts)
                {
                    continue;
                }
                result.unwrap().run(gpu()).unwrap();
                let got = c.to_vec::<f32>(gpu()).unwrap();
                assert_close(&got, &expected, 1e-5 * k as f32, 1e-5, &what);
                let got = row_sums.to_vec::<f32>(gpu()).unwrap();
                assert_close(&got, &sums, 1e-5 * k as f32, 1e-5, &what);
            }
        }
    }
}

#[test]
fn matmul_auto_takes_128_row_tiles_only_where_a_is_read_along_k() {
    // Read along M, a 128-row pipeline would take about 20 s to compile on lavapipe.
    let tall = (1024, 64, 1024);
    if !MatmulKernel::Subgroup16.supports(gpu(), tall, &MatmulOptions::default()) {
        return;
    }
    let auto = |m, n, k, trans_a| {
        let opts = MatmulOptions {
            trans_a,
            ..Default::default()
        };
        MatmulKernel::Auto.resolve(gpu(), (m, n, k), &opts)
    };
    assert_eq!(auto(1024, 64, 1024, false), MatmulKernel::Subgroup128);
    assert_eq!(auto(1024, 64, 1024, true), MatmulKernel::Subgroup64);
    // K not a multiple of 8: A is read as scalars.
    assert_eq!(auto(1024, 64, 1020, false), MatmulKernel::Subgroup64);
    let explicit = MatmulOptions {
        trans_a: true,
        kernel: MatmulKernel::Subgroup128,
        ..Default::default()
    };
    assert!(!MatmulKernel::Subgroup128.supports(gpu(), (256, 256, 256), &explicit));
}

/// 64×128 tiles where C is wide and tall enough for many of them and they add no padding;
/// elsewhere the 64-column layouts.
#[test]
fn matmul_auto_takes_wide_tiles_only_where_they_are_many_and_fit() {
    let square = (1024, 1024, 1024);
    if !MatmulKernel::Subgroup16.supports(gpu(), square, &MatmulOptions::default()) {
        return;
    }
    let auto = |dims| MatmulKernel::Auto.resolve(gpu(), dims, &MatmulOptions::default());
    assert_eq!(auto(square), MatmulKernel::Subgroup64Wide);
    // A convolution's forward product: 36,864 output positions wide.
    assert_eq!(auto((64, 36864, 288)), MatmulKernel::Subgroup64Wide);
    // Three tiles only; and 288 columns would pad to 384 rather than 320.
    assert_ne!(auto((64, 288, 36864)), MatmulKernel::Subgroup64Wide);
    assert_ne!(auto((36864, 288, 64)), MatmulKernel::Subgroup64Wide);
}

#[test]
fn matmul_auto_computes_outputs_smaller_than_eight_elements() {
    // C (1×4) and the gate hold fewer than the eight floats a subgroup layout reads or writes
    // at a time: the adapter's choice must fall back to a layout that fits them.
    let (m, n, k) = (1, 4, 8);
    let a = random(m * k, -1.0, 1.0, 1);
    let b = random(k * n, -1.0, 1.0, 2);
    let gate = [1.0, -1.0, 1.0, 1.0];
    let mut expected = reference::matmul(&a, &b, m, n, k, false, false, None, false);
    expected[1] = 0.0;
    let gate_t = upload(&gate, &[m, n]);
    let opts = MatmulOptions {
        gate: Some(&gate_t),
        ..Default::default()
    };
    let c = matmul(gpu(), &upload(&a, &[m, k]), &upload(&b, &[k, n]), opts).unwrap();
    assert_close(
        &c.to_vec::<f32>(gpu()).unwrap(),
        &expected,
        1e-5,
        1e-5,
        "1×4×8",
    );
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let a = upload(&[0.0; 6], &[2, 3]);
    let b = upload(&[0.0; 8], &[4, 2]);
    let err = matmul(gpu(), &a, &b, MatmulOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Shape(_)), "{err}");
    assert!(
        err.to_string().contains("op(A) is 2×3 but op(B) is 4×2"),
        "{err}"
    );
}

#[test]
fn relu_forward_and_backward_match_reference() {
    for &n in &[1, 7, 255, 256, 257, 65_537] {
        let mut x = random(n, -2.0, 2.0, n as u64);
        x[0] = 0.0; // the gradient at exactly 0 is 0
        let dy = random(n, -1.0, 1.0, n as u64 + 1);
        let y = relu(gpu(), &upload(&x, &[n])).unwrap();
        let y_host = y.to_vec::<f32>(gpu()).unwrap();
        assert_eq!(y_host, reference::relu(&x), "relu n={n}");
        let dx = relu_backward(gpu(), &y, &upload(&dy, &[n])).unwrap();
        assert_eq!(
            dx.to_vec::<f32>(gpu()).unwrap(),
            reference::relu_backward(&y_host, &dy),
            "relu_backward n={n}"
        );
    }
}

#[test]
fn column_sum_matches_reference() {
    for &rows in &ODD {
        // 4 and 260: four columns per invocation, 260 over more than one workgroup.
        for &cols in &[1, 7, 65, 129, 4, 260] {
            let x = random(rows * cols, -1.0, 1.0, (rows * 1000 + cols) as u64);
            let sums = column_sum(gpu(), &upload(&x, &[rows, cols])).unwrap();
            let what = format!("column_sum {rows}×{cols}");
            assert_close(
                &sums.to_vec::<f32>(gpu()).unwrap(),
                &reference::column_sum(&x, rows, cols),
                1e-5 * rows as f32,
                1e-6,
                &what,
            );
        }
    }
}

#[test]
fn argmax_and_count_correct_take_the_first_maximum() {
    let x = [
        1.0, 3.0, 3.0, /**/ -1.0, -1.0, -1.0, /**/ 0.0, 0.0, 5.0, /**/ 1e4, -1e4,
        0.0,
    ];
    let t = upload(&x, &[4, 3]);
    assert_eq!(argmax(gpu(), &t).unwrap(), vec![1, 0, 2, 0]);
    let targets = Tensor::from_slice(gpu(), &[1i32, 0, 1, -100], &[4]).unwrap();
    assert_eq!(count_correct(gpu(), &t, &targets).unwrap(), 2);
    for &(rows, cols) in &[(1, 1), (7, 10), (129, 1000), (65, 3)] {
        let x = random(rows * cols, -5.0, 5.0, (rows + cols) as u64);
        let got = argmax(gpu(), &upload(&x, &[rows, cols])).unwrap();
        assert_eq!(got, reference::argmax(&x, cols), "argmax {rows}×{cols}");
    }
}

// docs/semantics.md's vectors: x, y = [0, -100, 2], w = [.2, .3, .5].
const X3: [f32; 9] = [1.0, 2.0, 3.0, 0.5, -1.0, 2.0, -2.0, 0.0, 1.0];
const Y3: [i32; 3] = [0, -100, 2];
const W3: [f32; 3] = [0.2, 0.3, 0.5];

/// Loss and gradient from the GPU; `targets` are class indices or, with `probs`, probabilities.
fn ce(
    x: &[f32],
    shape: &[usize],
    targets: Either<&[i32], &[f32]>,
    weight: Option<&[f32]>,
    reduction: Reduction,
    label_smoothing: f32,
) -> wgml::Result<(Vec<f32>, Vec<f32>)> {
    let w = weight.map(|w| upload(w, &[w.len()]));
    let opts = CrossEntropyOptions {
        weight: w.as_ref(),
        ignore_index: -100,
        reduction,
        label_smoothing,
    };
    let logits = upload(x, shape);
    let t = match targets {
        Either::Left(classes) => {
            let t_shape: Vec<usize> = match shape {
                [_] => vec![],
                [n, _, rest @ ..] => [&[*n][..], rest].concat(),
                [] => vec![],
            };
            Tensor::from_slice(gpu(), classes, &t_shape)?
        }
        Either::Right(p) => upload(p, shape),
    };
    let targets = match targets {
        Either::Left(_) => Targets::Classes(&t),
        Either::Right(_) => Targets::Probabilities(&t),
    };
    let (loss, grad) = cross_entropy(gpu(), &logits, targets, opts)?;
    Ok((loss.to_vec(gpu())?, grad.to_vec(gpu())?))
}

enum Either<L, R> {
    Left(L),
    Right(R),
}
use Either::{Left, Right};

#[test]
fn cross_entropy_matches_pytorch_vectors() {
    let run = |y, w, r, eps| ce(&X3, &[3, 3], y, w, r, eps).unwrap();
    let (mean, grad) = run(Left(&Y3[..]), Some(&W3[..]), Reduction::Mean, 0.0);
    assert_torch_close(&mean, &[0.937181859], "weighted mean");
    let expected_grad = [
        -0.259991265,
        0.069922420,
        0.190068845,
        0.0,
        0.0,
        0.0,
        0.025085019,
        0.185354615,
        -0.210439634,
    ];
    assert_torch_close(&grad, &expected_grad, "weighted mean gradient");
    let cases: [(Reduction, f32, &[f32]); 6] = [
        (Reduction::Mean, 0.1, &[0.955683586]),
        (Reduction::Sum, 0.0, &[0.656027301]),
        (Reduction::Sum, 0.1, &[0.668978511]),
        (Reduction::None, 0.0, &[0.48152119, 0.0, 0.17450611]),
        (Reduction::None, 0.1, &[0.47028927, 0.0, 0.19868924]),
        (Reduction::Mean, 0.0, &[0.937181859]),
    ];
    for (reduction, eps, expected) in cases {
        let (loss, _) = run(Left(&Y3[..]), Some(&W3[..]), reduction, eps);
        assert_torch_close(&loss, expected, &format!("weighted {reduction:?} ε={eps}"));
    }
    let probs = [0.2, 0.3, 0.5, 1.0, 0.0, 0.0, 0.0, 0.5, 0.5];
    let (loss, _) = run(Right(&probs[..]), Some(&W3[..]), Reduction::Mean, 0.0);
    assert_torch_close(&loss, &[0.320919138], "probability targets, weighted mean");

    let (loss, grad) = ce(
        &[3.0, 3.0, 2.0, 2.0],
        &[2, 2],
        Left(&[0, 1]),
        None,
        Reduction::Mean,
        0.0,
    )
    .unwrap();
    assert_torch_close(&loss, &[std::f32::consts::LN_2], "unweighted mean (ln 2)");
    assert_torch_close(&grad, &[-0.25, 0.25, 0.25, -0.25], "unweighted gradient");
    let x2 = [3.0, 1.0, 1.0, 2.0];
    let (loss, _) = ce(&x2, &[2, 2], Left(&[0, 1]), None, Reduction::Mean, 0.15).unwrap();
    assert_torch_close(&loss, &[0.332594849], "unweighted ε=0.15");
    let (loss, _) = ce(
        &x2,
        &[2, 2],
        Right(&[0.8, 0.2, 0.1, 0.9]),
        None,
        Reduction::Mean,
        0.2,
    )
    .unwrap();
    assert_torch_close(&loss, &[0.570094849], "probability targets ε=0.2");
}

#[test]
fn cross_entropy_matches_reference_over_layouts_and_extreme_logits() {
    // (shape, C, D): (N, C), unbatched (C), and (N, C, d1, d2).
    let layouts: [(&[usize], usize, usize); 10] = [
        (&[1, 1], 1, 1),
        (&[1100, 3], 3, 1), // over 1024 rows: three passes, sums by a workgroup's tree
        (&[7, 10], 10, 1),
        (&[63, 129], 129, 1),
        (&[65, 7], 7, 1),
        (&[129, 1000], 1000, 1),
        (&[5], 5, 1),
        (&[3, 4, 2, 5], 4, 10),
        (&[2, 65, 3], 65, 3),
        // Few rows of more classes than a CPU adapter's loops run for in one invocation.
        (&[2, 70000], 70000, 1),
    ];
    for (case, &(shape, c, d)) in layouts.iter().enumerate() {
        let len: usize = shape.iter().product();
        let rows = len / c;
        for (scale, label) in [(3.0, "normal"), (1e4, "±1e4"), (0.0, "all-equal rows")] {
            let x = random(len, -scale, scale + f32::EPSILON, case as u64);
            let mut rng = wgml::rng::Rng::new(case as u64 + 7);
            let y: Vec<i32> = (0..rows)
                .map(|i| {
                    if i % 5 == 3 {
                        -100
                    } else {
                        rng.below(c as u64) as i32
                    }
                })
                .collect();
            let mut probs = random(len, 0.0, 1.0, case as u64 + 3);
            // Normalise each row's probabilities over its C classes, D apart.
            for r in 0..rows {
                let at = |k: usize| (r / d) * c * d + r % d + k * d;
                let total: f32 = (0..c).map(|k| probs[at(k)]).sum();
                (0..c).for_each(|k| probs[at(k)] /= total);
            }
            let w = random(c, 0.0, 2.0, case as u64 + 99);
            for weight in [None, Some(&w[..])] {
                for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
                    for eps in [0.0, 0.25] {
                        for use_probs in [false, true] {
                            let (targets, ref_targets) = if use_probs {
                                (Right(&probs[..]), reference::Targets::Probabilities(&probs))
                            } else {
                                (Left(&y[..]), reference::Targets::Classes(&y))
                            };
                            let (loss, grad) =
                                ce(&x, shape, targets, weight, reduction, eps).unwrap();
                            let (eloss, egrad) = reference::cross_entropy(
                                &x,
                                ref_targets,
                                c,
                                d,
                                weight,
                                -100,
                                reduction,
                                eps,
                            );
                            let what = format!(
                                "CE {shape:?} {label} probs={use_probs} weighted={} {reduction:?} ε={eps}",
                                weight.is_some()
                            );
                            assert!(loss.iter().all(|l| l.is_finite()), "{what}: {loss:?}");
                            // Losses of ±1e4 logits are ~1e4: relative tolerance dominates.
                            assert_close(&loss, &eloss, 1e-4, 1e-5, &what);
                            assert_close(&grad, &egrad, 1e-5, 1e-5, &format!("{what} gradient"));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn cross_entropy_all_ignored_mean_is_nan_with_zero_gradient() {
    let ignored = Left(&[-100, -100, -100][..]);
    let (mean, grad) = ce(&X3, &[3, 3], ignored, None, Reduction::Mean, 0.1).unwrap();
    assert!(mean[0].is_nan(), "{mean:?}");
    assert!(grad.iter().all(|&g| g == 0.0));
    let ignored = Left(&[-100, -100, -100][..]);
    assert_eq!(
        ce(&X3, &[3, 3], ignored, None, Reduction::Sum, 0.0)
            .unwrap()
            .0,
        vec![0.0]
    );
}

#[test]
fn cross_entropy_errors_use_pytorchs_words() {
    let err = |r: wgml::Result<(Vec<f32>, Vec<f32>)>| r.unwrap_err().to_string();
    let m = Reduction::Mean;
    assert_eq!(
        err(ce(&X3, &[3, 3], Left(&[0, 12, 1]), None, m, 0.0)),
        "Target 12 is out of bounds."
    );
    assert_eq!(
        err(ce(&X3, &[3, 3], Left(&[0, 1, -3]), None, m, 0.0)),
        "Target -3 is out of bounds."
    );
    assert_eq!(
        err(ce(&X3, &[3, 3], Left(&[0, 1, 1]), None, m, 1.2)),
        "label_smoothing must be between 0.0 and 1.0. Got: 1.2"
    );
    assert!(err(ce(
        &X3,
        &[3, 3],
        Left(&[0, 1, 1]),
        Some(&[1.0, 2.0]),
        m,
        0.0
    ))
    .starts_with("weight tensor should be defined either for all 3 classes or no classes"));
    assert_eq!(
        "avg".parse::<Reduction>().unwrap_err().to_string(),
        "avg is not a valid value for reduction"
    );

    let logits = upload(&X3, &[3, 3]);
    let short = Tensor::from_slice(gpu(), &[0i32, 1], &[2]).unwrap();
    let e = cross_entropy(
        gpu(),
        &logits,
        Targets::Classes(&short),
        CrossEntropyOptions::default(),
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "Expected input batch_size (3) to match target batch_size (2)."
    );
    let probs = upload(&[0.5; 9], &[3, 3]);
    let opts = CrossEntropyOptions {
        ignore_index: 1,
        ..Default::default()
    };
    let e = cross_entropy(gpu(), &logits, Targets::Probabilities(&probs), opts);
    assert_eq!(
        e.unwrap_err().to_string(),
        "ignore_index is not supported for floating point target"
    );
}

#[test]
fn cross_entropy_flags_bad_targets_made_on_the_gpu() {
    let logits = upload(&X3, &[3, 3]);
    let targets = Tensor::from_slice(gpu(), &[0i32, 1, 7], &[3]).unwrap();
    let grad = Tensor::zeros(gpu(), &[3, 3], DType::F32).unwrap();
    let out = Tensor::zeros(gpu(), &[1], DType::F32).unwrap();
    let cursor = Tensor::zeros(gpu(), &[1], DType::U32).unwrap();
    let opts = CrossEntropyOptions::default();
    let k = CrossEntropyKernel::new(
        gpu(),
        &logits,
        Targets::Classes(&targets),
        opts,
        &grad,
        &out,
        &cursor,
    )
    .unwrap();
    k.program.run(gpu()).unwrap();
    assert_eq!(
        k.check_targets(gpu()).unwrap_err().to_string(),
        "Target 7 is out of bounds."
    );
    assert!(
        k.check_targets(gpu()).is_ok(),
        "the flag clears once reported"
    );
}

fn run_adam(config: AdamConfig, p0: &[f32], grads: &[Vec<f32>]) -> Vec<f32> {
    run_optimizer(p0, grads, |s| adam_dispatch(gpu(), &config, s))
}

#[test]
fn sgd_matches_reference_with_every_option() {
    for flags in 0..16u32 {
        let config = SgdConfig {
            lr: 0.05,
            momentum: if flags & 1 != 0 { 0.9 } else { 0.0 },
            dampening: if flags & 2 != 0 && flags & 4 == 0 {
                0.3
            } else {
                0.0
            },
            weight_decay: 0.01,
            nesterov: flags & 4 != 0 && flags & 1 != 0,
            maximize: flags & 8 != 0,
        };
        let n = 777;
        let p0 = random(n, -1.0, 1.0, u64::from(flags));
        let grads: Vec<Vec<f32>> = (0..4).map(|s| random(n, -1.0, 1.0, 50 + s)).collect();
        let got = run_optimizer(&p0, &grads, |s| sgd_dispatch(gpu(), &config, s));
        let mut p: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
        let mut buf = Vec::new();
        for g in &grads {
            let g: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
            reference::sgd_step(&config, &mut p, &g, &mut buf);
        }
        let expected: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        assert_torch_close(&got, &expected, &format!("{config:?}"));
    }
}

#[test]
fn adam_matches_pytorch_vectors() {
    let grads = [vec![0.5, -0.1], vec![-0.3, 0.2], vec![0.05, 0.4]];
    let base = AdamConfig {
        lr: 0.1,
        ..AdamConfig::default()
    };
    assert_torch_close(
        &run_adam(base, &[1.0, -2.0], &grads),
        &[0.8606391056, -2.0061811729],
        "Adam",
    );
    let l2 = AdamConfig {
        weight_decay: 0.1,
        ..base
    };
    assert_torch_close(
        &run_adam(l2, &[1.0, -2.0], &grads),
        &[0.8187530684, -1.8324800412],
        "Adam wd=0.1",
    );
    let adamw = AdamConfig {
        weight_decay: 0.1,
        decoupled: true,
        ..base
    };
    assert_torch_close(
        &run_adam(adamw, &[1.0, -2.0], &grads),
        &[0.8331196036, -1.9484030692],
        "AdamW wd=0.1",
    );
}

#[test]
fn adam_matches_reference_with_every_option() {
    for flags in 0..8u32 {
        let config = AdamConfig {
            lr: 1e-2,
            weight_decay: 0.05,
            decoupled: flags & 1 != 0,
            amsgrad: flags & 2 != 0,
            maximize: flags & 4 != 0,
            ..AdamConfig::default()
        };
        // Four elements per invocation, then the last len % 4 one by one.
        for n in [1, 7, 1000, 1003] {
            let p0 = random(n, -1.0, 1.0, u64::from(flags));
            // Every fifth gradient is 0 at every step: with decoupled decay its moments stay 0.
            let grads: Vec<Vec<f32>> = (0..5)
                .map(|s| {
                    let mut g = random(n, -1.0, 1.0, 100 + s);
                    g.iter_mut().step_by(5).for_each(|v| *v = 0.0);
                    g
                })
                .collect();
            let got = run_adam(config, &p0, &grads);
            let mut p: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
            let mut state = reference::AdamMoments::default();
            for g in &grads {
                let g: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
                reference::adam_step(&config, &mut p, &g, &mut state);
            }
            let expected: Vec<f32> = p.iter().map(|&v| v as f32).collect();
            assert_torch_close(&got, &expected, &format!("n={n} {config:?}"));
        }
    }
}

#[test]
fn gather_builds_normalised_batches_through_the_permutation() {
    // 5 bytes per sample: words straddle samples (one invocation per byte); 8: whole words;
    // 32: four words per invocation. Batches of 4 take the feature-major 4-row path where
    // rows hold whole 16-byte units; the last, partial batch of 1 does not.
    for features in [5, 8, 32] {
        for layout in [BatchLayout::Rows, BatchLayout::Columns] {
            for cursor in [1, 3] {
                gather_case(features, layout, cursor);
            }
        }
    }
}

fn gather_case(features: usize, layout: BatchLayout, batch: u32) {
    let (samples, stride) = (13, 4);
    let bytes: Vec<u8> = (0..samples * features)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    let labels: Vec<i32> = (0..samples as i32).map(|i| i % 10).collect();
    let order: Vec<u32> = wgml::rng::Rng::new(3).permutation(samples);
    let words = pack_bytes(&bytes);
    let pixels = Tensor::from_slice(gpu(), &words, &[words.len()]).unwrap();
    let labels_t = Tensor::from_slice(gpu(), &labels, &[samples]).unwrap();
    let order_t = Tensor::from_slice(gpu(), &order, &[samples]).unwrap();
    let cursor = Tensor::from_slice(gpu(), &[batch], &[1]).unwrap();
    let first = batch as usize * stride;
    let rows = stride.min(samples - first);
    let x = Tensor::zeros(gpu(), &layout.shape(rows, features), DType::F32).unwrap();
    let y = Tensor::zeros(gpu(), &[rows], DType::I32).unwrap();
    let src = GatherSource {
        pixels: &pixels,
        labels: &labels_t,
        features,
        order: &order_t,
        cursor: &cursor,
        stride,
    };
    // The gather also advances a step count; it may not advance its own cursor.
    let step = Tensor::from_slice(gpu(), &[41u32], &[1]).unwrap();
    let norm = (0.5, -1.0);
    let own = Some(Advance::of(&cursor));
    let err = gather_dispatch(gpu(), &src, (&x, layout), &y, norm, own).err();
    assert!(err.unwrap().to_string().contains("cannot advance it"));
    gather_dispatch(
        gpu(),
        &src,
        (&x, layout),
        &y,
        norm,
        Some(Advance::of(&step)),
    )
    .unwrap()
    .run(gpu())
    .unwrap();
    assert_eq!(step.to_vec::<u32>(gpu()).unwrap(), [42]);
    assert_eq!(cursor.to_vec::<u32>(gpu()).unwrap(), [batch]);
    let sample = |r: usize| order[first + r] as usize;
    let value = |r: usize, j: usize| f32::from(bytes[sample(r) * features + j]) * 0.5 - 1.0;
    let expected: Vec<f32> = match layout {
        BatchLayout::Rows => (0..rows * features)
            .map(|i| value(i / features, i % features))
            .collect(),
        BatchLayout::Columns => (0..rows * features)
            .map(|i| value(i % rows, i / rows))
            .collect(),
    };
    let what = format!("gather of {rows} rows of {features} bytes, {layout:?}");
    assert_eq!(x.to_vec::<f32>(gpu()).unwrap(), expected, "{what}");
    let expected_labels: Vec<i32> = (0..rows).map(|r| labels[sample(r)]).collect();
    assert_eq!(y.to_vec::<i32>(gpu()).unwrap(), expected_labels, "{what}");
}

#[test]
fn dispatches_beyond_the_per_dimension_limit_are_split() {
    let max = u64::from(gpu().limits().max_compute_workgroups_per_dimension);
    assert_eq!(gpu().grid(max).unwrap(), [max as u32, 1, 1]);
    assert_eq!(gpu().grid(max + 1).unwrap(), [max as u32, 2, 1]);
    assert!(gpu().grid(max * max + 1).is_err());

    // column_sum runs 64 columns per workgroup: this needs max + 2 workgroups, so a second grid
    // row, over one row of (max + 1) · 64 + 3 columns.
    let n = (max as usize + 1) * 64 + 3;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let sums = column_sum(gpu(), &upload(&x, &[1, n]))
        .unwrap()
        .to_vec::<f32>(gpu())
        .unwrap();
    assert_eq!(sums, x);
}

#[test]
fn optimizer_configs_are_checked_in_pytorchs_words() {
    use wgml::optim::OptimizerConfig::{Adam, Sgd};
    let err = |c: wgml::optim::OptimizerConfig| c.validate().unwrap_err().to_string();
    let adam = AdamConfig::default();
    assert_eq!(
        err(Adam(AdamConfig { lr: -0.1, ..adam })),
        "Invalid learning rate: -0.1"
    );
    assert_eq!(
        err(Adam(AdamConfig { eps: -1e-8, ..adam })),
        "Invalid epsilon value: -0.00000001"
    );
    assert_eq!(
        err(Adam(AdamConfig {
            betas: (1.0, 0.999),
            ..adam
        })),
        "Invalid beta parameter at index 0: 1"
    );
    assert_eq!(
        err(Adam(AdamConfig {
            betas: (0.9, -0.1),
            ..adam
        })),
        "Invalid beta parameter at index 1: -0.1"
    );
    assert_eq!(
        err(Adam(AdamConfig {
            weight_decay: -1.0,
            ..adam
        })),
        "Invalid weight_decay value: -1"
    );
    assert_eq!(
        err(Adam(AdamConfig {
            lr: f32::NAN,
            ..adam
        })),
        "Invalid learning rate: NaN"
    );
    let sgd = SgdConfig::default();
    assert_eq!(
        err(Sgd(SgdConfig {
            momentum: -0.5,
            ..sgd
        })),
        "Invalid momentum value: -0.5"
    );
    assert_eq!(
        err(Sgd(SgdConfig {
            nesterov: true,
            ..sgd
        })),
        "Nesterov momentum requires a momentum and zero dampening"
    );
    assert_eq!(
        err(Sgd(SgdConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..sgd
        })),
        "Nesterov momentum requires a momentum and zero dampening"
    );
    Sgd(SgdConfig {
        nesterov: true,
        momentum: 0.9,
        ..sgd
    })
    .validate()
    .unwrap();
    Adam(AdamConfig::adamw()).validate().unwrap();
}

/// A user's own tensors, optimized in a few lines: two parameters, their gradients from the host
/// (of Σ (p − target)²), one TensorOptimizer step per gradient, against Adam in f64.
#[test]
fn a_user_optimizes_their_own_tensors() {
    use wgml::optim::{OptimizerConfig, TensorOptimizer};
    let g = gpu();
    let config = AdamConfig {
        lr: 0.05,
        amsgrad: true,
        ..AdamConfig::default()
    };
    let (w0, b0) = (random(6, -1.0, 1.0, 1), random(2, -1.0, 1.0, 2));
    let target = random(8, -1.0, 1.0, 3);
    let w = Tensor::from_slice(g, &w0, &[3, 2]).unwrap();
    let b = Tensor::from_slice(g, &b0, &[2]).unwrap();
    let dw = Tensor::zeros(g, &[3, 2], DType::F32).unwrap();
    let db = Tensor::zeros(g, &[2], DType::F32).unwrap();
    let adam =
        TensorOptimizer::new(g, &[(&w, &dw), (&b, &db)], OptimizerConfig::Adam(config)).unwrap();

    let mut expected: Vec<Vec<f64>> = [&w0, &b0]
        .iter()
        .map(|p| p.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let mut moments = [
        reference::AdamMoments::default(),
        reference::AdamMoments::default(),
    ];
    for _ in 0..20 {
        for (i, (param, grad)) in [(&w, &dw), (&b, &db)].into_iter().enumerate() {
            let now = param.to_vec::<f32>(g).unwrap();
            let t = if i == 0 { &target[..6] } else { &target[6..] };
            let gradient: Vec<f32> = now.iter().zip(t).map(|(p, t)| 2.0 * (p - t)).collect();
            grad.write(g, &gradient).unwrap();
            let gradient: Vec<f64> = gradient.iter().map(|&x| f64::from(x)).collect();
            reference::adam_step(&config, &mut expected[i], &gradient, &mut moments[i]);
        }
        adam.step(g).unwrap();
    }
    for (param, expected) in [&w, &b].into_iter().zip(&expected) {
        let expected: Vec<f32> = expected.iter().map(|&x| x as f32).collect();
        assert_torch_close(&param.to_vec::<f32>(g).unwrap(), &expected, "own tensors");
    }
    let mismatched = TensorOptimizer::new(g, &[(&w, &db)], OptimizerConfig::Adam(config));
    assert!(mismatched
        .err()
        .unwrap()
        .to_string()
        .contains("parameter's shape [3, 2]"));
}

/// Each optimizer advances the caller's counter (a batch cursor) at the end of its update,
/// and its step count either in a dispatch of its own or in one earlier in the step (a
/// training step's gather): the same parameters every way, and no dispatch added for the
/// counter. A counter that cannot be advanced is refused.
#[test]
fn optimizers_advance_counters_where_the_step_asks() {
    let g = gpu();
    let configs = [
        OptimizerConfig::Adam(AdamConfig::default()),
        OptimizerConfig::Sgd(SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..SgdConfig::default()
        }),
        OptimizerConfig::Adadelta(AdadeltaConfig::default()),
    ];
    // 13 elements: Adam and Adadelta update in two dispatches where 64-bit integers allow.
    let p0 = random(13, -1.0, 1.0, 950);
    let grads: Vec<Vec<f32>> = (0..3).map(|i| random(13, -1.0, 1.0, 900 + i)).collect();
    for config in configs {
        let adam = matches!(config, OptimizerConfig::Adam(_));
        let run = |counter: Option<&Tensor>, earlier: bool| {
            let earlier = earlier.then_some(adam);
            run_optimizer_counting(&p0, &grads, counter, earlier, |state| match &config {
                OptimizerConfig::Adam(c) => adam_dispatch(g, c, state),
                OptimizerConfig::Sgd(c) => sgd_dispatch(g, c, state),
                OptimizerConfig::Adadelta(c) => adadelta_dispatch(g, c, state),
            })
        };
        let cursor = Tensor::from_slice(g, &[7u32], &[1]).unwrap();
        let (alone, dispatches) = run(None, false);
        assert_eq!(run(Some(&cursor), false), (alone.clone(), dispatches));
        assert_eq!(cursor.to_vec::<u32>(g).unwrap(), [10], "{config:?}");
        let (earlier, fewer) = run(Some(&cursor), true);
        assert_eq!(earlier, alone, "{config:?}");
        assert_eq!(fewer, dispatches - 1, "{config:?}");
        assert_eq!(cursor.to_vec::<u32>(g).unwrap(), [13], "{config:?}");
    }
    // No parameters: the counter still advances.
    let empty = Tensor::zeros(g, &[0], DType::F32).unwrap();
    let (step, factors) = (
        Tensor::zeros(g, &[1], DType::U32).unwrap(),
        Tensor::zeros(g, &[FACTORS], DType::F32).unwrap(),
    );
    let cursor = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let state = OptimState {
        step: &step,
        factors: &factors,
        grad: &empty,
        param: &empty,
        m: &empty,
        v: &empty,
        v_max: &empty,
        advanced_earlier: true,
        counter: Some(&cursor),
    };
    let program = adam_dispatch(g, &AdamConfig::default(), &state).unwrap();
    program.run(g).unwrap();
    assert_eq!(cursor.to_vec::<u32>(g).unwrap(), [1]);
    let wide = Tensor::zeros(g, &[2], DType::U32).unwrap();
    assert!(advance_dispatch(g, Advance::of(&wide)).is_err());
    let floats = Tensor::zeros(g, &[1], DType::F32).unwrap();
    assert!(advance_dispatch(g, Advance::of(&floats)).is_err());
    let step = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let factors = Tensor::zeros(g, &[4], DType::F32).unwrap(); // short of FACTORS
    let short = Advance {
        counter: &step,
        adam_factors: Some(&factors),
    };
    assert!(advance_dispatch(g, short).is_err());
}

/// The optimizer kernels check their hyper-parameters themselves, as `Optimizer::new` does,
/// and the counters they advance.
#[test]
fn optimizer_dispatches_refuse_invalid_hyper_parameters() {
    let g = gpu();
    let t = |n| Tensor::zeros(g, &[n], DType::F32).unwrap();
    let (p, gr, m, v, vm, f) = (t(4), t(4), t(4), t(4), t(4), t(FACTORS));
    let step = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let state = OptimState {
        step: &step,
        factors: &f,
        grad: &gr,
        param: &p,
        m: &m,
        v: &v,
        v_max: &vm,
        advanced_earlier: false,
        counter: None,
    };
    let bad_lr = AdamConfig {
        lr: -1.0,
        ..AdamConfig::default()
    };
    let err = adam_dispatch(g, &bad_lr, &state).err().unwrap().to_string();
    assert_eq!(err, "Invalid learning rate: -1");
    let bad_beta = AdamConfig {
        betas: (0.9, 1.0),
        ..AdamConfig::default()
    };
    assert!(adam_dispatch(g, &bad_beta, &state).is_err());
    let nesterov = SgdConfig {
        nesterov: true,
        ..SgdConfig::default()
    };
    assert!(sgd_dispatch(g, &nesterov, &state).is_err());
    // The step count cannot be the counter the update advances: it advances before.
    let twice = OptimState {
        counter: Some(&step),
        ..state
    };
    let err = adam_dispatch(g, &AdamConfig::default(), &twice).err();
    assert!(err.unwrap().to_string().contains("must be another"));
}

/// Products over a K longer than a CPU adapter's loop budget (Mesa stops an invocation's
/// loops after 65,535 iterations): Auto avoids the layouts that can loop once per k there, and
/// those layouts refuse such a K when asked for by name.
#[test]
fn matmul_over_a_k_past_the_loop_budget_is_right_or_refused() {
    let g = gpu();
    for (m, n, k, trans_a, trans_b) in [(2, 3, 70_000, false, false), (3, 2, 70_000, true, false)] {
        let a = random(m * k, -1.0, 1.0, 1);
        let b = random(k * n, -1.0, 1.0, 2);
        let a_shape = if trans_a { [k, m] } else { [m, k] };
        let b_shape = if trans_b { [n, k] } else { [k, n] };
        let (at, bt) = (upload(&a, &a_shape), upload(&b, &b_shape));
        let expected = reference::matmul(&a, &b, m, n, k, trans_a, trans_b, None, false);
        for kernel in [MatmulKernel::Auto].into_iter().chain(MatmulKernel::ALL) {
            let opts = MatmulOptions {
                trans_a,
                trans_b,
                kernel,
                ..Default::default()
            };
            match matmul(g, &at, &bt, opts) {
                Ok(c) => assert_close(
                    &c.to_vec::<f32>(g).unwrap(),
                    &expected,
                    1e-2,
                    1e-4,
                    &format!("{kernel:?}"),
                ),
                Err(e) => assert!(
                    kernel != MatmulKernel::Auto && !kernel.supports(g, (m, n, k), &opts),
                    "{kernel:?}: {e}"
                ),
            }
        }
    }
}
