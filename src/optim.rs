//! Optimizers over a model's flat parameter buffer: one fused dispatch per step, with the step
//! count kept on the GPU.

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::kernels::counter::Advance;
use crate::kernels::optim::{
    adadelta_dispatch, adam_dispatch, intended, sgd_dispatch, write_rate, OptimState, FACTORS,
};
use crate::nn::{NamedTensor, Parameters};

pub use crate::kernels::optim::{AdadeltaConfig, AdamConfig, SgdConfig};

/// Which optimizer, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.Adam`, or `AdamW` when `decoupled`.
    Adam(AdamConfig),
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// `torch.optim.Adadelta`.
    Adadelta(AdadeltaConfig),
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
            OptimizerConfig::Adadelta(c) => c.lr,
        }
    }

    /// PyTorch's checks of the hyper-parameters, in its words.
    pub fn validate(&self) -> Result<()> {
        match self {
            OptimizerConfig::Adam(c) => c.validate(),
            OptimizerConfig::Sgd(c) => c.validate(),
            OptimizerConfig::Adadelta(c) => c.validate(),
        }
    }
}

/// `torch.optim.lr_scheduler.StepLR`: the learning rate times `gamma` every `step_size` epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    /// Epochs between decays.
    pub step_size: usize,
    /// The factor of each decay.
    pub gamma: f32,
}

impl StepLr {
    /// The learning rate for `epoch` (0-based) from `base`, multiplied step by step in double
    /// precision from the decimals written (0.7, not 0.7f32's 0.69999998…), as PyTorch's
    /// scheduler does.
    pub fn lr(&self, base: f32, epoch: usize) -> f32 {
        let decays = epoch.checked_div(self.step_size).unwrap_or(0);
        let gamma = intended(self.gamma);
        (0..decays).fold(intended(base), |lr, _| lr * gamma) as f32
    }

