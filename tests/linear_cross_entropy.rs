//! The fused linear + cross-entropy against PyTorch (tests/golden/generate_lce.py), the f64
//! reference, its memory formula, determinism and its errors.

mod common;
use common::{gpu, hash, values};
use serde_json::Value;
use wgml::gpu::{DType, Gpu, GpuOptions, Tensor};
use wgml::kernels::cross_entropy::CrossEntropyOptions;
use wgml::kernels::linear_cross_entropy::{
    linear_cross_entropy, LinearCrossEntropyGrads, LinearCrossEntropyKernel,
    LinearCrossEntropyOptions, LinearCrossEntropyOutput,
};
use wgml::reference;

/// generate_lce.py's `targets`.
fn targets(n: usize, v: usize, seed: u32, ignore_every: u32) -> Vec<i32> {
    (0..n as u32)
        .map(|i| {
            if ignore_every > 0 && hash(i, seed + 1).is_multiple_of(ignore_every) {
                -100
            } else {
                (hash(i, seed) % v as u32) as i32
            }
        })
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    let all = v.as_array().unwrap();
    all.iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32))
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(f32s).collect()
}

/// PyTorch's float32 tolerance element by element, and a largest error within 1e-4 of the
/// largest expected magnitude (which the absolute term would hide for small gradients).
fn assert_matches(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let scale = expected.iter().fold(0f32, |m, e| m.max(e.abs()));
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_nan() {
            assert!(a.is_nan(), "{what}[{i}] is {a}, expected NaN");
            continue;
        }
        let err = (a - e).abs();
        assert!(
            err <= 1e-5 + 1.3e-6 * e.abs() && err <= 1e-4 * scale + 1e-30,
            "{what}[{i}] is {a}, expected {e} (largest |expected| {scale})"
        );
    }
}

/// One fixture's inputs, on the GPU and on the host.
struct Inputs {
    n: usize,
    d: usize,
    v: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    class_weight: Option<Vec<f32>>,
    y: Vec<i32>,
}

impl Inputs {
    fn of(case: &Value) -> Self {
        let get = |k: &str| case[k].as_u64().unwrap() as usize;
        let (n, d, v) = (get("n"), get("d"), get("v"));
        let seed = case["seed"].as_u64().unwrap() as u32;
        let scale = |k: &str| case[k].as_f64().unwrap() as f32;
        let on = |k: &str| case[k].as_bool().unwrap();
        let ignore_every = case["ignore_every"].as_u64().unwrap() as u32;
        Inputs {
            n,
            d,
            v,
            x: values(n * d, seed, scale("x_scale")),
            w: values(v * d, seed + 2, scale("w_scale")),
            b: on("bias").then(|| values(v, seed + 3, 1.0)),
            class_weight: on("weight")
                .then(|| values(v, seed + 4, 1.0).iter().map(|w| w + 1.0).collect()),
            y: targets(n, v, seed + 5, ignore_every),
        }
    }

    fn run(&self, loss: CrossEntropyOptions, chunk: Option<usize>) -> LinearCrossEntropyOutput {
        let g = gpu();
        let x = Tensor::from_slice(g, &self.x, &[self.n, self.d]).unwrap();
        let w = Tensor::from_slice(g, &self.w, &[self.v, self.d]).unwrap();
        let b = self
            .b
            .as_ref()
            .map(|b| Tensor::from_slice(g, b, &[self.v]).unwrap());
        let cw = (self.class_weight.as_ref()).map(|c| Tensor::from_slice(g, c, &[self.v]).unwrap());
        let y = Tensor::from_slice(g, &self.y, &[self.n]).unwrap();
        let opts = LinearCrossEntropyOptions {
            bias: b.as_ref(),
            loss: CrossEntropyOptions {
                weight: cw.as_ref(),
                ..loss
            },
            chunk_classes: chunk,
        };
        linear_cross_entropy(g, &x, &w, &y, opts, true).unwrap()
    }

