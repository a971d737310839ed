//! Device and buffer manager: adapter choice, device, queue, limits and the pipeline cache.

mod awake;
mod compile;
mod profile;
mod recorder;
mod tensor;

pub use profile::Profile;
pub use recorder::{Dispatch, Program};
pub use tensor::{DType, Element, Readback, Tensor};

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which adapter to open, and how. `Default` picks the best adapter of any backend.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Restrict the search to these backends (`None`: all compiled in).
    pub backends: Option<wgpu::Backends>,
    /// Keep only adapters whose name contains this text (case-insensitive).
    pub adapter_name: Option<String>,
    /// Open the device with WebGPU's default limits instead of the adapter's own, to check that
    /// work fits every adapter.
    pub webgpu_limits: bool,
    /// On a CPU adapter, keep every core busy at idle priority while work is in flight, so that
    /// the driver's worker threads wake at once for each dispatch (Linux; on by default).
    pub keep_awake: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            backends: None,
            adapter_name: None,
            webgpu_limits: false,
            keep_awake: true,
        }
    }
}

impl GpuOptions {
    /// Options from `WGML_BACKEND` (`vulkan`, `gl`, `metal`, `dx12`), `WGML_ADAPTER` (a name
    /// substring), `WGML_LIMITS` (`adapter`, the default, or `webgpu`) and `WGML_KEEP_AWAKE`
    /// (`1`, the default, or `0`).
    pub fn from_env() -> Result<Self> {
        let backends = match std::env::var("WGML_BACKEND") {
            Ok(value) if !value.is_empty() => Some(parse_backend(&value)?),
            _ => None,
        };
        let adapter_name = std::env::var("WGML_ADAPTER").ok().filter(|s| !s.is_empty());
        let webgpu_limits = env_switch("WGML_LIMITS", ["adapter", "webgpu"])?;
        let keep_awake = !env_switch("WGML_KEEP_AWAKE", ["1", "0"])?;
        Ok(GpuOptions {
            backends,
            adapter_name,
            webgpu_limits,
            keep_awake,
        })
    }

    fn describe(&self) -> String {
        let backend = match self.backends {
            Some(b) => format!("backend {b:?}"),
            None => "any backend".to_string(),
        };
        match &self.adapter_name {
            Some(name) => format!("{backend}, name containing {name:?}"),
            None => backend,
        }
    }
}

/// Whether environment variable `var` holds `values[1]` rather than `values[0]` (the default
/// when unset or empty); anything else is an error.
fn env_switch(var: &'static str, values: [&'static str; 2]) -> Result<bool> {
    match std::env::var(var).as_deref() {
        Err(_) | Ok("") => Ok(false),
        Ok(v) if v == values[0] => Ok(false),
        Ok(v) if v == values[1] => Ok(true),
        Ok(other) => Err(Error::BadEnv {
            var,
            value: other.to_string(),
            expected: format!("{} or {}", values[0], values[1]),
        }),
    }
}

fn parse_backend(value: &str) -> Result<wgpu::Backends> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => wgpu::Backends::VULKAN,
        "gl" | "gles" | "opengl" => wgpu::Backends::GL,
        "metal" => wgpu::Backends::METAL,
        "dx12" | "d3d12" => wgpu::Backends::DX12,
        _ => {
            return Err(Error::BadEnv {
                var: "WGML_BACKEND",
                value: value.to_string(),
                expected: "one of vulkan, gl, metal, dx12".into(),
            })
        }
    })
}

/// One adapter as seen by [`Gpu::adapters`].
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// wgpu's description of the adapter.
    pub info: wgpu::AdapterInfo,
    /// Whether it can run compute shaders (and so wgml).
    pub usable: bool,
    /// Whether [`Gpu::new`] with the same options would choose it.
    pub chosen: bool,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }
}

/// An open GPU: device, queue, the adapter's limits and a cache of compiled pipelines.
///
/// Cheap to clone; clones share the device.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<GpuInner>,
}

