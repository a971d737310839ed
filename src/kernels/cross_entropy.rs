//! `shaders/cross_entropy.wgsl`: fused softmax cross-entropy loss and gradient, class-index
//! targets.

use super::{dims2, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Program, Shader, Tensor};

/// The cross-entropy shader.
pub const SHADER: Shader = Shader {
    name: "cross_entropy.wgsl",
    source: include_str!("../../shaders/cross_entropy.wgsl"),
};

/// How per-element losses are combined, as in PyTorch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// One loss per element.
    None,
    /// Σ losses.
    Sum,
    /// Σ losses / Σ weights of the non-ignored targets (NaN when that is 0).
    #[default]
    Mean,
}

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

/// What the loss needs besides logits and targets.
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyOptions<'a> {
    /// Per-class weights (length C), or every class weighs 1.
    pub weight: Option<&'a Tensor>,
    /// Targets equal to this contribute nothing (PyTorch's default: -100).
    pub ignore_index: i32,
    /// How per-row losses are combined.
    pub reduction: Reduction,
}

impl Default for CrossEntropyOptions<'_> {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    reduction: u32,
    has_weight: u32,
}

/// The three prepared passes of one cross-entropy evaluation and the buffers they share.
pub struct CrossEntropyKernel {
    /// Denominator, per-row loss and gradient, total: record it as a unit.
    pub program: Program,
    /// Per-row losses (the result of `Reduction::None`).
    pub row_loss: Tensor,
    /// `[flag, target]`: set by the GPU when a target lies outside `[0, C)`.
    pub fault: Tensor,
}

impl CrossEntropyKernel {
    /// Prepares loss and gradient of `logits` (N×C) against `targets` (i32, N).
    ///
    /// `grad` (N×C) receives d(loss)/d(logits); the reduced loss is written to
    /// `out[cursor[0]]` (`cursor`: a 1-element u32 tensor), so a training loop can keep one loss
    /// per step without a host round trip.
    pub fn new(
        gpu: &Gpu,
        logits: &Tensor,
        targets: &Tensor,
        opts: CrossEntropyOptions,
        grad: &Tensor,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<Self> {
        logits.expect_dtype(DType::F32)?;
        targets.expect_dtype(DType::I32)?;
        let (rows, classes) = dims2(logits, "cross_entropy's input")?;
        if targets.len() != rows {
            return Err(Error::shape(format!(
                "Expected input batch_size ({rows}) to match target batch_size ({}).",
                targets.len()
            )));
        }
        if classes == 0 {
            return Err(Error::shape("cross_entropy needs at least one class"));
        }
        if let Some(w) = opts.weight {
            if w.len() != classes || w.dtype() != DType::F32 {
                return Err(Error::shape(format!(
                    "weight tensor should be defined either for all {classes} classes or no \
                     classes but got weight tensor of shape: {:?}",
                    w.shape()
                )));
            }
        }
        if grad.shape() != logits.shape() {
            return Err(Error::shape(format!(
                "cross_entropy's gradient must be {:?}, got {:?}",
                logits.shape(),
                grad.shape()
            )));
        }
        out.expect_dtype(DType::F32)?;
        cursor.expect_dtype(DType::U32)?;
        let params = Params {
            rows: u32_param(rows, "rows")?,
            classes: u32_param(classes, "classes")?,
            ignore_index: opts.ignore_index,
            reduction: match opts.reduction {
                Reduction::None => 0,
                Reduction::Sum => 1,
                Reduction::Mean => 2,
            },
            has_weight: u32::from(opts.weight.is_some()),
        };
        // Without weights, the logits stand in for the unused binding.
        let weight = opts.weight.unwrap_or(logits);
        let denom = Tensor::zeros(gpu, &[1], DType::F32)?;
        let row_loss = Tensor::zeros(gpu, &[rows], DType::F32)?;
        let fault = Tensor::zeros(gpu, &[2], DType::I32)?;
        let mut program = Program::new();
        program.push(Dispatch::new(
            gpu,
            SHADER,
            "ce_denominator",
            &params,
            &[(1, targets), (2, weight), (3, &denom), (4, &fault)],
            1,
        )?);
        program.push(Dispatch::new(
            gpu,
            SHADER,
            "ce_rows",
            &params,
            &[
                (1, targets),
                (2, weight),
                (5, logits),
                (6, &denom),
                (7, &row_loss),
                (8, grad),
            ],
            rows as u64,
        )?);
        program.push(Dispatch::new(
            gpu,
            SHADER,
            "ce_total",
            &params,
            &[(6, &denom), (9, &row_loss), (10, cursor), (11, out)],
            1,
        )?);
        Ok(CrossEntropyKernel {
            program,
            row_loss,
            fault,
        })
    }

    /// Turns a fault the GPU flagged into [`Error::TargetOutOfBounds`], and clears it.
    pub fn check_targets(&self, gpu: &Gpu) -> Result<()> {
        let fault = self.fault.to_vec::<i32>(gpu)?;
        if fault[0] != 0 {
            self.fault.write(gpu, &[0i32, 0])?;
            return Err(Error::TargetOutOfBounds(i64::from(fault[1])));
        }
        Ok(())
    }
}

/// Loss and gradient in one call: returns the reduced loss (for `Reduction::None`, one per row)
/// and d(loss)/d(logits). Targets are checked on the host first.
pub fn cross_entropy(
    gpu: &Gpu,
    logits: &Tensor,
    targets: &[i32],
    opts: CrossEntropyOptions,
) -> Result<(Vec<f32>, Tensor)> {
    let classes = logits.shape().last().copied().unwrap_or(0);
    if let Some(&bad) = targets
        .iter()
        .find(|&&t| t != opts.ignore_index && !(0..classes as i64).contains(&i64::from(t)))
    {
        return Err(Error::TargetOutOfBounds(i64::from(bad)));
    }
    let targets_t = Tensor::from_slice(gpu, targets, &[targets.len()])?;
    let grad = Tensor::zeros(gpu, logits.shape(), DType::F32)?;
    let out = Tensor::zeros(gpu, &[1], DType::F32)?;
    let cursor = Tensor::zeros(gpu, &[1], DType::U32)?;
    let kernel = CrossEntropyKernel::new(gpu, logits, &targets_t, opts, &grad, &out, &cursor)?;
    kernel.program.run(gpu)?;
    let loss = match opts.reduction {
        Reduction::None => kernel.row_loss.to_vec(gpu)?,
        _ => out.to_vec(gpu)?,
    };
    Ok((loss, grad))
}
