//! wgml against fixtures PyTorch wrote (tests/golden/generate.py): cross-entropy and the
//! optimizers over every option combination, and the MNIST tutorial's training trajectory.
//! Every case is printed with its largest error; run with `--nocapture` to see them.

mod common;
use common::{gpu, run_optimizer};
use serde_json::Value;
use std::path::PathBuf;
use wgml::checkpoint;
use wgml::data::Mnist;
use wgml::gpu::Tensor;
use wgml::kernels::cross_entropy::{cross_entropy, CrossEntropyOptions, Reduction, Targets};
use wgml::kernels::optim::{
    adadelta_dispatch, adam_dispatch, sgd_dispatch, AdadeltaConfig, AdamConfig, SgdConfig,
};
use wgml::nn::Sequential;
use wgml::optim::OptimizerConfig;
use wgml::train::{TrainConfig, Trainer};

fn golden(name: &str) -> PathBuf {
    common::fixture(name)
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden(name)).unwrap()).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// The largest |a − e| over a case, asserting PyTorch's float32 tolerance element by element.
fn torch_close(actual: &[f32], expected: &[f32], what: &str) -> f32 {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst = 0.0f32;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_nan() {
            assert!(a.is_nan(), "{what}: element {i} is {a}, expected NaN");
            continue;
        }
        let err = (a - e).abs();
        assert!(
            err <= 1e-5 + 1.3e-6 * e.abs(),
            "{what}: element {i} is {a}, expected {e}"
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn cross_entropy_matches_pytorch_over_every_option() {
    let g = gpu();
    let cases = fixture("cross_entropy.json");
    let cases = cases["cases"].as_array().unwrap();
    let (mut worst_loss, mut worst_grad) = (0.0f32, 0.0f32);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let shape = usizes(&case["shape"]);
        let logits = Tensor::from_slice(g, &f32s(&case["x"]), &shape).unwrap();
        let target_shape: Vec<usize> = match shape.as_slice() {
            [_] => vec![],
            [n, _, rest @ ..] => [&[*n][..], rest].concat(),
            [] => unreachable!(),
        };
        let target = if case["kind"] == "classes" {
            let t: Vec<i32> = case["target"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i32)
                .collect();
            Tensor::from_slice(g, &t, &target_shape).unwrap()
        } else {
            Tensor::from_slice(g, &f32s(&case["target"]), &shape).unwrap()
        };
        let targets = if case["kind"] == "classes" {
            Targets::Classes(&target)
        } else {
            Targets::Probabilities(&target)
        };
        let weight = case["weight"].as_array().map(|_| {
            let w = f32s(&case["weight"]);
            Tensor::from_slice(g, &w, &[w.len()]).unwrap()
        });
        let opts = CrossEntropyOptions {
            weight: weight.as_ref(),
            ignore_index: case["ignore_index"].as_i64().unwrap() as i32,
            reduction: case["reduction"]
                .as_str()
                .unwrap()
                .parse::<Reduction>()
                .unwrap(),
            label_smoothing: case["label_smoothing"].as_f64().unwrap() as f32,
        };
        let (loss, grad) = cross_entropy(g, &logits, targets, opts).unwrap();
        let (loss, grad) = (
            loss.to_vec::<f32>(g).unwrap(),
            grad.to_vec::<f32>(g).unwrap(),
        );
        let el = torch_close(&loss, &f32s(&case["loss"]), &format!("{name} loss"));
        let expected_grad = f32s(&case["grad"]);
        if expected_grad.iter().any(|v| v.is_nan()) {
            // Mean over targets whose weights sum to 0: docs/semantics.md specifies a zero gradient;
            // PyTorch 2.15 returns 0·∞ = NaN in the rows whose target weighs 0.
            assert!(
                loss[0].is_nan() && grad.iter().all(|&v| v == 0.0),
                "{name}: {grad:?}"
            );
            println!(
                "ok  cross_entropy {name}  loss NaN; gradient zero (docs/semantics.md; PyTorch: NaN)"
            );
            continue;
        }
        let eg = torch_close(&grad, &expected_grad, &format!("{name} gradient"));
        println!("ok  cross_entropy {name}  max |err| loss {el:.2e} grad {eg:.2e}");
        worst_loss = worst_loss.max(el);
        worst_grad = worst_grad.max(eg);
    }
    println!(
        "cross_entropy: {} PyTorch cases; largest error: loss {worst_loss:.3e}, gradient {worst_grad:.3e}",
        cases.len()
    );
    assert!(cases.len() >= 300);
}

fn optimizer(config: &Value) -> OptimizerConfig {
    let f = |k: &str| config[k].as_f64().unwrap() as f32;
    let b = |k: &str| config[k].as_bool().unwrap();
    match config["kind"].as_str().unwrap() {
        kind @ ("adam" | "adamw") => OptimizerConfig::Adam(AdamConfig {
            lr: f("lr"),
            betas: (
                config["betas"][0].as_f64().unwrap() as f32,
                config["betas"][1].as_f64().unwrap() as f32,
            ),
            eps: f("eps"),
            weight_decay: f("weight_decay"),
            decoupled: kind == "adamw",
            amsgrad: b("amsgrad"),
            maximize: b("maximize"),
        }),
        "adadelta" => OptimizerConfig::Adadelta(AdadeltaConfig {
            lr: f("lr"),
            rho: f("rho"),
            eps: f("eps"),
            weight_decay: f("weight_decay"),
            maximize: b("maximize"),
        }),
        _ => OptimizerConfig::Sgd(SgdConfig {
            lr: f("lr"),
            momentum: f("momentum"),
            dampening: f("dampening"),
            weight_decay: f("weight_decay"),
            nesterov: b("nesterov"),
            maximize: b("maximize"),
        }),
    }
}

#[test]
fn optimizers_match_pytorch_over_every_option() {
    let g = gpu();
    let (optim, adadelta) = (fixture("optim.json"), fixture("adadelta.json"));
    let cases: Vec<&Value> = [&optim, &adadelta]
        .iter()
        .flat_map(|f| f["cases"].as_array().unwrap())
        .collect();
    let mut worst = std::collections::BTreeMap::<&str, f32>::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let config = optimizer(&case["config"]);
        config.validate().unwrap();
        let grads: Vec<Vec<f32>> = case["grads"].as_array().unwrap().iter().map(f32s).collect();
        let params = run_optimizer(&f32s(&case["p0"]), &grads, |state| match &config {
            OptimizerConfig::Adam(c) => adam_dispatch(g, c, state),
            OptimizerConfig::Sgd(c) => sgd_dispatch(g, c, state),
            OptimizerConfig::Adadelta(c) => adadelta_dispatch(g, c, state),
        });
        let err = torch_close(&params, &f32s(&case["expected"]), name);
        println!("ok  {name}  max |err| {err:.2e}");
        let kind = case["config"]["kind"].as_str().unwrap();
        let w = worst.entry(kind).or_default();
        *w = w.max(err);
    }
    println!(
        "optimizers: {} PyTorch cases; largest error by kind: {worst:?}",
        cases.len()
    );
}