struct GpuInner {
    /// Spinners for a CPU adapter (stopped first on drop).
    awake: Option<awake::KeepAwake>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    profile: Profile,
    pipelines: Mutex<HashMap<PipelineKey, compile::PendingPipeline>>,
    /// Compiles that may run at once.
    compiling: Arc<compile::Permits>,
    /// The first GPU error reported outside an error scope, kept until [`Gpu::check`].
    fault: Arc<Mutex<Option<String>>>,
    created: Counters,
    /// See [`Gpu::spare`].
    spare: std::sync::OnceLock<Tensor>,
}

/// The running counts behind [`Creations`].
#[derive(Default)]
struct Counters {
    buffers: AtomicU64,
    bind_groups: AtomicU64,
    pipelines: AtomicU64,
    buffer_bytes: AtomicU64,
}

/// How many GPU objects wgml has created on a device: a hot loop must leave these unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Creations {
    /// Buffers (tensors, parameter blocks, staging).
    pub buffers: u64,
    /// Bind groups.
    pub bind_groups: u64,
    /// Compute pipelines.
    pub pipelines: u64,
    /// Bytes of the buffers.
    pub buffer_bytes: u64,
}

/// Shader file, entry point and override constants (as bits) of a cached pipeline.
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// A WGSL source file of `shaders/`, compiled on first use.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    /// File name, used as the cache key and in error messages.
    pub name: &'static str,
    /// WGSL text.
    pub source: &'static str,
}

/// Every adapter of the given backends (all compiled-in backends when `None`).
fn enumerate(backends: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    let backends = backends.unwrap_or(wgpu::Backends::all());
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    pollster::block_on(wgpu::Instance::new(desc).enumerate_adapters(backends))
}

/// Preference order: discrete, integrated, virtual, CPU; Vulkan/Metal/DX12 before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = u8::from(info.backend == wgpu::Backend::Gl);
    (device, backend)
}

fn can_compute(adapter: &wgpu::Adapter) -> bool {
    adapter
        .get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
}

fn matches(options: &GpuOptions, info: &wgpu::AdapterInfo) -> bool {
    options.adapter_name.as_ref().is_none_or(|name| {
        info.name
            .to_ascii_lowercase()
            .contains(&name.to_ascii_lowercase())
    })
}

/// Index of the adapter `options` selects among `adapters`, if any.
fn choose(options: &GpuOptions, adapters: &[wgpu::Adapter]) -> Option<usize> {
    adapters
        .iter()
        .enumerate()
        .filter(|(_, a)| can_compute(a) && matches(options, &a.get_info()))
        .min_by_key(|(_, a)| rank(&a.get_info()))
        .map(|(i, _)| i)
}

impl Gpu {
    /// Opens the adapter chosen by `WGML_BACKEND` / `WGML_ADAPTER`, or the best one.
    pub fn from_env() -> Result<Self> {
        Self::new(&GpuOptions::from_env()?)
    }

    /// Lists every adapter the options' backends expose, marking the one [`Gpu::new`] would open.
    pub fn adapters(options: &GpuOptions) -> Vec<AdapterSummary> {
        let adapters = enumerate(options.backends);
        let chosen = choose(options, &adapters);
        adapters
            .iter()
            .enumerate()
            .map(|(i, a)| AdapterSummary {
                info: a.get_info(),
                usable: can_compute(a),
                chosen: Some(i) == chosen,
            })
            .collect()
    }

