//! Every choice of a kernel variant by adapter, in one place: what the kernels and the model
//! ask of a device's [`Profile`] (CPU or GPU, subgroup width, 64-bit integers, limits).
//!
//! On CPU adapters a workgroup is one task of a thread pool, a subgroup one SIMD register, a
//! barrier costly, and an invocation's loops end after 65,535 iterations in all (Mesa); on
//! GPUs occupancy and memory coalescing rule.

use crate::gpu::Profile;
use crate::kernels::conv::{Conv2dShape, TapsGradLayout};
use crate::kernels::matmul::{MatmulKernel, MatmulOptions, SUBGROUP_STORAGE_BUFFERS};

/// Whether the subgroup matmul (`matmul_subgroup.wgsl`, written for CPU adapters) can run:
/// 8-lane subgroups, 64-bit integers and its ten storage buffers.
pub fn subgroup_matmul(profile: &Profile) -> bool {
    profile.subgroup_lanes == Some(8)
        && profile.int64
        && profile.storage_buffers >= SUBGROUP_STORAGE_BUFFERS
}

/// The matmul layout for an M×N×K product with these transposes.
pub fn matmul_layout(
    profile: &Profile,
    dims: (usize, usize, usize),
    opts: &MatmulOptions,
) -> MatmulKernel {
    let (m, n, k) = dims;
    if !profile.cpu {
        // Enough 128×128 tiles to fill a large GPU; too few 64×64 ones to occupy one: split K
        // instead; else 64×64 (the README gives the measurements behind these counts).
        let tiles = |size: usize| m.div_ceil(size) * n.div_ceil(size);
        return if tiles(128) >= 128 {
            MatmulKernel::Wide
        } else if tiles(64) <= 16 {
            MatmulKernel::Dot
        } else {
            MatmulKernel::Tiled
        };
    }
    if MatmulKernel::Subgroup16.supports_on(profile, dims, opts) {
        // 64×128 tiles where they cost no padding beyond 64×64 ones and leave every core eight
        // tiles or more (fewer balance badly): each broadcast of A feeds twice the FMAs.
        let wide = MatmulKernel::Subgroup64Wide;
        if k >= 64
            && m >= 64
            && n.div_ceil(128) * 2 == n.div_ceil(64)
            && m.div_ceil(64) * n.div_ceil(128) >= 8 * profile.host_cores
            && wide.supports_on(profile, dims, opts)
        {
            return wide;
        }
        // Otherwise the tallest tiles that still give every core a tile of its own: taller
        // ones read B fewer times. 64 rows or more only where K's loop is long enough (8
        // steps) and C wide enough (a whole tile) to repay their slower compile.
        let tallest = [
            MatmulKernel::Subgroup128,
            MatmulKernel::Subgroup64,
            MatmulKernel::Subgroup32,
        ]
        .into_iter()
        .filter(|&kernel| kernel == MatmulKernel::Subgroup32 || (k >= 64 && n >= 64))
        .filter(|kernel| kernel.supports_on(profile, dims, opts))
        .find(|kernel| {
            let (rows, cols) = kernel.tile();
            m >= rows && m.div_ceil(rows) * n.div_ceil(cols) >= profile.host_cores
        });
        return tallest.unwrap_or(MatmulKernel::Subgroup16);
    }
    let layout = match (opts.trans_a, opts.trans_b) {
        (_, false) => MatmulKernel::Rows,
        (false, true) => MatmulKernel::Dot,
        (true, true) => MatmulKernel::Tiled,
    };
    if loops_fit(profile, layout, k) {
        layout
    } else {
        MatmulKernel::Dot
    }
}

/// Invocations of a `Dot` tile, splitting K between them: 32, doubled on GPUs (up to 256) while
/// the product's `tiles` leave the chip short of invocations and each still walks 16 values of
/// K or more (a weight gradient over a whole batch of image positions: K in the tens of
/// thousands over a few dozen tiles; a first Linear layer over 9,216 features).
pub fn dot_lanes(profile: &Profile, tiles: usize, k: usize) -> u32 {
    // Invocations a large GPU keeps in flight.
    const FILL: usize = 1 << 16;
    let mut lanes = 32;
    while !profile.cpu && lanes < 256 && tiles * lanes < FILL && k >= 32 * lanes {
        lanes *= 2;
    }
    lanes as u32
}

/// Whether a layout's loops over K fit the adapter's loop budget. `Rows`, `Wide` and `Tiled`
/// can take an iteration per k in each invocation (`Tiled` where the back end keeps its inner
/// loops, as llvmpipe's GL path does), so on CPU adapters they need K within half the budget;
/// `Dot` and the subgroup layouts step through K eight or more at a time.
pub fn loops_fit(profile: &Profile, kernel: MatmulKernel, k: usize) -> bool {
    let per_k = matches!(
        kernel,
        MatmulKernel::Rows | MatmulKernel::Wide | MatmulKernel::Tiled
    );
    match loop_budget(profile) {
        Some(budget) if per_k => k <= budget / 2,
        _ => true,
    }
}

