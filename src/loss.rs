//! `CrossEntropyLoss`, as `torch.nn.CrossEntropyLoss` with class-index targets.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
pub use crate::kernels::cross_entropy::Reduction;
use crate::kernels::cross_entropy::{CrossEntropyKernel, CrossEntropyOptions};

/// Softmax cross-entropy over class-index targets with PyTorch's options and defaults.
#[derive(Clone, Debug)]
pub struct CrossEntropyLoss {
    weight: Option<Vec<f32>>,
    ignore_index: i32,
    reduction: Reduction,
}

impl Default for CrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl CrossEntropyLoss {
    /// PyTorch's defaults: no weight, `ignore_index = -100`, mean reduction.
    pub fn new() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }

    /// Per-class weights (one per class).
    pub fn weight(mut self, weight: Vec<f32>) -> Self {
        self.weight = Some(weight);
        self
    }

    /// The target value that contributes nothing.
    pub fn ignore_index(mut self, index: i32) -> Self {
        self.ignore_index = index;
        self
    }

    /// How per-sample losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Prepares the loss for fixed tensors: logits (N×C) and targets (i32, N) in, the gradient
    /// into `grad` and the reduced loss into `out[cursor[0]]`. The result's `program` runs it.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        logits: &Tensor,
        targets: &Tensor,
        grad: &Tensor,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<CrossEntropyKernel> {
        let weight = match &self.weight {
            Some(w) => {
                let classes = logits.shape().last().copied().unwrap_or(0);
                if w.len() != classes {
                    return Err(Error::shape(format!(
                        "weight tensor should be defined either for all {classes} classes or no \
                         classes but got weight tensor of shape: [{}]",
                        w.len()
                    )));
                }
                Some(Tensor::from_slice(gpu, w, &[w.len()])?)
            }
            None => None,
        };
        let opts = CrossEntropyOptions {
            weight: weight.as_ref(),
            ignore_index: self.ignore_index,
            reduction: self.reduction,
        };
        CrossEntropyKernel::new(gpu, logits, targets, opts, grad, out, cursor)
    }
}
