//! `Tensor`: a typed view of a GPU buffer with a shape; upload and readback.

use super::Gpu;
use crate::error::{Error, Result};
use futures_intrusive::channel::shared::OneshotReceiver;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Element type of a tensor. Every type is 4 bytes wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit signed integer (class-index targets; `ignore_index` is negative).
    I32,
    /// 32-bit unsigned integer (indices, packed bytes, counters).
    U32,
}

/// A Rust type that can live in a [`Tensor`].
pub trait Element: bytemuck::Pod {
    /// The matching [`DType`].
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
}

/// Bytes per element.
const WORD: u64 = 4;

/// A row-major view of `shape` elements of `dtype` starting `offset` bytes into a GPU buffer.
///
/// Cloning a tensor clones the view, not the data. Views of one buffer (see [`Tensor::view`]) let
/// many tensors share one allocation, such as every parameter in one flat buffer.
#[derive(Clone, Debug)]
pub struct Tensor {
    buffer: wgpu::Buffer,
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

impl Tensor {
    /// A new zero-filled tensor.
    pub fn zeros(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Self> {
        let bytes = shape
            .iter()
            .try_fold(WORD, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX)
            .max(WORD);
        let max = gpu.limits().max_buffer_size;
        if bytes > max {
            return Err(Error::Limit {
                what: format!("a tensor of shape {shape:?}"),
                needed: bytes,
                limit: "max_buffer_size",
                max,
            });
        }
        let buffer = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A new tensor holding `data`, which must have `shape`'s element count.
    pub fn from_slice<T: Element>(gpu: &Gpu, data: &[T], shape: &[usize]) -> Result<Self> {
        let t = Self::zeros(gpu, shape, T::DTYPE)?;
        t.write(gpu, data)?;
        Ok(t)
    }

    /// Overwrites the tensor with `data`. Queued: lands before the next submit.
    pub fn write<T: Element>(&self, gpu: &Gpu, data: &[T]) -> Result<()> {
        self.expect_dtype(T::DTYPE)?;
        if data.len() != self.len() {
            return Err(Error::shape(format!(
                "writing {} elements into a tensor of shape {:?}",
                data.len(),
                self.shape
            )));
        }
        if !data.is_empty() {
            gpu.queue()
                .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Copies the tensor to the host, waiting for the GPU.
    pub fn to_vec<T: Element>(&self, gpu: &Gpu) -> Result<Vec<T>> {
        Readback::new(gpu, self)?.read(gpu)
    }

    /// A view of `shape` elements starting `start` elements into this tensor.
    pub fn view(&self, start: usize, shape: &[usize]) -> Result<Self> {
        let len: usize = shape.iter().product();
        if start + len > self.len() {
            return Err(Error::shape(format!(
                "view of {shape:?} at {start} exceeds a tensor of shape {:?}",
                self.shape
            )));
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset + start as u64 * WORD,
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// The first `rows` rows (along the first dimension) of this tensor.
    pub fn rows(&self, rows: usize) -> Result<Self> {
        let mut shape = self.shape.clone();
        match shape.first_mut() {
            Some(first) if rows <= *first => *first = rows,
            _ => {
                return Err(Error::shape(format!(
                    "{rows} rows of a tensor of shape {:?}",
                    self.shape
                )))
            }
        }
        self.view(0, &shape)
    }

    /// The same data seen with another shape of equal element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        self.view(0, shape)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Byte offset of the view into [`Tensor::buffer`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether `other` starts at the same place of the same buffer.
    pub fn same_start(&self, other: &Tensor) -> bool {
        self.buffer == other.buffer && self.offset == other.offset
    }

    /// The binding of this view (at least one element wide, as bindings cannot be empty).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new((self.len() as u64 * WORD).max(WORD)),
        })
    }

    /// An error unless the tensor holds `dtype`.
    pub fn expect_dtype(&self, dtype: DType) -> Result<()> {
        if self.dtype == dtype {
            Ok(())
        } else {
            Err(Error::shape(format!(
                "expected a {dtype:?} tensor, got {:?} of shape {:?}",
                self.dtype, self.shape
            )))
        }
    }
}

/// A tensor's staging buffer, kept for repeated reads so that reading allocates nothing.
///
/// A read is a copy queued behind all work submitted so far; [`Readback::begin`] queues it and
/// returns at once, [`Readback::is_ready`] says whether it has landed, [`Readback::finish`]
/// collects it (waiting if needed). [`Readback::read`] does all three.
pub struct Readback<T> {
    source: Tensor,
    staging: wgpu::Buffer,
    in_flight: Mutex<Option<InFlight>>,
    _element: std::marker::PhantomData<T>,
}

struct InFlight {
    arrived: Arc<AtomicBool>,
    receiver: OneshotReceiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

impl<T: Element> Readback<T> {
    /// Allocates the staging buffer for reading `tensor`.
    pub fn new(gpu: &Gpu, tensor: &Tensor) -> Result<Self> {
        tensor.expect_dtype(T::DTYPE)?;
        let staging = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (tensor.len() as u64 * WORD).max(WORD),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Readback {
            source: tensor.clone(),
            staging,
            in_flight: Mutex::new(None),
            _element: std::marker::PhantomData,
        })
    }

    fn bytes(&self) -> u64 {
        (self.source.len() as u64 * WORD).max(WORD)
    }

    /// Queues a copy of the tensor as it will be once all work submitted so far has run, and
    /// returns without waiting. A read already in flight is left to finish first.
    pub fn begin(&self, gpu: &Gpu) {
        let mut slot = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        let mut encoder = gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        if !self.source.is_empty() {
            encoder.copy_buffer_to_buffer(
                &self.source.buffer,
                self.source.offset,
                &self.staging,
                0,
                self.bytes(),
            );
        }
        gpu.submit([encoder.finish()]);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        let arrived = Arc::new(AtomicBool::new(false));
        let flag = arrived.clone();
        self.staging
            .map_async(wgpu::MapMode::Read, ..self.bytes(), move |result| {
                flag.store(true, Ordering::Release);
                let _ = sender.send(result);
            });
        *slot = Some(InFlight { arrived, receiver });
    }

    /// Whether the read begun last has landed (the device must be polled meanwhile).
    pub fn is_ready(&self) -> bool {
        let slot = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .is_some_and(|f| f.arrived.load(Ordering::Acquire))
    }

    /// Collects the read begun last, waiting for the GPU if it has not landed.
    pub fn finish(&self, gpu: &Gpu) -> Result<Vec<T>> {
        let flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(flight) = flight else {
            return Err(Error::Readback("no read was begun".into()));
        };
        if !flight.arrived.load(Ordering::Acquire) {
            gpu.wait()?;
        }
        let mapped = pollster::block_on(flight.receiver.receive())
            .ok_or_else(|| Error::Readback("the GPU finished without returning the data".into()))?;
        if let Err(e) = mapped {
            // A fault the device reported (lost, validation) explains a failed map best.
            gpu.check()?;
            return Err(Error::Readback(e.to_string()));
        }
        let out = {
            let view = self
                .staging
                .get_mapped_range(..self.bytes())
                .map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, T>(&view)[..self.source.len()].to_vec()
        };
        self.staging.unmap();
        Ok(out)
    }

    /// Copies the tensor's current contents to the host, waiting for the GPU.
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<T>> {
        self.begin(gpu);
        self.finish(gpu)
    }
}
