//! PyTorch's `examples/mnist`, ported: its `Net` (two 3×3 convolutions, max pooling, dropout,
//! two linear layers) built layer by layer, trained with Adadelta (lr 1.0) and StepLR (γ 0.7
//! every epoch), batch 64. Pass a folder of MNIST-format IDX files and an epoch count, or
//! nothing for one epoch of the bundled subset.
//!
//! cargo run --release --example cnn [DATA_DIR [EPOCHS]]

use wgml::data::Mnist;
use wgml::gpu::Gpu;
use wgml::kernels::pool::MaxPool2d;
use wgml::nn::{Layer, Sequential};
use wgml::optim::{AdadeltaConfig, OptimizerConfig, StepLr};
use wgml::train::{TrainConfig, Trainer};

fn main() -> wgml::Result<()> {
    let gpu = Gpu::from_env()?;
    let mut args = std::env::args().skip(1);
    let data = match args.next() {
        Some(dir) => Mnist::load(dir.as_ref())?,
        None => Mnist::bundled()?,
    };
    let epochs: usize = args.next().and_then(|e| e.parse().ok()).unwrap_or(1);
    let layers = [
        Layer::conv2d(1, 32, 3), //                          self.conv1 = nn.Conv2d(1, 32, 3, 1)
        Layer::Relu,
        Layer::conv2d(32, 64, 3), //                         self.conv2 = nn.Conv2d(32, 64, 3, 1)
        Layer::Relu,
        Layer::MaxPool2d(MaxPool2d::default()), //           F.max_pool2d(x, 2)
        Layer::Dropout { p: 0.25 }, //                       self.dropout1 = nn.Dropout(0.25)
        Layer::Flatten,             //                                   torch.flatten(x, 1)
        Layer::linear(9216, 128),   //                         self.fc1 = nn.Linear(9216, 128)
        Layer::Relu,
        Layer::Dropout { p: 0.5 }, //                        self.dropout2 = nn.Dropout(0.5)
        Layer::linear(128, 10),    //                           self.fc2 = nn.Linear(128, 10)
    ];
    let model = Sequential::with_input(&gpu, &[1, 28, 28], &layers, 0)?;
    let config = TrainConfig {
        optimizer: OptimizerConfig::Adadelta(AdadeltaConfig {
            lr: 1.0, //                                      optim.Adadelta(model.parameters(), lr=1.0)
            ..Default::default()
        }),
        lr_schedule: Some(StepLr {
            step_size: 1, //                                 StepLR(optimizer, step_size=1, gamma=0.7)
            gamma: 0.7,
        }),
        ..TrainConfig::default() //                          batch_size=64; log_softmax + nll_loss
    };
    let mut trainer = Trainer::new(&gpu, model, &data, config)?;
    for epoch in 1..=epochs {
        let stats = trainer.epoch()?;
        let accuracy = trainer.evaluate()?.accuracy;
        println!(
            "Epoch [{epoch}/{epochs}], Loss: {:.4}, Accuracy: {:.2}%, {:.1}s",
            stats.train_loss,
            accuracy * 100.0,
            stats.seconds
        );
    }
    Ok(())
}
