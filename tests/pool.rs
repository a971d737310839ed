//! Max pooling against PyTorch (tests/golden/generate_pool.py) and the CPU reference.

mod common;
use common::{assert_torch_close, fixture, gpu, random};
use serde_json::Value;
use wgml::gpu::Tensor;
use wgml::kernels::pool::{max_pool2d, max_pool2d_backward, MaxPool2d};
use wgml::reference;

fn floats(v: &Value) -> Vec<f32> {
    let all = v.as_array().unwrap();
    all.iter()
        .map(|x| match x {
            Value::Null => f32::NAN,
            Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
            x => x.as_f64().unwrap() as f32,
        })
        .collect()
}

fn pair(v: &Value) -> (usize, usize) {
    let a = v.as_array().unwrap();
    (
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    )
}

/// Equal bit for bit where values are, NaN where NaN is.
fn assert_same(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            a == e || (a.is_nan() && e.is_nan()),
            "{what}[{i}]: {a} vs {e}"
        );
    }
}

#[test]
fn max_pool2d_matches_pytorch() {
    let g = gpu();
    let text = std::fs::read_to_string(fixture("max_pool2d.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let shape: Vec<usize> = (case["shape"].as_array().unwrap().iter())
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let pool = MaxPool2d {
            kernel: pair(&case["kernel"]),
            stride: (!case["stride"].is_null()).then(|| pair(&case["stride"])),
            padding: pair(&case["padding"]),
            dilation: pair(&case["dilation"]),
        };
        let x = Tensor::from_slice(g, &floats(&case["x"]), &shape).unwrap();
        let (y, indices) = max_pool2d(g, &x, &pool).unwrap();
        assert_same(&y.to_vec::<f32>(g).unwrap(), &floats(&case["y"]), name);
        let expected: Vec<u32> = (case["indices"].as_array().unwrap().iter())
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            indices.to_vec::<u32>(g).unwrap(),
            expected,
            "{name}: indices"
        );
        let dy = Tensor::from_slice(g, &floats(&case["dy"]), y.shape()).unwrap();
        let dx = max_pool2d_backward(g, &dy, &indices, &shape, &pool).unwrap();
        assert_torch_close(&dx.to_vec::<f32>(g).unwrap(), &floats(&case["dx"]), name);
        println!("ok  max_pool2d {name}");
    }
}

#[test]
fn max_pool2d_matches_the_reference_over_odd_shapes() {
    let g = gpu();
    // Rows of a multiple of 4 take the 2×2 entry points for 2×2 windows (backward only where
    // the windows tile the input: an even height).
    let shapes = [
        [1, 1, 1, 1],
        [1, 3, 7, 5],
        [2, 2, 63, 9],
        [3, 1, 13, 65],
        [2, 3, 9, 12],
        [1, 2, 6, 4],
    ];
    let pools = [
        MaxPool2d::default(),
        MaxPool2d {
            kernel: (3, 3),
            stride: Some((1, 2)),
            padding: (1, 1),
            dilation: (1, 1),
        },
        MaxPool2d {
            kernel: (1, 3),
            stride: Some((2, 1)),
            padding: (0, 1),
            dilation: (1, 2),
        },
    ];
    for (s, shape) in shapes.iter().enumerate() {
        for pool in &pools {
            if pool.output_size((shape[2], shape[3])).is_err() {
                continue;
            }
            let len = shape.iter().product();
            // Few distinct values, so that ties are common, and a NaN now and then.
            let x: Vec<f32> = (random(len, 0.0, 4.0, s as u64).iter().enumerate())
                .map(|(i, v)| if i % 23 == 5 { f32::NAN } else { v.floor() })
                .collect();
            let (y, indices) =
                max_pool2d(g, &Tensor::from_slice(g, &x, shape).unwrap(), pool).unwrap();
            let (ey, ei) = reference::max_pool2d(&x, *shape, pool);
            let what = format!("{shape:?} {pool:?}");
            assert_same(&y.to_vec::<f32>(g).unwrap(), &ey, &what);
            assert_eq!(indices.to_vec::<u32>(g).unwrap(), ei, "{what}");
            let dy = random(ey.len(), -1.0, 1.0, 7);
            let dy_t = Tensor::from_slice(g, &dy, y.shape()).unwrap();
            let dx = max_pool2d_backward(g, &dy_t, &indices, shape, pool).unwrap();
            let edx = reference::max_pool2d_backward(&dy, &ei, *shape);
            assert_torch_close(&dx.to_vec::<f32>(g).unwrap(), &edx, &what);
        }
    }
}

/// The fused ReLU gate, on windows that tile the input (one window per input) and on windows
/// that overlap or leave inputs out.
#[test]
fn gated_backward_zeroes_where_the_gate_is_closed() {
    use wgml::gpu::DType;
    use wgml::kernels::pool::max_pool2d_backward_dispatch;
    let g = gpu();
    let overlapping = MaxPool2d {
        kernel: (3, 3),
        stride: Some((2, 1)),
        padding: (1, 1),
        dilation: (1, 1),
    };
    for (shape, pool) in [
        ([2, 3, 8, 6], MaxPool2d::default()),
        ([2, 3, 8, 12], MaxPool2d::default()),
        ([1, 3, 7, 5], MaxPool2d::default()),
        ([2, 2, 9, 7], overlapping),
    ] {
        let len = shape.iter().product();
        let x = random(len, -1.0, 1.0, 3);
        let (y, indices) =
            max_pool2d(g, &Tensor::from_slice(g, &x, &shape).unwrap(), &pool).unwrap();
        let (_, ei) = reference::max_pool2d(&x, shape, &pool);
        let dy = random(y.len(), -1.0, 1.0, 4);
        let dy_t = Tensor::from_slice(g, &dy, y.shape()).unwrap();
        let gate = Tensor::from_slice(g, &x, &shape).unwrap();
        let dx = Tensor::zeros(g, &shape, DType::F32).unwrap();
        max_pool2d_backward_dispatch(g, &dy_t, &indices, &dx, Some(&gate), &pool)
            .unwrap()
            .run(g)
            .unwrap();
        let expected: Vec<f32> = (reference::max_pool2d_backward(&dy, &ei, shape).iter())
            .zip(&x)
            .map(|(&d, &x)| if x > 0.0 { d } else { 0.0 })
            .collect();
        let what = format!("{shape:?} {pool:?}");
        assert_torch_close(&dx.to_vec::<f32>(g).unwrap(), &expected, &what);
    }
}

#[test]
fn bad_pools_are_errors_in_pytorchs_words() {
    let g = gpu();
    let x = Tensor::from_slice(g, &[0.0f32; 16], &[1, 1, 4, 4]).unwrap();
    let wide_pad = MaxPool2d {
        kernel: (2, 2),
        padding: (2, 0),
        ..Default::default()
    };
    let err = max_pool2d(g, &x, &wide_pad).unwrap_err().to_string();
    assert!(
        err.contains("pad should be at most half of effective kernel size, but got pad=2"),
        "{err}"
    );
    let flat = Tensor::from_slice(g, &[0.0f32; 16], &[4, 4]).unwrap();
    assert!(max_pool2d(g, &flat, &MaxPool2d::default()).is_err());
    let large = MaxPool2d {
        kernel: (5, 5),
        ..Default::default()
    };
    assert!(max_pool2d(g, &x, &large)
        .unwrap_err()
        .to_string()
        .contains("smaller than"));
}
