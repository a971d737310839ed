//! `Conv2d`: a 2-D convolution layer with PyTorch's layout and default initialisation.

use super::{NamedTensor, Parameters};
use crate::error::Result;
use crate::gpu::{Gpu, Program, Tensor};
use crate::kernels::conv::{
    conv2d_backward, conv2d_forward, Conv2dGrads, Conv2dOptions, Conv2dScratch, TapsGradLayout,
};
use crate::rng::Rng;

/// A convolution layer: weight `[out, in, kh, kw]`, bias `[out]`, as `torch.nn.Conv2d`
/// (`groups = 1`, zero padding).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride, padding and dilation.
    pub options: Conv2dOptions,
    prefix: String,
}

/// A Conv2d layer's parameters and their gradients, resolved once as views of a model's flat
/// buffers.
#[derive(Clone, Debug)]
pub struct Conv2dParams {
    /// The weight, `[out, in, kh, kw]`.
    pub weight: Tensor,
    /// The bias, `[out]`.
    pub bias: Tensor,
    /// d(loss)/d(weight).
    pub dweight: Tensor,
    /// d(loss)/d(bias).
    pub dbias: Tensor,
    /// Stride, padding and dilation.
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// A layer whose parameters are named `{prefix}.weight` and `{prefix}.bias`.
    pub fn new(
        prefix: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
    ) -> Self {
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            options,
            prefix: prefix.to_string(),
        }
    }

    fn names(&self) -> (String, String) {
        (
            format!("{}.weight", self.prefix),
            format!("{}.bias", self.prefix),
        )
    }

    /// PyTorch's default initial parameters: W and b ~ U(−1/√fan_in, 1/√fan_in) with fan_in =
    /// in · kh · kw (kaiming_uniform with a = √5 reduces to this bound), W drawn first.
    pub fn init(&self, rng: &mut Rng) -> Vec<NamedTensor> {
        let fan_in = self.in_channels * self.kernel.0 * self.kernel.1;
        let bound = if fan_in > 0 {
            1.0 / (fan_in as f32).sqrt()
        } else {
            0.0
        };
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-bound, bound)).collect() };
        let shape = vec![
            self.out_channels,
            self.in_channels,
            self.kernel.0,
            self.kernel.1,
        ];
        let w = draw(shape.iter().product());
        let b = draw(self.out_channels);
        let (weight, bias) = self.names();
        vec![(weight, shape, w), (bias, vec![self.out_channels], b)]
    }

    /// This layer's parameters in `params`, resolved.
    pub fn bind(&self, params: &Parameters) -> Result<Conv2dParams> {
        let (weight, bias) = self.names();
        Ok(Conv2dParams {
            weight: params.value(&weight)?,
            bias: params.value(&bias)?,
            dweight: params.grad(&weight)?,
            dbias: params.grad(&bias)?,
            options: self.options,
        })
    }
}

impl Conv2dParams {
    /// Dispatches for y = conv2d(x, W) + b (then ReLU when `relu`), x `[N, C, H, W]`.
    pub fn forward(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        y: &Tensor,
        relu: bool,
        scratch: &Conv2dScratch,
    ) -> Result<Program> {
        let b = Some(&self.bias);
        conv2d_forward(gpu, x, &self.weight, b, relu, y, scratch, &self.options)
    }

    /// Dispatches for dW, db and, when `dx` is given, dx (zeroed where `gate` is ≤ 0 when
    /// given: the backward of a ReLU whose output is x, fused). `scratch` must be the one this
    /// layer's forward pass ran with, untouched since: backward reads the taps it gathered.
    pub fn backward(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        dy: &Tensor,
        dx: Option<&Tensor>,
        gate: Option<&Tensor>,
        scratch: &Conv2dScratch,
    ) -> Result<Program> {
        let grads = Conv2dGrads {
            dx,
            gate,
            dweight: &self.dweight,
            dbias: Some(&self.dbias),
            taps_kept: true,
            taps_grad: TapsGradLayout::Auto,
        };
        conv2d_backward(gpu, x, &self.weight, dy, grads, scratch, &self.options)
    }
}
