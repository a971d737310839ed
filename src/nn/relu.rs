//! `Relu`: max(x, 0), with gradient 0 at exactly 0 (as PyTorch).

use crate::error::Result;
use crate::gpu::{Gpu, Program, Tensor};
use crate::kernels::elementwise::{relu_backward_dispatch, relu_dispatch};

/// The rectifier. It has no parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu;

impl Relu {
    /// Dispatches for y = max(x, 0).
    pub fn forward(&self, gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Program> {
        Ok(relu_dispatch(gpu, x, y)?.into())
    }

    /// Dispatches for `dx = dy · [y > 0]`, from the forward output y.
    pub fn backward(&self, gpu: &Gpu, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Program> {
        Ok(relu_backward_dispatch(gpu, y, dy, dx)?.into())
    }
}
