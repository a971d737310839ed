//! `shaders/dropout.wgsl`: dropout whose mask is a function of (seed, step, element), drawn on
//! the GPU by Philox4x32-10: deterministic, resumable, nothing uploaded per step.
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Tensor};
//! use wgml::kernels::dropout::{dropout_dispatch, Dropout};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[1.0f32; 1000], &[1000])?;
//! let (y, step) = (Tensor::zeros(&gpu, &[1000], DType::F32)?, Tensor::zeros(&gpu, &[1], DType::U32)?);
//! let drop = Dropout { p: 0.25, seed: 7 };
//! dropout_dispatch(&gpu, &x, &y, &step, &drop)?.run(&gpu)?;
//! let y = y.to_vec::<f32>(&gpu)?;
//! let kept = y.iter().filter(|&&v| v != 0.0).count();
//! assert!((700..800).contains(&kept));
//! assert!(y.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75));
//! # Ok::<(), wgml::Error>(())
//! ```

use super::{expect_len, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The dropout shader.
pub const SHADER: Shader = Shader {
    name: "dropout.wgsl",
    source: include_str!("../../shaders/dropout.wgsl"),
};

/// `torch.nn.Dropout(p)` in training, with the seed its masks are drawn from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability of zeroing an element, in [0, 1].
    pub p: f32,
    /// Seeds the masks (with the step and the element's index).
    pub seed: u64,
}

impl Dropout {
    /// Whether element `index` is kept at `step` (what the kernel computes, on the host).
    pub fn keeps(&self, index: u32, step: u32) -> bool {
        let key = [self.seed as u32, (self.seed >> 32) as u32];
        let bits = philox([index, step, 0, 0], key)[0];
        let u = (bits >> 8) as f32 * (1.0 / 16_777_216.0);
        u >= self.p
    }
}

/// Philox4x32-10 of `counter` under `key`, as the shader computes it.
pub fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = u64::from(0xD251_1F53u32) * u64::from(c[0]);
        let p1 = u64::from(0xCD9E_8D57u32) * u64::from(c[2]);
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    c
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    p: f32,
    scale: f32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER],
        Params {
            len,
            seed_lo,
            seed_hi,
            p,
            scale
        }
    )
}

/// A prepared `y = x · m / (1 − p)` with the mask of the step in `step` (a 1-element u32
/// tensor the training loop advances): dropout's forward from x, or its backward from dy
/// into dx, which draws the same mask. In evaluation dropout is the identity: dispatch nothing.
pub fn dropout_dispatch(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    step: &Tensor,
    dropout: &Dropout,
) -> Result<Dispatch> {
    if !(0.0..=1.0).contains(&dropout.p) {
        return Err(Error::invalid(format!(
            "dropout probability has to be between 0 and 1, but got {}",
            dropout.p
        )));
    }
    expect_len(x, y.len(), "dropout's input")?;
    expect_len(y, x.len(), "dropout's output")?;
    step.expect_dtype(DType::U32)?;
    super::expect_len_of(step, 1, "dropout's step counter")?;
    let params = Params {
        len: u32_param(x.len(), "dropout length")?,
        seed_lo: dropout.seed as u32,
        seed_hi: (dropout.seed >> 32) as u32,
        p: dropout.p,
        scale: 1.0 / (1.0 - dropout.p),
    };
    // Four elements per invocation (one vec4 load and store) where they come in fours.
    if x.len().is_multiple_of(4) {
        let groups = (x.len() / 4).div_ceil(256) as u64;
        let bindings = [(3, step), (4, x), (5, y)];
        return Dispatch::new(gpu, SHADER, "dropout4", &params, &bindings, groups);
    }
    let groups = x.len().div_ceil(256) as u64;
    let bindings = [(1, x), (2, y), (3, step)];
    Dispatch::new(gpu, SHADER, "dropout", &params, &bindings, groups)
}
