//! [`ModelSpec`]: a model's architecture as data, stored beside its weights so that a weight
//! file alone rebuilds the model.

use super::{Layer, NamedTensor, Sequential};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::conv::Conv2dOptions;
use crate::kernels::pool::MaxPool2d;
use serde::{Deserialize, Serialize};

/// A [`Sequential`] model's input shape and layers (serialised as JSON in weight files'
/// `wgml.model` metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// One sample's shape: `[features]`, or `[C, H, W]`.
    pub input: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// Linear layers between consecutive `sizes` with ReLUs between them (PyTorch's MNIST
    /// tutorial: `[784, 128, 10]`).
    pub fn mlp(sizes: &[usize]) -> Self {
        let mut layers = Vec::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            if i > 0 {
                layers.push(Layer::Relu);
            }
            layers.push(Layer::linear(pair[0], pair[1]));
        }
        ModelSpec {
            input: sizes.first().map(|&f| vec![f]).unwrap_or_default(),
            layers,
        }
    }

    /// `Net` of PyTorch's `examples/mnist`, as an `nn.Sequential` over 1 × 28 × 28 images:
    /// Conv2d(1, 32, 3), ReLU, Conv2d(32, 64, 3), ReLU, MaxPool2d(2), Dropout(0.25), Flatten,
    /// Linear(9216, 128), ReLU, Dropout(0.5), Linear(128, 10). Its parameters are `0.*`, `2.*`,
    /// `7.*` and `10.*` (`Net`'s `conv1`, `conv2`, `fc1`, `fc2`).
    pub fn mnist_cnn() -> Self {
        Self::mnist_cnn_with_dropout(0.25, 0.5)
    }

    /// The names `Net`'s own state_dict gives [`ModelSpec::mnist_cnn`]'s layers (`conv1` is
    /// layer `0`, …), for taking weights from a PyTorch `Net`.
    pub const MNIST_CNN_NAMES: [(&'static str, &'static str); 4] =
        [("conv1", "0"), ("conv2", "2"), ("fc1", "7"), ("fc2", "10")];

    /// `tensors` with `Net`'s layer names (`conv1.weight`, …) renamed to the Sequential's.
    pub fn from_net_names(tensors: Vec<NamedTensor>) -> Vec<NamedTensor> {
        (tensors.into_iter())
            .map(|(name, shape, values)| {
                let renamed = (Self::MNIST_CNN_NAMES.iter())
                    .find_map(|(net, index)| {
                        let rest = name.strip_prefix(net)?.strip_prefix('.')?;
                        Some(format!("{index}.{rest}"))
                    })
                    .unwrap_or(name);
                (renamed, shape, values)
            })
            .collect()
    }

    /// [`ModelSpec::mnist_cnn`] with other dropout probabilities (0 and 0 to compare step by
    /// step with a run whose masks differ).
    pub fn mnist_cnn_with_dropout(p1: f32, p2: f32) -> Self {
        ModelSpec {
            input: vec![1, 28, 28],
            layers: vec![
                Layer::conv2d(1, 32, 3),
                Layer::Relu,
                Layer::conv2d(32, 64, 3),
                Layer::Relu,
                Layer::MaxPool2d(MaxPool2d::default()),
                Layer::Dropout { p: p1 },
                Layer::Flatten,
                Layer::linear(9216, 128),
                Layer::Relu,
                Layer::Dropout { p: p2 },
                Layer::linear(128, 10),
            ],
        }
    }

    /// LeNet-5 as `nn.Sequential(Conv2d(1, 6, 5, padding=2), ReLU, MaxPool2d(2), Conv2d(6, 16,
    /// 5), ReLU, MaxPool2d(2), Flatten, Linear(400, 120), ReLU, Linear(120, 84), ReLU,
    /// Linear(84, 10))` over 1 × 28 × 28 images.
    pub fn lenet5() -> Self {
        ModelSpec {
            input: vec![1, 28, 28],
            layers: vec![
                Layer::Conv2d {
                    in_channels: 1,
                    out_channels: 6,
                    kernel: (5, 5),
                    options: Conv2dOptions {
                        padding: (2, 2),
                        ..Default::default()
                    },
                },
                Layer::Relu,
                Layer::MaxPool2d(MaxPool2d::default()),
                Layer::conv2d(6, 16, 5),
                Layer::Relu,
                Layer::MaxPool2d(MaxPool2d::default()),
                Layer::Flatten,
                Layer::linear(400, 120),
                Layer::Relu,
                Layer::linear(120, 84),
                Layer::Relu,
                Layer::linear(84, 10),
            ],
        }
    }

    /// The model, with PyTorch's default initialisation drawn from `seed`.
    pub fn build(&self, gpu: &Gpu, seed: u64) -> Result<Sequential> {
        Sequential::with_input(gpu, &self.input, &self.layers, seed)
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From JSON written by [`ModelSpec::to_json`].
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("not a wgml model description: {e}")))
    }
}
