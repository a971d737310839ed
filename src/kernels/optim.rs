//! `shaders/optim.wgsl`: Adam / AdamW, SGD and Adadelta over a flat parameter buffer.
//!
//! The model API's [`crate::optim::TensorOptimizer`] keeps this state for you; here is one
//! SGD step done by hand:
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Tensor};
//! use wgml::kernels::optim::{sgd_dispatch, OptimState, SgdConfig};
//!
//! let gpu = Gpu::from_env()?;
//! let zeros = |n| Tensor::zeros(&gpu, &[n], DType::F32);
//! let param = Tensor::from_slice(&gpu, &[1.0f32, 2.0], &[2])?;
//! let grad = Tensor::from_slice(&gpu, &[0.5f32, -1.0], &[2])?;
//! let (m, unused, factors) = (zeros(2)?, zeros(2)?, zeros(8)?);
//! let step = Tensor::zeros(&gpu, &[1], DType::U32)?;
//! let state = OptimState { step: &step, factors: &factors, grad: &grad, param: &param, m: &m, v: &unused, v_max: &unused, advanced_earlier: false, counter: None };
//! sgd_dispatch(&gpu, &SgdConfig { lr: 0.1, ..Default::default() }, &state)?.run(&gpu)?;
//! assert_eq!(param.to_vec::<f32>(&gpu)?, [0.95, 2.1]);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::counter::{advance_dispatch, counting, Advance};
use super::{expect_len, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Program, Shader, Tensor};

/// The optimizer shader (with `counter.wgsl`, through which an update's last dispatch counts).
pub const SHADER: Shader = Shader {
    name: "optim.wgsl",
    source: concat!(
        include_str!("../../shaders/optim.wgsl"),
        include_str!("../../shaders/counter.wgsl"),
    ),
};

/// Adam eight elements per invocation through 64-bit loads (`optim_wide.wgsl` after
/// `optim.wgsl`, `counter.wgsl` and `int64.wgsl`), for devices with
/// [`wgpu::Features::SHADER_INT64`].
pub const WIDE_SHADER: Shader = Shader {
    name: "optim_wide.wgsl",
    source: concat!(
        include_str!("../../shaders/optim.wgsl"),
        include_str!("../../shaders/counter.wgsl"),
        include_str!("../../shaders/int64.wgsl"),
        include_str!("../../shaders/optim_wide.wgsl"),
    ),
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

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults: as Adam, with decoupled weight decay 1e-2.
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            decoupled: true,
            ..Self::default()
        }
    }

    /// PyTorch's checks of the hyper-parameters, in its words.
    pub fn validate(&self) -> Result<()> {
        check_common(self.lr, self.weight_decay)?;
        if negative(self.eps) {
            return Err(Error::invalid(format!(
                "Invalid epsilon value: {}",
                self.eps
            )));
        }
        for (i, beta) in [self.betas.0, self.betas.1].into_iter().enumerate() {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::invalid(format!(
                    "Invalid beta parameter at index {i}: {beta}"
                )));
            }
        }
        Ok(())
    }
}

