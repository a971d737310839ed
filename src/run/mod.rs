//! `wgml train`: a training run in its own folder, written as it goes and resumable.
//!
//! The folder holds `config.json` (everything needed to reproduce the run), `metrics.csv`,
//! `model.safetensors` (the weights, for PyTorch or `wgml eval`/`predict`), `checkpoint.safetensors`
//! (weights, optimizer state, epoch and shuffle state), `chart.png` and `predictions.png`. Every
//! file is rewritten atomically after each epoch, so an interrupted run loses at most the epoch in
//! progress, and `--resume` continues with exactly the numbers an uninterrupted run would give.

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use wgml::checkpoint::{self, TrainingState};
use wgml::data::download::{self, FetchError, Source};
use wgml::data::Mnist;
use wgml::gpu::Gpu;
use wgml::nn::{ModelSpec, Sequential};
use wgml::optim::{AdadeltaConfig, AdamConfig, OptimizerConfig, SgdConfig, StepLr};
use wgml::train::{Progress, TrainConfig, Trainer};
use wgml::{plot, Error, Result};

mod folder;
use folder::{Row, RunFolder};

/// `wgml train`'s arguments. Settings are options so that `--resume` can tell which were given.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    source: DataArgs,
    /// Passes over the training set [default: 10; with --resume, the run's own].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Samples per step [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: Option<u64>,
    /// The learning rate [default: 0.001; 1.0 for adadelta].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Seed for initialisation and shuffling: same seed, same adapter, same numbers [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// The model: the tutorial MLP; examples/mnist's CNN (Adadelta lr 1.0 and StepLR γ 0.7
    /// by default); or LeNet-5 (fast enough on CPU adapters) [default: mlp].
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Hidden layer width; repeat for a deeper MLP (--hidden 256 --hidden 128) [default: 128].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    hidden: Vec<u64>,
    /// The optimizer, with PyTorch's defaults for what is not given here [default: adam].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Weight decay (default: 0, or 0.01 for AdamW).
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// SGD's momentum [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f32>,
    /// Multiply the learning rate by this every --lr-step epochs (PyTorch's StepLR).
    #[arg(long, allow_negative_numbers = true)]
    lr_gamma: Option<f32>,
    /// Epochs between the learning rate's decays [default: 1].
    #[arg(long, requires = "lr_gamma", value_parser = clap::value_parser!(u64).range(1..))]
    lr_step: Option<u64>,
    /// Cross-entropy's label smoothing, in [0, 1] [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    label_smoothing: Option<f32>,
    /// Start from these weights (safetensors with nn.Sequential names: 0.weight, 0.bias, 2.weight,
    /// …; for --model cnn also examples/mnist's Net names: conv1.weight, …, fc2.bias).
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Keep the file order every epoch instead of shuffling (to reproduce a run step by step).
    #[arg(long)]
    no_shuffle: bool,
    /// Keep training when a step's loss is NaN or infinite (by default that stops training).
    #[arg(long)]
    allow_non_finite: bool,
    /// Train the last Linear layer and the loss as one fused linear cross-entropy that never
    /// holds the logits (for many classes; the same numbers up to rounding).
    #[arg(long)]
    fused_head: bool,
    /// The run folder [default: runs/<UTC date-time>].
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last finished epoch, with its own settings.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Also write the weights here after every epoch (safetensors).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Progress to stderr and one JSON summary line on stdout.
    #[arg(long)]
    json: bool,
}

