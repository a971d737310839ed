//! The `wgml` command line: train, evaluate and use MNIST-style classifiers on any GPU.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod run;

use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use wgml::checkpoint;
use wgml::data::{picture, Mnist, Split};
use wgml::gpu::{Gpu, GpuOptions, Tensor};
use wgml::nn::Sequential;

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
    Devices {
        /// One JSON object per adapter.
        #[arg(long)]
        json: bool,
    },
    /// Train a classifier (PyTorch's MNIST tutorial MLP by default, or a CNN) into a run folder.
    Train(Box<run::TrainArgs>),
    /// Accuracy, per-class accuracy and confusion matrix of saved weights on a test split.
    Eval {
        /// Weights: a run folder, its model.safetensors or checkpoint.safetensors, or a
        /// PyTorch state_dict saved as safetensors.
        #[arg(long, value_name = "PATH")]
        model: PathBuf,
        #[command(flatten)]
        data: run::DataArgs,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Classify pictures of digits (PNG or JPEG, any size or colour) with saved weights.
    Predict {
        /// Weights: a run folder, its model.safetensors or checkpoint.safetensors, or a
        /// PyTorch state_dict saved as safetensors.
        #[arg(long, value_name = "PATH")]
        model: PathBuf,
        /// The pictures.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// One JSON line per picture: {"file":…,"top":[{"class":…,"prob":…},…]}.
        #[arg(long)]
        json: bool,
    },
    /// Measure matmul GFLOP/s, a model's epoch time, and its training step kernel by kernel.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The model whose epoch and training step are timed (for cnn and lenet5 also each
    /// convolution beside its matmuls) [default: mlp].
    #[arg(long, value_enum, default_value = "mlp")]
    model: run::ModelKind,
    /// Training samples for the epoch timing (synthetic 28×28 images) [default: 60,000 for
    /// the MLP, 8,000 for the CNNs].
    #[arg(long)]
    samples: Option<usize>,
    /// Timed epochs after a warm-up epoch; the fastest is reported.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Add 4096³ to the matmul shapes (the default on adapters that are not CPUs).
    #[arg(long)]
    large: bool,
    /// Time the matmuls with this layout (auto, tiled, wide, rows, dot, subgroup16,
    /// subgroup32, subgroup64, subgroup128, subgroup64wide), skipping shapes it cannot compute.
    #[arg(long, default_value = "auto")]
    layout: wgml::kernels::matmul::MatmulKernel,
    /// Time only the fused linear cross-entropy (loss and gradients), at N,D,V (rows,
    /// features, classes); repeat for more shapes. Without it every measurement runs, the fused
    /// loss at its default shapes.
    #[arg(long, value_name = "N,D,V", value_parser = parse_shape)]
    lce: Vec<(usize, usize, usize)>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// Turns off Mesa's Vulkan device-select layer where it would only print errors: to rank
/// GPUs for a display, it connects to Wayland, and with no `XDG_RUNTIME_DIR` (a headless box)
/// libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." for
/// every command. wgml draws nothing and ranks adapters itself. Left on when the user set
/// `NODEVICE_SELECT` (the layer's own switch) or chose a device through it
/// (`MESA_VK_DEVICE_SELECT`).
fn quiet_device_select() {
    let set = |var: &str| std::env::var_os(var).is_some();
    if !set("XDG_RUNTIME_DIR") && !set("NODEVICE_SELECT") && !set("MESA_VK_DEVICE_SELECT") {
        // Before any other thread or driver exists, so nothing reads the environment meanwhile.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// "N,D,V" as three positive sizes.
fn parse_shape(text: &str) -> Result<(usize, usize, usize), String> {
    let sizes: Vec<usize> = text
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("{s:?} is not a size")))
        .collect::<Result<_, _>>()?;
    match sizes[..] {
        [n, d, v] if n > 0 && d > 0 && v > 0 => Ok((n, d, v)),
        _ => Err(format!(
            "expected N,D,V (three positive sizes), got {text:?}"
        )),
    }
}

fn main() -> ExitCode {
    quiet_device_select();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices { json } => devices(json),
        Command::Train(args) => run::train(&args),
        Command::Eval { model, data, json } => {
            data.load().and_then(|data| eval(&model, &data, json))
        }
        Command::Predict {
            model,
            images,
            json,
        } => predict(&model, &images, json),
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

fn devices(json: bool) -> wgml::Result<()> {
    let adapters = Gpu::adapters(&GpuOptions::from_env()?);
    if adapters.is_empty() && !json {
        println!("no adapters found");
    }
    for a in adapters {
        if json {
            let line = json!({
                "name": a.info.name,
                "backend": format!("{:?}", a.info.backend).to_lowercase(),
                "device_type": format!("{:?}", a.info.device_type),
                "usable": a.usable,
                "chosen": a.chosen,
            });
            println!("{line}");
        } else {
            let mark = if a.chosen { "*" } else { " " };
            let note = if a.usable {
                ""
            } else {
                " [no compute shaders]"
            };
            println!("{mark} {a}{note}");
        }
    }
    Ok(())
}

/// Loads weights and the model they belong to: the architecture stored with them, else the
/// MLP their shapes describe.
fn load_model(gpu: &Gpu, path: &std::path::Path) -> wgml::Result<Sequential> {
    let weights = checkpoint::load_weights(path)?;
    match checkpoint::load_model_spec(path)? {
        Some(spec) => {
            let model = spec.build(gpu, 0)?;
            model.params().load_state_dict(gpu, &weights)?;
            Ok(model)
        }
        None => Sequential::from_state_dict(gpu, &weights),
    }
}

/// Samples per forward pass at inference: at most 1000, fewer where a model's scratch grows
/// past the device's binding size.
fn inference_batch(gpu: &Gpu, model: &Sequential) -> usize {
    model.max_batch(gpu).min(1000)
}

/// Logits for `images` (bytes, `features` per sample) scaled as in training (÷255).
fn logits(gpu: &Gpu, model: &Sequential, images: &[u8], features: usize) -> wgml::Result<Vec<f32>> {
    check_features(model, features)?;
    let mut out = Vec::new();
    for chunk in images.chunks(inference_batch(gpu, model) * features) {
        let x = normalised(gpu, chunk, features)?;
        out.extend(model.forward(gpu, &x)?.to_vec::<f32>(gpu)?);
    }
    Ok(out)
}

fn check_features(model: &Sequential, features: usize) -> wgml::Result<()> {
    if features != model.in_features() {
        return Err(wgml::Error::shape(format!(
            "the model takes {} features but the images have {features}",
            model.in_features()
        )));
    }
    Ok(())
}

/// Images of `features` bytes as a `[rows, features]` tensor in [0, 1], as training sees them.
fn normalised(gpu: &Gpu, images: &[u8], features: usize) -> wgml::Result<Tensor> {
    let x: Vec<f32> = images.iter().map(|&b| f32::from(b) / 255.0).collect();
    Tensor::from_slice(gpu, &x, &[images.len() / features, features])
}

/// Predicted class (first largest logit) of every sample of `split`.
pub(crate) fn predictions(
    gpu: &Gpu,
    model: &Sequential,
    split: &Split,
) -> wgml::Result<Vec<usize>> {
    check_features(model, split.features)?;
    let mut out = Vec::new();
    for chunk in split
        .images
        .chunks(inference_batch(gpu, model) * split.features)
    {
        let x = normalised(gpu, chunk, split.features)?;
        let predicted = wgml::kernels::reduce::argmax(gpu, &model.forward(gpu, &x)?)?;
        out.extend(predicted.into_iter().map(|c| c as usize));
    }
    Ok(out)
}

fn eval(model_path: &std::path::Path, data: &Mnist, json: bool) -> wgml::Result<()> {
    let gpu = Gpu::from_env()?;
    let model = load_model(&gpu, model_path)?;
    if data.test.features != model.in_features() {
        return Err(wgml::Error::shape(format!(
            "the model takes {} features but the data has {}",
            model.in_features(),
            data.test.features
        )));
    }
    let classes = model.out_features();
    let predicted = predictions(&gpu, &model, &data.test)?;
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&p, &t) in predicted.iter().zip(&data.test.labels) {
        if let Some(row) = confusion.get_mut(usize::from(t)) {
            row[p.min(classes - 1)] += 1;
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / data.test.len() as f64;
    let per_class: Vec<f64> = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                f64::NAN
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect();
    if json {
        let per_class: Vec<Option<f64>> = per_class
            .iter()
            .map(|&a| a.is_finite().then_some(a))
            .collect();
        let line = json!({
            "model": model_path, "samples": data.test.len(), "accuracy": accuracy,
            "per_class_accuracy": per_class, "confusion": confusion,
        });
        println!("{line}");
        return Ok(());
    }
    println!(
        "{} test samples: accuracy {:.2}%\n",
        data.test.len(),
        accuracy * 100.0
    );
    println!("class  accuracy   (rows: true class, columns: predicted)");
    for (c, row) in confusion.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
        println!("{c:>5}  {:>7.2}%  {}", per_class[c] * 100.0, cells.join(""));
    }
    Ok(())
}

fn predict(model_path: &std::path::Path, images: &[PathBuf], json: bool) -> wgml::Result<()> {
    let gpu = Gpu::from_env()?;
    let model = load_model(&gpu, model_path)?;
    // Every readable picture is answered; the others are reported, and the exit is non-zero.
    let mut pixels = Vec::new();
    let mut readable = Vec::new();
    let mut failed = 0;
    for path in images {
        match picture::load_digit(path) {
            Ok(digit) => {
                pixels.extend(digit);
                readable.push(path);
            }
            Err(e) => {
                failed += 1;
                if json {
                    println!("{}", json!({"file": path, "error": e.to_string()}));
                } else {
                    eprintln!("{e}");
                }
            }
        }
    }
    let classes = model.out_features();
    let all = if readable.is_empty() {
        Vec::new()
    } else {
        logits(&gpu, &model, &pixels, 784)?
    };
    for (path, row) in readable.iter().zip(all.chunks(classes)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        let mut ranked: Vec<(usize, f64)> = exp.iter().map(|e| e / total).enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(3);
        if json {
            let top: Vec<_> = ranked
                .iter()
                .map(|(c, p)| json!({"class": c, "prob": p}))
                .collect();
            println!("{}", json!({"file": path, "top": top}));
        } else {
            let top: Vec<String> = ranked
                .iter()
                .map(|(c, p)| format!("{c} ({:.1}%)", p * 100.0))
                .collect();
            println!("{}: {}", path.display(), top.join(", "));
        }
    }
    if failed > 0 {
        return Err(wgml::Error::invalid(format!(
            "{failed} of {} pictures could not be classified",
            images.len()
        )));
    }
    Ok(())
}

fn bench(args: &BenchArgs) -> wgml::Result<()> {
    use wgml::bench;
    let gpu = Gpu::from_env()?;
    let info = gpu.info().clone();
    let lce_shapes = if args.lce.is_empty() {
        bench::linear_cross_entropy_shapes(&gpu)
    } else {
        args.lce.clone()
    };
    let lce = lce_shapes
        .into_iter()
        .map(|shape| bench::linear_cross_entropy(&gpu, shape, 2.0))
        .collect::<wgml::Result<Vec<_>>>()?;
    let lce_json: Vec<_> = lce
        .iter()
        .map(|r| {
            json!({"n": r.n, "d": r.d, "v": r.v, "chunk": r.chunk, "ms": r.fused.ms,
                   "extra_bytes": r.fused.extra_bytes, "dispatches": r.fused.dispatches,
                   "unfused_ms": r.unfused.map(|u| u.ms),
                   "unfused_extra_bytes": r.unfused.map(|u| u.extra_bytes),
                   "unfused_dispatches": r.unfused.map(|u| u.dispatches)})
        })
        .collect();
    if !args.lce.is_empty() {
        if args.json {
            println!(
                "{}",
                json!({"adapter": info.name, "linear_cross_entropy": lce_json})
            );
        } else {
            print_lce(&lce);
        }
        return Ok(());
    }
    let mut matmul = Vec::new();
    let large = args.large || !gpu.profile().cpu;
    for shape in bench::default_shapes(large) {
        matmul.extend(bench::matmul_gflops(&gpu, shape, args.layout, 0.5)?);
    }
    let mlp = args.model == run::ModelKind::Mlp;
    let samples = (args.samples).unwrap_or(if mlp { 60_000 } else { 8_000 });
    let data = bench::synthetic_mnist(samples.max(1), 0);
    let model = args
        .model
        .spec(data.train.features, &[128])
        .build(&gpu, 0)?;
    let convs = bench::conv_gflops(&gpu, &model, 64, 0.5)?;
    let mut trainer = wgml::train::Trainer::new(&gpu, model, &data, args.model.recipe())?;
    trainer.warm_up()?;
    let epoch_s = bench::epoch_seconds(&mut trainer, args.epochs)?;
    let kernels = bench::step_breakdown(&gpu, &trainer, if mlp { 50 } else { 5 })?;
    let model_name = format!("{:?}", args.model).to_lowercase();
    let step_us: f64 = kernels.iter().map(|k| k.micros).sum();
    if args.json {
        let matmul: Vec<_> = matmul
            .iter()
            .map(|r| {
                let layout = format!("{:?}", r.layout).to_lowercase();
                json!({"m": r.m, "n": r.n, "k": r.k, "trans_a": r.trans_a, "trans_b": r.trans_b,
                       "gflops": r.gflops, "layout": layout})
            })
            .collect();
        let kernels: Vec<_> = kernels
            .iter()
            .map(|k| json!({"name": k.name, "us": k.micros, "gpu_us": k.gpu_micros}))
            .collect();
        let convs: Vec<_> = convs
            .iter()
            .map(|c| {
                json!({"input": c.shape.input(), "weight": c.shape.weight(),
                       "stride": c.options.stride, "padding": c.options.padding,
                       "forward_gflops": c.forward, "backward_gflops": c.backward,
                       "gemm_forward_gflops": c.gemm_forward, "gemm_backward_gflops": c.gemm_backward})
            })
            .collect();
        let line = json!({
            "adapter": info.name, "backend": format!("{:?}", info.backend).to_lowercase(),
            "matmul": matmul, "model": model_name, "conv": convs, "epoch_s": epoch_s,
            "epoch_samples": data.train.len(), "step_dispatches": kernels.len(),
            "step_kernels": kernels, "linear_cross_entropy": lce_json,
        });
        println!("{line}");
        return Ok(());
    }
    println!("adapter: {} ({:?})\n", info.name, info.backend);
    println!(
        "{:>6} {:>6} {:>6}  {:<6} {:>10}  layout",
        "M", "N", "K", "op", "GFLOP/s"
    );
    for r in &matmul {
        let op = format!(
            "{}{}",
            if r.trans_a { "Aᵀ" } else { "A" },
            if r.trans_b { "Bᵀ" } else { "B" }
        );
        println!(
            "{:>6} {:>6} {:>6}  {:<6} {:>10.2}  {}",
            r.m,
            r.n,
            r.k,
            op,
            r.gflops,
            format!("{:?}", r.layout).to_lowercase()
        );
    }
    if !convs.is_empty() {
        println!(
            "\nconvolutions of {model_name} at batch 64, GFLOP/s (products: the matmuls alone):"
        );
        println!(
            "  {:<18} {:<16} {:>8} {:>9} {:>8} {:>9}",
            "input", "weight", "forward", "products", "backward", "products"
        );
        for c in &convs {
            println!(
                "  {:<18} {:<16} {:>8.1} {:>9.1} {:>8.1} {:>9.1}",
                format!("{:?}", c.shape.input()),
                format!("{:?}", c.shape.weight()),
                c.forward,
                c.gemm_forward,
                c.backward,
                c.gemm_backward
            );
        }
    }
    println!(
        "\n{model_name}, batch 64: {epoch_s:.3} s per epoch of {} samples; {} dispatches per \
         training step\n",
        data.train.len(),
        kernels.len()
    );
    let gpu_us: Option<f64> = kernels.iter().map(|k| k.gpu_micros).sum();
    match gpu_us {
        Some(total) => println!(
            "one training step: {total:.0} µs of GPU time in sequence (timestamps); {step_us:.0} µs \
             wall clock with each kernel repeated alone:"
        ),
        None => println!("one training step, {step_us:.0} µs wall clock, each kernel repeated alone:"),
    }
    let width = kernels
        .iter()
        .map(|k| k.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    match gpu_us {
        Some(_) => println!(
            "  {:>2} {:<width$} {:>18}   {:>18}",
            "#", "kernel", "GPU time", "wall clock"
        ),
        None => println!("  {:>2} {:<width$} {:>18}", "#", "kernel", "wall clock"),
    }
    for k in &kernels {
        let gpu = k.gpu_micros.map_or(String::new(), |g| {
            format!("{g:>9.1} µs {:>5.1}%", 100.0 * g / gpu_us.unwrap_or(1.0))
        });
        println!(
            "  {:>2} {:<width$} {gpu}   {:>9.1} µs {:>5.1}%",
            k.index,
            k.name,
            k.micros,
            100.0 * k.micros / step_us
        );
    }
    println!();
    print_lce(&lce);
    Ok(())
}

/// The fused linear cross-entropy's table: time, memory and dispatches beside the unfused
/// path's.
fn print_lce(lce: &[wgml::bench::LinearCrossEntropyTime]) {
    let cost = |c: &wgml::bench::LossCost| {
        let mib = c.extra_bytes as f64 / f64::from(1 << 20);
        format!("{:>10.2} {mib:>10.1} {:>10}", c.ms, c.dispatches)
    };
    println!(
        "linear + cross-entropy, loss and gradients (fused: chunks of classes, no logits held):"
    );
    println!(
        "  {:>6} {:>5} {:>7} {:>6}  {:>10} {:>10} {:>10}  {:>10} {:>10} {:>10}",
        "N",
        "D",
        "V",
        "chunk",
        "fused ms",
        "extra MiB",
        "dispatches",
        "unfused ms",
        "extra MiB",
        "dispatches"
    );
    for r in lce {
        let unfused = r
            .unfused
            .as_ref()
            .map_or("  (logits do not fit)".to_string(), cost);
        println!(
            "  {:>6} {:>5} {:>7} {:>6}  {}  {unfused}",
            r.n,
            r.d,
            r.v,
            r.chunk,
            cost(&r.fused)
        );
    }
}
