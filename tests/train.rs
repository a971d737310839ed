//! Training end to end on the bundled real MNIST subset.

mod common;
use common::gpu;
use wgml::data::{Mnist, Split};
use wgml::kernels::policy;
use wgml::nn::Sequential;
use wgml::train::{TrainConfig, Trainer};

fn head(split: &Split, n: usize) -> Split {
    Split {
        images: split.images[..n * split.features].to_vec(),
        labels: split.labels[..n].to_vec(),
        features: split.features,
    }
}

#[test]
fn tutorial_mlp_learns_the_bundled_subset() {
    let data = Mnist::bundled().unwrap();
    let model = Sequential::mlp(gpu(), &[784, 128, 10], 0).unwrap();
    let mut trainer = Trainer::new(gpu(), model, &data, TrainConfig::default()).unwrap();
    assert_eq!(trainer.steps_per_epoch(), 125);
    let before = trainer.evaluate().unwrap().accuracy;
    let mut losses = Vec::new();
    for _ in 0..3 {
        losses.push(trainer.epoch().unwrap().train_loss);
    }
    let acc = trainer.evaluate().unwrap().accuracy;
    assert!(before < 0.3, "an untrained model guesses: {before}");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "loss falls each epoch: {losses:?}"
    );
    assert!(acc >= 0.90, "3 epochs reach ≥ 90% test accuracy, got {acc}");
}

#[test]
fn same_seed_gives_bit_identical_runs_with_a_partial_last_batch() {
    let full = Mnist::bundled().unwrap();
    let data = Mnist {
        train: head(&full.train, 1000), // 15 batches of 64 and one of 40
        test: head(&full.test, 300),
    };
    let run = |seed| {
        let model = Sequential::mlp(gpu(), &[784, 32, 10], seed).unwrap();
        let config = TrainConfig {
            seed,
            eval_batch_size: 128,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(gpu(), model, &data, config).unwrap();
        let stats: Vec<f32> = (0..2)
            .map(|_| trainer.epoch().unwrap().train_loss)
            .collect();
        (
            stats,
            trainer.evaluate().unwrap(),
            trainer.steps_per_epoch(),
        )
    };
    let a = run(7);
    assert_eq!(a.2, 16);
    assert_eq!(a, run(7), "same seed, same numbers");
    assert_ne!(a.0, run(8).0, "another seed, other numbers");
}

#[test]
fn trainer_rejects_a_model_that_does_not_fit_the_data() {
    let data = Mnist::bundled().unwrap();
    let model = Sequential::mlp(gpu(), &[100, 10], 0).unwrap();
    let err = Trainer::new(gpu(), model, &data, TrainConfig::default())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("the model takes 100 features but the data has 784"),
        "{err}"
    );
}

