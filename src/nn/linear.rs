//! `Linear`: y = x·Wᵀ + b, with PyTorch's layout and default initialisation.

use super::{NamedTensor, Parameters};
use crate::error::Result;
use crate::gpu::{Gpu, Program, Tensor};
use crate::kernels::cross_entropy::CrossEntropyOptions;
use crate::kernels::data::BatchLayout;
use crate::kernels::linear_cross_entropy::{
    LinearCrossEntropyGrads, LinearCrossEntropyKernel, LinearCrossEntropyOptions,
};
use crate::kernels::matmul::{fuse_row_sums, matmul_dispatch, MatmulOptions};
use crate::kernels::reduce::column_sum_dispatch;
use crate::rng::Rng;

/// A fully connected layer: weight `[out, in]`, bias `[out]`, as `torch.nn.Linear`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    prefix: String,
}

/// A Linear layer's parameters and their gradients, resolved once as views of a model's flat
/// buffers: what its forward, backward and fused loss bind.
#[derive(Clone, Debug)]
pub struct LinearParams {
    /// The weight, `[out, in]`.
    pub weight: Tensor,
    /// The bias, `[out]`.
    pub bias: Tensor,
    /// d(loss)/d(weight).
    pub dweight: Tensor,
    /// d(loss)/d(bias).
    pub dbias: Tensor,
}

impl Linear {
    /// A layer whose parameters are named `{prefix}.weight` and `{prefix}.bias`.
    pub fn new(prefix: &str, in_features: usize, out_features: usize) -> Self {
        Linear {
            in_features,
            out_features,
            prefix: prefix.to_string(),
        }
    }

    fn names(&self) -> (String, String) {
        (
            format!("{}.weight", self.prefix),
            format!("{}.bias", self.prefix),
        )
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
        let (weight, bias) = self.names();
        vec![
            (weight, vec![self.out_features, self.in_features], w),
            (bias, vec![self.out_features], b),
        ]
    }

    /// This layer's parameters in `params`, resolved.
    pub fn bind(&self, params: &Parameters) -> Result<LinearParams> {
        let (weight, bias) = self.names();
        Ok(LinearParams {
            weight: params.value(&weight)?,
            bias: params.value(&bias)?,
            dweight: params.grad(&weight)?,
            dbias: params.grad(&bias)?,
        })
    }
}

impl LinearParams {
    /// Dispatches for y = x·Wᵀ + b (then ReLU when `relu`), x laid out as its layout says and
    /// y `[rows, out]`.
    pub fn forward(
        &self,
        gpu: &Gpu,
        (x, layout): (&Tensor, BatchLayout),
        y: &Tensor,
        relu: bool,
    ) -> Result<Program> {
        let opts = MatmulOptions {
            trans_a: layout == BatchLayout::Columns,
            trans_b: true,
            bias: Some(&self.bias),
            relu,
            ..Default::default()
        };
        Ok(matmul_dispatch(gpu, x, &self.weight, y, opts)?.into())
    }

    /// Dispatches for dW = dyᵀ·x, db = Σ_rows dy and, when `dx` is given, dx = dy·W (`[rows,
    /// in]`), zeroed where `gate` is ≤ 0 when given (the backward of a ReLU whose output is
    /// `gate`, fused).
    pub fn backward(
        &self,
        gpu: &Gpu,
        (x, layout): (&Tensor, BatchLayout),
        dy: &Tensor,
        dx: Option<&Tensor>,
        gate: Option<&Tensor>,
    ) -> Result<Program> {
        let mut program = Program::new();
        let mut weight_grad = MatmulOptions {
            trans_a: true,
            trans_b: layout == BatchLayout::Columns,
            ..Default::default()
        };
        // The bias gradient beside the weight gradient where the product's layout writes it.
        let fused = fuse_row_sums(gpu, dy, x, &mut weight_grad, &self.dbias)?;
        program.push(matmul_dispatch(gpu, dy, x, &self.dweight, weight_grad)?);
        if !fused {
            program.push(column_sum_dispatch(gpu, dy, &self.dbias)?);
        }
        if let Some(dx) = dx {
            let opts = MatmulOptions {
                gate,
                ..Default::default()
            };
            program.push(matmul_dispatch(gpu, dy, &self.weight, dx, opts)?);
        }
        Ok(program)
    }

    /// This layer and a cross-entropy over its outputs as one fused loss that never holds the
    /// logits (see [`crate::kernels::linear_cross_entropy`]): x `[rows, in]` against class
    /// `targets`, the loss into `out[cursor[0]]`, the parameters' gradients into their views,
    /// and d(loss)/dx into `dx` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn fused_loss(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        targets: &Tensor,
        loss: CrossEntropyOptions,
        dx: Option<&Tensor>,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<LinearCrossEntropyKernel> {
        let opts = LinearCrossEntropyOptions {
            bias: Some(&self.bias),
            loss,
            chunk_classes: None,
        };
        let grads = LinearCrossEntropyGrads {
            dx,
            dweight: &self.dweight,
            dbias: Some(&self.dbias),
        };
        LinearCrossEntropyKernel::new(
            gpu,
            x,
            &self.weight,
            targets,
            opts,
            Some(grads),
            out,
            cursor,
        )
    }
}
