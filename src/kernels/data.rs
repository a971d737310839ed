//! `shaders/data.wgsl`: batch gather from a GPU-resident u8 dataset.
//!
//! ```
//! use wgml::gpu::{DType, Gpu, Tensor};
//! use wgml::kernels::data::{gather_dispatch, pack_bytes, BatchLayout, GatherSource};
//!
//! let gpu = Gpu::from_env()?;
//! // Three samples of four bytes, labels 7, 8, 9; gather samples 2 and 0 as f32 / 255.
//! let bytes: Vec<u8> = (0..12).map(|i| i * 20).collect();
//! let words = pack_bytes(&bytes);
//! let pixels = Tensor::from_slice(&gpu, &words, &[words.len()])?;
//! let labels = Tensor::from_slice(&gpu, &[7i32, 8, 9], &[3])?;
//! let order = Tensor::from_slice(&gpu, &[2u32, 0, 1], &[3])?;
//! let cursor = Tensor::zeros(&gpu, &[1], DType::U32)?;
//! let src = GatherSource { pixels: &pixels, labels: &labels, features: 4, order: &order, cursor: &cursor, stride: 2 };
//! let (x, y) = (Tensor::zeros(&gpu, &[2, 4], DType::F32)?, Tensor::zeros(&gpu, &[2], DType::I32)?);
//! let norm = (1.0 / 255.0, 0.0);
//! gather_dispatch(&gpu, &src, (&x, BatchLayout::Rows), &y, norm, None)?.run(&gpu)?;
//! assert_eq!(y.to_vec::<i32>(&gpu)?, [9, 7]);
//! assert_eq!(x.to_vec::<f32>(&gpu)?[0], 160.0 / 255.0);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::counter::{counting, Advance};
use super::u32_param;
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The data shader.
pub const SHADER: Shader = Shader {
    name: "data.wgsl",
    source: concat!(
        include_str!("../../shaders/data.wgsl"),
        include_str!("../../shaders/counter.wgsl"),
    ),
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

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER],
        Params {
            rows,
            features,
            stride,
            scale,
            shift
        }
    )
}

/// How a batch of samples lies in a 2-D tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchLayout {
    /// `[rows, features]`: each sample contiguous, as PyTorch holds a batch.
    #[default]
    Rows,
    /// `[features, rows]`: each feature contiguous across the batch. A first Linear layer then
    /// reads its input along the batch in its weight gradient, which CPU adapters load eight
    /// at a time.
    Columns,
}

impl BatchLayout {
    /// The shape of `rows` samples of `features` each in this layout.
    pub fn shape(self, rows: usize, features: usize) -> [usize; 2] {
        match self {
            BatchLayout::Rows => [rows, features],
            BatchLayout::Columns => [features, rows],
        }
    }
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

/// A prepared gather of `y.len()` samples into `x`, laid out as `layout` says: x = byte · scale +
/// shift, y = label; one invocation also does what `advance` says (a training step's first
/// kernel advancing its optimizer's step count), which must not be the cursor.
pub fn gather_dispatch(
    gpu: &Gpu,
    src: &GatherSource,
    (x, layout): (&Tensor, BatchLayout),
    y: &Tensor,
    (scale, shift): (f32, f32),
    advance: Option<Advance>,
) -> Result<Dispatch> {
    x.expect_dtype(DType::F32)?;
    y.expect_dtype(DType::I32)?;
    src.pixels.expect_dtype(DType::U32)?;
    src.labels.expect_dtype(DType::I32)?;
    src.order.expect_dtype(DType::U32)?;
    src.cursor.expect_dtype(DType::U32)?;
    let rows = y.len();
    if x.shape() != layout.shape(rows, src.features) || rows > src.stride {
        return Err(Error::shape(format!(
            "gather: x {:?} ({layout:?}) and y {:?} do not hold {rows} rows of {} features \
             within a stride of {}",
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
    // Whole words per row: one invocation per word, or per four when rows hold whole quads;
    // feature-major, four rows of four words each, when the batch holds whole 4-row groups.
    // (Entry points that bind the pixels or x as vec4s need each to hold one.)
    let quads = src.features.is_multiple_of(16);
    let columns = layout == BatchLayout::Columns;
    let words = src.features.is_multiple_of(4) && src.pixels.len() >= 4 && x.len() >= 4;
    let (entry, per_invocation) = match (words, quads, columns) {
        (_, true, true) if rows.is_multiple_of(4) => ("gather_columns", 64),
        (_, _, true) | (false, _, false) => ("gather", 1),
        (true, true, false) => ("gather_quads", 16),
        (true, false, false) => ("gather_words", 4),
    };
    if advance.is_some_and(|a| a.counter.same_start(src.cursor)) {
        return Err(Error::invalid(
            "a gather reads its cursor throughout: it cannot advance it",
        ));
    }
    let counting = counting(gpu, advance)?;
    let mut tensors = vec![(1, src.cursor), (2, src.order), (4, src.labels), (6, y)];
    tensors.extend(counting.bindings);
    let mut constants = counting.constants.to_vec();
    match entry {
        "gather_words" => tensors.extend([(3, src.pixels), (9, x)]),
        "gather_quads" | "gather_columns" => tensors.extend([(8, src.pixels), (9, x)]),
        _ => {
            tensors.extend([(3, src.pixels), (5, x)]);
            constants.push(("COLUMNS", f64::from(u8::from(columns))));
        }
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
