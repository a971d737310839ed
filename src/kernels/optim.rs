//! `shaders/optim.wgsl`: Adam / AdamW over a flat parameter buffer.

use super::{expect_len, u32_param};
use crate::error::Result;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The optimizer shader.
pub const SHADER: Shader = Shader {
    name: "optim.wgsl",
    source: include_str!("../../shaders/optim.wgsl"),
};

/// Adam's hyper-parameters, as `torch.optim.Adam` / `AdamW` name them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// (β1, β2): decay of the first and second moment estimates.
    pub betas: (f32, f32),
    /// Added to the denominator after bias correction.
    pub eps: f32,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f32,
    /// Decoupled weight decay: AdamW.
    pub decoupled: bool,
    /// Use the running maximum of the second moment.
    pub amsgrad: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for AdamConfig {
    /// `torch.optim.Adam`'s defaults.
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            amsgrad: false,
            maximize: false,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    flags: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}

/// The tensors one Adam update touches; all f32 of one length except `step`.
pub struct AdamState<'a> {
    /// 1-element u32: steps taken so far (the update uses step + 1).
    pub step: &'a Tensor,
    /// Gradients.
    pub grad: &'a Tensor,
    /// Parameters, updated in place.
    pub param: &'a Tensor,
    /// First moment.
    pub m: &'a Tensor,
    /// Second moment.
    pub v: &'a Tensor,
    /// Running maximum of v (read and written with amsgrad only).
    pub v_max: &'a Tensor,
}

/// A prepared Adam update of `state.param` in place.
pub fn adam_dispatch(gpu: &Gpu, config: &AdamConfig, state: &AdamState) -> Result<Dispatch> {
    let len = state.param.len();
    expect_len(state.grad, len, "adam's grad")?;
    expect_len(state.m, len, "adam's m")?;
    expect_len(state.v, len, "adam's v")?;
    if config.amsgrad {
        expect_len(state.v_max, len, "adam's v_max")?;
    }
    state.step.expect_dtype(DType::U32)?;
    let params = Params {
        len: u32_param(len, "parameter count")?,
        flags: u32::from(config.decoupled)
            | u32::from(config.amsgrad) << 1
            | u32::from(config.maximize) << 2,
        lr: config.lr,
        beta1: config.betas.0,
        beta2: config.betas.1,
        eps: config.eps,
        weight_decay: config.weight_decay,
    };
    Dispatch::new(
        gpu,
        SHADER,
        "adam",
        &params,
        &[
            (1, state.step),
            (2, state.grad),
            (3, state.param),
            (4, state.m),
            (5, state.v),
            (6, state.v_max),
        ],
        len.div_ceil(256) as u64,
    )
}
