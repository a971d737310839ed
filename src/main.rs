//! The `wgml` command line: list adapters, train the MNIST tutorial model.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wgml::checkpoint;
use wgml::data::Mnist;
use wgml::gpu::{Gpu, GpuOptions};
use wgml::nn::Sequential;
use wgml::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use wgml::train::{TrainConfig, Trainer};

#[derive(Parser)]
#[command(
    name = "wgml",
    version,
    about = "Train neural networks on any GPU with WGSL kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters; `*` marks the one wgml would use (WGML_BACKEND, WGML_ADAPTER choose).
    Devices,
    /// Train the 784-128-10 MLP of PyTorch's MNIST tutorial: cross-entropy, Adam by default.
    Train(TrainArgs),
    /// Measure matmul GFLOP/s, the tutorial MLP's epoch time, and a training step kernel by kernel.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Training samples for the epoch timing (synthetic 28×28 images).
    #[arg(long, default_value_t = 60_000)]
    samples: usize,
    /// Timed epochs after a warm-up epoch; the fastest is reported.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Add 4096³ to the matmul shapes (for real GPUs).
    #[arg(long)]
    large: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Folder with the four MNIST-format IDX files (optionally .gz); default: the bundled subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Seed for initialisation and shuffling: same seed, same adapter, same numbers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hidden layer width.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    hidden: u64,
    /// The optimizer, with PyTorch's defaults for what is not given here.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    optimizer: OptimizerKind,
    /// Weight decay (default: 0, or 0.01 for AdamW).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// SGD's momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// Cross-entropy's label smoothing, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Start from these weights (safetensors with nn.Sequential names: 0.weight, 0.bias, 2.weight, …).
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Write the weights here after every epoch (safetensors, the same names; atomically, so
    /// an interrupted run keeps its last finished epoch).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Keep training when a step's loss is NaN or infinite (by default that stops training).
    #[arg(long)]
    allow_non_finite: bool,
    /// Keep the file order every epoch instead of shuffling (to reproduce a run step by step).
    #[arg(long)]
    no_shuffle: bool,
    /// Print one JSON summary line at the end instead of only text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

impl TrainArgs {
    fn optimizer(&self) -> OptimizerConfig {
        match self.optimizer {
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let base = match self.optimizer {
                    OptimizerKind::Adamw => AdamConfig::adamw(),
                    _ => AdamConfig::default(),
                };
                OptimizerConfig::Adam(AdamConfig {
                    lr: self.lr,
                    weight_decay: self.weight_decay.unwrap_or(base.weight_decay),
                    ..base
                })
            }
            OptimizerKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay.unwrap_or(0.0),
                ..SgdConfig::default()
            }),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices => devices(),
        Command::Train(args) => train(&args),
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn devices() -> wgml::Result<()> {
    let adapters = Gpu::adapters(&GpuOptions::from_env()?);
    if adapters.is_empty() {
        println!("no adapters found");
    }
    for a in adapters {
        let mark = if a.chosen { "*" } else { " " };
        let note = if a.usable {
            ""
        } else {
            " [no compute shaders]"
        };
        println!("{mark} {a}{note}");
    }
    Ok(())
}

fn train(args: &TrainArgs) -> wgml::Result<()> {
    let data = match &args.data {
        Some(dir) => Mnist::load(dir)?,
        None => Mnist::bundled()?,
    };
    let gpu = Gpu::from_env()?;
    let info = gpu.info().clone();
    let source = match &args.data {
        Some(dir) => dir.display().to_string(),
        None => "bundled MNIST subset".into(),
    };
    let sizes = [
        data.train.features,
        args.hidden as usize,
        wgml::data::CLASSES,
    ];
    let model = Sequential::mlp(&gpu, &sizes, args.seed)?;
    if let Some(path) = &args.init {
        model
            .params()
            .load_state_dict(&gpu, &checkpoint::load(path)?)?;
    }
    let config = TrainConfig {
        batch_size: args.batch_size as usize,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        optimizer: args.optimizer(),
        label_smoothing: args.label_smoothing,
        stop_on_non_finite: !args.allow_non_finite,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&gpu, model, &data, config)?;
    let log = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    log(format!(
        "training on {source}: {} train / {} test samples, {} on {:?}",
        data.train.len(),
        data.test.len(),
        info.name,
        info.backend
    ));
    let started = std::time::Instant::now();
    let (mut losses, mut accs, mut secs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.epochs {
        let stats = trainer.epoch()?;
        let acc = trainer.evaluate()?;
        log(format!(
            "epoch {:>3}/{}  train loss {:.4}  test accuracy {:.2}%  {:.2}s",
            stats.epoch,
            args.epochs,
            stats.train_loss,
            acc * 100.0,
            stats.seconds
        ));
        losses.push(stats.train_loss);
        accs.push(acc);
        secs.push(stats.seconds);
        if let Some(path) = &args.save {
            checkpoint::save(path, &trainer.model().params().state_dict(&gpu)?)?;
        }
    }
    if let Some(path) = &args.save {
        log(format!("weights written to {}", path.display()));
    }
    if args.json {
        secs.sort_by(f64::total_cmp);
        let median = secs.get(secs.len() / 2).copied().unwrap_or(0.0);
        let list = |v: Vec<String>| v.join(",");
        println!(
            "{{\"epochs\":{},\"train_samples\":{},\"sec_per_epoch_median\":{median:.6},\"total_s\":{:.6},\
             \"test_acc\":{},\"adapter\":{},\"backend\":{},\"epoch_train_loss\":[{}],\"epoch_test_acc\":[{}]}}",
            args.epochs,
            data.train.len(),
            started.elapsed().as_secs_f64(),
            accs.last().map_or("null".into(), |a| format!("{a:.6}")),
            json_string(&info.name),
            json_string(&format!("{:?}", info.backend).to_lowercase()),
            list(losses.iter().map(|l| format!("{l:.6}")).collect()),
            list(accs.iter().map(|a| format!("{a:.6}")).collect()),
        );
    }
    Ok(())
}

fn bench(args: &BenchArgs) -> wgml::Result<()> {
    use wgml::bench;
    let gpu = Gpu::from_env()?;
    let info = gpu.info().clone();
    let mut matmul = Vec::new();
    for shape in bench::default_shapes(args.large) {
        matmul.push(bench::matmul_gflops(&gpu, shape, 0.5)?);
    }
    let data = bench::synthetic_mnist(args.samples.max(1), 0);
    let mut trainer = bench::tutorial_trainer(&gpu, &data)?;
    let epoch_s = bench::epoch_seconds(&mut trainer, args.epochs)?;
    let kernels = bench::step_breakdown(&gpu, &trainer, 50)?;
    let step_us: f64 = kernels.iter().map(|k| k.micros).sum();
    if args.json {
        let matmul = matmul
            .iter()
            .map(|r| {
                format!(
                    "{{\"m\":{},\"n\":{},\"k\":{},\"trans_a\":{},\"trans_b\":{},\"gflops\":{:.3}}}",
                    r.m, r.n, r.k, r.trans_a, r.trans_b, r.gflops
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let kernels = kernels
            .iter()
            .map(|k| {
                format!(
                    "{{\"name\":{},\"us\":{:.1}}}",
                    json_string(k.name),
                    k.micros
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        println!(
            "{{\"adapter\":{},\"backend\":{},\"matmul\":[{matmul}],\"epoch_s\":{epoch_s:.4},\
             \"epoch_samples\":{},\"step_kernels\":[{kernels}]}}",
            json_string(&info.name),
            json_string(&format!("{:?}", info.backend).to_lowercase()),
            data.train.len(),
        );
        return Ok(());
    }
    println!("adapter: {} ({:?})\n", info.name, info.backend);
    println!(
        "{:>6} {:>6} {:>6}  {:<6} {:>10}",
        "M", "N", "K", "op", "GFLOP/s"
    );
    for r in &matmul {
        let op = format!(
            "{}{}",
            if r.trans_a { "Aᵀ" } else { "A" },
            if r.trans_b { "Bᵀ" } else { "B" }
        );
        println!(
            "{:>6} {:>6} {:>6}  {:<6} {:>10.2}",
            r.m, r.n, r.k, op, r.gflops
        );
    }
    println!(
        "\ntutorial MLP, batch 64: {epoch_s:.3} s per epoch of {} samples\n",
        data.train.len()
    );
    println!("one training step, {step_us:.0} µs in all:");
    for k in &kernels {
        println!(
            "  {:>2} {:<16} {:>9.1} µs {:>5.1}%",
            k.index,
            k.name,
            k.micros,
            100.0 * k.micros / step_us
        );
    }
    Ok(())
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
