//! `shaders/reduce.wgsl`: column sums, row argmax, correct-prediction counts.
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::reduce::{argmax, column_sum, count_correct};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[1.0f32, 5.0, 2.0, 7.0, 3.0, 0.0], &[2, 3])?;
//! assert_eq!(column_sum(&gpu, &x)?.to_vec::<f32>(&gpu)?, [8.0, 8.0, 2.0]);
//! assert_eq!(argmax(&gpu, &x)?, [1, 0]);
//! let labels = Tensor::from_slice(&gpu, &[1i32, 2], &[2])?;
//! assert_eq!(count_correct(&gpu, &x, &labels)?, 1);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::{dims2, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The reduction shader.
pub const SHADER: Shader = Shader {
    name: "reduce.wgsl",
    source: include_str!("../../shaders/reduce.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!([SHADER], Params { rows, cols })
}

fn params(x: &Tensor, what: &str) -> Result<(Params, usize, usize)> {
    x.expect_dtype(DType::F32)?;
    let (rows, cols) = dims2(x, what)?;
    Ok((
        Params {
            rows: u32_param(rows, "rows")?,
            cols: u32_param(cols, "columns")?,
        },
        rows,
        cols,
    ))
}

/// A prepared `sums[j] = Σ_i x[i, j]` (the bias gradient of a Linear layer).
pub fn column_sum_dispatch(gpu: &Gpu, x: &Tensor, sums: &Tensor) -> Result<Dispatch> {
    let (p, _, cols) = params(x, "column_sum's input")?;
    super::expect_len(sums, cols, "column_sum's output")?;
    // Four columns per invocation where rows hold whole vec4s.
    let (entry, bindings, per_invocation) = if cols.is_multiple_of(4) {
        ("column_sum4", [(6, x), (7, sums)], 4)
    } else {
        ("column_sum", [(1, x), (2, sums)], 1)
    };
    let groups = cols.div_ceil(64 * per_invocation) as u64;
    Dispatch::new(gpu, SHADER, entry, &p, &bindings, groups)
}

/// Per-row indices of the largest value (the first one on ties) into `out` (u32, rows).
pub fn argmax_dispatch(gpu: &Gpu, x: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let (p, rows, cols) = params(x, "argmax's input")?;
    if cols == 0 {
        return Err(Error::shape("argmax of rows with no columns"));
    }
    out.expect_dtype(DType::U32)?;
    if out.len() != rows {
        return Err(Error::shape(format!(
            "argmax's output must have {rows} elements, got {:?}",
            out.shape()
        )));
    }
    let groups = rows.div_ceil(64) as u64;
    Dispatch::new(gpu, SHADER, "argmax", &p, &[(1, x), (3, out)], groups)
}

/// A prepared `correct[0] += #{i : argmax(x[i]) == targets[i]}`; `correct` is a 1-element u32
/// tensor the caller zeroes when it starts counting.
pub fn count_correct_dispatch(
    gpu: &Gpu,
    x: &Tensor,
    targets: &Tensor,
    correct: &Tensor,
) -> Result<Dispatch> {
    let (p, rows, cols) = params(x, "count_correct's logits")?;
    if cols == 0 {
        return Err(Error::shape("count_correct of rows with no columns"));
    }
    targets.expect_dtype(DType::I32)?;
    correct.expect_dtype(DType::U32)?;
    if targets.len() != rows || correct.len() != 1 {
        return Err(Error::shape(format!(
            "count_correct: {rows} rows need {rows} targets and a 1-element counter, got {:?} and {:?}",
            targets.shape(),
            correct.shape()
        )));
    }
    let groups = rows.div_ceil(64) as u64;
    Dispatch::new(
        gpu,
        SHADER,
        "count_correct",
        &p,
        &[(1, x), (4, targets), (5, correct)],
        groups,
    )
}

/// Column sums of x into a new tensor.
pub fn column_sum(gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
    let (_, _, cols) = params(x, "column_sum's input")?;
    let sums = Tensor::zeros(gpu, &[cols], DType::F32)?;
    column_sum_dispatch(gpu, x, &sums)?.run(gpu)?;
    Ok(sums)
}

/// Row-wise argmax of x.
pub fn argmax(gpu: &Gpu, x: &Tensor) -> Result<Vec<u32>> {
    let (_, rows, _) = params(x, "argmax's input")?;
    let out = Tensor::zeros(gpu, &[rows], DType::U32)?;
    argmax_dispatch(gpu, x, &out)?.run(gpu)?;
    out.to_vec(gpu)
}

/// How many rows of x have their argmax equal to the target.
pub fn count_correct(gpu: &Gpu, x: &Tensor, targets: &Tensor) -> Result<u32> {
    let correct = Tensor::zeros(gpu, &[1], DType::U32)?;
    count_correct_dispatch(gpu, x, targets, &correct)?.run(gpu)?;
    Ok(correct.to_vec::<u32>(gpu)?[0])
}