#[test]
fn a_pass_order_must_index_the_split() {
    let full = Mnist::bundled().unwrap();
    let split = wgml::data::GpuSplit::upload(gpu(), &head(&full.test, 10)).unwrap();
    let err = split
        .start_pass(gpu(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("sample index 10 in the order is past the 10 samples"),
        "{err}"
    );
    split
        .start_pass(gpu(), &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
        .unwrap();
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// 50 epochs on the bundled subset with memory sampled each epoch: it must stay flat.
/// Slow (minutes on lavapipe): `cargo test --release --test train soak -- --ignored --nocapture`.
#[test]
#[ignore]
fn soak_memory_stays_flat() {
    let data = Mnist::bundled().unwrap();
    let model = Sequential::mlp(gpu(), &[784, 128, 10], 0).unwrap();
    let mut trainer = Trainer::new(gpu(), model, &data, TrainConfig::default()).unwrap();
    let mut samples = Vec::new();
    for epoch in 1..=50 {
        let stats = trainer.epoch().unwrap();
        let acc = trainer.evaluate().unwrap().accuracy;
        let rss = resident_bytes().unwrap_or(0);
        println!(
            "epoch {epoch:>2}: loss {:.4} acc {acc:.4} resident {:.1} MiB",
            stats.train_loss,
            rss as f64 / 1048576.0
        );
        samples.push(rss);
    }
    let (first, last) = (samples[0], samples[49]);
    let max = samples.iter().max().copied().unwrap_or(0);
    println!(
        "resident memory: epoch 1 {:.1} MiB, epoch 50 {:.1} MiB, peak {:.1} MiB",
        first as f64 / 1048576.0,
        last as f64 / 1048576.0,
        max as f64 / 1048576.0
    );
    assert!(
        last <= first + (8 << 20),
        "memory grew from {first} to {last} bytes"
    );
}

#[test]
fn an_epoch_and_an_evaluation_create_nothing_on_the_gpu() {
    use wgml::nn::ModelSpec;
    use wgml::optim::{AdadeltaConfig, OptimizerConfig, StepLr};
    let full = Mnist::bundled().unwrap();
    let cnn = TrainConfig {
        optimizer: OptimizerConfig::Adadelta(AdadeltaConfig::default()),
        lr_schedule: Some(StepLr {
            step_size: 1,
            gamma: 0.7,
        }),
        ..TrainConfig::default()
    };
    // Partial last batches too; the CNN with dropout, pooling and a schedule.
    let cases = [
        (
            ModelSpec::mlp(&[784, 16, 10]),
            TrainConfig::default(),
            700,
            300,
        ),
        (ModelSpec::mnist_cnn(), cnn, 150, 70),
    ];
    for (spec, config, train, test) in cases {
        let data = Mnist {
            train: head(&full.train, train),
            test: head(&full.test, test),
        };
        let g = wgml::gpu::Gpu::from_env().unwrap();
        let model = spec.build(&g, 0).unwrap();
        let mut trainer = Trainer::new(&g, model, &data, config).unwrap();
        let before = g.creations();
        assert!(
            before.buffers > 0 && before.bind_groups > 0 && before.pipelines > 0,
            "{before:?}"
        );
        for _ in 0..2 {
            trainer.epoch().unwrap();
            trainer.evaluate().unwrap();
        }
        assert_eq!(
            g.creations(),
            before,
            "buffers, bind groups or pipelines created in the loop of {spec:?}"
        );
    }
}

#[test]
fn progress_reports_steps_and_a_running_loss_without_changing_the_numbers() {
    let full = Mnist::bundled().unwrap();
    let data = Mnist {
        train: head(&full.train, 3000), // 47 steps: chunks of 8 let readbacks land mid-epoch
        test: head(&full.test, 100),
    };
    let g = wgml::gpu::Gpu::from_env().unwrap();
    let config = TrainConfig {
        steps_per_submit: 8,
        ..TrainConfig::default()
    };
    let build = || {
        Trainer::new(
            &g,
            Sequential::mlp(&g, &[784, 32, 10], 3).unwrap(),
            &data,
            config.clone(),
        )
        .unwrap()
    };
    let mut plain = build();
    let mut watched = build();
    let created = g.creations();
    let mut reports = Vec::new();
    let stats = watched
        .epoch_with_progress(Some(&mut |p| reports.push(p)))
        .unwrap();
    assert_eq!(
        g.creations(),
        created,
        "progress creates nothing on the GPU"
    );
    eprintln!(
        "DEBUG {} reports: {:?}",
        reports.len(),
        reports
            .iter()
            .map(|p| (p.steps, p.running_loss.is_some()))
            .collect::<Vec<_>>()
    );
    let last = reports.last().unwrap();
    assert_eq!((last.steps, last.total), (47, 47));
    assert!(reports.windows(2).all(|w| w[0].steps <= w[1].steps));
    let loss = reports
        .iter()
        .rev()
        .find_map(|p| p.running_loss)
        .expect("a running loss was read");
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    assert_eq!(
        stats.step_losses,
        plain.epoch().unwrap().step_losses,
        "same numbers with or without progress"
    );
    // And again: the progress readbacks are free for the next epoch.
    watched.epoch_with_progress(Some(&mut |_| {})).unwrap();
}

#[test]
fn the_benchmark_times_every_kernel_of_a_step() {
    let data = wgml::bench::synthetic_mnist(200, 1);
    let mut trainer = wgml::bench::tutorial_trainer(gpu(), &data).unwrap();
    trainer.epoch().unwrap();
    let times = wgml::bench::step_breakdown(gpu(), &trainer, 2).unwrap();
    assert_eq!(times.len(), trainer.step_program().dispatches().len());
    assert!(times.iter().all(|t| t.micros > 0.0), "{times:?}");
    // Timestamps where the adapter offers them (lavapipe does): one per kernel, not all zero.
    if gpu()
        .device()
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        assert!(
            times.iter().all(|t| t.gpu_micros.is_some_and(|g| g >= 0.0)),
            "{times:?}"
        );
        assert!(
            times.iter().any(|t| t.gpu_micros.unwrap_or(0.0) > 0.0),
            "{times:?}"
        );
    }
}

/// The tutorial MLP (and a single Linear layer, and label smoothing) trained with the last
/// Linear layer and the loss fused (the linear cross-entropy, and the small head) follows the
/// unfused path's losses and weights.
#[test]
fn a_fused_head_trains_as_the_unfused_path_does() {
    let full = Mnist::bundled().unwrap();
    let data = Mnist {
        train: head(&full.train, 2000), // 31 batches of 64 and one of 16
        test: head(&full.test, 200),
    };
    for (sizes, smoothing) in [(&[784, 128, 10][..], 0.0), (&[784, 10][..], 0.1)] {
        let run = |fused_head, small_head| {
            let model = Sequential::mlp(gpu(), sizes, 3).unwrap();
            let config = TrainConfig {
                fused_head,
                small_head: Some(small_head),
                label_smoothing: smoothing,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(gpu(), model, &data, config).unwrap();
            let losses: Vec<f32> = (0..2)
                .flat_map(|_| trainer.epoch().unwrap().step_losses)
                .collect();
            let weights = trainer.model().params().state_dict(gpu()).unwrap();
            (losses, weights)
        };
        let plain = run(false, false);
        assert_eq!(plain.0.len(), 64);
        for fused in [run(true, false), run(false, true)] {
            for (step, (a, b)) in plain.0.iter().zip(&fused.0).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs(),
                    "{sizes:?} step {step}: {a} vs {b}"
                );
            }
            for ((name, _, a), (_, _, b)) in plain.1.iter().zip(&fused.1) {
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(worst <= 1e-5, "{sizes:?} {name}: weights part by {worst}");
            }
            println!("{sizes:?}: last loss {} vs {}", plain.0[63], fused.0[63]);
        }
    }
}

/// Warming up (every step run once, then undone) changes no number of the run.
#[test]
fn warming_up_changes_nothing() {
    let full = Mnist::bundled().unwrap();
    let data = Mnist {
        train: head(&full.train, 700),
        test: head(&full.test, 100),
    };
    let run = |warm| {
        let model = Sequential::mlp(gpu(), &[784, 32, 10], 5).unwrap();
        let mut trainer = Trainer::new(gpu(), model, &data, TrainConfig::default()).unwrap();
        if warm {
            assert!(trainer.warm_up().unwrap() >= 0.0);
        }
        let losses = trainer.epoch().unwrap().step_losses;
        (
            losses,
            trainer.evaluate().unwrap(),
            trainer.state().unwrap().params,
        )
    };
    assert_eq!(run(true), run(false));
}

/// StepLR with gamma 0 stops training after the first epoch: the rate lives on the GPU and
/// changes without re-recording a step, and the second epoch moves no weight.
#[test]
fn a_learning_rate_schedule_changes_the_rate_between_epochs() {
    let full = Mnist::bundled().unwrap();
    let data = Mnist {
        train: head(&full.train, 300),
        test: head(&full.test, 100),
    };
    let model = Sequential::mlp(gpu(), &[784, 16, 10], 1).unwrap();
    let config = TrainConfig {
        lr_schedule: Some(wgml::optim::StepLr {
            step_size: 1,
            gamma: 0.0,
        }),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(gpu(), model, &data, config).unwrap();
    let before = trainer.state().unwrap().params;
    trainer.epoch().unwrap();
    let after_one = trainer.state().unwrap().params;
    assert_ne!(before, after_one, "the first epoch trains at the base rate");
    trainer.epoch().unwrap();
    assert_eq!(
        after_one,
        trainer.state().unwrap().params,
        "rate 0 from the second epoch"
    );
}

/// A CNN batch whose convolution taps exceed a binding is refused up front, with the size that
/// fits.
#[test]
fn a_batch_too_large_for_the_device_is_a_clear_error() {
    let g = wgml::gpu::Gpu::from_env().unwrap();
    let model = wgml::nn::ModelSpec::mnist_cnn().build(&g, 0).unwrap();
    let fits = model.max_batch(&g);
    let full = Mnist::bundled().unwrap();
    if fits >= full.train.len() {
        eprintln!("every batch of the bundled subset fits this device's bindings");
        return;
    }
    let data = Mnist {
        train: head(&full.train, fits + 1),
        test: head(&full.test, 10),
    };
    let config = TrainConfig {
        batch_size: fits + 1,
        ..TrainConfig::default()
    };
    let Err(err) = Trainer::new(&g, model, &data, config) else {
        panic!("a batch of {} was taken", fits + 1);
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!("use --batch-size {fits} or less")),
        "{message}"
    );
}

/// Dispatches per training step of the MNIST tutorial's MLP: its last layer, loss and their
/// backward as one (the small head, which GPUs and lavapipe take by default) against the four of the
/// unfused path; each bias gradient written by its weight gradient's product; the optimizer's
/// step count advanced by the gather, the batch cursor by the update.
#[test]
fn the_tutorial_step_takes_five_dispatches() {
    let full = Mnist::bundled().unwrap();
    let data = Mnist {
        train: head(&full.train, 640),
        test: head(&full.test, 100),
    };
    let g = gpu();
    let labels = |small_head: Option<bool>| -> Vec<&'static str> {
        let model = Sequential::mlp(g, &[784, 128, 10], 0).unwrap();
        let config = TrainConfig {
            small_head,
            ..TrainConfig::default()
        };
        let trainer = Trainer::new(g, model, &data, config).unwrap();
        let program = trainer.step_program();
        program.dispatches().iter().map(|d| d.label()).collect()
    };
    let (unfused, fused) = (labels(Some(false)), labels(Some(true)));
    eprintln!("unfused: {unfused:?}\nsmall head: {fused:?}");
    // By default, what the adapter's policy picks: the small head on GPUs and on CPU adapters
    // with 8-lane subgroups and 64-bit integers (lavapipe).
    let default = if policy::small_head(g.profile(), 64, 128, 10) {
        &fused
    } else {
        &unfused
    };
    assert_eq!(&labels(None), default);
    assert_eq!(unfused.len(), 8, "{unfused:?}");
    if wgml::kernels::small_head::supported(g) {
        assert_eq!(fused.len(), 5, "{fused:?}");
        let heads = fused.iter().filter(|l| l.starts_with("small_head"));
        assert_eq!(heads.count(), 1);
    } else {
        assert_eq!(fused, unfused);
    }
}