fn trajectory_model() -> Sequential {
    let model = Sequential::mlp(gpu(), &[784, 128, 10], 0).unwrap();
    model
        .params()
        .load_state_dict(
            gpu(),
            &checkpoint::load(&golden("trajectory/init.safetensors")).unwrap(),
        )
        .unwrap();
    model
}

#[test]
fn training_follows_pytorchs_trajectory() {
    let expected = fixture("trajectory/trajectory.json");
    let steps = expected["steps"].as_u64().unwrap() as usize;
    // The fixture's steps are whole epochs of the subset's first training samples.
    let samples = expected["train_samples"].as_u64().unwrap() as usize;
    let mut data = Mnist::bundled().unwrap();
    data.train.images.truncate(samples * data.train.features);
    data.train.labels.truncate(samples);
    let config = TrainConfig {
        shuffle: false,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(gpu(), trajectory_model(), &data, config).unwrap();
    let mut losses = Vec::new();
    while losses.len() < steps {
        losses.extend(trainer.epoch().unwrap().step_losses);
    }
    assert_eq!(losses.len(), steps, "the fixture's steps end an epoch");
    let want = f32s(&expected["losses"]);
    let (mut worst, mut worst_step) = (0.0f32, 0);
    for (i, (&a, &e)) in losses.iter().zip(&want).enumerate() {
        let rel = (a - e).abs() / e.abs();
        assert!(
            rel <= 1e-4,
            "step {}: loss {a}, PyTorch {e} (relative error {rel:.2e})",
            i + 1
        );
        if rel > worst {
            (worst, worst_step) = (rel, i + 1);
        }
    }
    let first = (losses[0] - want[0]).abs() / want[0].abs();
    let final_weights = checkpoint::load(&golden("trajectory/final.safetensors")).unwrap();
    let ours = trainer.model().params().state_dict(gpu()).unwrap();
    let (mut worst_w, mut over) = (0.0f32, Vec::new());
    assert_eq!(final_weights.len(), ours.len());
    for (name, shape, want) in &final_weights {
        let (_, our_shape, got) = ours.iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(shape, our_shape, "{name}");
        for (i, (&a, &e)) in got.iter().zip(want).enumerate() {
            worst_w = worst_w.max((a - e).abs());
            if (a - e).abs() > 1e-4 {
                over.push(format!("{name}[{i}]: {a} vs PyTorch {e}"));
            }
        }
    }
    println!(
        "trajectory: {steps} Adam steps; largest relative loss error {worst:.2e} (step \
         {worst_step}; step 1: {first:.2e}), weight error {worst_w:.2e}"
    );
    assert!(
        over.is_empty(),
        "{} weights off by more than 1e-4, e.g. {}",
        over.len(),
        over[..over.len().min(3)].join(", ")
    );
}

#[test]
fn pytorch_trained_weights_score_the_same_here() {
    let expected = fixture("trajectory/trajectory.json")["test_acc"]
        .as_f64()
        .unwrap();
    let model = trajectory_model();
    model
        .params()
        .load_state_dict(
            gpu(),
            &checkpoint::load(&golden("trajectory/final.safetensors")).unwrap(),
        )
        .unwrap();
    let trainer = Trainer::new(
        gpu(),
        model,
        &Mnist::bundled().unwrap(),
        TrainConfig::default(),
    )
    .unwrap();
    let acc = trainer.evaluate().unwrap().accuracy;
    assert!(
        (acc - expected).abs() < 5e-5,
        "test accuracy {acc:.4} here, {expected:.4} in PyTorch"
    );
    println!("PyTorch-trained weights: test accuracy {acc:.4} here, {expected:.4} in PyTorch");
}

#[test]
fn step_lr_matches_pytorch_over_four_optimizers() {
    use wgml::optim::{OptimizerConfig, StepLr, TensorOptimizer};
    let g = gpu();
    let cases = fixture("steplr.json");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let config = match case["kind"].as_str().unwrap() {
            "adadelta" => OptimizerConfig::Adadelta(AdadeltaConfig::default()),
            "adam" => OptimizerConfig::Adam(AdamConfig {
                lr: 0.01,
                ..Default::default()
            }),
            "adamw" => OptimizerConfig::Adam(AdamConfig {
                lr: 0.01,
                weight_decay: 0.1,
                ..AdamConfig::adamw()
            }),
            _ => OptimizerConfig::Sgd(SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                ..Default::default()
            }),
        };
        let schedule = StepLr {
            step_size: case["step_size"].as_u64().unwrap() as usize,
            gamma: case["gamma"].as_f64().unwrap() as f32,
        };
        let lrs: Vec<f32> = (0..4).map(|e| schedule.lr(config.lr(), e)).collect();
        assert_eq!(lrs, f32s(&case["lrs"]), "{name}: the schedule's rates");
        let p0 = f32s(&case["p0"]);
        let param = Tensor::from_slice(g, &p0, &[p0.len()]).unwrap();
        let grad = Tensor::from_slice(g, &vec![0f32; p0.len()], &[p0.len()]).unwrap();
        let optimizer = TensorOptimizer::new(g, &[(&param, &grad)], config).unwrap();
        let grads = case["grads"].as_array().unwrap();
        let per_epoch = case["per_epoch"].as_u64().unwrap() as usize;
        for (step, gr) in grads.iter().enumerate() {
            if step % per_epoch == 0 {
                optimizer.set_lr(g, lrs[step / per_epoch]).unwrap();
            }
            grad.write(g, &f32s(gr)).unwrap();
            optimizer.step(g).unwrap();
        }
        let got = param.to_vec::<f32>(g).unwrap();
        let err = torch_close(&got, &f32s(&case["expected"]), name);
        println!("ok  {name}  max |err| {err:.2e}");
    }
}

