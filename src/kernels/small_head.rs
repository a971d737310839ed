//! `shaders/small_head.wgsl`: a classifier's last Linear layer, its mean cross-entropy and both
//! backward passes in one dispatch, for few rows and classes (a training step of the MNIST
//! tutorial's 64 × 10 head: one dispatch where the unfused path takes five). CPU adapters with
//! 8-lane subgroups and 64-bit integers take `small_head_lanes.wgsl` instead, one subgroup
//! holding up to 64 rows × 16 classes in registers ([`policy::small_head_lanes`]).
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Tensor};
//! use wgml::kernels::cross_entropy::CrossEntropyOptions;
//! use wgml::kernels::small_head::{SmallHeadGrads, SmallHeadKernel};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[1.0f32, 2.0, 0.5, -1.0], &[2, 2])?; // rows × features
//! let w = Tensor::from_slice(&gpu, &[0.1f32, 0.2, -0.3, 0.4, 0.0, 0.5], &[3, 2])?; // [classes, features]
//! let b = Tensor::zeros(&gpu, &[3], DType::F32)?;
//! let y = Tensor::from_slice(&gpu, &[2i32, 0], &[2])?;
//! let (dw, db) = (Tensor::zeros(&gpu, &[3, 2], DType::F32)?, Tensor::zeros(&gpu, &[3], DType::F32)?);
//! let (loss, cursor) = (Tensor::zeros(&gpu, &[1], DType::F32)?, Tensor::zeros(&gpu, &[1], DType::U32)?);
//! let grads = SmallHeadGrads { dx: None, gate: false, dweight: &dw, dbias: &db };
//! let head = SmallHeadKernel::new(&gpu, (&x, &w, &b), &y, &CrossEntropyOptions::default(), grads, &loss, &cursor)?;
//! head.run(&gpu)?;
//! assert!((loss.to_vec::<f32>(&gpu)?[0] - 0.829_688_8).abs() < 1e-6); // F.cross_entropy(x @ w.T + b, y)
//! # Ok::<(), wgml::Error>(())
//! ```

use super::cross_entropy::{check_options, CrossEntropyOptions, Reduction, Targets};
use super::{dims2, expect_len, policy, u32_param, TargetCheck};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Profile, Shader, Tensor};

/// The shader.
pub const SHADER: Shader = Shader {
    name: "small_head.wgsl",
    source: include_str!("../../shaders/small_head.wgsl"),
};

/// The head in one 8-lane subgroup with 32-byte accesses (`small_head_lanes.wgsl` after
/// `small_head.wgsl` and `int64.wgsl`), for CPU adapters; [`policy::small_head_lanes`] says
/// where it applies.
pub const LANES_SHADER: Shader = Shader {
    name: "small_head_lanes.wgsl",
    source: concat!(
        include_str!("../../shaders/small_head.wgsl"),
        include_str!("../../shaders/int64.wgsl"),
        include_str!("../../shaders/small_head_lanes.wgsl"),
    ),
};

/// rows × classes the workgroup holds (the shader's `HELD`).
pub const HELD: usize = 3840;

/// Storage buffers the shader binds: more than WebGPU's default of 8.
pub const STORAGE_BUFFERS: u32 = 10;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    features: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
}

/// The uniform block of this module's shader, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER, LANES_SHADER],
        Params {
            rows,
            features,
            classes,
            ignore_index,
            smoothing
        }
    )
}

/// Invocations of the workgroup on this adapter: one 8-lane subgroup on a CPU adapter; on a GPU,
/// where one workgroup does all the work, as many as the device allows up to 1024 (the more
/// invocations, the more loads in flight).
fn workgroup(profile: &Profile) -> usize {
    if profile.cpu {
        8
    } else {
        profile.workgroup_invocations.clamp(64, 1024) as usize
    }
}

/// Invocations that take the loss's rows (the shader's `LOSS_WG`).
const LOSS_WORKGROUP: usize = 64;

/// Whether `gpu` runs the small head at all: it binds [`STORAGE_BUFFERS`] storage buffers.
pub fn supported(gpu: &Gpu) -> bool {
    gpu.limits().max_storage_buffers_per_shader_stage >= STORAGE_BUFFERS
}

/// Whether one workgroup of this adapter computes a head of `rows` × `features` → `classes`:
/// the one-subgroup variant applies ([`policy::small_head_lanes`]), or the logits fit its
/// memory ([`HELD`]) and each invocation's loops the adapter's loop budget.
pub fn fits(profile: &Profile, rows: usize, features: usize, classes: usize) -> bool {
    if policy::small_head_lanes(profile, rows, features, classes) {
        return true;
    }
    let wg = workgroup(profile);
    let logits = rows.saturating_mul(classes);
    let share = |elements: usize, each: usize| elements.div_ceil(wg).saturating_mul(each);
    // An invocation's iterations: its logits, its rows' losses, dz's scaling, then its share of
    // dx, dW and db.
    let loops = [
        share(logits, features),
        rows.div_ceil(wg.min(LOSS_WORKGROUP))
            .saturating_mul(classes.saturating_mul(4)),
        share(logits, 1),
        share(rows.saturating_mul(features), classes),
        share(classes.saturating_mul(features), rows),
        share(classes, rows),
    ]
    .into_iter()
    .fold(0, usize::saturating_add);
    let budget = policy::loop_budget(profile).unwrap_or(usize::MAX);
    rows > 0
        && classes > 0
        && features > 0
        && rows.saturating_mul(classes) <= HELD
        && loops <= budget
}

