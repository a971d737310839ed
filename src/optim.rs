//! Optimizers over a model's flat parameter buffer: one fused dispatch per step, with the step
//! count kept on the GPU.

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::kernels::optim::{adam_dispatch, sgd_dispatch, OptimState};
use crate::nn::{NamedTensor, Parameters};

pub use crate::kernels::optim::{AdamConfig, SgdConfig};

/// Which optimizer, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.Adam`, or `AdamW` when `decoupled`.
    Adam(AdamConfig),
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
}

impl Default for OptimizerConfig {
    /// Adam with PyTorch's defaults (lr 1e-3).
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

impl OptimizerConfig {
    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Adam(c) => c.lr,
            OptimizerConfig::Sgd(c) => c.lr,
        }
    }

    /// PyTorch's checks of the hyper-parameters, in its words.
    pub fn validate(&self) -> Result<()> {
        let negative = |x: f32| x.is_nan() || x < 0.0;
        let bad = |msg: String| Err(Error::invalid(msg));
        let (lr, wd) = match self {
            OptimizerConfig::Adam(c) => (c.lr, c.weight_decay),
            OptimizerConfig::Sgd(c) => (c.lr, c.weight_decay),
        };
        if negative(lr) {
            return bad(format!("Invalid learning rate: {lr}"));
        }
        match self {
            OptimizerConfig::Adam(c) => {
                if negative(c.eps) {
                    return bad(format!("Invalid epsilon value: {}", c.eps));
                }
                for (i, beta) in [c.betas.0, c.betas.1].into_iter().enumerate() {
                    if !(0.0..1.0).contains(&beta) {
                        return bad(format!("Invalid beta parameter at index {i}: {beta}"));
                    }
                }
            }
            OptimizerConfig::Sgd(c) => {
                if negative(c.momentum) {
                    return bad(format!("Invalid momentum value: {}", c.momentum));
                }
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    return bad("Nesterov momentum requires a momentum and zero dampening".into());
                }
            }
        }
        if negative(wd) {
            return bad(format!("Invalid weight_decay value: {wd}"));
        }
        Ok(())
    }
}

/// An optimizer's state on the GPU: its step count and per-parameter buffers.
pub struct Optimizer {
    config: OptimizerConfig,
    step: Tensor,
    factors: Tensor,
    buffers: Vec<Tensor>,
}

impl Optimizer {
    /// The optimizer for `params` (zeroed state), after checking `config` as PyTorch does.
    pub fn new(gpu: &Gpu, params: &Parameters, config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        let len = params.values().len();
        let count = match config {
            OptimizerConfig::Adam(c) => 2 + usize::from(c.amsgrad),
            // The momentum buffer is bound even without momentum (then untouched).
            OptimizerConfig::Sgd(_) => 1,
        };
        let buffers = (0..count)
            .map(|_| Tensor::zeros(gpu, &[len], DType::F32))
            .collect::<Result<_>>()?;
        Ok(Optimizer {
            config,
            step: Tensor::zeros(gpu, &[1], DType::U32)?,
            factors: Tensor::zeros(gpu, &[2], DType::F32)?,
            buffers,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The dispatches of one step: every parameter updated, the step count advanced.
    pub fn step_program(&self, gpu: &Gpu, params: &Parameters) -> Result<Program> {
        // A buffer the configuration leaves unused (amsgrad's v_max) is bound to the first one.
        let first = &self.buffers[0];
        let buffer = |i: usize| self.buffers.get(i).unwrap_or(first);
        let state = OptimState {
            step: &self.step,
            factors: &self.factors,
            grad: params.grads(),
            param: params.values(),
            m: buffer(0),
            v: buffer(1),
            v_max: buffer(2),
        };
        match &self.config {
            OptimizerConfig::Adam(c) => adam_dispatch(gpu, c, &state),
            OptimizerConfig::Sgd(c) => sgd_dispatch(gpu, c, &state),
        }
    }

    /// Steps taken so far (reads the GPU counter).
    pub fn steps(&self, gpu: &Gpu) -> Result<u32> {
        Ok(self.step.to_vec::<u32>(gpu)?[0])
    }

    /// The step count and every state buffer (`optimizer.0`, `optimizer.1`, …), for a checkpoint.
    pub fn state(&self, gpu: &Gpu) -> Result<(u32, Vec<NamedTensor>)> {
        let buffers = self
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| Ok((format!("optimizer.{i}"), b.shape().to_vec(), b.to_vec(gpu)?)))
            .collect::<Result<_>>()?;
        Ok((self.steps(gpu)?, buffers))
    }

    /// Restores what [`Optimizer::state`] returned; the buffers must match this optimizer's.
    pub fn restore(&self, gpu: &Gpu, step: u32, buffers: &[NamedTensor]) -> Result<()> {
        if buffers.len() != self.buffers.len() {
            return Err(Error::invalid(format!(
                "the checkpoint holds {} optimizer buffers, this optimizer has {}",
                buffers.len(),
                self.buffers.len()
            )));
        }
        for (i, target) in self.buffers.iter().enumerate() {
            let name = format!("optimizer.{i}");
            let Some((_, _, data)) = buffers.iter().find(|(n, _, _)| *n == name) else {
                return Err(Error::invalid(format!("the checkpoint has no {name}")));
            };
            target.write(gpu, data)?;
        }
        self.step.write(gpu, &[step])
    }
}