    fn reference(&self, loss: CrossEntropyOptions) -> reference::LinearCrossEntropy<'_> {
        reference::LinearCrossEntropy {
            x: &self.x,
            weight: &self.w,
            bias: self.b.as_deref(),
            targets: &self.y,
            features: self.d,
            class_weight: self.class_weight.as_deref(),
            ignore_index: loss.ignore_index,
            reduction: loss.reduction,
            smoothing: loss.label_smoothing,
        }
    }
}

fn read(t: &Option<Tensor>) -> Vec<f32> {
    t.as_ref().unwrap().to_vec(gpu()).unwrap()
}

#[test]
fn matches_pytorch_over_every_option_and_odd_shapes() {
    let path = common::fixture("linear_cross_entropy.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let inputs = Inputs::of(case);
        let loss = CrossEntropyOptions {
            reduction: case["reduction"].as_str().unwrap().parse().unwrap(),
            label_smoothing: case["smoothing"].as_f64().unwrap() as f32,
            ..Default::default()
        };
        let chunk = case["chunk"].as_u64().map(|c| c as usize);
        let out = inputs.run(loss, chunk);
        let loss = out.loss.to_vec::<f32>(gpu()).unwrap();
        assert_matches(&loss, &f32s(&case["loss"]), &format!("{name}: loss"));
        let (d, dx, dw) = (inputs.d, read(&out.dx), read(&out.dweight));
        let picked = |all: &[f32], at: &Value| -> Vec<f32> {
            let at = at
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize);
            at.flat_map(|i| all[i * d..(i + 1) * d].to_vec()).collect()
        };
        let flat = |v: &Value| rows(v).concat();
        let dx_rows = picked(&dx, &case["rows"]);
        assert_matches(&dx_rows, &flat(&case["dx"]), &format!("{name}: dx"));
        let dw_rows = picked(&dw, &case["classes"]);
        assert_matches(
            &dw_rows,
            &flat(&case["dweight"]),
            &format!("{name}: dweight"),
        );
        if inputs.b.is_some() {
            let db = read(&out.dbias);
            let classes = case["classes"].as_array().unwrap();
            let db: Vec<f32> = (classes.iter())
                .map(|c| db[c.as_u64().unwrap() as usize])
                .collect();
            assert_matches(&db, &f32s(&case["dbias"]), &format!("{name}: dbias"));
        }
        println!("{name}: loss {loss:?}");
    }
}

/// A small case with every option, from the f64 reference, at several chunk sizes.
#[test]
fn every_chunk_size_agrees_with_the_reference_and_repeats_bit_for_bit() {
    let case = serde_json::json!({
        "n": 65, "d": 7, "v": 333, "seed": 99, "x_scale": 3.0, "w_scale": 1.0,
        "bias": true, "weight": true, "ignore_every": 4,
    });
    let inputs = Inputs::of(&case);
    let loss = CrossEntropyOptions {
        label_smoothing: 0.15,
        ..Default::default()
    };
    let expected = inputs.reference(loss).run(true);
    let as_f32 = |v: &[f64]| v.iter().map(|&e| e as f32).collect::<Vec<_>>();
    for chunk in [Some(64), Some(128), Some(320), None] {
        let out = inputs.run(loss, chunk);
        let at = format!("chunk {chunk:?}");
        let got = out.loss.to_vec::<f32>(gpu()).unwrap();
        assert_matches(&got, &as_f32(&expected.loss), &format!("{at}: loss"));
        let dx = read(&out.dx);
        assert_matches(&dx, &as_f32(&expected.dx), &format!("{at}: dx"));
        let dw = read(&out.dweight);
        assert_matches(&dw, &as_f32(&expected.dweight), &format!("{at}: dweight"));
        let db = read(&out.dbias);
        assert_matches(&db, &as_f32(&expected.dbias), &format!("{at}: dbias"));
        if chunk == Some(64) {
            let again = inputs.run(loss, chunk);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&read(&again.dx)), bits(&dx), "dx repeats bit for bit");
            assert_eq!(bits(&read(&again.dweight)), bits(&dw), "dweight repeats");
        }
    }
}

