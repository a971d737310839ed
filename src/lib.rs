//! # wgml
//!
//! Train neural networks on any GPU — Vulkan, Metal, DX12, GL, or a software adapter — with
//! hand-written WGSL compute kernels.
//!
//! Layers, bottom up, each calling only the ones below it:
//!
//! | layer | what |
//! | --- | --- |
//! | [`gpu`] | the device, its [`gpu::Profile`] (the facts kernel choices rest on), tensors, prepared dispatches and programs |
//! | [`kernels`] | one typed module per shader in `shaders/`, each opening with a runnable example; [`kernels::policy`] makes every choice of variant by adapter |
//! | [`nn`], [`loss`], [`optim`] | the model API: layers planned into forward and backward steps, `CrossEntropyLoss`, optimizers over a model or your own tensors |
//! | [`data`], [`checkpoint`] | IDX files, MNIST, downloads, pictures of digits; safetensors weights and training state |
//! | [`train`] | the training loop |
//!
//! Beside them: [`reference`](mod@reference) (plain CPU versions of every kernel), [`plot`]
//! (charts and digit grids) and [`bench`](mod@bench) (what `wgml bench` measures). The semantics
//! followed are PyTorch's, written down in `docs/semantics.md`.
//!
//! ```no_run
//! use wgml::{data::Mnist, gpu::Gpu, nn::Sequential, train::{TrainConfig, Trainer}};
//!
//! let gpu = Gpu::from_env()?;
//! let data = Mnist::bundled()?;
//! let model = Sequential::mlp(&gpu, &[784, 128, 10], 0)?;
//! let mut trainer = Trainer::new(&gpu, model, &data, TrainConfig::default())?;
//! for epoch in 0..10 {
//!     let stats = trainer.epoch()?;
//!     println!("epoch {epoch}: loss {:.4}, test accuracy {:.4}", stats.train_loss, trainer.evaluate()?.accuracy);
//! }
//! # Ok::<(), wgml::Error>(())
//! ```

// Nothing reachable from user input or the GPU may panic: fallible paths return `Result`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::unreachable
)]

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod loss;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod reference;
pub mod rng;
pub mod train;

pub use error::{Error, Result};

/// The README's Rust example, run as a doctest so that it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;