    /// An error unless the step size is positive and gamma a finite number.
    pub fn validate(&self) -> Result<()> {
        if self.step_size == 0 || !self.gamma.is_finite() {
            return Err(Error::invalid(format!(
                "StepLR needs a positive step size and a finite gamma, got {} and {}",
                self.step_size, self.gamma
            )));
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
        Self::sized(gpu, params.values().len(), config)
    }

    /// The optimizer for `len` parameters (zeroed state).
    fn sized(gpu: &Gpu, len: usize, config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        let count = match config {
            OptimizerConfig::Adam(c) => 2 + usize::from(c.amsgrad),
            // The momentum buffer is bound even without momentum (then untouched).
            OptimizerConfig::Sgd(_) => 1,
            OptimizerConfig::Adadelta(_) => 2,
        };
        let buffers = (0..count)
            .map(|_| Tensor::zeros(gpu, &[len], DType::F32))
            .collect::<Result<_>>()?;
        Ok(Optimizer {
            config,
            step: Tensor::zeros(gpu, &[1], DType::U32)?,
            factors: Tensor::zeros(gpu, &[FACTORS], DType::F32)?,
            buffers,
        })
    }

    /// The step counter on the GPU (u32), advanced at the start of every step (the first step
    /// reads 1): what dropout masks are keyed by in training ([`crate::nn::Workspace::key_dropout_by`]).
    pub fn step_counter(&self) -> &Tensor {
        &self.step
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Sets the learning rate of the steps submitted from now on (a schedule's move; the
    /// recorded programs stay as they are: the rate lives on the GPU).
    pub fn set_lr(&self, gpu: &Gpu, lr: f32) -> Result<()> {
        let decoupled = match self.config {
            OptimizerConfig::Adam(c) if c.decoupled => Some(c.weight_decay),
            _ => None,
        };
        write_rate(gpu, &self.factors, lr, decoupled)
    }

    /// The dispatches of one step: the step count advanced, every parameter updated.
    pub fn step_program(&self, gpu: &Gpu, params: &Parameters) -> Result<Program> {
        self.program(gpu, params.values(), params.grads(), false, None)
    }

    /// What must advance this optimizer's step count in a dispatch before its update, for
    /// [`Optimizer::update_program`]: a training step's first kernel can do it as its last act
    /// (a batch gather does), which saves the step a dispatch.
    pub fn step_advance(&self) -> Advance<'_> {
        let adam = matches!(self.config, OptimizerConfig::Adam(_));
        Advance {
            counter: &self.step,
            adam_factors: adam.then_some(&self.factors),
        }
    }

    /// The update alone, for a step in which an earlier dispatch did what
    /// [`Optimizer::step_advance`] says; its last dispatch also advances `counter` (a 1-element
    /// u32 tensor, such as a batch cursor), which saves it a dispatch of its own. Nothing after
    /// the optimizer in a step may read it.
    pub fn update_program(
        &self,
        gpu: &Gpu,
        params: &Parameters,
        counter: Option<&Tensor>,
    ) -> Result<Program> {
        self.program(gpu, params.values(), params.grads(), true, counter)
    }

    /// The dispatches of one step of `param` from `grad`: the count's advance unless
    /// `advanced_earlier`, the update, `counter` advanced at its end.
    fn program(
        &self,
        gpu: &Gpu,
        param: &Tensor,
        grad: &Tensor,
        advanced_earlier: bool,
        counter: Option<&Tensor>,
    ) -> Result<Program> {
        // A buffer the configuration leaves unused (amsgrad's v_max) is bound to the first one.
        let first = &self.buffers[0];
        let buffer = |i: usize| self.buffers.get(i).unwrap_or(first);
        let state = OptimState {
            step: &self.step,
            factors: &self.factors,
            grad,
            param,
            m: buffer(0),
            v: buffer(1),
            v_max: buffer(2),
            advanced_earlier,
            counter,
        };
        match &self.config {
            OptimizerConfig::Adam(c) => adam_dispatch(gpu, c, &state),
            OptimizerConfig::Sgd(c) => sgd_dispatch(gpu, c, &state),
            OptimizerConfig::Adadelta(c) => adadelta_dispatch(gpu, c, &state),
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

/// An optimizer over the caller's own tensors, each updated in place from its gradient:
/// one constructor, then [`TensorOptimizer::step`] after each backward pass (or its
/// [`TensorOptimizer::program`] recorded with the rest of a step).
///
/// ```no_run
/// use wgml::gpu::{DType, Gpu, Tensor};
/// use wgml::optim::{OptimizerConfig, TensorOptimizer};
///
/// let gpu = Gpu::from_env()?;
/// let w = Tensor::from_slice(&gpu, &[0.5f32, -1.0], &[2])?;
/// let dw = Tensor::zeros(&gpu, &[2], DType::F32)?;
/// let adam = TensorOptimizer::new(&gpu, &[(&w, &dw)], OptimizerConfig::default())?;
/// dw.write(&gpu, &[0.1f32, -0.2])?; // a gradient, from any kernel or the host
/// adam.step(&gpu)?;
/// # Ok::<(), wgml::Error>(())
/// ```
pub struct TensorOptimizer {
    state: Vec<Optimizer>,
    program: Program,
}

impl TensorOptimizer {
    /// Prepares one step over `(parameter, gradient)` pairs (f32 tensors of equal length),
    /// each with its own optimizer state, after checking `config` as PyTorch does.
    pub fn new(gpu: &Gpu, tensors: &[(&Tensor, &Tensor)], config: OptimizerConfig) -> Result<Self> {
        let mut program = Program::new();
        let mut state = Vec::with_capacity(tensors.len());
        for &(param, grad) in tensors {
            param.expect_dtype(DType::F32)?;
            if grad.shape() != param.shape() || grad.dtype() != DType::F32 {
                return Err(Error::shape(format!(
                    "a gradient must be f32 of its parameter's shape {:?}, got {:?}",
                    param.shape(),
                    grad.shape()
                )));
            }
            let optimizer = Optimizer::sized(gpu, param.len(), config)?;
            program.append(optimizer.program(gpu, param, grad, false, None)?);
            state.push(optimizer);
        }
        Ok(TensorOptimizer { state, program })
    }

    /// The dispatches of one step.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Takes one step now, and waits for it.
    pub fn step(&self, gpu: &Gpu) -> Result<()> {
        self.program.run(gpu)
    }

    /// Sets the learning rate of the steps from now on (see [`Optimizer::set_lr`]).
    pub fn set_lr(&self, gpu: &Gpu, lr: f32) -> Result<()> {
        self.state.iter().try_for_each(|o| o.set_lr(gpu, lr))
    }
}
