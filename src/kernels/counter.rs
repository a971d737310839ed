//! `shaders/counter.wgsl`: step counters kept on the GPU (batch cursors, optimizer steps).
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Program, Tensor};
//! use wgml::kernels::counter::advance_dispatch;
//!
//! let gpu = Gpu::from_env()?;
//! let cursor = Tensor::zeros(&gpu, &[1], DType::U32)?;
//! let step = Tensor::from_slice(&gpu, &[10u32], &[1])?;
//! Program::from(advance_dispatch(&gpu, &[&cursor, &step])?).submit(&gpu, 3);
//! assert_eq!(cursor.to_vec::<u32>(&gpu)?, [3]);
//! assert_eq!(step.to_vec::<u32>(&gpu)?, [13]);
//! # Ok::<(), wgml::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The counter shader.
pub const SHADER: Shader = Shader {
    name: "counter.wgsl",
    source: include_str!("../../shaders/counter.wgsl"),
};

/// The most counters one dispatch advances.
pub const MAX_COUNTERS: usize = 4;

/// A prepared `counter[0] += 1` on each of 1 to [`MAX_COUNTERS`] distinct 1-element u32
/// tensors, in one dispatch.
pub fn advance_dispatch(gpu: &Gpu, counters: &[&Tensor]) -> Result<Dispatch> {
    let counting = counting(counters)?;
    let constants = [counting.constant];
    Dispatch::specialized(
        gpu,
        SHADER,
        "advance",
        &constants,
        &(),
        &counting.bindings,
        1,
    )
}

/// How a kernel compiled with `counter.wgsl` advances some counters.
pub(crate) struct Counting<'a> {
    /// The `COUNTERS` override.
    pub constant: (&'static str, f64),
    /// The counters' bindings.
    pub bindings: Vec<(u32, &'a Tensor)>,
}

/// The override constant and bindings by which a kernel compiled with `counter.wgsl` advances
/// `counters`, after checking them.
pub(crate) fn counting<'a>(counters: &[&'a Tensor]) -> Result<Counting<'a>> {
    let Some(&first) = counters.first().filter(|_| counters.len() <= MAX_COUNTERS) else {
        return Err(Error::invalid(format!(
            "a dispatch advances 1 to {MAX_COUNTERS} counters, got {}",
            counters.len()
        )));
    };
    for (i, counter) in counters.iter().enumerate() {
        counter.expect_dtype(DType::U32)?;
        super::expect_len_of(counter, 1, "a counter")?;
        if counters[..i]
            .iter()
            .any(|c| c.buffer() == counter.buffer() && c.offset() == counter.offset())
        {
            return Err(Error::invalid(
                "a counter appears twice: each would advance twice",
            ));
        }
    }
    let bindings = (0..MAX_COUNTERS)
        .map(|i| (12 + i as u32, *counters.get(i).unwrap_or(&first)))
        .collect();
    Ok(Counting {
        constant: ("COUNTERS", counters.len() as f64),
        bindings,
    })
}