    /// Opens the best adapter that matches `options`, with the adapter's own limits (or
    /// WebGPU's defaults when `options.webgpu_limits`).
    pub fn new(options: &GpuOptions) -> Result<Self> {
        // Vulkan, Metal and DX12 first; GL only when none of them will do.
        let mut adapters = enumerate(options.backends.or(Some(wgpu::Backends::PRIMARY)));
        if options.backends.is_none() && choose(options, &adapters).is_none() {
            adapters = enumerate(None);
        }
        let Some(index) = choose(options, &adapters) else {
            let all = Self::adapters(&GpuOptions::default());
            let found = if all.is_empty() {
                "none (is a Vulkan, Metal, DX12 or GL driver installed? On headless Linux: \
                 apt-get install mesa-vulkan-drivers)"
                    .to_string()
            } else {
                all.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(Error::NoAdapter {
                wanted: options.describe(),
                found,
            });
        };
        let adapter = adapters.swap_remove(index);
        let limits = if options.webgpu_limits {
            wgpu::Limits::default()
        } else {
            adapter.limits()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgml"),
            // Where offered: timestamps let `wgml bench` time each kernel on the GPU itself;
            // subgroups and 64-bit integers serve the kernels written for CPU adapters.
            required_features: adapter.features()
                & (wgpu::Features::TIMESTAMP_QUERY
                    | wgpu::Features::SUBGROUP
                    | wgpu::Features::SHADER_INT64),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::RequestDevice(e.to_string()))?;
        let fault = Arc::new(Mutex::new(None));
        let sink = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            record_fault(&sink, e.to_string())
        }));
        let sink = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            record_fault(&sink, format!("device lost ({reason:?}): {message}"));
        });
        let info = adapter.get_info();
        let profile = Profile::read(&info, device.features(), &limits);
        let awake = if options.keep_awake && profile.cpu {
            awake::KeepAwake::start(&device)
        } else {
            None
        };
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                awake,
                device,
                queue,
                info,
                limits,
                profile,
                pipelines: Mutex::new(HashMap::new()),
                compiling: compile::Permits::per_core(),
                fault,
                created: Default::default(),
                spare: std::sync::OnceLock::new(),
            }),
        })
    }

    /// A small zeroed tensor (eight f32) for kernels to bind where their layout has a place
    /// they leave untouched; made on first use.
    pub(crate) fn spare(&self) -> Result<&Tensor> {
        if let Some(spare) = self.inner.spare.get() {
            return Ok(spare);
        }
        let spare = Tensor::zeros(self, &[8], DType::F32)?;
        Ok(self.inner.spare.get_or_init(|| spare))
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The opened adapter's description.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The optional features the device was opened with.
    pub fn features(&self) -> wgpu::Features {
        self.device().features()
    }

    /// The facts of the adapter that kernel choices rest on.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// GPU objects created so far through this `Gpu`.
    pub fn creations(&self) -> Creations {
        let c = &self.inner.created;
        Creations {
            buffers: c.buffers.load(Ordering::Relaxed),
            bind_groups: c.bind_groups.load(Ordering::Relaxed),
            pipelines: c.pipelines.load(Ordering::Relaxed),
            buffer_bytes: c.buffer_bytes.load(Ordering::Relaxed),
        }
    }

    fn count_buffer(&self, bytes: u64) {
        self.inner.created.buffers.fetch_add(1, Ordering::Relaxed);
        self.inner
            .created
            .buffer_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Creates a buffer, counted in [`Gpu::creations`].
    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor) -> wgpu::Buffer {
        self.count_buffer(desc.size);
        self.device().create_buffer(desc)
    }

    /// Creates a buffer holding `contents`, counted in [`Gpu::creations`].
    pub(crate) fn create_buffer_init(
        &self,
        desc: &wgpu::util::BufferInitDescriptor,
    ) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.count_buffer(desc.contents.len() as u64);
        self.device().create_buffer_init(desc)
    }

    /// Creates a bind group, counted in [`Gpu::creations`].
    pub(crate) fn create_bind_group(&self, desc: &wgpu::BindGroupDescriptor) -> wgpu::BindGroup {
        self.inner
            .created
            .bind_groups
            .fetch_add(1, Ordering::Relaxed);
        self.device().create_bind_group(desc)
    }

    /// Keeps `message` as a GPU error for the next [`Gpu::check`] (unless one is kept already).
    pub(crate) fn fault(&self, message: String) {
        record_fault(&self.inner.fault, message);
    }

    /// Returns, and clears, the first GPU error reported since the last check.
    pub fn check(&self) -> Result<()> {
        match lock(&self.inner.fault).take() {
            Some(message) => Err(Error::Gpu(message)),
            None => Ok(()),
        }
    }

    /// Submits command buffers to the queue (no wait); on a CPU adapter its cores are kept awake
    /// until they are done (see [`GpuOptions::keep_awake`]). wgml submits only through here.
    pub fn submit(&self, buffers: impl IntoIterator<Item = wgpu::CommandBuffer>) {
        self.queue().submit(buffers);
        if let Some(awake) = &self.inner.awake {
            awake.track(self.queue());
        }
    }

    /// Blocks until all submitted work is done, then reports any GPU error.
    pub fn wait(&self) -> Result<()> {
        let polled = self.device().poll(wgpu::PollType::wait_indefinitely());
        // A fault recorded first (device lost, validation) explains a failed poll best.
        self.check()?;
        polled
            .map(|_| ())
            .map_err(|e| Error::Gpu(one_line(&e.to_string())))
    }

    /// The compute pipeline for `entry` in `shader` with its `override` constants set to
    /// `constants`, compiled once and cached; waits for the compile.
    pub fn pipeline(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        self.compile(shader, entry, constants)
            .wait()
            .map_err(Error::Gpu)
    }

    /// [`Gpu::pipeline`] without the wait: the compile starts on a background thread unless
    /// the pipeline is cached or already compiling.
    pub(crate) fn compile(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> compile::PendingPipeline {
        let bits = constants.iter().map(|&(n, v)| (n, v.to_bits())).collect();
        let key = (shader.name, entry, bits);
        let mut pipelines = lock(&self.inner.pipelines);
        if let Some(pending) = pipelines.get(&key) {
            return pending.clone();
        }
        let pending = compile::PendingPipeline::default();
        pipelines.insert(key, pending.clone());
        drop(pipelines);
        let gpu = self.clone();
        let constants = constants.to_vec();
        pending.start(&self.inner.compiling, move || {
            gpu.create_pipeline(shader, entry, &constants)
        });
        pending
    }

    /// Compiles a pipeline (no cache); the error is the message for [`Error::Gpu`].
    fn create_pipeline(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> std::result::Result<wgpu::ComputePipeline, String> {
        let device = self.device();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        };
        // SAFETY: wgml's kernels form only in-bounds indices: every index derives from shapes
        // the host validated before binding (see each `*_dispatch`), and the indices that come
        // from GPU-side state (batch cursors, loss slots) are clamped in the kernel. Runtime
        // bounds checks would cost up to a third of matmul speed.
        let module = unsafe {
            device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
        self.inner.created.pipelines.fetch_add(1, Ordering::Relaxed);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every wgml kernel writes the workgroup memory it reads first (a rule for
                // shaders/), so the zeroing WebGPU adds is waste; on llvmpipe's GL path it also
                // unrolls into minutes of compiling for a large array (the small head's 15 KiB:
                // 54 s instead of 0.5 s).
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(one_line(&format!("{}::{entry}: {e}", shader.name))),
            None => Ok(pipeline),
        }
    }

    /// Splits `groups` workgroups into an x/y grid within `max_compute_workgroups_per_dimension`.
    /// Kernels recover the linear index as `wg.x + wg.y * num_workgroups.x`.
    pub fn grid(&self, groups: u64) -> Result<[u32; 3]> {
        let max = u64::from(self.limits().max_compute_workgroups_per_dimension);
        if groups <= max {
            return Ok([groups as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(Error::Limit {
                what: "a dispatch".into(),
                needed: groups,
                limit: "max_compute_workgroups_per_dimension²",
                max: max * max,
            });
        }
        Ok([max as u32, y as u32, 1])
    }
}

fn record_fault(sink: &Mutex<Option<String>>, message: String) {
    let mut slot = lock(sink);
    if slot.is_none() {
        *slot = Some(one_line(&message));
    }
}

/// wgpu's multi-line error reports ("Validation Error\n\nCaused by:\n  In …") as one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
