//! Optimizers over a model's flat parameter buffer: one fused dispatch per step, with the step
//! count kept on the GPU.

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::kernels::data::advance_dispatch;
use crate::kernels::optim::{adam_dispatch, AdamState};
use crate::nn::Parameters;

pub use crate::kernels::optim::AdamConfig;

/// `torch.optim.Adam` / `AdamW`: moment buffers and the step count live on the GPU.
pub struct Adam {
    config: AdamConfig,
    step: Tensor,
    m: Tensor,
    v: Tensor,
    v_max: Option<Tensor>,
}

impl Adam {
    /// Adam over `params` with `config`, after checking it as PyTorch does.
    pub fn new(gpu: &Gpu, params: &Parameters, config: AdamConfig) -> Result<Self> {
        validate(&config)?;
        let len = params.values().len();
        let zeros = || Tensor::zeros(gpu, &[len], DType::F32);
        Ok(Adam {
            config,
            step: Tensor::zeros(gpu, &[1], DType::U32)?,
            m: zeros()?,
            v: zeros()?,
            v_max: if config.amsgrad { Some(zeros()?) } else { None },
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// The dispatches of one step: update every parameter, then advance the step count.
    pub fn step_program(&self, gpu: &Gpu, params: &Parameters) -> Result<Program> {
        let state = AdamState {
            step: &self.step,
            grad: params.grads(),
            param: params.values(),
            m: &self.m,
            v: &self.v,
            // Unread without amsgrad; m stands in for the binding.
            v_max: self.v_max.as_ref().unwrap_or(&self.m),
        };
        let mut program = Program::from(adam_dispatch(gpu, &self.config, &state)?);
        program.push(advance_dispatch(gpu, &self.step)?);
        Ok(program)
    }

    /// Steps taken so far (reads the GPU counter).
    pub fn steps(&self, gpu: &Gpu) -> Result<u32> {
        Ok(self.step.to_vec::<u32>(gpu)?[0])
    }
}

/// PyTorch's checks, in its words.
fn validate(c: &AdamConfig) -> Result<()> {
    let bad = |msg: String| Err(Error::invalid(msg));
    if c.lr.is_nan() || c.lr < 0.0 {
        return bad(format!("Invalid learning rate: {}", c.lr));
    }
    if c.eps.is_nan() || c.eps < 0.0 {
        return bad(format!("Invalid epsilon value: {}", c.eps));
    }
    if !(0.0..1.0).contains(&c.betas.0) {
        return bad(format!("Invalid beta parameter at index 0: {}", c.betas.0));
    }
    if !(0.0..1.0).contains(&c.betas.1) {
        return bad(format!("Invalid beta parameter at index 1: {}", c.betas.1));
    }
    if c.weight_decay.is_nan() || c.weight_decay < 0.0 {
        return bad(format!("Invalid weight_decay value: {}", c.weight_decay));
    }
    Ok(())
}
