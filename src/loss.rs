//! `CrossEntropyLoss`, as `torch.nn.CrossEntropyLoss`.

use crate::error::Result;
use crate::gpu::{Gpu, Tensor};
use crate::kernels::cross_entropy::{cross_entropy, CrossEntropyKernel, CrossEntropyOptions};
pub use crate::kernels::cross_entropy::{Reduction, Targets};

/// Softmax cross-entropy with PyTorch's options and defaults: class-index or probability
/// targets, inputs (C), (N, C) or (N, C, d1, …, dk).
#[derive(Clone, Debug)]
pub struct CrossEntropyLoss {
    weight: Option<Vec<f32>>,
    ignore_index: i32,
    reduction: Reduction,
    label_smoothing: f32,
}

impl Default for CrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl CrossEntropyLoss {
    /// PyTorch's defaults: no weight, `ignore_index = -100`, mean reduction, no smoothing.
    pub fn new() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }

    /// Per-class weights (one per class).
    pub fn weight(mut self, weight: Vec<f32>) -> Self {
        self.weight = Some(weight);
        self
    }

    /// The class target that contributes nothing.
    pub fn ignore_index(mut self, index: i32) -> Self {
        self.ignore_index = index;
        self
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Mixes the targets with the uniform distribution: (1 − ε)·y + ε/C, ε in [0, 1].
    pub fn label_smoothing(mut self, epsilon: f32) -> Self {
        self.label_smoothing = epsilon;
        self
    }

    /// Prepares the loss for fixed tensors: the gradient goes into `grad` (the logits' shape)
    /// and the reduced loss into `out[cursor[0]]`. Record the result's `program`, then call its
    /// `check_targets` before trusting the loss (or `run` it, which does both).
    pub fn prepare(
        &self,
        gpu: &Gpu,
        logits: &Tensor,
        targets: Targets,
        grad: &Tensor,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<CrossEntropyKernel> {
        let weight = self.weight_tensor(gpu)?;
        let opts = self.options(weight.as_ref());
        CrossEntropyKernel::new(gpu, logits, targets, opts, grad, out, cursor)
    }

    /// Loss and gradient in one call (allocates): see [`cross_entropy`].
    pub fn forward_backward(
        &self,
        gpu: &Gpu,
        logits: &Tensor,
        targets: Targets,
    ) -> Result<(Tensor, Tensor)> {
        let weight = self.weight_tensor(gpu)?;
        cross_entropy(gpu, logits, targets, self.options(weight.as_ref()))
    }

    fn weight_tensor(&self, gpu: &Gpu) -> Result<Option<Tensor>> {
        (self.weight.as_ref())
            .map(|w| Tensor::from_slice(gpu, w, &[w.len()]))
            .transpose()
    }

    /// The kernel's options, with the class weights in `weight`.
    fn options<'a>(&self, weight: Option<&'a Tensor>) -> CrossEntropyOptions<'a> {
        CrossEntropyOptions {
            weight,
            ignore_index: self.ignore_index,
            reduction: self.reduction,
            label_smoothing: self.label_smoothing,
        }
    }
}