/// The layout of a convolution's taps' gradient: position-major on CPU adapters where the
/// subgroup matmul takes the product dy'ᵀ·W, which then writes rows of `taps` values instead
/// of rows of every output position (the README has the measurements); taps-major elsewhere,
/// and on GPUs, where neighbouring invocations of `col2im` then read neighbouring values.
pub fn taps_grad_layout(profile: &Profile, shape: &Conv2dShape) -> TapsGradLayout {
    let transposed = MatmulOptions {
        trans_a: true,
        ..Default::default()
    };
    let dims = (shape.positions(), shape.taps(), shape.out_channels);
    if profile.cpu && MatmulKernel::Subgroup16.supports_on(profile, dims, &transposed) {
        TapsGradLayout::PositionMajor
    } else {
        TapsGradLayout::TapsMajor
    }
}

/// Whether training computes a small classifier head of `rows` × `features` → `classes` and
/// its loss as one dispatch ([`crate::kernels::small_head`]): on GPUs, where each dispatch
/// costs a launch and a barrier; on CPU adapters where its one-subgroup variant applies
/// ([`small_head_lanes`]). Elsewhere on CPU adapters the generic one-workgroup layout runs on
/// one core without wide loads, and costs more than the dispatches it saves.
pub fn small_head(profile: &Profile, rows: usize, features: usize, classes: usize) -> bool {
    !profile.cpu || small_head_lanes(profile, rows, features, classes)
}

/// Whether the small head runs as `small_head_lanes.wgsl`: one 8-lane subgroup with 64-bit
/// integers (a CPU adapter), up to 64 rows (8 per lane) and 16 classes (in registers), features
/// a multiple of 8 (read eight at a time).
pub fn small_head_lanes(profile: &Profile, rows: usize, features: usize, classes: usize) -> bool {
    profile.cpu
        && profile.subgroup_lanes == Some(8)
        && profile.int64
        && (1..=64).contains(&rows)
        && (1..=16).contains(&classes)
        && features > 0
        && features.is_multiple_of(8)
}

/// Whether a first Linear layer of `inputs` → `outputs` features computes batches of `rows`
/// samples fastest feature-major: when the subgroup matmul takes both its forward product
/// (AᵀBᵀ) and its weight gradient that way.
pub fn feature_major_input(profile: &Profile, rows: usize, inputs: usize, outputs: usize) -> bool {
    let both = MatmulOptions {
        trans_a: true,
        trans_b: true,
        ..Default::default()
    };
    matmul_layout(profile, (rows, outputs, inputs), &both).is_subgroup()
        && matmul_layout(profile, (outputs, inputs, rows), &both).is_subgroup()
}

/// Rows up to which one workgroup computes a cross-entropy of few classes in one dispatch
/// (`ce_single`), and that workgroup's size: one 8-lane subgroup on a CPU adapter (no barrier
/// waits on another), an invocation per row on a GPU.
pub fn cross_entropy_single(profile: &Profile) -> (usize, u32) {
    if profile.cpu {
        (1024, 8)
    } else {
        (256, 256)
    }
}

/// Invocations per row where a kernel walks rows of many values: one on a CPU adapter (no
/// barriers), a workgroup of 64 on a GPU (coalesced reads).
pub fn row_team(profile: &Profile) -> u32 {
    if profile.cpu {
        1
    } else {
        64
    }
}

/// The most values one invocation may walk in all its loops, where the adapter bounds it
/// (Mesa's CPU adapters stop an invocation's loops after 65,535 iterations).
pub fn loop_budget(profile: &Profile) -> Option<usize> {
    profile.cpu.then_some(65_535)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(cpu: bool) -> Profile {
        Profile {
            cpu,
            subgroup_lanes: Some(32),
            int64: true,
            storage_buffers: 16,
            workgroup_invocations: 1024,
            host_cores: 16,
        }
    }

    #[test]
    fn dot_tiles_take_more_invocations_only_for_a_long_k_on_a_gpu() {
        let gpu = profile(false);
        // The CNN's weight gradients: 8 and 288 tiles of 8×8 over K = 43,264 and 36,864.
        assert_eq!(dot_lanes(&gpu, 8, 43_264), 256);
        assert_eq!(dot_lanes(&gpu, 288, 36_864), 256);
        // The first Linear layers of the CNN and of the MLP: 128 tiles over K = 9,216 and 784.
        assert_eq!(dot_lanes(&gpu, 128, 9216), 256);
        assert_eq!(dot_lanes(&gpu, 128, 784), 32);
        // Many tiles fill the chip already; a short K doubles once.
        assert_eq!(dot_lanes(&gpu, 4096, 43_264), 32);
        assert_eq!(dot_lanes(&gpu, 8, 1024), 64);
        assert_eq!(dot_lanes(&profile(true), 8, 43_264), 32);
    }
}
