//! Prepared dispatches, and programs that record many of them into one submit.

use super::{Gpu, Shader, Tensor};
use crate::error::{Error, Result};

/// One kernel launch with everything bound: pipeline, bind group, workgroup grid.
///
/// Built once (when a model or op is created) and recorded as often as needed, so the hot loop
/// creates nothing. Binding 0 is the kernel's uniform parameters (absent when `P` is `()`); each tensor is bound at the
/// binding number paired with it, as declared in the WGSL.
#[derive(Clone)]
pub struct Dispatch {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    grid: [u32; 3],
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
        let pipeline = gpu.pipeline(shader, entry, constants)?;
        let device = gpu.device();
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        let uniform = (!bytes.is_empty()).then(|| {
            bytes.resize(bytes.len().next_multiple_of(16), 0);
            gpu.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        });
        let mut entries: Vec<_> = uniform
            .iter()
            .map(|u| wgpu::BindGroupEntry {
                binding: 0,
                resource: u.as_entire_binding(),
            })
            .collect();
        entries.extend(tensors.iter().map(|(binding, t)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: t.binding(),
        }));
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_group = gpu.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(super::one_line(&format!(
                "{}::{entry}: {e}",
                shader.name
            ))));
        }
        Ok(Dispatch {
            label: entry,
            pipeline,
            bind_group,
            grid: gpu.grid(groups)?,
        })
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

    /// Records the launch into `pass` (nothing when the grid is empty).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.grid.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
    }

    /// The kernel entry point's name.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Submits this one dispatch and waits for it, reporting any GPU error.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
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
        submit(gpu, |pass| {
            for _ in 0..times {
                self.record(pass);
            }
        });
    }

    /// Submits the program once and waits for it, reporting any GPU error.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
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
