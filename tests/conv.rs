//! conv2d and its gradients against PyTorch (tests/golden/generate_conv.py), the CPU reference
//! over odd shapes, and central finite differences.

mod common;
use common::{assert_close, fixture, gpu, random};
use serde_json::Value;
use wgml::gpu::{DType, Tensor};
use wgml::kernels::conv::{
    conv2d, conv2d_backward, conv2d_forward, conv2d_gradients, output_size, Conv2dGrads,
    Conv2dOptions, Conv2dScratch, Conv2dShape, TapsGradLayout,
};
use wgml::reference;

fn floats(v: &Value) -> Vec<f32> {
    (v.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    (v.as_array().unwrap().iter())
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn pair(v: &Value) -> (usize, usize) {
    let d = dims(v);
    (d[0], d[1])
}

/// Within float32 rounding of sums of many products: 1e-5 of the largest expected magnitude,
/// plus 1e-5 relative.
fn assert_sum_close(actual: &[f32], expected: &[f32], what: &str) {
    let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
    assert_close(actual, expected, 1e-5 * scale, 1e-5, what);
}

#[test]
fn conv2d_matches_pytorch() {
    let g = gpu();
    let text = std::fs::read_to_string(fixture("conv2d.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let opts = Conv2dOptions {
            stride: pair(&case["stride"]),
            padding: pair(&case["padding"]),
            dilation: pair(&case["dilation"]),
        };
        let x = Tensor::from_slice(g, &floats(&case["x"]), &dims(&case["x_shape"])).unwrap();
        let w = Tensor::from_slice(g, &floats(&case["w"]), &dims(&case["w_shape"])).unwrap();
        let b = (!case["b"].is_null()).then(|| {
            let b = floats(&case["b"]);
            Tensor::from_slice(g, &b, &[b.len()]).unwrap()
        });
        let y = conv2d(g, &x, &w, b.as_ref(), &opts).unwrap();
        assert_sum_close(&y.to_vec::<f32>(g).unwrap(), &floats(&case["y"]), name);
        let dy = Tensor::from_slice(g, &floats(&case["dy"]), y.shape()).unwrap();
        let (dx, dw, db) = conv2d_gradients(g, &x, &w, &dy, &opts).unwrap();
        let read = |t: &Tensor| t.to_vec::<f32>(g).unwrap();
        assert_sum_close(&read(&dx), &floats(&case["dx"]), &format!("{name}: dx"));
        assert_sum_close(&read(&dw), &floats(&case["dw"]), &format!("{name}: dw"));
        if !case["db"].is_null() {
            assert_sum_close(&read(&db), &floats(&case["db"]), &format!("{name}: db"));
        }
        println!("ok  conv2d {name}");
    }
}

/// Input shape, weight shape and options of the odd cases.
fn odd_cases() -> Vec<([usize; 4], [usize; 4], Conv2dOptions)> {
    let opts = |stride, padding, dilation| Conv2dOptions {
        stride,
        padding,
        dilation,
    };
    vec![
        ([1, 1, 1, 1], [1, 1, 1, 1], Conv2dOptions::default()),
        ([1, 3, 7, 7], [7, 3, 3, 3], opts((1, 1), (1, 1), (1, 1))),
        ([2, 7, 9, 13], [5, 7, 5, 3], opts((2, 1), (2, 0), (1, 1))),
        ([3, 2, 17, 5], [9, 2, 3, 3], opts((2, 2), (1, 1), (2, 1))),
        ([1, 65, 4, 4], [3, 65, 1, 1], Conv2dOptions::default()),
        ([2, 1, 63, 3], [63, 1, 3, 3], opts((3, 1), (0, 1), (1, 1))),
        ([1, 4, 9, 9], [2, 4, 9, 9], Conv2dOptions::default()),
        // Channels in fours: position-major col2im reads four per access.
        ([2, 8, 7, 6], [5, 8, 3, 2], opts((2, 1), (1, 1), (1, 2))),
        // 12 positions: the taps move eight at a time, then four.
        ([1, 2, 6, 2], [3, 2, 1, 1], Conv2dOptions::default()),
        ([3, 1, 5, 4], [2, 1, 2, 3], opts((1, 1), (1, 2), (1, 1))),
    ]
}

/// Builds and runs a backward pass.
fn run_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    grads: Conv2dGrads,
    scratch: &Conv2dScratch,
    opts: &Conv2dOptions,
) {
    let g = gpu();
    let program = conv2d_backward(g, x, w, dy, grads, scratch, opts).unwrap();
    program.run(g).unwrap();
}

#[test]
fn conv2d_matches_the_reference_over_odd_shapes() {
    let g = gpu();
    for (seed, (input, weight, opts)) in odd_cases().into_iter().enumerate() {
        let shape = Conv2dShape::new(&input, &weight, &opts).unwrap();
        let seed = seed as u64 * 10;
        let xs = random(input.iter().product(), -2.0, 2.0, seed);
        let ws = random(weight.iter().product(), -0.5, 0.5, seed + 1);
        let bs = random(weight[0], -1.0, 1.0, seed + 2);
        let dys = random(shape.output().iter().product(), -1.0, 1.0, seed + 3);
        let x = Tensor::from_slice(g, &xs, &input).unwrap();
        let w = Tensor::from_slice(g, &ws, &weight).unwrap();
        let b = Tensor::from_slice(g, &bs, &[weight[0]]).unwrap();
        let dy = Tensor::from_slice(g, &dys, &shape.output()).unwrap();
        let what = format!("{input:?} * {weight:?} {opts:?}");
        let y = conv2d(g, &x, &w, Some(&b), &opts).unwrap();
        let expected = reference::conv2d(&xs, &ws, Some(&bs), &shape, &opts);
        assert_sum_close(&y.to_vec::<f32>(g).unwrap(), &expected, &what);
        let (dx, dw, db) = conv2d_gradients(g, &x, &w, &dy, &opts).unwrap();
        let (edx, edw, edb) = reference::conv2d_backward(&xs, &ws, &dys, &shape, &opts);
        let read = |t: &Tensor| t.to_vec::<f32>(g).unwrap();
        assert_sum_close(&read(&dx), &edx, &format!("{what}: dx"));
        assert_sum_close(&read(&dw), &edw, &format!("{what}: dw"));
        assert_sum_close(&read(&db), &edb, &format!("{what}: db"));
        // dx through each layout of the taps' gradient, whichever the adapter takes.
        let scratch = Conv2dScratch::for_shapes(g, &[shape]).unwrap();
        for taps_grad in [TapsGradLayout::TapsMajor, TapsGradLayout::PositionMajor] {
            let grads = Conv2dGrads {
                dx: Some(&dx),
                gate: None,
                dweight: &dw,
                dbias: None,
                taps_kept: false,
                taps_grad,
            };
            dx.write(g, &vec![f32::NAN; dx.len()]).unwrap();
            run_backward(&x, &w, &dy, grads, &scratch, &opts);
            assert_sum_close(&read(&dx), &edx, &format!("{what}: dx, {taps_grad:?}"));
        }
        // The scratch a model gives one convolution holds the product matrix only where its
        // passes go through it: forward alone, and backward without and with dx, run with it.
        let full = scratch.bytes();
        for backward in [None, Some(false), Some(true)] {
            let scratch = Conv2dScratch::for_convolution(g, &shape, backward).unwrap();
            assert!(scratch.bytes() <= full, "{what}: {backward:?}");
            let what = format!("{what}, scratch for {backward:?}");
            y.write(g, &vec![f32::NAN; y.len()]).unwrap();
            conv2d_forward(g, &x, &w, Some(&b), false, &y, &scratch, &opts)
                .unwrap()
                .run(g)
                .unwrap();
            assert_sum_close(&read(&y), &expected, &what);
            let Some(with_dx) = backward else { continue };
            for t in [&dx, &dw, &db] {
                t.write(g, &vec![f32::NAN; t.len()]).unwrap();
            }
            let grads = Conv2dGrads {
                dx: with_dx.then_some(&dx),
                gate: None,
                dweight: &dw,
                dbias: Some(&db),
                taps_kept: true,
                taps_grad: TapsGradLayout::Auto,
            };
            run_backward(&x, &w, &dy, grads, &scratch, &opts);
            assert_sum_close(&read(&dw), &edw, &format!("{what}: dw"));
            assert_sum_close(&read(&db), &edb, &format!("{what}: db"));
            if with_dx {
                assert_sum_close(&read(&dx), &edx, &format!("{what}: dx"));
            }
        }
    }
}

/// Σ y·dy of the f64 reference, as a function of x, w and b.
fn reference_loss(
    xs: &[f64],
    ws: &[f64],
    bs: &[f64],
    dy: &[f32],
    shape: &Conv2dShape,
    opts: &Conv2dOptions,
) -> f64 {
    let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
    // The reference works in f64 internally, but takes f32: perturb by steps f32 resolves.
    let y = reference::conv2d(&f32s(xs), &f32s(ws), Some(&f32s(bs)), shape, opts);
    y.iter()
        .zip(dy)
        .map(|(&y, &d)| f64::from(y) * f64::from(d))
        .sum()
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    let g = gpu();
    let input = [2, 3, 6, 5];
    let weight = [4, 3, 3, 2];
    let opts = Conv2dOptions {
        stride: (2, 1),
        padding: (1, 1),
        dilation: (1, 2),
    };
    let shape = Conv2dShape::new(&input, &weight, &opts).unwrap();
    let xs = random(input.iter().product(), -1.0, 1.0, 7);
    let ws = random(weight.iter().product(), -1.0, 1.0, 8);
    let bs = random(4, -1.0, 1.0, 9);
    let dys = random(shape.output().iter().product(), -1.0, 1.0, 10);
    let x = Tensor::from_slice(g, &xs, &input).unwrap();
    let w = Tensor::from_slice(g, &ws, &weight).unwrap();
    let dy = Tensor::from_slice(g, &dys, &shape.output()).unwrap();
    let (dx, dw, db) = conv2d_gradients(g, &x, &w, &dy, &opts).unwrap();
    let grads = [dx, dw, db].map(|t| t.to_vec::<f32>(g).unwrap());
    let mut params = [&xs, &ws, &bs].map(|v| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    let h = 1.0 / 64.0; // exact in f32, so x ± h is too
    for which in 0..3 {
        for i in (0..params[which].len()).step_by(5) {
            let at = params[which][i];
            let loss = |v: f64, params: &mut [Vec<f64>; 3]| {
                params[which][i] = v;
                reference_loss(&params[0], &params[1], &params[2], &dys, &shape, &opts)
            };
            let numeric = (loss(at + h, &mut params) - loss(at - h, &mut params)) / (2.0 * h);
            params[which][i] = at;
            let analytic = f64::from(grads[which][i]);
            assert!(
                (numeric - analytic).abs() <= 1e-4 * numeric.abs().max(1.0),
                "tensor {which} element {i}: finite difference {numeric}, backward {analytic}"
            );
        }
    }
}

#[test]
fn fused_epilogues_apply_bias_relu_and_gate() {
    let g = gpu();
    let (input, weight) = ([2, 3, 5, 6], [4, 3, 3, 3]);
    let opts = Conv2dOptions {
        padding: (1, 1),
        ..Default::default()
    };
    let shape = Conv2dShape::new(&input, &weight, &opts).unwrap();
    let xs = random(input.iter().product(), -1.0, 1.0, 1);
    let ws = random(weight.iter().product(), -1.0, 1.0, 2);
    let bs = random(4, -1.0, 1.0, 3);
    let dys = random(shape.output().iter().product(), -1.0, 1.0, 4);
    let x = Tensor::from_slice(g, &xs, &input).unwrap();
    let w = Tensor::from_slice(g, &ws, &weight).unwrap();
    let b = Tensor::from_slice(g, &bs, &[4]).unwrap();
    let dy = Tensor::from_slice(g, &dys, &shape.output()).unwrap();
    // One scratch, larger than needed, shared by both passes.
    let scratch = Conv2dScratch::new(g, 10_000, 10_000, 10_000).unwrap();
    let y = Tensor::zeros(g, &shape.output(), DType::F32).unwrap();
    conv2d_forward(g, &x, &w, Some(&b), true, &y, &scratch, &opts)
        .unwrap()
        .run(g)
        .unwrap();
    let expected = reference::relu(&reference::conv2d(&xs, &ws, Some(&bs), &shape, &opts));
    assert_sum_close(&y.to_vec::<f32>(g).unwrap(), &expected, "relu(conv + b)");
    // The input as the output of a ReLU: dx is zeroed where x ≤ 0.
    let (dx, dw) = (
        Tensor::zeros(g, &input, DType::F32).unwrap(),
        Tensor::zeros(g, &weight, DType::F32).unwrap(),
    );
    let grads = Conv2dGrads {
        dx: Some(&dx),
        gate: Some(&x),
        dweight: &dw,
        dbias: None,
        taps_kept: true,
        taps_grad: TapsGradLayout::Auto,
    };
    run_backward(&x, &w, &dy, grads, &scratch, &opts);
    let (edx, edw, _) = reference::conv2d_backward(&xs, &ws, &dys, &shape, &opts);
    let gated: Vec<f32> = (edx.iter().zip(&xs))
        .map(|(&d, &x)| if x > 0.0 { d } else { 0.0 })
        .collect();
    assert_sum_close(&dx.to_vec::<f32>(g).unwrap(), &gated, "gated dx");
    assert_sum_close(&dw.to_vec::<f32>(g).unwrap(), &edw, "dw");
}

#[test]
fn bad_shapes_get_clear_errors() {
    let g = gpu();
    let x = Tensor::zeros(g, &[1, 2, 5, 5], DType::F32).unwrap();
    let w = Tensor::zeros(g, &[4, 3, 3, 3], DType::F32).unwrap();
    let err = conv2d(g, &x, &w, None, &Conv2dOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("expects 3 input channels"),
        "{err}"
    );
    let big = Tensor::zeros(g, &[4, 2, 7, 7], DType::F32).unwrap();
    let err = conv2d(g, &x, &big, None, &Conv2dOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("smaller than the 7×7 kernel"),
        "{err}"
    );
    let flat = Tensor::zeros(g, &[2, 25], DType::F32).unwrap();
    let err = conv2d(g, &flat, &w, None, &Conv2dOptions::default()).unwrap_err();
    assert!(err.to_string().contains("(N, C, H, W)"), "{err}");
    let zero_stride = Conv2dOptions {
        stride: (0, 1),
        ..Default::default()
    };
    let w2 = Tensor::zeros(g, &[4, 2, 3, 3], DType::F32).unwrap();
    let err = conv2d(g, &x, &w2, None, &zero_stride).unwrap_err();
    assert!(err.to_string().contains("must be positive"), "{err}");
    let err = output_size((5, 5), (0, 3), &Conv2dOptions::default()).unwrap_err();
    assert!(err.to_string().contains("must be positive"), "{err}");
    let small = Conv2dScratch::new(g, 10, 10, 10).unwrap();
    let y = Tensor::zeros(g, &[1, 4, 3, 3], DType::F32).unwrap();
    let Err(err) = conv2d_forward(g, &x, &w2, None, false, &y, &small, &Default::default()) else {
        panic!("a scratch too small was taken");
    };
    assert!(err.to_string().contains("scratch"), "{err}");
}

/// `Net`'s second convolution where the subgroup matmul runs: its products read and write NCHW
/// in place, so the scratch a model gives it holds no product matrix (9.4 MB at batch 64).
#[test]
fn a_model_s_convolution_scratch_holds_only_what_its_passes_use() {
    let g = gpu();
    let shape = Conv2dShape::new(&[64, 32, 26, 26], &[64, 32, 3, 3], &Default::default()).unwrap();
    let full = Conv2dScratch::for_shapes(g, &[shape]).unwrap().bytes();
    let product = 4 * (shape.out_channels * shape.positions()) as u64;
    for backward in [None, Some(false), Some(true)] {
        let bytes = Conv2dScratch::for_convolution(g, &shape, backward)
            .unwrap()
            .bytes();
        if wgml::kernels::policy::subgroup_matmul(g.profile()) {
            assert_eq!(bytes + product - 4, full, "{backward:?}");
        } else {
            assert_eq!(bytes, full, "{backward:?}");
        }
    }
}
