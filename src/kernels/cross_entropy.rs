//! `shaders/cross_entropy.wgsl`: fused softmax cross-entropy loss and gradient, as
//! `torch.nn.CrossEntropyLoss` (docs/semantics.md).
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::cross_entropy::{cross_entropy, CrossEntropyOptions, Reduction, Targets};
//!
//! let gpu = Gpu::from_env()?;
//! let logits = Tensor::from_slice(&gpu, &[3.0f32, 1.0, 1.0, 2.0], &[2, 2])?;
//! let targets = Tensor::from_slice(&gpu, &[0i32, -100], &[2])?; // the second row is ignored
//! let opts = CrossEntropyOptions { reduction: Reduction::None, ..Default::default() };
//! let (loss, _grad) = cross_entropy(&gpu, &logits, Targets::Classes(&targets), opts)?;
//! assert_eq!(loss.shape(), [2]);
//! assert_eq!(loss.to_vec::<f32>(&gpu)?[1], 0.0);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::{policy, u32_param, TargetCheck};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Program, Shader, Tensor};

/// Rows and classes up to which the denominator and the total are serial sums.
const SERIAL_ROWS: usize = 1024;
/// Invocations per workgroup of `ce_rows` (`ROW_WG` in the shader).
const ROW_WG: usize = 64;

/// The cross-entropy shader.
pub const SHADER: Shader = Shader {
    name: "cross_entropy.wgsl",
    source: include_str!("../../shaders/cross_entropy.wgsl"),
};

/// How per-element losses are combined, as in PyTorch. The discriminants are the shaders'
/// `reduction` codes (`MEAN` in the WGSL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u32)]
pub enum Reduction {
    /// One loss per element.
    None = 0,
    /// Σ losses.
    Sum = 1,
    /// Class targets: Σ losses / Σ weights of the non-ignored targets (NaN when that is 0).
    /// Probability targets: Σ losses / number of elements.
    #[default]
    Mean = 2,
}

/// `Params::flags` bit: class weights are given (`HAS_WEIGHT` in the WGSL).
pub(crate) const HAS_WEIGHT: u32 = 1;
/// `Params::flags` bit: the targets are probabilities (`PROBS` in the WGSL).
const PROBABILITIES: u32 = 2;

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Reduction::None),
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            _ => Err(Error::invalid(format!(
                "{s} is not a valid value for reduction"
            ))),
        }
    }
}

/// PyTorch's int64 class targets as the i32 tensor the loss kernels read (checked on upload:
/// a target no i32 holds is out of bounds for any class count the GPU can hold, and reported
/// in PyTorch's words; `ignore_index` values pass through).
///
/// ```
/// use wgml::kernels::cross_entropy::class_targets;
/// let gpu = wgml::gpu::Gpu::from_env()?;
/// let t = class_targets(&gpu, &[3i64, -100, 0], &[3])?;
/// assert_eq!(t.to_vec::<i32>(&gpu)?, [3, -100, 0]);
/// assert_eq!(
///     class_targets(&gpu, &[1i64 << 40], &[1]).unwrap_err().to_string(),
///     "Target 1099511627776 is out of bounds."
/// );
/// # Ok::<(), wgml::Error>(())
/// ```
pub fn class_targets(gpu: &Gpu, targets: &[i64], shape: &[usize]) -> Result<Tensor> {
    let narrow = targets
        .iter()
        .map(|&t| i32::try_from(t).map_err(|_| Error::TargetOutOfBounds(t)))
        .collect::<Result<Vec<i32>>>()?;
    Tensor::from_slice(gpu, &narrow, shape)
}

/// What the loss is measured against.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class indices (i32): shape (N), (N, d1, …, dk), or () for an unbatched (C) input.
    Classes(&'a Tensor),
    /// Class probabilities (f32) of the input's shape.
    Probabilities(&'a Tensor),
}

/// The loss's options besides logits and targets, with PyTorch's defaults.
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyOptions<'a> {
    /// Per-class weights (length C), or every class weighs 1.
    pub weight: Option<&'a Tensor>,
    /// Class targets equal to this contribute nothing (default -100).
    pub ignore_index: i32,
    /// How per-element losses are combined.
    pub reduction: Reduction,
    /// ε in [0, 1]: the targets are mixed with the uniform distribution, (1 − ε)·y + ε/C.
    pub label_smoothing: f32,
}