impl SgdConfig {
    /// PyTorch's checks of the hyper-parameters, in its words.
    pub fn validate(&self) -> Result<()> {
        check_common(self.lr, self.weight_decay)?;
        if negative(self.momentum) {
            return Err(Error::invalid(format!(
                "Invalid momentum value: {}",
                self.momentum
            )));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid(
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }
}

/// Adadelta's hyper-parameters, as `torch.optim.Adadelta` names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdadeltaConfig {
    /// Learning rate (PyTorch's default 1.0).
    pub lr: f32,
    /// Decay of the running averages.
    pub rho: f32,
    /// Added inside both square roots.
    pub eps: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    /// `torch.optim.Adadelta`'s defaults.
    fn default() -> Self {
        AdadeltaConfig {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl AdadeltaConfig {
    /// PyTorch's checks of the hyper-parameters, in its words.
    pub fn validate(&self) -> Result<()> {
        check_common(self.lr, self.weight_decay)?;
        if !(0.0..=1.0).contains(&self.rho) {
            return Err(Error::invalid(format!("Invalid rho value: {}", self.rho)));
        }
        if negative(self.eps) {
            return Err(Error::invalid(format!(
                "Invalid epsilon value: {}",
                self.eps
            )));
        }
        Ok(())
    }
}

fn negative(x: f32) -> bool {
    x.is_nan() || x < 0.0
}

/// The learning rate and weight decay checks both optimizers make, in PyTorch's order.
fn check_common(lr: f32, weight_decay: f32) -> Result<()> {
    if negative(lr) {
        return Err(Error::invalid(format!("Invalid learning rate: {lr}")));
    }
    if negative(weight_decay) {
        return Err(Error::invalid(format!(
            "Invalid weight_decay value: {weight_decay}"
        )));
    }
    Ok(())
}

/// SGD's hyper-parameters, as `torch.optim.SGD` names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0: none).
    pub momentum: f32,
    /// Dampening of the momentum's gradient term.
    pub dampening: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// Nesterov momentum (needs momentum > 0 and no dampening).
    pub nesterov: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for SgdConfig {
    /// `torch.optim.SGD`'s defaults, with lr 1e-3 (PyTorch's own default).
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    flags: u32,
    weight_decay: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    momentum: f32,
    one_minus_dampening: f32,
    rho: f32,
    one_minus_rho: f32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER, WIDE_SHADER],
        Params {
            len,
            flags,
            weight_decay,
            beta2,
            one_minus_beta1,
            one_minus_beta2,
            eps,
            momentum,
            one_minus_dampening,
            rho,
            one_minus_rho
        }
    )
}

/// The f64 a user meant by an f32 hyper-parameter: its shortest decimal form (0.999f32 is
/// 0.99900001287…, but was written as 0.999, which PyTorch would hold as a Python float).
pub(crate) fn intended(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Sets the learning rate the optimizer's dispatches over `factors` use from the next
/// submitted step on (a learning-rate schedule's move), with AdamW's decay factor 1 − lr·wd
/// for a decoupled `weight_decay`, formed in double precision as PyTorch forms it.
pub fn write_rate(gpu: &Gpu, factors: &Tensor, lr: f32, weight_decay: Option<f32>) -> Result<()> {
    expect_len(factors, FACTORS, "the optimizer's factors")?;
    let decay = weight_decay.map_or(1.0, |wd| (1.0 - intended(lr) * intended(wd)) as f32);
    factors.view(0, &[2])?.write(gpu, &[lr, decay])
}

/// Elements of an optimizer's factors ([`OptimState::factors`]).
pub const FACTORS: usize = 8;

/// The tensors one update touches; all f32 of one length except `step` and `factors`.
pub struct OptimState<'a> {
    /// 1-element u32: the step count, this step included once advanced (the first step is 1).
    pub step: &'a Tensor,
    /// [`FACTORS`] f32: the learning rate and AdamW's 1 − lr·wd (each dispatch writes them when
    /// made, [`write_rate`] again for a schedule), ln β1 and ln β2 (Adam's dispatch writes
    /// them), then Adam's two factors of the step (formed where the count advances) and two
    /// zeros.
    pub factors: &'a Tensor,
    /// Gradients.
    pub grad: &'a Tensor,
    /// Parameters, updated in place.
    pub param: &'a Tensor,
    /// Adam's first moment; SGD's momentum buffer.
    pub m: &'a Tensor,
    /// Adam's second moment (unused by SGD).
    pub v: &'a Tensor,
    /// Adam's running maximum of v (read and written with amsgrad only).
    pub v_max: &'a Tensor,
    /// Whether a dispatch earlier in the step advances `step`, as the [`Advance`] that
    /// [`step_advance`] returns says: a training step's first kernel can, saving the step a
    /// dispatch. Otherwise the program's first dispatch does.
    pub advanced_earlier: bool,
    /// A further 1-element u32 counter that the update's last dispatch advances: a training
    /// loop's batch cursor, saving it a dispatch of its own. Nothing after the optimizer in a
    /// step may read it.
    pub counter: Option<&'a Tensor>,
}

/// What advances the step count of `state`, and for Adam (`adam`) forms the step's factors:
/// the optimizer program's first dispatch, or one earlier in the step
/// ([`OptimState::advanced_earlier`]).
pub fn step_advance<'a>(state: &OptimState<'a>, adam: bool) -> Advance<'a> {
    Advance {
        counter: state.step,
        adam_factors: adam.then_some(state.factors),
    }
}

