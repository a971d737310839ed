//! `shaders/counter.wgsl`: step counters kept on the GPU (batch cursors, optimizer steps).
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Program, Tensor};
//! use wgml::kernels::counter::advance_dispatch;
//!
//! let gpu = Gpu::from_env()?;
//! let counter = Tensor::zeros(&gpu, &[1], DType::U32)?;
//! Program::from(advance_dispatch(&gpu, &counter)?).submit(&gpu, 3);
//! assert_eq!(counter.to_vec::<u32>(&gpu)?, [3]);
//! # Ok::<(), wgml::Error>(())
//! ```

use crate::error::Result;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The counter shader.
pub const SHADER: Shader = Shader {
    name: "counter.wgsl",
    source: include_str!("../../shaders/counter.wgsl"),
};

/// A prepared `counter[0] += 1` on a 1-element u32 tensor.
pub fn advance_dispatch(gpu: &Gpu, counter: &Tensor) -> Result<Dispatch> {
    counter.expect_dtype(DType::U32)?;
    super::expect_len_of(counter, 1, "a counter")?;
    Dispatch::new(gpu, SHADER, "advance", &(), &[(0, counter)], 1)
}