/// Where the head's backward pass writes.
#[derive(Clone, Copy)]
pub struct SmallHeadGrads<'a> {
    /// d(loss)/dx, `[rows, features]`; `None` when nothing needs it.
    pub dx: Option<&'a Tensor>,
    /// x is a ReLU's output: zero dx where x is ≤ 0 (that ReLU's backward, fused).
    pub gate: bool,
    /// d(loss)/d(weight), `[classes, features]`.
    pub dweight: &'a Tensor,
    /// d(loss)/d(bias), `[classes]`.
    pub dbias: &'a Tensor,
}

/// The head prepared once: one dispatch to record every step, and its target check.
pub struct SmallHeadKernel {
    /// The dispatch.
    pub dispatch: Dispatch,
    targets_check: TargetCheck,
}

impl SmallHeadKernel {
    /// Loss of `x·Wᵀ + b` (x `[rows, features]`, W `[classes, features]`, b `[classes]`)
    /// against class `targets` (i32, `[rows]`) into `out[cursor[0]]`, with the gradients into
    /// `grads`. Takes the mean reduction, `ignore_index` and `label_smoothing`; class weights
    /// and other reductions are the unfused path's.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        (x, weight, bias): (&Tensor, &Tensor, &Tensor),
        targets: &Tensor,
        opts: &CrossEntropyOptions,
        grads: SmallHeadGrads,
        out: &Tensor,
        cursor: &Tensor,
    ) -> Result<Self> {
        x.expect_dtype(DType::F32)?;
        let (rows, features) = dims2(x, "the head's input")?;
        let (classes, weight_features) = dims2(weight, "the head's weight")?;
        if weight_features != features {
            return Err(Error::shape(format!(
                "small head: the weight {:?} takes {weight_features} features, the input {:?} \
                 has {features}",
                weight.shape(),
                x.shape()
            )));
        }
        check_options(opts, Targets::Classes(targets), classes)?;
        if opts.weight.is_some() || opts.reduction != Reduction::Mean {
            return Err(Error::invalid(
                "the small head computes the mean loss without class weights; use the \
                 unfused cross-entropy for others",
            ));
        }
        if !fits(gpu.profile(), rows, features, classes) {
            return Err(Error::invalid(format!(
                "a head of {rows} rows × {features} features → {classes} classes is too large \
                 for one workgroup (rows × classes ≤ {HELD}, within the loop budget)"
            )));
        }
        expect_len(weight, classes * features, "the head's weight")?;
        expect_len(bias, classes, "the head's bias")?;
        expect_len(grads.dweight, classes * features, "the weight gradient")?;
        expect_len(grads.dbias, classes, "the bias gradient")?;
        targets.expect_dtype(DType::I32)?;
        super::expect_len_of(targets, rows, "the targets")?;
        if let Some(dx) = grads.dx {
            expect_len(dx, rows * features, "dx")?;
        }
        if grads.gate && grads.dx.is_none() {
            return Err(Error::invalid(
                "small head: a gate applies to dx, and no dx was given",
            ));
        }
        if !supported(gpu) {
            return Err(Error::Limit {
                what: "the small head's bindings".into(),
                needed: u64::from(STORAGE_BUFFERS),
                limit: "max_storage_buffers_per_shader_stage",
                max: u64::from(gpu.limits().max_storage_buffers_per_shader_stage),
            });
        }
        out.expect_dtype(DType::F32)?;
        cursor.expect_dtype(DType::U32)?;
        let targets_check = TargetCheck::new(gpu)?;
        let params = Params {
            rows: u32_param(rows, "rows")?,
            features: u32_param(features, "features")?,
            classes: u32_param(classes, "classes")?,
            ignore_index: opts.ignore_index,
            smoothing: opts.label_smoothing,
        };
        let flag = |on: bool| f64::from(u8::from(on));
        // The layout, and the override that sizes it: the classes held in registers, or the
        // workgroup's invocations.
        let wg = ("WG", workgroup(gpu.profile()) as f64);
        let (shader, entry, sizing) =
            if policy::small_head_lanes(gpu.profile(), rows, features, classes) {
                (
                    LANES_SHADER,
                    "small_head_lanes",
                    ("CLASSES", classes as f64),
                )
            } else if features.is_multiple_of(4) {
                // Four features per access where rows hold whole vec4s.
                (SHADER, "small_head4", wg)
            } else {
                (SHADER, "small_head", wg)
            };
        let constants = [
            sizing,
            ("GATE", flag(grads.gate)),
            ("DX", flag(grads.dx.is_some())),
        ];
        // Bindings nothing reads or writes get stand-ins of their access.
        let tensors = [
            (1, x),
            (2, weight),
            (3, bias),
            (4, targets),
            (6, grads.dx.unwrap_or(grads.dweight)),
            (7, grads.dweight),
            (8, grads.dbias),
            (9, cursor),
            (10, out),
            (11, targets_check.tensor()),
        ];
        let dispatch = Dispatch::specialized(gpu, shader, entry, &constants, &params, &tensors, 1)?;
        Ok(SmallHeadKernel {
            dispatch,
            targets_check,
        })
    }

    /// Turns a target flagged out of range since the last check into
    /// [`Error::TargetOutOfBounds`].
    pub fn check_targets(&self, gpu: &Gpu) -> Result<()> {
        self.targets_check.check(gpu)
    }

    /// Runs the dispatch once, waits, and checks the targets.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        self.dispatch.run(gpu)?;
        self.check_targets(gpu)
    }
}