fn check(state: &OptimState, with_v: bool, with_v_max: bool) -> Result<u32> {
    let len = state.param.len();
    expect_len(state.factors, FACTORS, "the optimizer's factors")?;
    expect_len(state.grad, len, "the gradient")?;
    expect_len(state.m, len, "the optimizer's first buffer")?;
    if with_v {
        expect_len(state.v, len, "the optimizer's second moment")?;
    }
    if with_v_max {
        expect_len(state.v_max, len, "the optimizer's v_max")?;
    }
    state.step.expect_dtype(DType::U32)?;
    u32_param(len, "parameter count")
}

/// One update dispatch of a step: its shader, entry point, override constants and workgroups.
struct Update {
    shader: Shader,
    entry: &'static str,
    constants: Vec<(&'static str, f64)>,
    groups: u64,
}

/// A step's program: the step count's advance (unless an earlier dispatch does it), then the
/// `updates`, the last of which advances `state.counter`.
fn step_program(
    gpu: &Gpu,
    state: &OptimState,
    adam: bool,
    params: &Params,
    bindings: &[(u32, &Tensor)],
    updates: Vec<Update>,
) -> Result<Program> {
    if state.counter.is_some_and(|c| c.same_start(state.step)) {
        return Err(Error::invalid(
            "the step count advances before the update: the update's counter must be another",
        ));
    }
    let mut program = Program::new();
    if !state.advanced_earlier {
        program.push(advance_dispatch(gpu, step_advance(state, adam))?);
    }
    // No parameters, no update: the counter advances on its own.
    if let (true, Some(counter)) = (updates.is_empty(), state.counter) {
        program.push(advance_dispatch(gpu, Advance::of(counter))?);
    }
    let last = updates.len().saturating_sub(1);
    for (i, update) in updates.into_iter().enumerate() {
        let advance = state.counter.filter(|_| i == last).map(Advance::of);
        let counting = counting(gpu, advance)?;
        let mut constants = update.constants;
        constants.extend(counting.constants);
        let mut all = bindings.to_vec();
        all.extend(counting.bindings);
        program.push(Dispatch::specialized(
            gpu,
            update.shader,
            update.entry,
            &constants,
            params,
            &all,
            update.groups,
        )?);
    }
    Ok(program)
}

/// The prepared dispatches of one Adam / AdamW step: advance `state.step` and form the step's
/// factors (unless [`OptimState::advanced_earlier`]), then update `state.param` in place.
pub fn adam_dispatch(gpu: &Gpu, config: &AdamConfig, state: &OptimState) -> Result<Program> {
    config.validate()?;
    let params = Params {
        len: check(state, true, config.amsgrad)?,
        flags: u32::from(config.decoupled)
            | u32::from(config.amsgrad) << 1
            | u32::from(config.maximize) << 2,
        weight_decay: config.weight_decay,
        beta2: config.betas.1,
        one_minus_beta1: (1.0 - intended(config.betas.0)) as f32,
        one_minus_beta2: (1.0 - intended(config.betas.1)) as f32,
        eps: config.eps,
        ..Params::default()
    };
    write_rate(
        gpu,
        state.factors,
        config.lr,
        config.decoupled.then_some(config.weight_decay),
    )?;
    let ln_betas = [intended(config.betas.0).ln(), intended(config.betas.1).ln()];
    (state.factors.view(2, &[2])?).write(gpu, &ln_betas.map(|x| x as f32))?;
    let s = state;
    let bindings = [
        (2, s.grad),
        (3, s.param),
        (4, s.m),
        (5, s.v),
        (6, s.v_max),
        (9, s.factors),
    ];
    let amsgrad = f64::from(u8::from(config.amsgrad));
    // Eight elements per invocation where 64-bit loads carry them, else four; then the rest.
    let (shader, entry, width) = if gpu.features().contains(wgpu::Features::SHADER_INT64) {
        (WIDE_SHADER, "adam_wide", 8)
    } else {
        (SHADER, "adam", 4)
    };
    let len = s.param.len();
    let mut updates = Vec::new();
    if len >= width {
        updates.push(Update {
            shader,
            entry,
            constants: vec![("AMSGRAD", amsgrad)],
            groups: (len / width).div_ceil(256) as u64,
        });
    }
    if !len.is_multiple_of(width) {
        updates.push(Update {
            shader: SHADER,
            entry: "adam_tail",
            constants: vec![("AMSGRAD", amsgrad), ("TAIL_WIDTH", width as f64)],
            groups: 1,
        });
    }
    step_program(gpu, state, true, &params, &bindings, updates)
}

/// The prepared dispatches of one SGD step: advance `state.step` (unless
/// [`OptimState::advanced_earlier`]), then update `state.param` in place (`state.m` is the
/// momentum buffer).
pub fn sgd_dispatch(gpu: &Gpu, config: &SgdConfig, state: &OptimState) -> Result<Program> {
    config.validate()?;
    let params = Params {
        len: check(state, false, false)?,
        flags: u32::from(config.nesterov) | u32::from(config.maximize) << 2,
        weight_decay: config.weight_decay,
        momentum: config.momentum,
        one_minus_dampening: (1.0 - intended(config.dampening)) as f32,
        ..Params::default()
    };
    write_rate(gpu, state.factors, config.lr, None)?;
    let s = state;
    let bindings = [
        (1, s.step),
        (2, s.grad),
        (3, s.param),
        (4, s.m),
        (9, s.factors),
    ];
    let update = Update {
        shader: SHADER,
        entry: "sgd",
        constants: vec![],
        groups: s.param.len().div_ceil(256) as u64,
    };
    step_program(gpu, state, false, &params, &bindings, vec![update])
}

/// The prepared dispatches of one Adadelta step: advance `state.step` (unless
/// [`OptimState::advanced_earlier`]), then update `state.param` in place (with `state.m` the
/// square average and `state.v` the accumulated delta).
pub fn adadelta_dispatch(
    gpu: &Gpu,
    config: &AdadeltaConfig,
    state: &OptimState,
) -> Result<Program> {
    config.validate()?;
    let params = Params {
        len: check(state, true, false)?,
        flags: u32::from(config.maximize) << 2,
        weight_decay: config.weight_decay,
        eps: config.eps,
        rho: config.rho,
        one_minus_rho: (1.0 - intended(config.rho)) as f32,
        ..Params::default()
    };
    write_rate(gpu, state.factors, config.lr, None)?;
    let s = state;
    let bindings = [
        (2, s.grad),
        (3, s.param),
        (4, s.m),
        (5, s.v),
        (9, s.factors),
    ];
    let len = s.param.len();
    let update = |shader, entry, constants, groups| Update {
        shader,
        entry,
        constants,
        groups,
    };
    let mut updates = Vec::new();
    if gpu.features().contains(wgpu::Features::SHADER_INT64) {
        // Eight elements per invocation, then the rest.
        if len >= 8 {
            let groups = (len / 8).div_ceil(256) as u64;
            updates.push(update(WIDE_SHADER, "adadelta_wide", vec![], groups));
        }
        if !len.is_multiple_of(8) {
            let tail = vec![("TAIL_WIDTH", 8.0)];
            updates.push(update(SHADER, "adadelta_tail", tail, 1));
        }
    } else {
        updates.push(update(SHADER, "adadelta", vec![], len.div_ceil(256) as u64));
    }
    step_program(gpu, state, false, &params, &bindings, updates)
}
