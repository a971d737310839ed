//! `shaders/pool.wgsl`: 2-D max pooling over NCHW tensors and its backward, as
//! `torch.nn.functional.max_pool2d` (docs/semantics.md).
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::pool::{max_pool2d, max_pool2d_backward, MaxPool2d};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[1.0f32, 5.0, 2.0, 4.0, 3.0, 0.0, 7.0, 7.0, 6.0], &[1, 1, 3, 3])?;
//! let pool = MaxPool2d { kernel: (2, 2), stride: Some((1, 1)), ..Default::default() };
//! let (y, indices) = max_pool2d(&gpu, &x, &pool)?;
//! assert_eq!(y.to_vec::<f32>(&gpu)?, [5.0, 5.0, 7.0, 7.0]);
//! assert_eq!(indices.to_vec::<u32>(&gpu)?, [1, 1, 6, 7]); // ties: the first in scan order
//! let dy = Tensor::from_slice(&gpu, &[1.0f32; 4], &[1, 1, 2, 2])?;
//! let dx = max_pool2d_backward(&gpu, &dy, &indices, x.shape(), &pool)?;
//! assert_eq!(dx.to_vec::<f32>(&gpu)?, [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::u32_param;
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The pooling shader.
pub const SHADER: Shader = Shader {
    name: "pool.wgsl",
    source: include_str!("../../shaders/pool.wgsl"),
};

/// `torch.nn.MaxPool2d`'s options (ceil_mode false), each (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: (usize, usize),
    /// Step between windows; `None` for the window size (PyTorch's default).
    pub stride: Option<(usize, usize)>,
    /// Implicit −∞ padding on each side, at most half the window.
    pub padding: (usize, usize),
    /// Spacing of the window's elements.
    pub dilation: (usize, usize),
}

impl Default for MaxPool2d {
    /// A 2 × 2 window with stride 2, as `nn.MaxPool2d(2)`.
    fn default() -> Self {
        MaxPool2d {
            kernel: (2, 2),
            stride: None,
            padding: (0, 0),
            dilation: (1, 1),
        }
    }
}

impl MaxPool2d {
    /// The output's (height, width) for an input of (height, width), with PyTorch's checks.
    pub fn output_size(&self, (h, w): (usize, usize)) -> Result<(usize, usize)> {
        let stride = self.stride.unwrap_or(self.kernel);
        let dims = [
            (h, self.kernel.0, stride.0, self.padding.0, self.dilation.0),
            (w, self.kernel.1, stride.1, self.padding.1, self.dilation.1),
        ];
        let mut out = [0; 2];
        for (i, (size, kernel, stride, pad, dilation)) in dims.into_iter().enumerate() {
            if kernel == 0 || stride == 0 || dilation == 0 {
                return Err(Error::invalid(format!(
                    "max_pool2d: kernel, stride and dilation must be positive, got kernel \
                     {:?}, stride {stride:?}, dilation {:?}",
                    self.kernel, self.dilation
                )));
            }
            if pad > kernel / 2 {
                return Err(Error::invalid(format!(
                    "pad should be at most half of effective kernel size, but got pad={pad}, \
                     kernel_size={kernel} and dilation={dilation}"
                )));
            }
            let Some(count) = super::window_count(size, (kernel, stride, pad, dilation)) else {
                return Err(Error::shape(format!(
                    "max_pool2d: an input of {h}×{w} (padding {:?}) is smaller than the \
                     {:?} window (dilation {:?})",
                    self.padding, self.kernel, self.dilation
                )));
            };
            out[i] = count;
        }
        Ok((out[0], out[1]))
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dilation_h: u32,
    dilation_w: u32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER],
        Params {
            planes,
            height,
            width,
            out_height,
            out_width,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            dilation_h,
            dilation_w
        }
    )
}

/// (N, C, H, W) of an NCHW input and the output shape `[N, C, OH, OW]`, with the uniform block.
fn plan(input: &[usize], pool: &MaxPool2d) -> Result<(Vec<usize>, Params)> {
    let [n, c, h, w] = *input else {
        return Err(Error::shape(format!(
            "max_pool2d takes (N, C, H, W) tensors, got shape {input:?}"
        )));
    };
    let (oh, ow) = pool.output_size((h, w))?;
    let stride = pool.stride.unwrap_or(pool.kernel);
    let v = |x: usize, what: &str| u32_param(x, what);
    let params = Params {
        planes: v(n * c, "N·C")?,
        height: v(h, "height")?,
        width: v(w, "width")?,
        out_height: v(oh, "output height")?,
        out_width: v(ow, "output width")?,
        kernel_h: v(pool.kernel.0, "kernel")?,
        kernel_w: v(pool.kernel.1, "kernel")?,
        stride_h: v(stride.0, "stride")?,
        stride_w: v(stride.1, "stride")?,
        pad_h: v(pool.padding.0, "padding")?,
        pad_w: v(pool.padding.1, "padding")?,
        dilation_h: v(pool.dilation.0, "dilation")?,
        dilation_w: v(pool.dilation.1, "dilation")?,
    };
    Ok((vec![n, c, oh, ow], params))
}