/// The bytes of every buffer the op creates for itself, measured by the device's own counter:
/// N × chunk + N × D + 9·N + 4 floats of tensors, plus one uniform block per dispatch and the
/// target check's staging buffer. Growing V leaves the tensors' share unchanged.
#[test]
fn memory_beyond_inputs_and_outputs_is_o_of_n_plus_v() {
    // An own device, so that no other test's allocations are counted.
    let g = Gpu::new(&GpuOptions::from_env().unwrap()).unwrap();
    let (n, d, chunk) = (100, 24, 256);
    let mut tensor_bytes = Vec::new();
    for v in [1000, 8000] {
        let x = Tensor::zeros(&g, &[n, d], DType::F32).unwrap();
        let w = Tensor::zeros(&g, &[v, d], DType::F32).unwrap();
        let b = Tensor::zeros(&g, &[v], DType::F32).unwrap();
        let y = Tensor::zeros(&g, &[n], DType::I32).unwrap();
        let (dx, dw, db) = (
            Tensor::zeros(&g, &[n, d], DType::F32).unwrap(),
            Tensor::zeros(&g, &[v, d], DType::F32).unwrap(),
            Tensor::zeros(&g, &[v], DType::F32).unwrap(),
        );
        let out = Tensor::zeros(&g, &[1], DType::F32).unwrap();
        let cursor = Tensor::zeros(&g, &[1], DType::U32).unwrap();
        let opts = LinearCrossEntropyOptions {
            bias: Some(&b),
            chunk_classes: Some(chunk),
            ..Default::default()
        };
        let grads = LinearCrossEntropyGrads {
            dx: Some(&dx),
            dweight: &dw,
            dbias: Some(&db),
        };
        let before = g.creations().buffer_bytes;
        let kernel =
            LinearCrossEntropyKernel::new(&g, &x, &w, &y, opts, Some(grads), &out, &cursor)
                .unwrap();
        let measured = g.creations().buffer_bytes - before;
        let tensors = 4 * (n * chunk + n * d + 9 * n + 4) as u64;
        assert_eq!(kernel.scratch_bytes(), tensors);
        let dispatches = kernel.forward.dispatches().len()
            + kernel.backward.as_ref().unwrap().dispatches().len();
        // Uniform blocks are at most 64 bytes; the staging buffer holds the 2-word fault.
        assert!(
            measured >= tensors && measured <= tensors + 64 * dispatches as u64 + 8,
            "V = {v}: {measured} bytes created, {tensors} in tensors, {dispatches} dispatches"
        );
        println!(
            "V = {v}: {measured} bytes created ({tensors} in tensors), logits would take {}",
            4 * n * v
        );
        tensor_bytes.push(kernel.scratch_bytes());
    }
    assert_eq!(tensor_bytes[0], tensor_bytes[1]);
}

