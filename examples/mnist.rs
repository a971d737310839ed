//! PyTorch's MNIST tutorial, ported: a 784-128-10 MLP, cross-entropy, Adam lr 1e-3, batch 64,
//! 10 epochs. Pass a folder of MNIST-format IDX files, or nothing for the bundled subset.
//!
//! cargo run --release --example mnist [DATA_DIR]

use wgml::data::Mnist;
use wgml::gpu::Gpu;
use wgml::nn::Sequential;
use wgml::train::{TrainConfig, Trainer};

fn main() -> wgml::Result<()> {
    let gpu = Gpu::from_env()?; //                                  device = "cuda"
    let data = match std::env::args().nth(1) {
        Some(dir) => Mnist::load(dir.as_ref())?, //                  datasets.MNIST(dir, …)
        None => Mnist::bundled()?,
    };
    let model = Sequential::mlp(&gpu, &[784, 128, 10], 0)?; //      fc1 = Linear(784, 128); relu; fc2
    let config = TrainConfig::default(); //                         Adam(lr=1e-3), batch_size=64
    let mut trainer = Trainer::new(&gpu, model, &data, config)?; // CrossEntropyLoss()
    for epoch in 1..=10 {
        let stats = trainer.epoch()?; //                             for inputs, targets in loader: …
        let accuracy = trainer.evaluate()?.accuracy;
        println!(
            "Epoch [{epoch}/10], Loss: {:.4}, Accuracy: {:.2}%",
            stats.train_loss,
            accuracy * 100.0
        );
    }
    Ok(())
}
