//! What a model is made of: [`Layer`]s as the user describes them, built into [`Module`]s once
//! each layer's input shape is known.

use super::{Conv2d, Linear, Relu};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::conv::Conv2dOptions;
use crate::kernels::dropout::Dropout;
use crate::kernels::pool::MaxPool2d;

/// The most parameter bytes a model may have on the host, where they are initialised.
const HOST_PARAM_BYTES: u64 = 16 << 30;

/// A layer as the user describes it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Layer {
    /// `nn.Linear(in_features, out_features)`, over flat samples.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// `nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation)` over
    /// `(C, H, W)` samples.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel (height, width).
        kernel: (usize, usize),
        /// Stride, padding and dilation.
        options: Conv2dOptions,
    },
    /// `nn.ReLU()`.
    Relu,
    /// `nn.MaxPool2d(...)` over `(C, H, W)` samples.
    MaxPool2d(MaxPool2d),
    /// `nn.Dropout(p)`: in training, zeroes each element with probability p and scales the
    /// rest by 1/(1 − p); the identity in evaluation.
    Dropout {
        /// The probability of zeroing an element.
        p: f32,
    },
    /// `nn.Flatten()`: `(C, H, W)` samples as `C·H·W` features, in that order.
    Flatten,
}

impl Layer {
    /// `nn.Conv2d(in_channels, out_channels, kernel)` with a square kernel and PyTorch's
    /// defaults (stride 1, no padding).
    pub fn conv2d(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Layer::Conv2d {
            in_channels,
            out_channels,
            kernel: (kernel, kernel),
            options: Conv2dOptions::default(),
        }
    }

    /// `nn.Linear(in_features, out_features)`.
    pub fn linear(in_features: usize, out_features: usize) -> Self {
        Layer::Linear {
            in_features,
            out_features,
        }
    }

    /// How many parameters it has (`None` on overflow).
    fn parameters(&self) -> Option<u64> {
        let (fan_in, out) = match *self {
            Layer::Linear {
                in_features,
                out_features,
            } => (in_features as u64, out_features as u64),
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => (
                (in_channels as u64)
                    .checked_mul(kernel.0 as u64)?
                    .checked_mul(kernel.1 as u64)?,
                out_channels as u64,
            ),
            _ => return Some(0),
        };
        fan_in.checked_add(1)?.checked_mul(out)
    }
}

/// An error unless the parameters of `layers` fit one buffer and binding of the device (they
/// live in one flat buffer) and the host budget, checked before anything is allocated.
pub(super) fn check_size(gpu: &Gpu, layers: &[Layer]) -> Result<()> {
    let count =
        (layers.iter()).try_fold(0u64, |total, layer| total.checked_add(layer.parameters()?));
    let needed = count.and_then(|c| c.checked_mul(4)).unwrap_or(u64::MAX);
    let limits = gpu.limits();
    let (limit, max) = [
        ("max_buffer_size", limits.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            limits.max_storage_buffer_binding_size,
        ),
        ("host parameter budget (16 GiB)", HOST_PARAM_BYTES),
    ]
    .into_iter()
    .min_by_key(|&(_, max)| max)
    .unwrap_or(("max_buffer_size", limits.max_buffer_size));
    if needed > max {
        return Err(Error::Limit {
            what: format!("the model's parameters ({} floats)", needed / 4),
            needed,
            limit,
            max,
        });
    }
    Ok(())
}

/// A built layer of a [`Sequential`](super::Sequential).
#[derive(Clone, Debug)]
pub enum Module {
    /// A fully connected layer.
    Linear(Linear),
    /// A convolution.
    Conv2d(Conv2d),
    /// A rectifier.
    Relu(Relu),
    /// Max pooling.
    MaxPool2d(MaxPool2d),
    /// Dropout, with the seed of its masks.
    Dropout(Dropout),
    /// A view of `(C, H, W)` samples as flat features.
    Flatten,
}

impl Module {
    /// Whether it has parameters.
    pub(super) fn weighted(&self) -> bool {
        matches!(self, Module::Linear(_) | Module::Conv2d(_))
    }
}

/// `(64, 12, 12)`: a per-sample shape as PyTorch prints one.
fn show(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("({})", dims.join(", "))
}

/// Module `i` built from `layer` over samples of `shape`, and its output's shape; `seed` seeds
/// dropout masks.
pub(super) fn build(
    i: usize,
    layer: &Layer,
    shape: &[usize],
    seed: u64,
) -> Result<(Module, Vec<usize>)> {
    let image = |what: &str| -> Result<[usize; 3]> {
        match *shape {
            [c, h, w] => Ok([c, h, w]),
            _ => Err(Error::shape(format!(
                "layer {i}: {what} takes (C, H, W) samples, got {}{}",
                show(shape),
                if shape.len() == 1 {
                    " (flat features): start the model with its image shape"
                } else {
                    ""
                }
            ))),
        }
    };
    Ok(match *layer {
        Layer::Linear {
            in_features,
            out_features,
        } => {
            let width = match *shape {
                [w] => w,
                _ => {
                    return Err(Error::shape(format!(
                        "layer {i}: Linear({in_features}, {out_features}) takes flat \
                         features, but its input is {}: put a Flatten before it",
                        show(shape)
                    )))
                }
            };
            if in_features != width || in_features == 0 || out_features == 0 {
                return Err(Error::shape(format!(
                    "layer {i}: Linear({in_features}, {out_features}) follows a layer with \
                     {width} outputs"
                )));
            }
            let linear = Linear::new(&i.to_string(), in_features, out_features);
            (Module::Linear(linear), vec![out_features])
        }
        Layer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            options,
        } => {
            let [c, h, w] = image("Conv2d")?;
            if c != in_channels {
                return Err(Error::shape(format!(
                    "Conv2d at index {i} expects {in_channels} input channels, got {c} (its \
                     input is {})",
                    show(shape)
                )));
            }
            if out_channels == 0 || kernel.0 == 0 || kernel.1 == 0 {
                return Err(Error::shape(format!(
                    "layer {i}: Conv2d needs output channels and a kernel of at least 1, got \
                     {out_channels} and {kernel:?}"
                )));
            }
            let (oh, ow) = crate::kernels::conv::output_size((h, w), kernel, &options)
                .map_err(|e| Error::shape(format!("layer {i}: {e}")))?;
            let conv = Conv2d::new(&i.to_string(), in_channels, out_channels, kernel, options);
            (Module::Conv2d(conv), vec![out_channels, oh, ow])
        }
        Layer::Relu => (Module::Relu(Relu), shape.to_vec()),
        Layer::MaxPool2d(pool) => {
            let [c, h, w] = image("MaxPool2d")?;
            let (oh, ow) =
                (pool.output_size((h, w))).map_err(|e| Error::shape(format!("layer {i}: {e}")))?;
            (Module::MaxPool2d(pool), vec![c, oh, ow])
        }
        Layer::Dropout { p } => {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(format!(
                    "layer {i}: dropout probability has to be between 0 and 1, but got {p}"
                )));
            }
            // Each dropout layer draws its own masks.
            let seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (Module::Dropout(Dropout { p, seed }), shape.to_vec())
        }
        Layer::Flatten => (Module::Flatten, vec![shape.iter().product()]),
    })
}
