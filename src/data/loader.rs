//! A dataset split resident on the GPU, and the batches gathered from it.

use super::Split;
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::kernels::counter::{advance_dispatch, Advance};
use crate::kernels::data::{gather_dispatch, pack_bytes, BatchLayout, GatherSource};

/// A split uploaded once as packed bytes, with the permutation and batch cursor that
/// [`GpuSplit::gather`] reads.
pub struct GpuSplit {
    pixels: Tensor,
    labels: Tensor,
    order: Tensor,
    cursor: Tensor,
    len: usize,
    features: usize,
}

impl GpuSplit {
    /// Uploads `split`; the order starts as 0, 1, 2, ….
    pub fn upload(gpu: &Gpu, split: &Split) -> Result<Self> {
        let words = pack_bytes(&split.images);
        let labels: Vec<i32> = split.labels.iter().map(|&l| i32::from(l)).collect();
        let order: Vec<u32> = (0..split.len() as u32).collect();
        Ok(GpuSplit {
            pixels: Tensor::from_slice(gpu, &words, &[words.len()])?,
            labels: Tensor::from_slice(gpu, &labels, &[labels.len()])?,
            order: Tensor::from_slice(gpu, &order, &[order.len()])?,
            cursor: Tensor::zeros(gpu, &[1], DType::U32)?,
            len: split.len(),
            features: split.features,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Starts a pass: batch 0 next, samples in `order` (`len` indices below `len`, usually a
    /// permutation). Queued: lands before the next submit.
    pub fn start_pass(&self, gpu: &Gpu, order: &[u32]) -> Result<()> {
        if let Some(bad) = order.iter().find(|&&i| i as usize >= self.len) {
            return Err(Error::invalid(format!(
                "sample index {bad} in the order is past the {} samples",
                self.len
            )));
        }
        self.order.write(gpu, order)?;
        self.cursor.write(gpu, &[0u32])
    }

    /// A prepared gather of the batch at the cursor into `x` (f32, scaled as byte · scale +
    /// shift, laid out as the layout says) and `y` (rows, i32), which then does what `advance`
    /// says (see [`gather_dispatch`]). Batches are `stride` samples apart.
    pub fn gather(
        &self,
        gpu: &Gpu,
        (x, y): ((&Tensor, BatchLayout), &Tensor),
        stride: usize,
        norm: (f32, f32),
        advance: Option<Advance>,
    ) -> Result<Dispatch> {
        let src = GatherSource {
            pixels: &self.pixels,
            labels: &self.labels,
            features: self.features,
            order: &self.order,
            cursor: &self.cursor,
            stride,
        };
        gather_dispatch(gpu, &src, x, y, norm, advance)
    }

    /// A prepared step of the cursor to the next batch.
    pub fn next_batch(&self, gpu: &Gpu) -> Result<Dispatch> {
        advance_dispatch(gpu, Advance::of(&self.cursor))
    }

    /// The 1-element u32 batch cursor (also where per-batch results are indexed).
    pub fn cursor(&self) -> &Tensor {
        &self.cursor
    }
}