impl Default for CrossEntropyOptions<'_> {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    inner: u32,
    ignore_index: i32,
    reduction: u32,
    flags: u32,
    smoothing: f32,
}

/// The WGSL constants the host's codes stand for: (shader, constant, the host's value).
pub fn shader_constants() -> Vec<(Shader, &'static str, u32)> {
    vec![
        (SHADER, "MEAN", Reduction::Mean as u32),
        (SHADER, "HAS_WEIGHT", HAS_WEIGHT),
        (SHADER, "PROBS", PROBABILITIES),
    ]
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER],
        Params {
            rows,
            classes,
            inner,
            ignore_index,
            reduction,
            flags,
            smoothing
        }
    )
}

/// The input seen as N × C × D, and the shape of the per-element loss.
struct Layout {
    n: usize,
    classes: usize,
    inner: usize,
    loss_shape: Vec<usize>,
}

fn layout(logits: &Tensor, targets: Targets) -> Result<Layout> {
    logits.expect_dtype(DType::F32)?;
    let shape = logits.shape();
    let (n, classes, rest, loss_shape) = match shape {
        [] => {
            return Err(Error::shape(
                "cross_entropy's input needs at least one dimension",
            ))
        }
        [c] => (1, *c, &[][..], vec![]),
        [n, c, rest @ ..] => (*n, *c, rest, [&[*n][..], rest].concat()),
    };
    if classes == 0 {
        return Err(Error::shape("cross_entropy needs at least one class"));
    }
    match targets {
        Targets::Classes(t) => {
            t.expect_dtype(DType::I32)?;
            let batched = shape.len() > 1;
            if batched && t.shape().first() != Some(&n) {
                return Err(Error::shape(format!(
                    "Expected input batch_size ({n}) to match target batch_size ({}).",
                    t.shape().first().copied().unwrap_or(0)
                )));
            }
            if t.shape() != loss_shape {
                return Err(Error::shape(format!(
                    "Expected target size {loss_shape:?}, got {:?}",
                    t.shape()
                )));
            }
        }
        Targets::Probabilities(t) => {
            t.expect_dtype(DType::F32)?;
            if t.shape() != shape {
                return Err(Error::shape(format!(
                    "Expected target size {shape:?}, got {:?}",
                    t.shape()
                )));
            }
        }
    }
    Ok(Layout {
        n,
        classes,
        inner: rest.iter().product(),
        loss_shape,
    })
}

/// PyTorch's checks of the options against the targets and the class count, in its words.
pub(crate) fn check_options(
    opts: &CrossEntropyOptions,
    targets: Targets,
    classes: usize,
) -> Result<()> {
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::invalid(format!(
            "label_smoothing must be between 0.0 and 1.0. Got: {eps}"
        )));
    }
    let probabilities = matches!(targets, Targets::Probabilities(_));
    if probabilities && opts.ignore_index >= 0 {
        return Err(Error::invalid(
            "ignore_index is not supported for floating point target",
        ));
    }
    if let Some(w) = opts.weight {
        if w.len() != classes || w.shape().len() != 1 || w.dtype() != DType::F32 {
            return Err(Error::shape(format!(
                "weight tensor should be defined either for all {classes} classes or no \
                 classes but got weight tensor of shape: {:?}",
                w.shape()
            )));
        }
    }
    Ok(())
}

/// The tensors one evaluation binds.
struct Bound<'a> {
    class_targets: &'a Tensor,
    weight: &'a Tensor,
    logits: &'a Tensor,
    probs: &'a Tensor,
    grad: &'a Tensor,
    row_loss: &'a Tensor,
    fault: &'a Tensor,
    cursor: &'a Tensor,
    out: &'a Tensor,
}

