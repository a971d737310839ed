//! `shaders/linear_cross_entropy.wgsl`: `cross_entropy(x·Wᵀ + b, y)` and its gradients without
//! the N × V logits, for classifier heads over any number of classes.
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::linear_cross_entropy::{linear_cross_entropy, LinearCrossEntropyOptions};
//!
//! let gpu = Gpu::from_env()?;
//! let (n, d, v) = (4, 8, 100_000);
//! let x = Tensor::from_slice(&gpu, &vec![0.1f32; n * d], &[n, d])?;
//! let w = Tensor::from_slice(&gpu, &vec![0.01f32; v * d], &[v, d])?;
//! let y = Tensor::from_slice(&gpu, &[3i32, 99_999, 0, 7], &[n])?;
//! let out = linear_cross_entropy(&gpu, &x, &w, &y, LinearCrossEntropyOptions::default(), true)?;
//! // Equal logits: the loss is ln V.
//! assert!((out.loss.to_vec::<f32>(&gpu)?[0] - (v as f32).ln()).abs() < 1e-4);
//! assert_eq!(out.dweight.map(|t| t.shape().to_vec()), Some(vec![v, d]));
//! # Ok::<(), wgml::Error>(())
//! ```
//!
//! The classes stream through in chunks of [`LinearCrossEntropyKernel::chunk_classes`]
//! columns. Forward, per chunk: the matmul kernel writes the chunk's logits into a scratch
//! buffer of N × chunk, and `lce_stats` folds them into each row's running max and sum of
//! exponentials (an online log-sum-exp); `lce_loss` then forms the losses. Backward, per chunk
//! (last first, whose logits the forward left in the scratch): the logits again, `lce_grad`
//! turns them into d(loss)/dz in place, and matmuls give the chunk's rows of dW (dzᵀ·x), its
//! share of dx (dz·W, summed over chunks in a fixed order) and its bias gradient (column sums).
//! Memory beyond inputs and outputs: N × chunk for the scratch, N × D for dx's shares, 9 floats
//! per row; never N × V. Nothing uses float atomics: the same inputs give the same bits.

use super::cross_entropy::{check_options, CrossEntropyOptions, Reduction, Targets, HAS_WEIGHT};
use super::matmul::{fuse_row_sums, matmul_dispatch, MatmulOptions};
use super::reduce::column_sum_dispatch;
use super::{dims2, expect_len, policy, u32_param, TargetCheck};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Program, Shader, Tensor};

/// The fused linear + cross-entropy shader.
pub const SHADER: Shader = Shader {
    name: "linear_cross_entropy.wgsl",
    source: include_str!("../../shaders/linear_cross_entropy.wgsl"),
};

/// Chunks hold a multiple of this many classes, so that every chunk's rows of W, b, dW and db
/// start at an offset any device accepts for a binding (WebGPU allows at most 256 bytes of
/// alignment: 64 f32).
pub const CHUNK_ALIGN: usize = 64;
/// The most bytes the logits scratch takes when the chunk size is left to the kernel.
pub const DEFAULT_SCRATCH_BYTES: u64 = 64 << 20;
/// Rows and classes up to which `lce_loss` sums serially (one invocation, no barriers).
const SERIAL: usize = 1024;

/// Everything besides the inputs, with PyTorch's defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinearCrossEntropyOptions<'a> {
    /// The Linear layer's bias `[V]`, or none.
    pub bias: Option<&'a Tensor>,
    /// Cross-entropy's options: class weights `[V]`, `ignore_index`, reduction, label smoothing.
    pub loss: CrossEntropyOptions<'a>,
    /// Classes per chunk (a multiple of [`CHUNK_ALIGN`]), or `None` for the largest whose
    /// scratch fits [`DEFAULT_SCRATCH_BYTES`] and the device's binding limits. On a CPU
    /// adapter chunks hold at most 16,320 classes.
    pub chunk_classes: Option<usize>,
}