impl TrainArgs {
    /// The settings given on the command line (besides --epochs), by option name.
    fn settings_given(&self) -> Vec<&'static str> {
        let source = &self.source;
        [
            ("--data", source.data.is_some()),
            ("--dataset", source.dataset.is_some()),
            ("--data-dir", source.data_dir.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--seed", self.seed.is_some()),
            ("--model", self.model.is_some()),
            ("--hidden", !self.hidden.is_empty()),
            ("--optimizer", self.optimizer.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--momentum", self.momentum.is_some()),
            ("--lr-gamma", self.lr_gamma.is_some()),
            ("--lr-step", self.lr_step.is_some()),
            ("--label-smoothing", self.label_smoothing.is_some()),
            ("--init", self.init.is_some()),
            ("--no-shuffle", self.no_shuffle),
            ("--allow-non-finite", self.allow_non_finite),
            ("--fused-head", self.fused_head),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// Where the data comes from: `wgml train` and `wgml eval` take the same options.
#[derive(clap::Args)]
pub struct DataArgs {
    /// Folder with the four MNIST-format IDX files (optionally .gz); default: the bundled subset.
    #[arg(long, conflicts_with = "dataset")]
    data: Option<PathBuf>,
    /// Fetch a dataset into the cache (checksums verified); offline, the bundled subset is used.
    #[arg(long, value_parser = ["mnist", "fashion-mnist"])]
    dataset: Option<String>,
    /// The dataset cache [default: $WGML_DATA, else ~/.cache/wgml].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The data these options name (see [`load_data`]).
    pub fn load(&self) -> Result<Mnist> {
        load_data(
            self.data.as_deref(),
            self.dataset.as_deref(),
            self.data_dir.as_deref(),
        )
        .map(|(d, _)| d)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Linear layers with ReLUs: 784, --hidden …, 10.
    #[default]
    Mlp,
    /// `Net` of PyTorch's examples/mnist.
    Cnn,
    /// LeNet-5 as an nn.Sequential.
    Lenet5,
}

impl ModelKind {
    /// Its architecture: for the MLP, `features` in, `hidden` widths, 10 classes out.
    pub fn spec(self, features: usize, hidden: &[usize]) -> ModelSpec {
        match self {
            ModelKind::Mlp => {
                let mut sizes = vec![features];
                sizes.extend(hidden);
                sizes.push(wgml::data::CLASSES);
                ModelSpec::mlp(&sizes)
            }
            ModelKind::Cnn => ModelSpec::mnist_cnn(),
            ModelKind::Lenet5 => ModelSpec::lenet5(),
        }
    }

    /// Its training recipe's optimizer and schedule: Adadelta lr 1.0 and StepLR γ 0.7 for the
    /// CNN (examples/mnist), Adam lr 1e-3 (the tutorial) for the others.
    pub fn recipe(self) -> TrainConfig {
        match self {
            ModelKind::Cnn => TrainConfig {
                optimizer: OptimizerConfig::Adadelta(AdadeltaConfig::default()),
                lr_schedule: Some(StepLr {
                    step_size: 1,
                    gamma: 0.7,
                }),
                ..TrainConfig::default()
            },
            ModelKind::Mlp | ModelKind::Lenet5 => TrainConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
    Adadelta,
}

/// Everything that determines a run's numbers, stored as the run folder's `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunConfig {
    data: Option<PathBuf>,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    epochs: usize,
    batch_size: usize,
    lr: f32,
    seed: u64,
    #[serde(default)]
    model: ModelKind,
    hidden: Vec<usize>,
    optimizer: OptimizerKind,
    weight_decay: Option<f32>,
    momentum: f32,
    label_smoothing: f32,
    init: Option<PathBuf>,
    no_shuffle: bool,
    allow_non_finite: bool,
    #[serde(default)]
    fused_head: bool,
    /// StepLR: (epochs between decays, gamma).
    #[serde(default)]
    lr_schedule: Option<(usize, f32)>,
}

impl RunConfig {
    /// A new run's settings: the arguments, with the defaults for what they leave out. Options
    /// that would do nothing with the chosen optimizer are errors.
    fn from_args(args: &TrainArgs) -> Result<Self> {
        let model = args.model.unwrap_or_default();
        if model != ModelKind::Mlp && !args.hidden.is_empty() {
            return Err(Error::invalid(
                "--hidden sets the MLP's widths; --model cnn and lenet5 have fixed layers",
            ));
        }
        let hidden = if args.hidden.is_empty() {
            vec![128]
        } else {
            args.hidden.iter().map(|&h| h as usize).collect()
        };
        // Each model's recipe: examples/mnist trains its CNN with Adadelta and StepLR.
        let cnn = model == ModelKind::Cnn;
        let optimizer = (args.optimizer).unwrap_or(if cnn {
            OptimizerKind::Adadelta
        } else {
            OptimizerKind::Adam
        });
        let lr_gamma = args.lr_gamma.or(cnn.then_some(0.7));
        if args.momentum.is_some() && optimizer != OptimizerKind::Sgd {
            return Err(Error::invalid(
                "--momentum applies to --optimizer sgd only; Adam and AdamW keep their own \
                 moments (betas)",
            ));
        }
        Ok(RunConfig {
            data: args.source.data.clone(),
            dataset: args.source.dataset.clone(),
            data_dir: args.source.data_dir.clone(),
            epochs: args.epochs.map_or(10, |e| e as usize),
            batch_size: args.batch_size.map_or(64, |b| b as usize),
            // PyTorch's default learning rate of each optimizer.
            lr: args.lr.unwrap_or(match optimizer {
                OptimizerKind::Adadelta => 1.0,
                _ => 1e-3,
            }),
            seed: args.seed.unwrap_or(0),
            model,
            hidden,
            optimizer,
            weight_decay: args.weight_decay,
            momentum: args.momentum.unwrap_or(0.0),
            label_smoothing: args.label_smoothing.unwrap_or(0.0),
            init: args.init.clone(),
            no_shuffle: args.no_shuffle,
            allow_non_finite: args.allow_non_finite,
            fused_head: args.fused_head,
            lr_schedule: lr_gamma.map(|g| (args.lr_step.map_or(1, |s| s as usize), g)),
        })
    }

    /// The model's architecture over `data`'s samples.
    fn spec(&self, data: &Mnist) -> ModelSpec {
        self.model.spec(data.train.features, &self.hidden)
    }

    fn optimizer(&self) -> OptimizerConfig {
        match self.optimizer {
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let base = if self.optimizer == OptimizerKind::Adamw {
                    AdamConfig::adamw()
                } else {
                    AdamConfig::default()
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
            OptimizerKind::Adadelta => OptimizerConfig::Adadelta(AdadeltaConfig {
                lr: self.lr,
                weight_decay: self.weight_decay.unwrap_or(0.0),
                ..AdadeltaConfig::default()
            }),
        }
    }

    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            batch_size: self.batch_size,
            seed: self.seed,
            shuffle: !self.no_shuffle,
            optimizer: self.optimizer(),
            label_smoothing: self.label_smoothing,
            stop_on_non_finite: !self.allow_non_finite,
            fused_head: self.fused_head,
            lr_schedule: (self.lr_schedule).map(|(step_size, gamma)| StepLr { step_size, gamma }),
            ..TrainConfig::default()
        }
    }
}

/// Runs `wgml train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let RunPlan {
        config,
        resumed,
        state,
        mut rows,
    } = plan(args)?;
    if let Some(save) = &args.save {
        check_writable(save)?;
    }
    let (data, source) = load_data(
        config.data.as_deref(),
        config.dataset.as_deref(),
        config.data_dir.as_deref(),
    )?;
    let gpu = Gpu::from_env()?;
    let started = std::time::Instant::now();
    // Building compiles the kernels (side by side, on background threads).
    let compiling = spinner("compiling kernels…");
    let built = build(&gpu, &config, &data, state.as_ref());
    compiling.finish_and_clear();
    let mut trainer = built?;
    let build_seconds = started.elapsed().as_secs_f64();
    // Everything is in place: only now does a new run's folder appear.
    let folder = match resumed {
        Some(folder) => folder,
        None => {
            let folder = RunFolder::create(args.out.as_deref())?;
            folder.write_config(&config)?;
            folder
        }
    };
    let log = |line: String| {
        if args.json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    let info = gpu.info();
    log(format!(
        "training on {source}: {} train / {} test samples, {} on {:?}; run folder {}",
        data.train.len(),
        data.test.len(),
        info.name,
        info.backend,
        folder.path().display()
    ));
    if let Some(state) = &state {
        log(format!("resuming after epoch {}", state.epoch));
    }
    let compile_seconds = if trainer.epochs_done() < config.epochs {
        let spinner = spinner("compiling kernels…");
        let seconds = build_seconds + trainer.warm_up()?;
        spinner.finish_and_clear();
        log(format!("kernels ready in {seconds:.2}s"));
        seconds
    } else {
        0.0
    };
    let mut compiling = compile_seconds;
    while trainer.epochs_done() < config.epochs {
        let row = epoch(&mut trainer, &config, data.train.len(), &mut compiling)?;
        log(format!(
            "epoch {:>3}/{}  train loss {:.4}  test loss {:.4}  test accuracy {:.2}%  {:.2}s",
            row.epoch,
            config.epochs,
            row.train_loss,
            row.test_loss,
            row.test_accuracy * 100.0,
            row.seconds
        ));
        rows.push(row);
        let model = trainer.model();
        let weights = (&model.params().state_dict(&gpu)?[..], model.spec());
        folder.commit_epoch(&rows, weights, args.save.as_deref(), &trainer.state()?)?;
    }
    let dir = folder.path();
    write_predictions(&gpu, trainer.model(), &data, &dir.join("predictions.png"))?;
    log(format!("run folder: {}", dir.display()));
    if args.json {
        let total = started.elapsed().as_secs_f64();
        println!(
            "{}",
            summary(&rows, &data, info, (total, compile_seconds), dir)
        );
    }
    Ok(())
}

/// `--json`'s summary line: the run's numbers and times, and where it is.
fn summary(
    rows: &[Row],
    data: &Mnist,
    info: &wgpu::AdapterInfo,
    (total_s, compile_s): (f64, f64),
    dir: &Path,
) -> serde_json::Value {
    let mut secs: Vec<f64> = rows.iter().map(|r| r.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let column = |f: fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    serde_json::json!({
        "epochs": rows.len(),
        "train_samples": data.train.len(),
        "sec_per_epoch_median": secs.get(secs.len() / 2).copied().unwrap_or(0.0),
        "total_s": total_s,
        "compile_s": compile_s,
        "test_acc": rows.last().map(|r| r.test_accuracy),
        "adapter": info.name,
        "backend": format!("{:?}", info.backend).to_lowercase(),
        "epoch_train_loss": column(|r| r.train_loss),
        "epoch_test_loss": column(|r| r.test_loss),
        "epoch_test_acc": column(|r| r.test_accuracy),
        "run": dir,
    })
}

/// What a `wgml train` command line asks for.
struct RunPlan {
    config: RunConfig,
    /// A resumed run's folder (locked); a new run's folder comes once training can start.
    resumed: Option<RunFolder>,
    /// Where a resumed run stands, once it has committed an epoch.
    state: Option<TrainingState>,
    /// Its metrics so far.
    rows: Vec<Row>,
}

/// The [`RunPlan`] of a command line: a new run's settings, or a resumed run's own.
fn plan(args: &TrainArgs) -> Result<RunPlan> {
    let Some(dir) = &args.resume else {
        if let Some(dir) = &args.out {
            if dir.join("config.json").exists() {
                return Err(Error::data(
                    dir,
                    "already holds a run: continue it with --resume, or choose another --out",
                ));
            }
        }
        return Ok(RunPlan {
            config: RunConfig::from_args(args)?,
            resumed: None,
            state: None,
            rows: Vec::new(),
        });
    };
    let given = args.settings_given();
    if !given.is_empty() {
        return Err(Error::invalid(format!(
            "--resume continues a run with the settings in its config.json; {} cannot change \
             them (only --epochs, --save and --json can be given): drop {}, or start a new run \
             with --out",
            given.join(", "),
            if given.len() == 1 { "it" } else { "them" },
        )));
    }
    let folder = RunFolder::open(dir)?;
    let mut config = folder.read_config()?;
    if let Some(epochs) = args.epochs {
        config.epochs = epochs as usize;
    }
    let (state, rows) = folder.progress()?;
    Ok(RunPlan {
        config,
        resumed: Some(folder),
        state,
        rows,
    })
}

/// The model and its trainer for `config`, from `--init`'s weights or where `state` stands.
fn build(
    gpu: &Gpu,
    config: &RunConfig,
    data: &Mnist,
    state: Option<&TrainingState>,
) -> Result<Trainer> {
    let model = config.spec(data).build(gpu, config.seed)?;
    if let (Some(path), None) = (&config.init, state) {
        let mut weights = checkpoint::load_weights(path)?;
        if config.model == ModelKind::Cnn {
            // PyTorch's `Net` names its layers; its nn.Sequential twin numbers them.
            weights = ModelSpec::from_net_names(weights);
        }
        model.params().load_state_dict(gpu, &weights)?;
    }
    let mut trainer = Trainer::new(gpu, model, data, config.train_config())?;
    if let Some(state) = state {
        trainer.restore(state)?;
    }
    Ok(trainer)
}

/// Trains one epoch with a progress bar, evaluates, and returns its metrics row (with the
/// compile time spent before it, taken from `compiling`).
fn epoch(
    trainer: &mut Trainer,
    config: &RunConfig,
    samples: usize,
    compiling: &mut f64,
) -> Result<Row> {
    let (samples, batch) = (samples as u64, config.batch_size as u64);
    let bar = progress_bar(samples, format!("epoch {}", trainer.epochs_done() + 1));
    let stats = trainer.epoch_with_progress(Some(&mut |p: Progress| {
        bar.set_position((p.steps as u64 * batch).min(samples));
        if let Some(loss) = p.running_loss {
            bar.set_message(format!("loss {loss:.4}"));
        }
    }))?;
    bar.finish_and_clear();
    let eval = trainer.evaluate()?;
    Ok(Row {
        epoch: stats.epoch,
        train_loss: f64::from(stats.train_loss),
        test_loss: eval.loss,
        test_accuracy: eval.accuracy,
        seconds: stats.seconds,
        compile_seconds: std::mem::take(compiling),
    })
}

/// An error unless `path` can be written: its folder exists and takes a new file. Checked
/// before training, so that a bad `--save` does not surface after an epoch.
fn check_writable(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Error::data(path, "cannot write: its folder does not exist"));
    }
    if path.is_dir() {
        return Err(Error::data(path, "cannot write: it is a folder"));
    }
    let probe = parent.join(format!(".wgml-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| Error::data(path, format!("cannot write into its folder: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A spinner with `message` on stderr, or nothing when stdout is not a terminal.
pub fn spinner(message: &'static str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// A progress bar on stderr, or nothing when stdout is not a terminal (logs, pipes, tests).
pub fn progress_bar(len: u64, prefix: String) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} samples  {rate}  {msg}  ETA {eta}",
    )
    .map(|s| {
        s.progress_chars("=> ").with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} samples/s", state.per_sec());
            },
        )
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style).with_prefix(prefix)
}

/// The data a run names: a folder, a dataset fetched into the cache (the bundled subset when no
/// mirror answers), or the bundled subset. Also says where it came from.
pub fn load_data(
    folder: Option<&Path>,
    dataset: Option<&str>,
    cache: Option<&Path>,
) -> Result<(Mnist, String)> {
    if let Some(dir) = folder {
        return Ok((Mnist::load(dir)?, dir.display().to_string()));
    }
    let Some(name) = dataset else {
        return Ok((Mnist::bundled()?, "the bundled MNIST subset".into()));
    };
    let source = Source::named(name)?;
    let cache = cache.map_or_else(download::default_cache, Path::to_path_buf);
    let bar = progress_bar(0, format!("fetching {name}"));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = |file: &str, done: u64, total: Option<u64>| {
        bar.set_message(file.to_string());
        bar.set_length(total.unwrap_or(done));
        bar.set_position(done);
    };
    let fetched = download::fetch(&source, &cache, &mut report);
    bar.finish_and_clear();
    match fetched {
        Ok(dir) => Ok((Mnist::load(&dir)?, format!("{name} ({})", dir.display()))),
        Err(FetchError::Unreachable(why)) => {
            eprintln!("offline: {why}; training on the bundled MNIST subset instead");
            Ok((Mnist::bundled()?, "the bundled MNIST subset".into()))
        }
        Err(FetchError::Failed(e)) => Err(e),
    }
}

/// The first 64 test digits with predicted and true labels.
fn write_predictions(gpu: &Gpu, model: &Sequential, data: &Mnist, path: &Path) -> Result<()> {
    let n = data.test.len().min(64);
    let f = data.test.features;
    let head = wgml::data::Split {
        images: data.test.images[..n * f].to_vec(),
        labels: data.test.labels[..n].to_vec(),
        features: f,
    };
    let predicted = crate::predictions(gpu, model, &head)?;
    let truth: Vec<usize> = head.labels.iter().map(|&l| usize::from(l)).collect();
    let images: Vec<&[u8]> = head.images.chunks(f).collect();
    let side = (f as f64).sqrt().round() as usize;
    plot::save_png(
        path,
        &plot::digit_grid(&images, side, &predicted, &truth, 8)?,
    )
}
