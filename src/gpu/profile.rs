//! What an adapter is, read once when its device opens: the facts that kernel choices rest on.
//! The choices themselves live in [`crate::kernels::policy`].

/// The facts of an opened adapter that decide which kernel variants run well, or at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The adapter runs on the host's CPU (Mesa's lavapipe and llvmpipe, WARP, SwiftShader).
    pub cpu: bool,
    /// Lanes per subgroup, where subgroup operations are enabled and every subgroup has the
    /// same width.
    pub subgroup_lanes: Option<u32>,
    /// Shaders may use 64-bit integers.
    pub int64: bool,
    /// Storage buffers one shader stage may bind.
    pub storage_buffers: u32,
    /// Invocations one workgroup may have along x (and in all).
    pub workgroup_invocations: u32,
    /// Cores of the host, over which a CPU adapter spreads its workgroups.
    pub host_cores: usize,
}

impl Profile {
    /// The profile of an adapter with this description, device features and limits.
    pub fn read(info: &wgpu::AdapterInfo, features: wgpu::Features, limits: &wgpu::Limits) -> Self {
        let fixed_width = info.subgroup_min_size == info.subgroup_max_size;
        Profile {
            cpu: info.device_type == wgpu::DeviceType::Cpu,
            subgroup_lanes: (features.contains(wgpu::Features::SUBGROUP) && fixed_width)
                .then_some(info.subgroup_min_size),
            int64: features.contains(wgpu::Features::SHADER_INT64),
            storage_buffers: limits.max_storage_buffers_per_shader_stage,
            workgroup_invocations: limits
                .max_compute_invocations_per_workgroup
                .min(limits.max_compute_workgroup_size_x),
            host_cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        }
    }
}
