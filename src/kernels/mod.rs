//! Typed Rust entry points for every WGSL kernel, one module per shader file.
//!
//! Each kernel comes two ways: a `*_dispatch` function that validates shapes on the host and
//! returns a prepared [`Dispatch`](crate::gpu::Dispatch) to record as often as needed (what models
//! use), and a one-shot function that allocates its output, runs, and returns it (handy from Rust
//! and in tests).

pub mod conv;
pub mod counter;
pub mod cross_entropy;
pub mod data;
pub mod dropout;
pub mod elementwise;
pub mod linear_cross_entropy;
pub mod matmul;
pub mod optim;
pub mod policy;
pub mod pool;
pub mod reduce;
pub mod small_head;

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Readback, Shader, Tensor};

/// A shader's uniform block (`var<uniform> p: Params`) as the host lays it out: its size and
/// each field's byte offset, which must match the WGSL struct's.
#[derive(Clone, Debug)]
pub struct UniformLayout {
    /// The shader declaring the block.
    pub shader: Shader,
    /// `size_of` the Rust struct.
    pub size: usize,
    /// Each field's name and `offset_of`, in declaration order.
    pub fields: Vec<(&'static str, usize)>,
}

/// The [`UniformLayout`]s of `$ty` with `$field`s, one for each shader that reads it.
macro_rules! layouts_of {
    ([$($shader:expr),+ $(,)?], $ty:ident { $($field:ident),* $(,)? }) => {
        {
            let fields = vec![$((stringify!($field), std::mem::offset_of!($ty, $field))),*];
            vec![$($crate::kernels::UniformLayout {
                shader: $shader,
                size: std::mem::size_of::<$ty>(),
                fields: fields.clone(),
            }),+]
        }
    };
}
pub(crate) use layouts_of;

/// Every shader's uniform block, for the test that holds host and WGSL to one layout.
pub fn uniform_layouts() -> Vec<UniformLayout> {
    [
        conv::uniform_layouts(),
        cross_entropy::uniform_layouts(),
        data::uniform_layouts(),
        dropout::uniform_layouts(),
        elementwise::uniform_layouts(),
        linear_cross_entropy::uniform_layouts(),
        matmul::uniform_layouts(),
        optim::uniform_layouts(),
        pool::uniform_layouts(),
        reduce::uniform_layouts(),
        small_head::uniform_layouts(),
    ]
    .concat()
}

/// Every WGSL constant that a host-side code stands for (reductions, flag bits, override
/// values): (shader, constant, the host's value), for the test that holds them equal.
pub fn shader_constants() -> Vec<(Shader, &'static str, u32)> {
    [
        cross_entropy::shader_constants(),
        linear_cross_entropy::shader_constants(),
        matmul::shader_constants(),
    ]
    .concat()
}

/// Every shader in `shaders/`, for validation and tooling.
pub const SHADERS: [Shader; 15] = [
    matmul::SHADER,
    matmul::SUBGROUP_SHADER,
    elementwise::SHADER,
    cross_entropy::SHADER,
    linear_cross_entropy::SHADER,
    optim::SHADER,
    optim::WIDE_SHADER,
    reduce::SHADER,
    data::SHADER,
    counter::SHADER,
    pool::SHADER,
    dropout::SHADER,
    conv::SHADER,
    small_head::SHADER,
    small_head::LANES_SHADER,
];

/// The two dimensions of a matrix tensor, or a shape error naming `what`.
pub(crate) fn dims2(t: &Tensor, what: &str) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        ref s => Err(Error::shape(format!("{what} must be 2-D, got shape {s:?}"))),
    }
}

/// An error unless `t` has exactly `len` elements (of any type).
pub(crate) fn expect_len_of(t: &Tensor, len: usize, what: &str) -> Result<()> {
    if t.len() == len {
        Ok(())
    } else {
        Err(Error::shape(format!(
            "{what} must have {len} elements, got shape {:?}",
            t.shape()
        )))
    }
}

/// An error unless `t` is an f32 tensor of exactly `len` elements.
pub(crate) fn expect_len(t: &Tensor, len: usize, what: &str) -> Result<()> {
    t.expect_dtype(DType::F32)?;
    expect_len_of(t, len, what)
}

/// How many windows of `kernel` taps, `dilation` apart, fit `size` values padded by `pad` on
/// each side when they start `stride` apart (PyTorch's output size of a convolution or
/// pooling), or `None` when the padded input is shorter than one window.
pub(crate) fn window_count(
    size: usize,
    (kernel, stride, pad, dilation): (usize, usize, usize, usize),
) -> Option<usize> {
    let span = dilation * (kernel - 1) + 1;
    (size + 2 * pad)
        .checked_sub(span)
        .map(|room| room / stride + 1)
}

/// `n` as a u32 kernel parameter, or an error naming `what`.
pub(crate) fn u32_param(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::shape(format!("{what} = {n} exceeds u32")))
}

/// A loss kernel's flag for class targets out of range: `[flag, target]`, set on the GPU (where
/// the targets may have been made), read and cleared by [`TargetCheck::check`].
pub struct TargetCheck {
    flag: Tensor,
    readback: Readback<i32>,
}

impl TargetCheck {
    /// A cleared flag.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        let flag = Tensor::zeros(gpu, &[2], DType::I32)?;
        Ok(TargetCheck {
            readback: Readback::new(gpu, &flag)?,
            flag,
        })
    }

    /// The flag's tensor, for a kernel to bind.
    pub fn tensor(&self) -> &Tensor {
        &self.flag
    }

    /// Turns a flagged target into [`Error::TargetOutOfBounds`], and clears the flag.
    pub fn check(&self, gpu: &Gpu) -> Result<()> {
        let fault = self.readback.read(gpu)?;
        if fault[0] != 0 {
            self.flag.write(gpu, &[0i32, 0])?;
            return Err(Error::TargetOutOfBounds(i64::from(fault[1])));
        }
        Ok(())
    }
}
