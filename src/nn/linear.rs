//! `Linear`: y = x·Wᵀ + b, with PyTorch's layout and default initialisation.

use super::{NamedTensor, Parameters};
use crate::error::Result;
use crate::gpu::{Gpu, Program, Tensor};
use crate::kernels::cross_entropy::CrossEntropyOptions;
use crate::kernels::data::BatchLayout;
use crate::kernels::linear_cross_entropy::{
    LinearCrossEntropyGrads, LinearCrossEntropyKernel, LinearCrossEntropyOptions,
};
use crate::kernels::matmul::{matmul_dispatch, MatmulOptions};
use crate::kernels::reduce::column_sum_dispatch;
use crate::rng::Rng;

/// A fully connected layer: weight `[out, in]`, bias `[out]`, as `torch.nn.Linear`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    weight: String,
    bias: String,
}

impl Linear {
    /// A layer whose parameters are named `{prefix}.weight` and `{prefix}.bias`.
    pub fn new(prefix: &str, in_features: usize, out_features: usize) -> Self {
        Linear {
            in_features,
            out_features,
            weight: format!("{prefix}.weight"),
            bias: format!("{prefix}.bias"),
        }
    }

    /// PyTorch's default initial parameters: W and b ~ U(−1/√in, 1/√in) (kaiming_uniform with
    /// a = √5 reduces to this bound), W drawn first.
    pub fn init(&self, rng: &mut Rng) -> Vec<NamedTensor> {
        let bound = if self.in_features > 0 {
            1.0 / (self.in_features as f32).sqrt()
        } else {
            0.0
        };
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-bound, bound)).collect() };
        let w = draw(self.in_features * self.out_features);
        let b = draw(self.out_features);
        vec![
            (
                self.weight.clone(),
                vec![self.out_features, self.in_features],
                w,
            ),
            (self.bias.clone(), vec![self.out_features], b),
        ]
    }

    /// Dispatches for y = x·Wᵀ + b (then ReLU when `relu`), x laid out as its layout says and
    /// y `[rows, out]`.
    pub fn forward(
        &self,
        gpu: &Gpu,
        params: &Parameters,
        (x, layout): (&Tensor, BatchLayout),
        y: &Tensor,
        relu: bool,
    ) -> Result<Program> {
        let (w, b) = (params.value(&self.weight)?, params.value(&self.bias)?);
        let opts = MatmulOptions {
            trans_a: layout == BatchLayout::Columns,
            trans_b: true,
            bias: Some(&b),
            relu,
            ..Default::default()
        };
        Ok(matmul_dispatch(gpu, x, &w, y, opts)?.into())
    }

    /// Dispatches for dW = dyᵀ·x, db = Σ_rows dy and, when `dx` is given, dx = dy·W (`[rows,
    /// in]`), zeroed where `gate` is ≤ 0 when given (the backward of a ReLU whose output is
    /// `gate`, fused).
    pub fn backward(
        &self,
        gpu: &Gpu,
        params: &Parameters,
        (x, layout): (&Tensor, BatchLayout),
        dy: &Tensor,
        dx: Option<&Tensor>,
        gate: Option<&Tensor>,
    ) -> Result<Program> {
        let mut program = Program::new();
        let dw = params.grad(&self.weight)?;
        let weight_grad = MatmulOptions {
            trans_a: true,
            trans_b: layout == BatchLayout::Columns,
            ..Default::default()
        };
        program.push(matmul_dispatch(gpu, dy, x, &dw, weight_grad)?);
        program.push(column_sum_dispatch(gpu, dy, &params.grad(&self.bias)?)?);
        if let Some(dx) = dx {
            let w = params.value(&self.weight)?;
            let opts = MatmulOptions {
                gate,
                ..Default::default()
            };
            program.push(matmul_dispatch(gpu, dy, &w, dx, opts)?);
        }
        Ok(program)
    }

    /// This layer and a cross-entropy over its outputs as one fused loss that never holds the
    /// logits (see [`crate::kernels::linear_cross_entropy`]): x `[rows, in]` against class
    /// `targets`, the loss into `out[cursor[0]]`, the parameters' gradients into `params`, and
    /// d(loss)/dx into `dx` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn fused_loss(
        &self,
        gpu: &Gpu,
        params: &Parameters,
        x: &Tensor,
        targets: &Tensor,
        loss: CrossEntropyOptions,
        dx: Option<&Tensor>,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<LinearCrossEntropyKernel> {
        let (w, b) = (params.value(&self.weight)?, params.value(&self.bias)?);
        let (dw, db) = (params.grad(&self.weight)?, params.grad(&self.bias)?);
        let opts = LinearCrossEntropyOptions {
            bias: Some(&b),
            loss,
            chunk_classes: None,
        };
        let grads = LinearCrossEntropyGrads {
            dx,
            dweight: &dw,
            dbias: Some(&db),
        };
        LinearCrossEntropyKernel::new(gpu, x, &w, targets, opts, Some(grads), out, cursor)
    }
}