impl Bound<'_> {
    /// What `ce_rows` and `ce_single` bind to compute rows' losses and gradients.
    fn row_bindings(&self) -> Vec<(u32, &Tensor)> {
        vec![
            (1, self.class_targets),
            (2, self.weight),
            (5, self.logits),
            (7, self.row_loss),
            (8, self.grad),
        ]
    }

    /// `ce_single`: the whole evaluation in one workgroup of `wg` invocations.
    fn single_pass(&self, gpu: &Gpu, params: &Params, wg: u32) -> Result<Dispatch> {
        let mut tensors = self.row_bindings();
        tensors.extend([(4, self.fault), (10, self.cursor), (11, self.out)]);
        let constants = [("WG", f64::from(wg)), ("TEAM", 1.0)];
        Dispatch::specialized(gpu, SHADER, "ce_single", &constants, params, &tensors, 1)
    }

    /// `ce_denominator`, `ce_rows` with `team` invocations per row, `ce_total`; `extent` is
    /// the larger of the row and class counts the one-workgroup passes loop over.
    fn three_passes(
        &self,
        gpu: &Gpu,
        params: &Params,
        extent: usize,
        team: usize,
    ) -> Result<Program> {
        let denom = Tensor::zeros(gpu, &[2], DType::F32)?;
        // A serial sum when the loops are short, a workgroup's tree otherwise (Mesa's CPU
        // adapters stop an invocation's loops after 65,535 iterations in all).
        let reduce = [("WG", if extent <= SERIAL_ROWS { 1.0 } else { 256.0 })];
        let denominator = [
            (1, self.class_targets),
            (2, self.weight),
            (3, &denom),
            (4, self.fault),
        ];
        let mut rows = self.row_bindings();
        rows.extend([(6, &denom), (12, self.probs)]);
        let total = [
            (6, &denom),
            (9, self.row_loss),
            (10, self.cursor),
            (11, self.out),
        ];
        let groups = (params.rows as usize).div_ceil(ROW_WG / team) as u64;
        let mut program = Program::new();
        program.push(Dispatch::specialized(
            gpu,
            SHADER,
            "ce_denominator",
            &reduce,
            params,
            &denominator,
            1,
        )?);
        program.push(Dispatch::specialized(
            gpu,
            SHADER,
            "ce_rows",
            &[("TEAM", team as f64)],
            params,
            &rows,
            groups,
        )?);
        program.push(Dispatch::specialized(
            gpu, SHADER, "ce_total", &reduce, params, &total, 1,
        )?);
        Ok(program)
    }
}

/// The prepared passes of one cross-entropy evaluation (one, or three for many rows or classes)
/// and the buffers they share.
pub struct CrossEntropyKernel {
    /// Denominator, per-element loss and gradient, total: record it as a unit.
    pub program: Program,
    /// Per-element losses (the result of `Reduction::None`), shaped like the class targets.
    pub row_loss: Tensor,
    targets_check: TargetCheck,
}