/// Where the gradients go: `dx` like x `[N, D]` (when wanted), `dweight` like the weight
/// `[V, D]`, `dbias` `[V]` (required when a bias is given, else absent).
#[derive(Clone, Copy, Debug)]
pub struct LinearCrossEntropyGrads<'a> {
    /// d(loss)/dx, or none when x is not trained.
    pub dx: Option<&'a Tensor>,
    /// d(loss)/dW.
    pub dweight: &'a Tensor,
    /// d(loss)/db.
    pub dbias: Option<&'a Tensor>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    first: u32,
    width: u32,
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
            first,
            width,
            ignore_index,
            reduction,
            flags,
            smoothing
        }
    )
}

/// The checked shapes of one fused loss: N rows, D features, V classes.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    d: usize,
    v: usize,
}

fn check_inputs(
    x: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    opts: &LinearCrossEntropyOptions,
) -> Result<Dims> {
    x.expect_dtype(DType::F32)?;
    weight.expect_dtype(DType::F32)?;
    let (n, d) = dims2(x, "linear_cross_entropy's x")?;
    let (v, dw) = dims2(weight, "linear_cross_entropy's weight")?;
    if dw != d || d == 0 || v == 0 {
        return Err(Error::shape(format!(
            "linear_cross_entropy: x {:?} and weight {:?} must share a non-zero feature \
             dimension, with at least one class",
            x.shape(),
            weight.shape()
        )));
    }
    targets.expect_dtype(DType::I32)?;
    if targets.shape() != [n] {
        return Err(Error::shape(format!(
            "Expected input batch_size ({n}) to match target batch_size ({}).",
            targets.shape().first().copied().unwrap_or(0)
        )));
    }
    if let Some(bias) = opts.bias {
        expect_len(bias, v, "linear_cross_entropy's bias")?;
    }
    check_options(&opts.loss, Targets::Classes(targets), v)?;
    Ok(Dims { n, d, v })
}

fn check_grads(grads: &LinearCrossEntropyGrads, dims: Dims, has_bias: bool) -> Result<()> {
    let Dims { n, d, v } = dims;
    let dx = grads.dx.map(|dx| (dx, [n, d], "dx"));
    for (t, shape, what) in dx.into_iter().chain([(grads.dweight, [v, d], "dweight")]) {
        t.expect_dtype(DType::F32)?;
        if t.shape() != shape {
            return Err(Error::shape(format!(
                "linear_cross_entropy's {what} must be {shape:?}, got {:?}",
                t.shape()
            )));
        }
    }
    match (grads.dbias, has_bias) {
        (Some(db), true) => expect_len(db, v, "linear_cross_entropy's dbias"),
        (None, false) => Ok(()),
        _ => Err(Error::invalid(
            "linear_cross_entropy: give dbias exactly when a bias is given",
        )),
    }
}

/// Classes per chunk: the caller's choice (checked), or the largest multiple of
/// [`CHUNK_ALIGN`] whose N × chunk scratch fits the budget and the device's limits.
fn chunk_classes(gpu: &Gpu, dims: Dims, asked: Option<usize>) -> Result<usize> {
    let Dims { n, v, .. } = dims;
    let limits = gpu.limits();
    let max_bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let row_bytes = 4 * n.max(1) as u64;
    let chunk = match asked {
        Some(c) if c == 0 || !c.is_multiple_of(CHUNK_ALIGN) => {
            return Err(Error::invalid(format!(
                "linear_cross_entropy: chunk_classes must be a positive multiple of \
                 {CHUNK_ALIGN}, got {c}"
            )))
        }
        Some(c) => c,
        None => {
            let fit = (DEFAULT_SCRATCH_BYTES.min(max_bytes) / row_bytes) as usize;
            (fit / CHUNK_ALIGN * CHUNK_ALIGN).max(CHUNK_ALIGN)
        }
    };
    // Where an invocation walks a whole row of the chunk, `lce_stats` passes over it twice:
    // both walks must fit half the adapter's loop budget.
    let walk = match policy::row_team(gpu.profile()) {
        1 => policy::loop_budget(gpu.profile()).map(|b| b / 4 / CHUNK_ALIGN * CHUNK_ALIGN),
        _ => None,
    };
    let chunk = chunk.min(walk.unwrap_or(usize::MAX)).min(v);
    let needed = row_bytes * chunk as u64;
    if needed > max_bytes {
        return Err(Error::Limit {
            what: format!("linear_cross_entropy's logits for {n} rows × {chunk} classes"),
            needed,
            limit: "max_storage_buffer_binding_size",
            max: max_bytes,
        });
    }
    Ok(chunk)
}

