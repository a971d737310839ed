//! `shaders/data.wgsl`: batch gather from a GPU-resident u8 dataset, and step counters.

use super::u32_param;
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The data shader.
pub const SHADER: Shader = Shader {
    name: "data.wgsl",
    source: include_str!("../../shaders/data.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    features: u32,
    stride: u32,
    scale: f32,
    shift: f32,
}

/// Where a gather reads from: the dataset, already on the GPU.
pub struct GatherSource<'a> {
    /// Samples × features bytes, packed four to a u32 (little-endian).
    pub pixels: &'a Tensor,
    /// One i32 label per sample.
    pub labels: &'a Tensor,
    /// Bytes per sample.
    pub features: usize,
    /// A permutation of sample indices (u32).
    pub order: &'a Tensor,
    /// 1-element u32: the batch index b; the batch reads `order[b·stride ..]`.
    pub cursor: &'a Tensor,
    /// Samples per full batch.
    pub stride: usize,
}

/// A prepared gather of `x.rows` samples: x = byte · scale + shift, y = label.
pub fn gather_dispatch(
    gpu: &Gpu,
    src: &GatherSource,
    x: &Tensor,
    y: &Tensor,
    scale: f32,
    shift: f32,
) -> Result<Dispatch> {
    x.expect_dtype(DType::F32)?;
    y.expect_dtype(DType::I32)?;
    src.pixels.expect_dtype(DType::U32)?;
    src.labels.expect_dtype(DType::I32)?;
    src.order.expect_dtype(DType::U32)?;
    src.cursor.expect_dtype(DType::U32)?;
    let rows = y.len();
    if x.len() != rows * src.features || rows > src.stride {
        return Err(Error::shape(format!(
            "gather: x {:?} and y {:?} do not hold {rows} rows of {} features within a stride of {}",
            x.shape(),
            y.shape(),
            src.features,
            src.stride
        )));
    }
    let params = Params {
        rows: u32_param(rows, "rows")?,
        features: u32_param(src.features, "features")?,
        stride: u32_param(src.stride, "stride")?,
        scale,
        shift,
    };
    // Whole words per row: one invocation per word, or per four when rows hold whole quads.
    let quads = src.features.is_multiple_of(16);
    let (entry, per_invocation) = match (src.features.is_multiple_of(4), quads) {
        (_, true) => ("gather_words", 16),
        (true, false) => ("gather_words", 4),
        (false, _) => ("gather", 1),
    };
    let mut tensors = vec![
        (1, src.cursor),
        (2, src.order),
        (3, src.pixels),
        (4, src.labels),
        (5, x),
        (6, y),
    ];
    let mut constants = vec![];
    if entry == "gather_words" {
        tensors.extend([(8, src.pixels), (9, x)]);
        constants.push(("QUADS", f64::from(u8::from(quads))));
    }
    Dispatch::specialized(
        gpu,
        SHADER,
        entry,
        &constants,
        &params,
        &tensors,
        (x.len() / per_invocation).div_ceil(256) as u64,
    )
}

/// A prepared `counter[0] += 1` on a 1-element u32 tensor.
pub fn advance_dispatch(gpu: &Gpu, counter: &Tensor) -> Result<Dispatch> {
    counter.expect_dtype(DType::U32)?;
    Dispatch::new(gpu, SHADER, "advance", &(), &[(7, counter)], 1)
}

/// Packs bytes four to a u32 word, little-endian, zero-padded: the layout `gather` reads.
pub fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}