impl CrossEntropyKernel {
    /// Prepares loss and gradient of `logits` against `targets`.
    ///
    /// `grad` (the logits' shape) receives d(loss)/d(logits); the reduced loss is written to
    /// `out[cursor[0]]` (`cursor`: a 1-element u32 tensor), so a training loop can keep one loss
    /// per step without a host round trip.
    pub fn new(
        gpu: &Gpu,
        logits: &Tensor,
        targets: Targets,
        opts: CrossEntropyOptions,
        grad: &Tensor,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<Self> {
        let Layout {
            n,
            classes,
            inner,
            loss_shape,
        } = layout(logits, targets)?;
        check_options(&opts, targets, classes)?;
        if grad.shape() != logits.shape() || grad.dtype() != DType::F32 {
            return Err(Error::shape(format!(
                "cross_entropy's gradient must be f32 {:?}, got {:?}",
                logits.shape(),
                grad.shape()
            )));
        }
        let eps = opts.label_smoothing;
        let probabilities = matches!(targets, Targets::Probabilities(_));
        out.expect_dtype(DType::F32)?;
        cursor.expect_dtype(DType::U32)?;
        let rows = n * inner;
        let params = Params {
            rows: u32_param(rows, "rows")?,
            classes: u32_param(classes, "classes")?,
            inner: u32_param(inner.max(1), "inner size")?,
            ignore_index: opts.ignore_index,
            reduction: opts.reduction as u32,
            flags: if opts.weight.is_some() { HAS_WEIGHT } else { 0 }
                | if probabilities { PROBABILITIES } else { 0 },
            smoothing: eps,
        };
        let row_loss = Tensor::zeros(gpu, &loss_shape, DType::F32)?;
        let targets_check = TargetCheck::new(gpu)?;
        // Unused bindings get the logits as a stand-in.
        let (class_targets, probs) = match targets {
            Targets::Classes(t) => (t, logits),
            Targets::Probabilities(t) => (logits, t),
        };
        let bound = Bound {
            class_targets,
            weight: opts.weight.unwrap_or(logits),
            logits,
            probs,
            grad,
            row_loss: &row_loss,
            fault: targets_check.tensor(),
            cursor,
            out,
        };
        // Few classes: a row per invocation; many: a workgroup of ROW_WG per row.
        let team = if classes <= ROW_WG { 1 } else { ROW_WG };
        // One workgroup can do it all (`ce_single`) for class targets of few classes.
        let (single_rows, single_wg) = policy::cross_entropy_single(gpu.profile());
        let program = if team == 1 && rows <= single_rows && !probabilities {
            Program::from(bound.single_pass(gpu, &params, single_wg)?)
        } else {
            bound.three_passes(gpu, &params, rows.max(classes), team)?
        };
        Ok(CrossEntropyKernel {
            program,
            row_loss,
            targets_check,
        })
    }

    /// Turns a target the GPU flagged as out of range into [`Error::TargetOutOfBounds`], and
    /// clears the flag. Whoever records [`Self::program`] calls it before trusting the loss.
    pub fn check_targets(&self, gpu: &Gpu) -> Result<()> {
        self.targets_check.check(gpu)
    }

    /// Runs the program once, waits, and checks the targets: the safe way to run it alone.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        self.program.run(gpu)?;
        self.check_targets(gpu)
    }
}

/// Loss and gradient in one call (allocates): the loss as a tensor (shape `[]`, or the targets'
/// shape for `Reduction::None`) and d(loss)/d(logits) of the logits' shape. A class target out
/// of range is an error.
///
/// ```
/// use wgml::gpu::{Gpu, Tensor};
/// use wgml::kernels::cross_entropy::{cross_entropy, CrossEntropyOptions, Targets};
///
/// let gpu = Gpu::from_env()?;
/// let logits = Tensor::from_slice(&gpu, &[3.0f32, 3.0, 2.0, 2.0], &[2, 2])?;
/// let targets = Tensor::from_slice(&gpu, &[0i32, 1], &[2])?;
/// let (loss, grad) = cross_entropy(&gpu, &logits, Targets::Classes(&targets), CrossEntropyOptions::default())?;
/// assert!((loss.to_vec::<f32>(&gpu)?[0] - std::f32::consts::LN_2).abs() < 1e-6);
/// assert_eq!(grad.to_vec::<f32>(&gpu)?, [-0.25, 0.25, 0.25, -0.25]);
/// # Ok::<(), wgml::Error>(())
/// ```
pub fn cross_entropy(
    gpu: &Gpu,
    logits: &Tensor,
    targets: Targets,
    opts: CrossEntropyOptions,
) -> Result<(Tensor, Tensor)> {
    let grad = Tensor::zeros(gpu, logits.shape(), DType::F32)?;
    let out = Tensor::zeros(gpu, &[], DType::F32)?;
    let cursor = Tensor::zeros(gpu, &[1], DType::U32)?;
    let kernel = CrossEntropyKernel::new(gpu, logits, targets, opts, &grad, &out, &cursor)?;
    kernel.run(gpu)?;
    let loss = match opts.reduction {
        Reduction::None => kernel.row_loss,
        _ => out,
    };
    Ok((loss, grad))
}