/// The prepared passes of one fused loss, and the buffers they share.
pub struct LinearCrossEntropyKernel {
    /// Loss: per-row losses into [`Self::row_loss`], the reduced loss into `out[cursor[0]]`.
    pub forward: Program,
    /// Gradients, when asked for: record it once after each run of `forward`.
    pub backward: Option<Program>,
    /// Per-row losses (the result of `Reduction::None`), `[N]`.
    pub row_loss: Tensor,
    targets_check: TargetCheck,
    chunk: usize,
    scratch_bytes: u64,
}

impl LinearCrossEntropyKernel {
    /// Prepares the loss of `x·weightᵀ (+ bias)` against class `targets` (i32 `[N]`), and its
    /// gradients into `grads` when given. The reduced loss goes to `out[cursor[0]]` (`cursor`:
    /// a 1-element u32 tensor), so a training loop can keep one loss per step on the GPU. The
    /// gradients are those of the reduced loss (of the sum for `Reduction::None`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        x: &Tensor,
        weight: &Tensor,
        targets: &Tensor,
        opts: LinearCrossEntropyOptions,
        grads: Option<LinearCrossEntropyGrads>,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<Self> {
        let dims = check_inputs(x, weight, targets, &opts)?;
        if let Some(grads) = &grads {
            check_grads(grads, dims, opts.bias.is_some())?;
        }
        out.expect_dtype(DType::F32)?;
        cursor.expect_dtype(DType::U32)?;
        let chunk = chunk_classes(gpu, dims, opts.chunk_classes)?;
        let Dims { n, d, v } = dims;
        let plan = Plan {
            gpu,
            x,
            weight,
            targets,
            opts,
            dims,
            chunk,
            scratch: Tensor::zeros(gpu, &[n * chunk], DType::F32)?,
            stats: Tensor::zeros(gpu, &[n * 8], DType::F32)?,
            denom: Tensor::zeros(gpu, &[2], DType::F32)?,
        };
        let row_loss = Tensor::zeros(gpu, &[n], DType::F32)?;
        let targets_check = TargetCheck::new(gpu)?;
        let forward = plan.forward(&row_loss, targets_check.tensor(), out, cursor)?;
        let mut scratch_bytes = 4 * (plan.scratch.len() + plan.stats.len() + n + 4) as u64;
        let backward = match grads {
            None => None,
            Some(grads) => {
                // dx's share from each chunk after the first goes here, then into dx.
                let share = (v > chunk && grads.dx.is_some())
                    .then(|| Tensor::zeros(gpu, &[n, d], DType::F32))
                    .transpose()?;
                scratch_bytes += share.as_ref().map_or(0, |s| 4 * s.len() as u64);
                Some(plan.backward(&grads, share.as_ref())?)
            }
        };
        Ok(LinearCrossEntropyKernel {
            forward,
            backward,
            row_loss,
            targets_check,
            chunk,
            scratch_bytes,
        })
    }

    /// Classes per chunk.
    pub fn chunk_classes(&self) -> usize {
        self.chunk
    }

    /// Bytes of the tensors this kernel allocated for its own use (logits scratch, dx's
    /// shares, per-row statistics and losses, denominators, the target check): N × chunk +
    /// N × D (with more than one chunk) + 9·N + 4 floats, independent of V beyond the chunk.
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch_bytes
    }

    /// Turns a target the GPU flagged as out of range into [`Error::TargetOutOfBounds`], and
    /// clears the flag.
    pub fn check_targets(&self, gpu: &Gpu) -> Result<()> {
        self.targets_check.check(gpu)
    }
}