fn expect(t: &Tensor, shape: &[usize], dtype: DType, what: &str) -> Result<()> {
    t.expect_dtype(dtype)?;
    if t.shape() != shape {
        return Err(Error::shape(format!(
            "max_pool2d's {what} must be {shape:?}, got {:?}",
            t.shape()
        )));
    }
    Ok(())
}

/// A prepared max pooling of `x` (N, C, H, W) into `y` and the flat index (within each H × W
/// plane) of each maximum into `indices` (u32), both `[N, C, OH, OW]`.
pub fn max_pool2d_dispatch(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    indices: &Tensor,
    pool: &MaxPool2d,
) -> Result<Dispatch> {
    x.expect_dtype(DType::F32)?;
    let (out, params) = plan(x.shape(), pool)?;
    expect(y, &out, DType::F32, "output")?;
    expect(indices, &out, DType::U32, "indices")?;
    if in_pairs(pool, &params) {
        let bindings = [(8, x), (9, y), (10, indices)];
        let groups = (y.len() / 2).div_ceil(256) as u64;
        return Dispatch::new(
            gpu,
            SHADER,
            "max_pool_forward_2x2",
            &params,
            &bindings,
            groups,
        );
    }
    let groups = y.len().div_ceil(256) as u64;
    let bindings = [(1, x), (2, y), (3, indices)];
    Dispatch::new(gpu, SHADER, "max_pool_forward", &params, &bindings, groups)
}

/// Whether the 2×2 entry points take this pooling: 2×2 windows at stride 2 without padding or
/// dilation, over rows of a multiple of 4 values (so that each row is whole vec4s and each
/// pair of windows one of them).
fn in_pairs(pool: &MaxPool2d, params: &Params) -> bool {
    pool.kernel == (2, 2)
        && pool.stride.unwrap_or(pool.kernel) == (2, 2)
        && pool.padding == (0, 0)
        && pool.dilation == (1, 1)
        && params.width.is_multiple_of(4)
}

/// A prepared backward of max pooling: `dx` (the input's shape) from `dy` and the forward's
/// `indices`; gradients of overlapping windows add up, in a fixed order. With `gate` (the
/// input's shape), dx is zeroed where the gate is ≤ 0: the backward of a ReLU whose output
/// was pooled, fused.
pub fn max_pool2d_backward_dispatch(
    gpu: &Gpu,
    dy: &Tensor,
    indices: &Tensor,
    dx: &Tensor,
    gate: Option<&Tensor>,
    pool: &MaxPool2d,
) -> Result<Dispatch> {
    dx.expect_dtype(DType::F32)?;
    let (out, params) = plan(dx.shape(), pool)?;
    expect(dy, &out, DType::F32, "output gradient")?;
    expect(indices, &out, DType::U32, "indices")?;
    if let Some(gate) = gate {
        expect(gate, dx.shape(), DType::F32, "gate")?;
    }
    // Windows that tile the input exactly: each input belongs to one window.
    let tiles = pool.stride.unwrap_or(pool.kernel) == pool.kernel
        && pool.padding == (0, 0)
        && pool.dilation == (1, 1)
        && params.height.is_multiple_of(params.kernel_h)
        && params.width.is_multiple_of(params.kernel_w);
    let constants = [("GATE", f64::from(u8::from(gate.is_some())))];
    if tiles && in_pairs(pool, &params) {
        // Without a gate, a spare stands in for its binding.
        let gate = match gate {
            Some(gate) => gate,
            None => gpu.spare()?,
        };
        let bindings = [(11, dy), (12, indices), (13, dx), (14, gate)];
        let groups = (dy.len() / 2).div_ceil(256) as u64;
        let entry = "max_pool_backward_2x2";
        return Dispatch::specialized(gpu, SHADER, entry, &constants, &params, &bindings, groups);
    }
    let (entry, invocations) = if tiles {
        ("max_pool_backward_tiled", dy.len())
    } else {
        ("max_pool_backward", dx.len())
    };
    let bindings = [(4, dy), (5, indices), (6, dx), (7, gate.unwrap_or(dy))];
    let groups = invocations.div_ceil(256) as u64;
    Dispatch::specialized(gpu, SHADER, entry, &constants, &params, &bindings, groups)
}

/// Max pooling in one call (allocates): the output and the indices of the maxima.
pub fn max_pool2d(gpu: &Gpu, x: &Tensor, pool: &MaxPool2d) -> Result<(Tensor, Tensor)> {
    let (out, _) = plan(x.shape(), pool)?;
    let y = Tensor::zeros(gpu, &out, DType::F32)?;
    let indices = Tensor::zeros(gpu, &out, DType::U32)?;
    max_pool2d_dispatch(gpu, x, &y, &indices, pool)?.run(gpu)?;
    Ok((y, indices))
}

/// The input gradient of max pooling in one call (allocates), for an input of `input_shape`.
pub fn max_pool2d_backward(
    gpu: &Gpu,
    dy: &Tensor,
    indices: &Tensor,
    input_shape: &[usize],
    pool: &MaxPool2d,
) -> Result<Tensor> {
    let dx = Tensor::zeros(gpu, input_shape, DType::F32)?;
    max_pool2d_backward_dispatch(gpu, dy, indices, &dx, None, pool)?.run(gpu)?;
    Ok(dx)
}
