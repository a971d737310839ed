//! `shaders/counter.wgsl`: step counters kept on the GPU (batch cursors, optimizer steps),
//! advanced by a dispatch of their own or by one invocation of a kernel that reads none of
//! them, which saves the step a dispatch.
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Program, Tensor};
//! use wgml::kernels::counter::{advance_dispatch, Advance};
//!
//! let gpu = Gpu::from_env()?;
//! let cursor = Tensor::from_slice(&gpu, &[10u32], &[1])?;
//! Program::from(advance_dispatch(&gpu, Advance::of(&cursor))?).submit(&gpu, 3);
//! assert_eq!(cursor.to_vec::<u32>(&gpu)?, [13]);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::optim::FACTORS;
use crate::error::Result;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The counter shader.
pub const SHADER: Shader = Shader {
    name: "counter.wgsl",
    source: include_str!("../../shaders/counter.wgsl"),
};

/// A counter that a dispatch advances by one, and with `adam_factors` the factors of the Adam
/// step it counts, formed after it advances. Nothing else in that dispatch may read them.
#[derive(Clone, Copy, Debug)]
pub struct Advance<'a> {
    /// A 1-element u32 tensor.
    pub counter: &'a Tensor,
    /// An Adam optimizer's factors ([`crate::kernels::optim::OptimState::factors`]), when the
    /// counter is its step count.
    pub adam_factors: Option<&'a Tensor>,
}

impl<'a> Advance<'a> {
    /// Advances `counter`, nothing more.
    pub fn of(counter: &'a Tensor) -> Self {
        Advance {
            counter,
            adam_factors: None,
        }
    }
}

/// A prepared dispatch of `advance` on its own.
pub fn advance_dispatch(gpu: &Gpu, advance: Advance) -> Result<Dispatch> {
    let counting = counting(gpu, Some(advance))?;
    Dispatch::specialized(
        gpu,
        SHADER,
        "advance",
        &counting.constants,
        &(),
        &counting.bindings,
        1,
    )
}

/// How a kernel compiled with `counter.wgsl` does what an [`Advance`] says, or nothing.
pub(crate) struct Counting<'a> {
    /// The `COUNTING` and `ADAM_FACTORS` overrides.
    pub constants: [(&'static str, f64); 2],
    /// The bindings of `counter.wgsl`'s two places.
    pub bindings: [(u32, &'a Tensor); 2],
}

/// The override constants and bindings by which a kernel compiled with `counter.wgsl` does what
/// `advance` says, after checking it; the places it leaves unused hold [`Gpu::spare`].
pub(crate) fn counting<'a>(gpu: &'a Gpu, advance: Option<Advance<'a>>) -> Result<Counting<'a>> {
    if let Some(advance) = advance {
        advance.counter.expect_dtype(DType::U32)?;
        super::expect_len_of(advance.counter, 1, "a counter")?;
        if let Some(factors) = advance.adam_factors {
            super::expect_len(factors, FACTORS, "Adam's factors")?;
        }
    }
    let spare = gpu.spare()?;
    let counter = advance.map_or(spare, |a| a.counter);
    let adam_factors = advance.and_then(|a| a.adam_factors);
    let flag = |on: bool| f64::from(u8::from(on));
    Ok(Counting {
        constants: [
            ("COUNTING", flag(advance.is_some())),
            ("ADAM_FACTORS", flag(adam_factors.is_some())),
        ],
        bindings: [(11, adam_factors.unwrap_or(spare)), (12, counter)],
    })
}