/// One fused loss being planned: its inputs, chunking and the buffers its passes share.
struct Plan<'a> {
    gpu: &'a Gpu,
    x: &'a Tensor,
    weight: &'a Tensor,
    targets: &'a Tensor,
    opts: LinearCrossEntropyOptions<'a>,
    dims: Dims,
    chunk: usize,
    /// One chunk's logits, N × chunk.
    scratch: Tensor,
    /// Two vec4s per row (see the shader).
    stats: Tensor,
    /// [mean's denominator, Σ class weights].
    denom: Tensor,
}

impl Plan<'_> {
    /// (first class, classes) of every chunk, in order.
    fn chunks(&self) -> Vec<(usize, usize)> {
        let v = self.dims.v;
        (0..v)
            .step_by(self.chunk)
            .map(|first| (first, self.chunk.min(v - first)))
            .collect()
    }

    /// The class weights' binding (the weight itself stands in when there are none).
    fn class_weight(&self) -> &Tensor {
        self.opts.loss.weight.unwrap_or(self.weight)
    }

    fn params(&self, first: usize, width: usize) -> Result<Params> {
        let loss = &self.opts.loss;
        Ok(Params {
            rows: u32_param(self.dims.n, "rows")?,
            classes: u32_param(self.dims.v, "classes")?,
            first: u32_param(first, "class")?,
            width: u32_param(width, "chunk")?,
            ignore_index: loss.ignore_index,
            reduction: loss.reduction as u32,
            flags: if loss.weight.is_some() { HAS_WEIGHT } else { 0 },
            smoothing: loss.label_smoothing,
        })
    }

    /// The matmul of one chunk's logits into the scratch, the scratch's view, and the chunk's
    /// rows of W.
    fn logits(&self, first: usize, width: usize) -> Result<(Dispatch, Tensor, Tensor)> {
        let Dims { n, d, .. } = self.dims;
        let z = self.scratch.view(0, &[n, width])?;
        let w = self.weight.view(first * d, &[width, d])?;
        let b = (self.opts.bias)
            .map(|b| b.view(first, &[width]))
            .transpose()?;
        let matmul = MatmulOptions {
            trans_b: true,
            bias: b.as_ref(),
            ..Default::default()
        };
        Ok((matmul_dispatch(self.gpu, self.x, &w, &z, matmul)?, z, w))
    }

    /// Per chunk its logits and `lce_stats`, then `lce_loss`.
    fn forward(
        &self,
        row_loss: &Tensor,
        fault: &Tensor,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<Program> {
        let (gpu, n, v) = (self.gpu, self.dims.n, self.dims.v);
        let team = policy::row_team(gpu.profile());
        let mut forward = Program::new();
        for (first, width) in self.chunks() {
            forward.push(self.logits(first, width)?.0);
            forward.push(Dispatch::specialized(
                gpu,
                SHADER,
                "lce_stats",
                &[("TEAM", f64::from(team))],
                &self.params(first, width)?,
                &[
                    (1, self.targets),
                    (2, self.class_weight()),
                    (3, &self.scratch),
                    (4, &self.stats),
                ],
                (n * team as usize).div_ceil(64) as u64,
            )?);
        }
        let serial = if n.max(v) <= SERIAL { 1.0 } else { 256.0 };
        forward.push(Dispatch::specialized(
            gpu,
            SHADER,
            "lce_loss",
            &[("WG", serial)],
            &self.params(0, self.chunk)?,
            &[
                (1, self.targets),
                (2, self.class_weight()),
                (4, &self.stats),
                (5, fault),
                (6, &self.denom),
                (7, row_loss),
                (8, cursor),
                (9, out),
            ],
            1,
        )?);
        Ok(forward)
    }

    /// Per chunk, last first: its logits again (but for the last, still in the scratch),
    /// `lce_grad` in place, then db, dW's rows and dx's share.
    fn backward(&self, grads: &LinearCrossEntropyGrads, share: Option<&Tensor>) -> Result<Program> {
        let (gpu, n, d) = (self.gpu, self.dims.n, self.dims.d);
        let mut backward = Program::new();
        for (i, (first, width)) in self.chunks().into_iter().rev().enumerate() {
            let (recompute, z, w) = self.logits(first, width)?;
            if i > 0 {
                backward.push(recompute);
            }
            backward.push(Dispatch::new(
                gpu,
                SHADER,
                "lce_grad",
                &self.params(first, width)?,
                &[
                    (1, self.targets),
                    (2, self.class_weight()),
                    (3, &self.scratch),
                    (4, &self.stats),
                    (6, &self.denom),
                ],
                (n * width).div_ceil(256) as u64,
            )?);
            let dw = grads.dweight.view(first * d, &[width, d])?;
            let mut trans_a = MatmulOptions {
                trans_a: true,
                ..Default::default()
            };
            // db's share: z's column sums, beside dW's where the product's layout writes them.
            let db = grads.dbias.map(|db| db.view(first, &[width])).transpose()?;
            if let Some(db) = &db {
                if !fuse_row_sums(gpu, &z, self.x, &mut trans_a, db)? {
                    backward.push(column_sum_dispatch(gpu, &z, db)?);
                }
            }
            backward.push(matmul_dispatch(gpu, &z, self.x, &dw, trans_a)?);
            let Some(dx) = grads.dx else {
                continue;
            };
            match share.filter(|_| i > 0) {
                None => backward.push(matmul_dispatch(gpu, &z, &w, dx, Default::default())?),
                Some(share) => {
                    backward.push(matmul_dispatch(gpu, &z, &w, share, Default::default())?);
                    backward.push(Dispatch::new(
                        gpu,
                        SHADER,
                        "lce_accumulate",
                        &(),
                        &[(10, dx), (11, share)],
                        (n * d).div_ceil(256) as u64,
                    )?);
                }
            }
        }
        Ok(backward)
    }
}