/// examples/mnist's `Net` with dropout off, from generate_cnn.py's initial weights: each step's
/// loss within 1e-4 of PyTorch's (float64) over the whole of each stored trajectory, and the
/// final weights' sums and first values close.
#[test]
fn cnn_follows_pytorchs_trajectories() {
    use wgml::nn::ModelSpec;
    let expected = fixture("cnn_trajectory.json");
    let batch = expected["batch_size"].as_u64().unwrap() as usize;
    let optimizers = [
        (
            "adam",
            OptimizerConfig::Adam(AdamConfig {
                lr: 1e-4,
                ..Default::default()
            }),
            2e-4,
        ),
        (
            "adadelta",
            OptimizerConfig::Adadelta(AdadeltaConfig {
                lr: 1.0,
                ..Default::default()
            }),
            1e-3,
        ),
    ];
    for (name, optimizer, weight_tolerance) in optimizers {
        let trajectory = &expected["trajectories"][name];
        let steps = trajectory["steps"].as_u64().unwrap() as usize;
        // One epoch is the trajectory: its steps' batches of the first samples, in file order.
        let mut data = Mnist::bundled().unwrap();
        data.train
            .images
            .truncate(steps * batch * data.train.features);
        data.train.labels.truncate(steps * batch);
        let model = ModelSpec::mnist_cnn_with_dropout(0.0, 0.0)
            .build(gpu(), 0)
            .unwrap();
        let initial: Vec<_> = (model.params().infos().iter().enumerate())
            .map(|(i, info)| {
                let layer = info.name.split('.').next().unwrap();
                let weight = (model.params().infos().iter())
                    .find(|p| p.name == format!("{layer}.weight"))
                    .unwrap();
                let fan_in: usize = weight.shape[1..].iter().product();
                let scale = (2.0 / (fan_in as f64).sqrt()) as f32;
                let v = common::values(info.len(), i as u32 + 1, scale);
                (info.name.clone(), info.shape.clone(), v)
            })
            .collect();
        model.params().load_state_dict(gpu(), &initial).unwrap();
        let config = TrainConfig {
            shuffle: false,
            optimizer,
            batch_size: batch,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(gpu(), model, &data, config).unwrap();
        let losses = trainer.epoch().unwrap().step_losses;
        let want = f32s(&trajectory["losses"]);
        assert_eq!(losses.len(), want.len());
        let mut worst = 0.0f32;
        for (i, (&a, &e)) in losses.iter().zip(&want).enumerate() {
            let rel = (a - e).abs() / e.abs();
            assert!(rel <= 1e-4, "{name} step {}: loss {a}, PyTorch {e}", i + 1);
            worst = worst.max(rel);
        }
        let ours = trainer.model().params().state_dict(gpu()).unwrap();
        let mut worst_w = 0.0f64;
        for (tensor, digest) in trajectory["final"].as_object().unwrap() {
            let (_, _, got) = ours.iter().find(|(n, _, _)| n == tensor).unwrap();
            let head = f32s(&digest["head"]);
            for (i, (&a, &e)) in got.iter().zip(&head).enumerate() {
                let err = f64::from((a - e).abs());
                assert!(err <= weight_tolerance, "{name} {tensor}[{i}]: {a} vs {e}");
                worst_w = worst_w.max(err);
            }
            // Per-weight errors within the tolerance, adding up as a random walk.
            let sum: f64 = got.iter().map(|&v| f64::from(v)).sum();
            let want_sum = digest["sum"].as_f64().unwrap();
            assert!(
                (sum - want_sum).abs() <= weight_tolerance * (got.len() as f64).sqrt(),
                "{name} {tensor}: sum {sum} vs {want_sum}"
            );
        }
        println!(
            "cnn {name}: {steps} steps, largest relative loss error {worst:.2e}, largest \
             weight error {worst_w:.2e} (PyTorch float32 vs float64: {})",
            trajectory["float32_vs_float64"]
        );
    }
}
