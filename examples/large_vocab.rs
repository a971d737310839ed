//! A classifier head over 131,072 classes, trained with the fused linear cross-entropy: its
//! logits (512 rows × 131,072 classes, 256 MiB) would not fit a storage binding on most
//! adapters (lavapipe and WebGPU's defaults allow 128 MiB), and are never held.
//!
//!     cargo run --release --example large_vocab

use wgml::gpu::{DType, Gpu, Tensor};
use wgml::kernels::cross_entropy::CrossEntropyOptions;
use wgml::nn::Sequential;
use wgml::optim::{Optimizer, OptimizerConfig};
use wgml::rng::Rng;

fn main() -> wgml::Result<()> {
    let gpu = Gpu::from_env()?;
    let (rows, features, classes) = (512, 32, 131_072);
    // One Linear layer, 32 features in, a class out of 131,072 (nn.Linear(32, 131072)).
    let model = Sequential::mlp(&gpu, &[features, classes], 0)?;
    let (_, head) = (model.classifier_head())
        .ok_or_else(|| wgml::Error::invalid("the model must end in a Linear layer"))?;
    // Random features, and a target class for each row to learn.
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..rows * features)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let y: Vec<i32> = (0..rows)
        .map(|_| rng.below(classes as u64) as i32)
        .collect();
    let x = Tensor::from_slice(&gpu, &x, &[rows, features])?;
    let y = Tensor::from_slice(&gpu, &y, &[rows])?;

    let loss = Tensor::zeros(&gpu, &[1], DType::F32)?;
    let cursor = Tensor::zeros(&gpu, &[1], DType::U32)?;
    let before = gpu.creations().buffer_bytes;
    let opts = CrossEntropyOptions::default();
    let fused = head.fused_loss(&gpu, &x, &y, opts, None, &loss, &cursor)?;
    let scratch = gpu.creations().buffer_bytes - before;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "logits: {:.0} MiB (the device binds at most {:.0} MiB); the fused loss allocated {:.1} MiB, \
         {} classes at a time",
        mib((rows * classes * 4) as u64),
        mib(gpu.limits().max_storage_buffer_binding_size),
        mib(scratch),
        fused.chunk_classes()
    );

    let adam = OptimizerConfig::Adam(wgml::kernels::optim::AdamConfig {
        lr: 0.05,
        ..Default::default()
    });
    let optimizer = Optimizer::new(&gpu, model.params(), adam)?;
    let mut step = fused.forward.clone();
    step.append(fused.backward.clone().unwrap_or_default());
    step.append(optimizer.step_program(&gpu, model.params())?);
    for round in 1..=4 {
        let start = std::time::Instant::now();
        step.submit(&gpu, 3);
        let value = loss.to_vec::<f32>(&gpu)?[0];
        fused.check_targets(&gpu)?;
        println!(
            "step {:>2}: loss {value:.4} ({:.2} s per step)",
            round * 3,
            start.elapsed().as_secs_f64() / 3.0
        );
    }
    Ok(())
}