/// What [`linear_cross_entropy`] returns.
#[derive(Debug)]
pub struct LinearCrossEntropyOutput {
    /// The reduced loss, shape `[]`; for `Reduction::None`, one loss per row, `[N]`.
    pub loss: Tensor,
    /// d(loss)/dx `[N, D]`, when gradients were asked for.
    pub dx: Option<Tensor>,
    /// d(loss)/dW `[V, D]`, when gradients were asked for.
    pub dweight: Option<Tensor>,
    /// d(loss)/db `[V]`, when gradients were asked for and a bias was given.
    pub dbias: Option<Tensor>,
}

/// `cross_entropy(x·weightᵀ + bias, targets)` in one call (allocates): the loss and, when
/// `gradients`, d(loss)/dx, d(loss)/dW and d(loss)/db. A target out of range is an error.
pub fn linear_cross_entropy(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    opts: LinearCrossEntropyOptions,
    gradients: bool,
) -> Result<LinearCrossEntropyOutput> {
    let Dims { n, d, v } = check_inputs(x, weight, targets, &opts)?;
    let zeros = |shape: &[usize]| Tensor::zeros(gpu, shape, DType::F32);
    let (dx, dweight, dbias) = if gradients {
        let dbias = opts.bias.map(|_| zeros(&[v])).transpose()?;
        (Some(zeros(&[n, d])?), Some(zeros(&[v, d])?), dbias)
    } else {
        (None, None, None)
    };
    let grads = match (&dx, &dweight) {
        (Some(dx), Some(dweight)) => Some(LinearCrossEntropyGrads {
            dx: Some(dx),
            dweight,
            dbias: dbias.as_ref(),
        }),
        _ => None,
    };
    let out = zeros(&[])?;
    let cursor = Tensor::zeros(gpu, &[1], DType::U32)?;
    let kernel =
        LinearCrossEntropyKernel::new(gpu, x, weight, targets, opts, grads, &out, &cursor)?;
    let mut program = kernel.forward.clone();
    if let Some(backward) = &kernel.backward {
        program.append(backward.clone());
    }
    program.run(gpu)?;
    kernel.check_targets(gpu)?;
    let loss = match opts.loss.reduction {
        Reduction::None => kernel.row_loss.clone(),
        _ => out,
    };
    Ok(LinearCrossEntropyOutput {
        loss,
        dx,
        dweight,
        dbias,
    })
}
