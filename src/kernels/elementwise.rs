//! `shaders/elementwise.wgsl`: ReLU forward and backward.
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::elementwise::{relu, relu_backward};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[-1.0f32, 0.0, 2.0], &[3])?;
//! let y = relu(&gpu, &x)?;
//! assert_eq!(y.to_vec::<f32>(&gpu)?, [0.0, 0.0, 2.0]);
//! let dy = Tensor::from_slice(&gpu, &[1.0f32, 1.0, 1.0], &[3])?;
//! assert_eq!(relu_backward(&gpu, &y, &dy)?.to_vec::<f32>(&gpu)?, [0.0, 0.0, 1.0]);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::{expect_len, u32_param};
use crate::error::Result;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The elementwise shader.
pub const SHADER: Shader = Shader {
    name: "elementwise.wgsl",
    source: include_str!("../../shaders/elementwise.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!([SHADER], Params { len })
}

/// A prepared y = max(x, 0); `x` and `y` have the same element count.
pub fn relu_dispatch(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    expect_len(x, y.len(), "relu's input")?;
    expect_len(y, x.len(), "relu's output")?;
    let params = Params {
        len: u32_param(x.len(), "relu length")?,
    };
    let groups = x.len().div_ceil(256) as u64;
    Dispatch::new(
        gpu,
        SHADER,
        "relu_forward",
        &params,
        &[(1, x), (2, y)],
        groups,
    )
}

/// A prepared `dx = dy · [y > 0]`, with `y` ReLU's forward output.
pub fn relu_backward_dispatch(gpu: &Gpu, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    expect_len(dy, y.len(), "relu_backward's dy")?;
    expect_len(dx, y.len(), "relu_backward's dx")?;
    expect_len(y, y.len(), "relu_backward's y")?;
    let params = Params {
        len: u32_param(y.len(), "relu length")?,
    };
    let groups = y.len().div_ceil(256) as u64;
    Dispatch::new(
        gpu,
        SHADER,
        "relu_backward",
        &params,
        &[(1, y), (2, dx), (3, dy)],
        groups,
    )
}

/// max(x, 0) into a new tensor of x's shape.
pub fn relu(gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
    let y = Tensor::zeros(gpu, x.shape(), DType::F32)?;
    relu_dispatch(gpu, x, &y)?.run(gpu)?;
    Ok(y)
}

/// ReLU's input gradient `dy · [y > 0]` into a new tensor.
pub fn relu_backward(gpu: &Gpu, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let dx = Tensor::zeros(gpu, y.shape(), DType::F32)?;
    relu_backward_dispatch(gpu, y, dy, &dx)?.run(gpu)?;
    Ok(dx)
}