#[test]
fn bad_inputs_are_errors_in_pytorchs_words() {
    let g = gpu();
    let x = Tensor::from_slice(g, &[0.5f32; 6], &[2, 3]).unwrap();
    let w = Tensor::from_slice(g, &[0.1f32; 12], &[4, 3]).unwrap();
    let run = |y: &[i32], opts: LinearCrossEntropyOptions| {
        let y = Tensor::from_slice(g, y, &[y.len()]).unwrap();
        linear_cross_entropy(g, &x, &w, &y, opts, true).map(|_| ())
    };
    let err = run(&[1, 4], Default::default()).unwrap_err();
    assert_eq!(err.to_string(), "Target 4 is out of bounds.");
    // The flag was cleared: a good call after a bad one succeeds.
    run(&[1, 3], Default::default()).unwrap();
    let err = run(&[1, 2, 3], Default::default()).unwrap_err();
    assert!(err
        .to_string()
        .contains("Expected input batch_size (2) to match target batch_size (3)."));
    let bad_chunk = LinearCrossEntropyOptions {
        chunk_classes: Some(100),
        ..Default::default()
    };
    assert!(run(&[0, 1], bad_chunk)
        .unwrap_err()
        .to_string()
        .contains("multiple of 64"));
    let smoothing = LinearCrossEntropyOptions {
        loss: CrossEntropyOptions {
            label_smoothing: 1.5,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = run(&[0, 1], smoothing).unwrap_err().to_string();
    assert_eq!(err, "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
    let w5 = Tensor::zeros(g, &[5, 2], DType::F32).unwrap();
    let y = Tensor::from_slice(g, &[0i32, 1], &[2]).unwrap();
    assert!(linear_cross_entropy(g, &x, &w5, &y, Default::default(), false).is_err());
}

/// Logits of 2 GiB (4096 rows × 131,072 classes), past every storage binding limit, against a
/// chunked f64 reference on the loss and on sampled rows of every gradient. About a minute on
/// lavapipe, hence ignored: `cargo test --release --test linear_cross_entropy -- --ignored`.
#[test]
#[ignore]
fn logits_of_two_gibibytes_run_and_match_the_reference() {
    let (n, d, v) = (4096usize, 32usize, 131_072usize);
    let case = serde_json::json!({
        "n": n, "d": d, "v": v, "seed": 7, "x_scale": 2.0, "w_scale": 0.35,
        "bias": true, "weight": false, "ignore_every": 9,
    });
    let inputs = Inputs::of(&case);
    let loss = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    assert!((n * v * 4) as u64 >= 2 << 30);
    assert!((n * v * 4) as u64 > gpu().limits().max_storage_buffer_binding_size);
    let start = std::time::Instant::now();
    let out = inputs.run(loss, None);
    let got = out.loss.to_vec::<f32>(gpu()).unwrap();
    println!("wgml: {:.1} s", start.elapsed().as_secs_f64());
    let reference = inputs.reference(loss);
    let (scale, _) = reference.scale();
    // Rows in parallel on the host: each row's loss and d(loss)/dz at the sampled classes.
    let sample_classes = [0usize, 1, 4097, 65_536, v - 1];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per_row: Vec<(f64, Vec<f64>, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let reference = &reference;
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|r| {
                            let (l, dz) = reference.row(r, &reference.logits(r));
                            let picks = sample_classes.iter().map(|&c| dz[c] * scale).collect();
                            (r as f64, picks, l)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all
    });
    let (_, denom) = reference.scale();
    let expected_loss = per_row.iter().map(|r| r.2).sum::<f64>() / denom;
    assert_matches(&got, &[expected_loss as f32], "loss");
    let dw = read(&out.dweight);
    for (k, &c) in sample_classes.iter().enumerate() {
        let mut row = vec![0f64; d];
        for (r, (_, dz, _)) in per_row.iter().enumerate() {
            for (j, acc) in row.iter_mut().enumerate() {
                *acc += dz[k] * f64::from(inputs.x[r * d + j]);
            }
        }
        let expected: Vec<f32> = row.iter().map(|&e| e as f32).collect();
        assert_matches(
            &dw[c * d..(c + 1) * d],
            &expected,
            &format!("dweight row {c}"),
        );
    }
    let dx = read(&out.dx);
    for r in [0usize, 1, 2047, n - 1] {
        let (_, dz) = reference.row(r, &reference.logits(r));
        let mut row = vec![0f64; d];
        for (c, g) in dz.iter().enumerate() {
            for (j, acc) in row.iter_mut().enumerate() {
                *acc += g * scale * f64::from(inputs.w[c * d + j]);
            }
        }
        let expected: Vec<f32> = row.iter().map(|&e| e as f32).collect();
        assert_matches(&dx[r * d..(r + 1) * d], &expected, &format!("dx row {r}"));
    }
}
