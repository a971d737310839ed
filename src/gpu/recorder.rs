//! Prepared dispatches, and programs that record many of them into one submit.

use super::compile::PendingPipeline;
use super::{Gpu, Shader, Tensor};
use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};

/// One kernel launch with everything bound: pipeline, bind group, workgroup grid.
///
/// Built once (when a model or op is created) and recorded as often as needed, so the hot loop
/// creates nothing. Binding 0 is the kernel's uniform parameters (absent when `P` is `()`); each tensor is bound at the
/// binding number paired with it, as declared in the WGSL. The pipeline compiles in the
/// background (see [`Gpu::pipeline`]) and the bind group is made once it has, by
/// [`Dispatch::ready`] or the first recording.
#[derive(Clone)]
pub struct Dispatch {
    label: &'static str,
    grid: [u32; 3],
    binding: Arc<Binding>,
}

/// What a dispatch binds, and the pipeline and bind group made from it once its compile is
/// over.
struct Binding {
    gpu: Gpu,
    what: String,
    pipeline: PendingPipeline,
    uniform: Option<wgpu::Buffer>,
    tensors: Vec<(u32, Tensor)>,
    made: OnceLock<std::result::Result<(wgpu::ComputePipeline, wgpu::BindGroup), String>>,
}

impl Binding {
    /// The pipeline and bind group, made on first call (waiting for the compile).
    fn made(&self) -> std::result::Result<&(wgpu::ComputePipeline, wgpu::BindGroup), &str> {
        let made = self.made.get_or_init(|| {
            let pipeline = self.pipeline.wait()?;
            let mut entries: Vec<_> = (self.uniform.iter())
                .map(|u| wgpu::BindGroupEntry {
                    binding: 0,
                    resource: u.as_entire_binding(),
                })
                .collect();
            entries.extend(
                self.tensors
                    .iter()
                    .map(|(binding, t)| wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: t.binding(),
                    }),
            );
            let device = self.gpu.device();
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let bind_group = self.gpu.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&self.what),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            match pollster::block_on(scope.pop()) {
                Some(e) => Err(super::one_line(&format!("{}: {e}", self.what))),
                None => Ok((pipeline, bind_group)),
            }
        });
        made.as_ref().map_err(String::as_str)
    }
}

impl Dispatch {
    /// Binds `params` and `tensors` to `shader`'s `entry` for a launch of `groups` workgroups.
    pub fn new<P: bytemuck::Pod>(
        gpu: &Gpu,
        shader: Shader,
        entry: &'static str,
        params: &P,
        tensors: &[(u32, &Tensor)],
        groups: u64,
    ) -> Result<Self> {
        Self::specialized(gpu, shader, entry, &[], params, tensors, groups)
    }

    /// [`Dispatch::new`] with the entry's `override` constants set to `constants`.
    pub fn specialized<P: bytemuck::Pod>(
        gpu: &Gpu,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        params: &P,
        tensors: &[(u32, &Tensor)],
        groups: u64,
    ) -> Result<Self> {
        let limits = gpu.limits();
        for (_, t) in tensors {
            let bytes = t.len() as u64 * 4;
            let max = limits.max_storage_buffer_binding_size;
            if bytes > max {
                return Err(Error::Limit {
                    what: format!(
                        "{}::{entry} binding a tensor of shape {:?}",
                        shader.name,
                        t.shape()
                    ),
                    needed: bytes,
                    limit: "max_storage_buffer_binding_size",
                    max,
                });
            }
            let align = u64::from(limits.min_storage_buffer_offset_alignment);
            if t.offset() % align != 0 {
                return Err(Error::shape(format!(
                    "{}::{entry}: a view at byte offset {} is not aligned to the device's {align}",
                    shader.name,
                    t.offset()
                )));
            }
        }
        let grid = gpu.grid(groups)?;
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        let uniform = (!bytes.is_empty()).then(|| {
            bytes.resize(bytes.len().next_multiple_of(16), 0);
            gpu.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        });
        let binding = Binding {
            gpu: gpu.clone(),
            what: format!("{}::{entry}", shader.name),
            pipeline: gpu.compile(shader, entry, constants),
            uniform,
            tensors: tensors.iter().map(|&(b, t)| (b, t.clone())).collect(),
            made: OnceLock::new(),
        };
        Ok(Dispatch {
            label: entry,
            grid,
            binding: Arc::new(binding),
        })
    }

    /// Waits for the pipeline's compile and makes the bind group, reporting a failure of either.
    /// Recording does this too, but reports nothing: call this (or [`Program::ready`]) once a
    /// dispatch is built.
    pub fn ready(&self) -> Result<()> {
        self.binding
            .made()
            .map(|_| ())
            .map_err(|e| Error::Gpu(e.to_string()))
    }

    /// The same launch over an explicit `[x, y, z]` grid of workgroups (for kernels that take
    /// coordinates from `workgroup_id`), checked against the device's limit per dimension.
    pub fn on_grid(mut self, gpu: &Gpu, grid: [u32; 3]) -> Result<Self> {
        let max = gpu.limits().max_compute_workgroups_per_dimension;
        if let Some(&over) = grid.iter().find(|&&g| g > max) {
            return Err(Error::Limit {
                what: format!("{} workgroups along one dimension", self.label),
                needed: u64::from(over),
                limit: "max_compute_workgroups_per_dimension",
                max: u64::from(max),
            });
        }
        self.grid = grid;
        Ok(self)
    }

    /// Records the launch into `pass` (nothing when the grid is empty, or when the pipeline or
    /// bind group failed: [`Dispatch::ready`] says why).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.grid.contains(&0) {
            return;
        }
        if let Ok((pipeline, bind_group)) = self.binding.made() {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
        }
    }

    /// The kernel entry point's name.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Submits this one dispatch and waits for it, reporting any GPU error.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        self.ready()?;
        submit(gpu, |pass| self.record(pass));
        gpu.wait()
    }
}

/// Records into one compute pass of a fresh encoder and submits it (no wait).
fn submit(gpu: &Gpu, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
    let mut encoder = gpu
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    record(&mut encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default()));
    gpu.submit([encoder.finish()]);
}

/// An ordered list of dispatches: a forward pass, a training step, a one-off op.
#[derive(Clone, Default)]
pub struct Program {
    dispatches: Vec<Dispatch>,
}

impl Program {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one dispatch.
    pub fn push(&mut self, d: Dispatch) {
        self.dispatches.push(d);
    }

    /// Appends every dispatch of `other`.
    pub fn append(&mut self, other: Program) {
        self.dispatches.extend(other.dispatches);
    }

    /// Records every dispatch, in order, into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    /// The dispatches, in order.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// Records the program `times` times into one command buffer and submits it (no wait).
    pub fn submit(&self, gpu: &Gpu, times: usize) {
        // A dispatch that cannot be made records nothing; the next wait reports why.
        for d in &self.dispatches {
            if let Err(e) = d.binding.made() {
                gpu.fault(e.to_string());
            }
        }
        submit(gpu, |pass| {
            for _ in 0..times {
                self.record(pass);
            }
        });
    }

    /// Waits for every dispatch's pipeline and makes its bind group ([`Dispatch::ready`]).
    pub fn ready(&self) -> Result<()> {
        self.dispatches.iter().try_for_each(Dispatch::ready)
    }

    /// Submits the program once and waits for it, reporting any GPU error.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        self.ready()?;
        self.submit(gpu, 1);
        gpu.wait()
    }
}

impl From<Dispatch> for Program {
    fn from(d: Dispatch) -> Self {
        Program {
            dispatches: vec![d],
        }
    }
}
