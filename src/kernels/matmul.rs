//! `shaders/matmul.wgsl` and `shaders/matmul_subgroup.wgsl`: C = op(A)·op(B) (+bias) (+ReLU)
//! (⊙ gate), and optionally op(A)'s row sums beside it.
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::matmul::{matmul, MatmulOptions};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let w = Tensor::from_slice(&gpu, &[1.0f32, 0.0, 1.0, 1.0], &[2, 2])?; // nn.Linear's [out, in]
//! let b = Tensor::from_slice(&gpu, &[0.5f32, -10.0], &[2])?;
//! let opts = MatmulOptions { trans_b: true, bias: Some(&b), relu: true, ..Default::default() };
//! let y = matmul(&gpu, &x, &w, opts)?; // relu(x·Wᵀ + b)
//! assert_eq!(y.to_vec::<f32>(&gpu)?, [1.5, 0.0, 3.5, 0.0]);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::{dims2, policy, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Profile, Shader, Tensor};

/// The matmul shader.
pub const SHADER: Shader = Shader {
    name: "matmul.wgsl",
    source: concat!(
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul.wgsl")
    ),
};

/// The matmul shader for adapters with 8-lane subgroups and 64-bit integers.
pub const SUBGROUP_SHADER: Shader = Shader {
    name: "matmul_subgroup.wgsl",
    source: concat!(
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/int64.wgsl"),
        include_str!("../../shaders/matmul_subgroup.wgsl")
    ),
};

/// Which work layout computes the product (see `shaders/matmul.wgsl` and
/// `shaders/matmul_subgroup.wgsl`). All give the same result up to rounding; they differ in speed
/// by adapter and shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatmulKernel {
    /// The fastest layout known for the adapter and the product's shape.
    #[default]
    Auto,
    /// 64×64 tiles through workgroup memory: for GPUs.
    Tiled,
    /// 128×128 tiles through workgroup memory, 8×8 per invocation: for large products on GPUs.
    Wide,
    /// Barrier-free, invocations along C's columns: for CPU adapters when B is untransposed.
    Rows,
    /// Invocations along K with one final reduction: for CPU adapters computing A·Bᵀ, and GPUs
    /// computing small products over a long K.
    Dot,
    /// 32-byte loads, A shared through subgroup broadcasts, 16 rows × 64 columns per subgroup:
    /// for CPU adapters with 8-lane subgroups and 64-bit integers, when op(B)'s contiguous
    /// dimension is a multiple of 4 and N ≥ 4.
    Subgroup16,
    /// `Subgroup16` with 32 rows per subgroup: each load of B feeds twice the FMAs, from a
    /// larger pipeline, slower to compile (the README has the times).
    Subgroup32,
    /// `Subgroup16` with 64 rows per subgroup: each load of B feeds four times the FMAs, from a
    /// larger pipeline still.
    Subgroup64,
    /// `Subgroup16` with 128 rows per subgroup, for op(A) read along K only (A untransposed, K
    /// a multiple of 8): each load of B feeds eight times the FMAs. Read along M, its pipeline
    /// would compile several times more slowly, hence the restriction.
    Subgroup128,
    /// `Subgroup64` with 16 columns per lane (tiles 128 wide): each broadcast of A feeds twice
    /// the FMAs. For products wide and tall enough to give every core many tiles, with A and B
    /// untransposed and K and N multiples of 8 (read otherwise, its pipelines would compile
    /// several times more slowly).
    Subgroup64Wide,
}

/// Storage bindings of `matmul_subgroup`: A and B each as two views, C as three, the bias, the
/// gate (twice) and the row sums. More than WebGPU's default of 8: CPU adapters, the layout's
/// target, offer far more.
pub const SUBGROUP_STORAGE_BUFFERS: u32 = 11;

impl MatmulKernel {
    /// Every concrete layout.
    pub const ALL: [MatmulKernel; 9] = [
        MatmulKernel::Tiled,
        MatmulKernel::Wide,
        MatmulKernel::Rows,
        MatmulKernel::Dot,
        MatmulKernel::Subgroup16,
        MatmulKernel::Subgroup32,
        MatmulKernel::Subgroup64,
        MatmulKernel::Subgroup128,
        MatmulKernel::Subgroup64Wide,
    ];

    /// Whether this is one of the subgroup layouts (`shaders/matmul_subgroup.wgsl`).
    pub fn is_subgroup(self) -> bool {
        matches!(
            self,
            MatmulKernel::Subgroup16
                | MatmulKernel::Subgroup32
                | MatmulKernel::Subgroup64
                | MatmulKernel::Subgroup128
                | MatmulKernel::Subgroup64Wide
        )
    }

    /// Whether this layout can write op(A)'s row sums beside the product
    /// ([`MatmulOptions::row_sums`]): all but `Wide`.
    pub fn sums_rows(self) -> bool {
        self != MatmulKernel::Wide
    }

    /// Whether this layout can compute an M×N×K product with these transposes on `gpu`.
    pub fn supports(self, gpu: &Gpu, dims: (usize, usize, usize), opts: &MatmulOptions) -> bool {
        self.supports_on(gpu.profile(), dims, opts)
    }

    /// [`MatmulKernel::supports`] on an adapter of this profile.
    pub fn supports_on(
        self,
        profile: &Profile,
        (m, n, k): (usize, usize, usize),
        opts: &MatmulOptions,
    ) -> bool {
        if !policy::loops_fit(profile, self, k) || (opts.row_sums.is_some() && !self.sums_rows()) {
            return false;
        }
        if !self.is_subgroup() {
            return !opts.subgroup_only();
        }
        if !opts.planes_fit((m, n, k)) {
            return false;
        }
        // B is read as vec4s, and A, B, C and the gate as vec4<u64>s: every binding that may
        // be seen as either must hold at least one (32 bytes).
        let b_contiguous = if opts.trans_b { k } else { n };
        policy::subgroup_matmul(profile)
            && b_contiguous.is_multiple_of(4)
            && m * k >= 8
            && n * k >= 8
            && m * n >= 8
            && n >= 4
            && (self != MatmulKernel::Subgroup128 || (!opts.trans_a && k.is_multiple_of(8)))
            && (self != MatmulKernel::Subgroup64Wide
                || (!opts.trans_a && !opts.trans_b && k.is_multiple_of(8) && n.is_multiple_of(8)))
    }

    /// The concrete layout `Auto` stands for on `gpu` for this product: the adapter's fastest,
    /// or `Tiled` when that one cannot write the row sums asked for.
    pub fn resolve(
        self,
        gpu: &Gpu,
        dims: (usize, usize, usize),
        opts: &MatmulOptions,
    ) -> MatmulKernel {
        if self != MatmulKernel::Auto {
            return self;
        }
        let fastest = policy::matmul_layout(gpu.profile(), dims, opts);
        if opts.row_sums.is_some() && !fastest.sums_rows() {
            return MatmulKernel::Tiled;
        }
        fastest
    }

    /// Output rows × columns per tile (one tile per workgroup).
    pub(crate) fn tile(self) -> (usize, usize) {
        let (_, _, rows, cols) = self.layout();
        (rows, cols)
    }

    /// Shader, entry point, and output rows × columns per tile (one tile per workgroup).
    fn layout(self) -> (Shader, &'static str, usize, usize) {
        match self {
            MatmulKernel::Auto | MatmulKernel::Tiled => (SHADER, "matmul", 64, 64),
            MatmulKernel::Wide => (SHADER, "matmul_wide", 128, 128),
            MatmulKernel::Rows => (SHADER, "matmul_rows", 8, 256),
            MatmulKernel::Dot => (SHADER, "matmul_dot", 8, 8),
            MatmulKernel::Subgroup16 => (SUBGROUP_SHADER, "matmul_subgroup", 16, 64),
            MatmulKernel::Subgroup32 => (SUBGROUP_SHADER, "matmul_subgroup", 32, 64),
            MatmulKernel::Subgroup64 => (SUBGROUP_SHADER, "matmul_subgroup", 64, 64),
            MatmulKernel::Subgroup128 => (SUBGROUP_SHADER, "matmul_subgroup128", 128, 64),
            MatmulKernel::Subgroup64Wide => (SUBGROUP_SHADER, "matmul_subgroup", 64, 128),
        }
    }
}

impl std::str::FromStr for MatmulKernel {
    type Err = Error;

    /// A layout by its lowercase name: auto, tiled, wide, rows, dot, subgroup16, subgroup32,
    /// subgroup64, subgroup128 or subgroup64wide.
    fn from_str(name: &str) -> Result<Self> {
        let all = [MatmulKernel::Auto].into_iter().chain(MatmulKernel::ALL);
        all.into_iter()
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown matmul layout '{name}' (auto, tiled, wide, rows, dot, subgroup16, \
                     subgroup32, subgroup64, subgroup128, subgroup64wide)"
                ))
            })
    }
}

/// How `matmul_subgroup` reads A (its `A_READ` override; the values are its `A_*` constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum ARead {
    /// Eight at a time along K (A untransposed, K a multiple of 8).
    AlongK = 0,
    /// Eight at a time along M (A transposed, M a multiple of 8).
    AlongM = 1,
    /// One at a time.
    Scalar = 2,
}

/// How `matmul_subgroup` reads B (its `B_READ` override; the values are its `B_*` constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum BRead {
    /// Four at a time along N.
    AlongN = 0,
    /// Four at a time along K.
    AlongK = 1,
    /// Eight at a time along K (K a multiple of 8).
    AlongK8 = 2,
    /// Eight at a time along N (N a multiple of 8).
    AlongN8 = 3,
}

/// The WGSL constants the host's codes stand for: (shader, constant, the host's value).
pub fn shader_constants() -> Vec<(Shader, &'static str, u32)> {
    let a = [
        ("A_ALONG_K", ARead::AlongK),
        ("A_ALONG_M", ARead::AlongM),
        ("A_SCALAR", ARead::Scalar),
    ];
    let b = [
        ("B_ALONG_N", BRead::AlongN),
        ("B_ALONG_K", BRead::AlongK),
        ("B_ALONG_K8", BRead::AlongK8),
        ("B_ALONG_N8", BRead::AlongN8),
    ];
    let a = a
        .into_iter()
        .map(|(name, v)| (SUBGROUP_SHADER, name, v as u32));
    a.chain(
        b.into_iter()
            .map(|(name, v)| (SUBGROUP_SHADER, name, v as u32)),
    )
    .collect()
}

/// How the operands are read and what is done to the product.
#[derive(Clone, Copy, Default, Debug)]
pub struct MatmulOptions<'a> {
    /// A is stored K×M and read transposed.
    pub trans_a: bool,
    /// B is stored N×K and read transposed (as `nn.Linear` weights are).
    pub trans_b: bool,
    /// Adds `bias[j]` to every row of C (length N), or with `bias_rows` `bias[i]` to every
    /// column (length M).
    pub bias: Option<&'a Tensor>,
    /// The bias is per row of C: a convolution's, whose rows are output channels.
    pub bias_rows: bool,
    /// Applies max(·, 0) after the bias.
    pub relu: bool,
    /// Zeroes C where `gate` (M×N) is ≤ 0, last: ReLU's backward from its output, fused into
    /// the matmul that computes the incoming gradient.
    pub gate: Option<&'a Tensor>,
    /// Also writes Σ_k op(A)[i, k] into `row_sums[i]` (length M): a linear layer's bias
    /// gradient beside its weight gradient dzᵀ·x. Only layouts whose
    /// [`MatmulKernel::sums_rows`] holds compute it (`Auto` picks one).
    pub row_sums: Option<&'a Tensor>,
    /// A's stored matrix (M×K, or K×M with `trans_a`) holds its columns in planes of this many
    /// values (a multiple of 8 dividing its row length), as an NCHW tensor `[B, R, G]` holds
    /// the R × B·G matrix of its channels: a convolution's output gradient, read in place.
    /// Subgroup layouts only.
    pub a_planes: Option<usize>,
    /// C (and the gate) lie in planes likewise: a convolution's output, NCHW, straight from
    /// its product. Subgroup layouts only.
    pub c_planes: Option<usize>,
    /// The work layout.
    pub kernel: MatmulKernel,
}

impl MatmulOptions<'_> {
    /// Whether these options ask for what only the subgroup layouts do.
    fn subgroup_only(&self) -> bool {
        self.bias_rows || self.a_planes.is_some() || self.c_planes.is_some()
    }

    /// Whether the planes asked for fit an M×N×K product: a multiple of 8 values each, whole
    /// planes in every row of the stored matrix.
    fn planes_fit(&self, (m, n, k): (usize, usize, usize)) -> bool {
        let fits = |plane: Option<usize>, row: usize| {
            plane.is_none_or(|g| g > 0 && g.is_multiple_of(8) && row.is_multiple_of(g))
        };
        fits(self.a_planes, if self.trans_a { m } else { k }) && fits(self.c_planes, n)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row: u32,
    a_k: u32,
    b_k: u32,
    b_col: u32,
    tiles_n: u32,
    tiles: u32,
    a_plane: u32,
    a_plane_stride: u32,
    c_plane: u32,
    c_plane_stride: u32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER, SUBGROUP_SHADER],
        Params {
            m,
            n,
            k,
            a_row,
            a_k,
            b_k,
            b_col,
            tiles_n,
            tiles,
            a_plane,
            a_plane_stride,
            c_plane,
            c_plane_stride
        }
    )
}

/// (M, N, K) of op(A)·op(B), checking that the inner dimensions agree.
pub fn output_dims(a: &Tensor, b: &Tensor, opts: &MatmulOptions) -> Result<(usize, usize, usize)> {
    a.expect_dtype(DType::F32)?;
    b.expect_dtype(DType::F32)?;
    let (ar, ac) = dims2(a, "matmul's A")?;
    let (br, bc) = dims2(b, "matmul's B")?;
    let (m, ka) = if opts.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if opts.trans_b { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::shape(format!(
            "matmul: op(A) is {m}×{ka} but op(B) is {kb}×{n} (A {:?}{}, B {:?}{})",
            a.shape(),
            if opts.trans_a { "ᵀ" } else { "" },
            b.shape(),
            if opts.trans_b { "ᵀ" } else { "" },
        )));
    }
    Ok((m, n, ka))
}

/// Asks the product `opts` describes to write op(A)'s row sums into `sums` as well, when the
/// layout it resolves to on `gpu` writes them (the layout does not change for them); returns
/// whether it will. A caller that gets `false` sums them another way.
pub fn fuse_row_sums<'a>(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    opts: &mut MatmulOptions<'a>,
    sums: &'a Tensor,
) -> Result<bool> {
    let dims = output_dims(a, b, opts)?;
    let fused = opts.kernel.resolve(gpu, dims, opts).sums_rows();
    if fused {
        opts.row_sums = Some(sums);
    }
    Ok(fused)
}

/// A prepared C = op(A)·op(B) (+bias) (+ReLU) writing into `c` (M×N).
pub fn matmul_dispatch(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let dims = check(a, b, c, &opts)?;
    let kernel = opts.kernel.resolve(gpu, dims, &opts);
    if !policy::loops_fit(gpu.profile(), kernel, dims.2) {
        return Err(Error::InvalidArgument(format!(
            "matmul: the {kernel:?} layout can loop once per k, and this adapter stops a \
             shader's loops after 65,535 iterations: use it for K up to 32,767 (K = {}), or \
             another layout",
            dims.2
        )));
    }
    if opts.row_sums.is_some() && !kernel.sums_rows() {
        return Err(Error::InvalidArgument(format!(
            "matmul: the {kernel:?} layout does not write row sums: use another layout or \
             Auto"
        )));
    }
    if !kernel.supports(gpu, dims, &opts) {
        let (m, n, k) = dims;
        return Err(Error::InvalidArgument(format!(
            "matmul: the {kernel:?} layout needs an adapter with 8-lane subgroups, 64-bit \
             integers and {SUBGROUP_STORAGE_BUFFERS} storage buffers per stage, op(B)'s \
             contiguous dimension a multiple of 4, N ≥ 4 and A, B and C of 8 elements or more \
             (for Subgroup128, A untransposed with K a multiple of 8; for Subgroup64Wide, A and \
             B untransposed with K and N multiples of 8; planes and a per-row bias: subgroup \
             layouts only, planes of a multiple of 8 values dividing the stored rows) (M={m} \
             N={n} K={k})"
        )));
    }
    let (shader, entry, tile_rows, tile_cols) = kernel.layout();
    let (m, n, _) = dims;
    let tiles_n = n.div_ceil(tile_cols);
    let tiles = m.div_ceil(tile_rows) * tiles_n;
    let params = Params::new(dims, &opts, tiles_n, tiles)?;
    let flag = |on: bool| f64::from(u8::from(on));
    let mut constants = vec![
        ("BIAS", flag(opts.bias.is_some())),
        ("RELU", flag(opts.relu)),
        ("GATE", flag(opts.gate.is_some())),
    ];
    if kernel.sums_rows() {
        constants.push(("ROW_SUMS", flag(opts.row_sums.is_some())));
    }
    if kernel == MatmulKernel::Dot {
        let lanes = policy::dot_lanes(gpu.profile(), tiles, dims.2);
        constants.push(("DOT_LANES", f64::from(lanes)));
    }
    // Unused epilogue bindings get A as a stand-in.
    let gate = opts.gate.unwrap_or(a);
    let mut tensors = vec![
        (1, a),
        (2, b),
        (3, opts.bias.unwrap_or(a)),
        (4, c),
        (5, gate),
    ];
    if kernel.sums_rows() {
        tensors.push((11, opts.row_sums.unwrap_or(c)));
    }
    if kernel.is_subgroup() {
        constants.extend(subgroup_constants(dims, &opts, (tile_rows, tile_cols)));
        // The same tensors seen another way: A and C as scalars, the gate as vec4s, B and C
        // as groups of eight.
        tensors.extend([(6, a), (7, c), (8, gate), (9, b), (10, c)]);
    }
    Dispatch::specialized(
        gpu,
        shader,
        entry,
        &constants,
        &params,
        &tensors,
        tiles as u64,
    )
}

/// (M, N, K) of a product whose output `c` and epilogue tensors fit it.
fn check(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: &MatmulOptions,
) -> Result<(usize, usize, usize)> {
    let (m, n, k) = output_dims(a, b, opts)?;
    c.expect_dtype(DType::F32)?;
    if c.shape() != [m, n] {
        return Err(Error::shape(format!(
            "matmul: output must be [{m}, {n}], got {:?}",
            c.shape()
        )));
    }
    if let Some(bias) = opts.bias {
        let len = if opts.bias_rows { m } else { n };
        super::expect_len(bias, len, "matmul's bias")?;
    }
    if let Some(sums) = opts.row_sums {
        super::expect_len(sums, m, "matmul's row sums")?;
    }
    if let Some(gate) = opts.gate {
        gate.expect_dtype(DType::F32)?;
        if gate.shape() != [m, n] {
            return Err(Error::shape(format!(
                "matmul: the gate must be [{m}, {n}] like the output, got {:?}",
                gate.shape()
            )));
        }
    }
    Ok((m, n, k))
}

impl Params {
    /// The uniform block of an M×N×K product covered by `tiles` tiles, `tiles_n` across N.
    fn new(
        (m, n, k): (usize, usize, usize),
        opts: &MatmulOptions,
        tiles_n: usize,
        tiles: usize,
    ) -> Result<Self> {
        let (m32, n32, k32) = (u32_param(m, "M")?, u32_param(n, "N")?, u32_param(k, "K")?);
        let (mut a_row, mut a_k) = if opts.trans_a { (1, m32) } else { (k32, 1) };
        let (b_k, b_col) = if opts.trans_b { (1, k32) } else { (n32, 1) };
        // In planes, the stored matrix's rows are a plane apart, and its planes rows·plane.
        let (mut a_plane, mut a_plane_stride) = (0, 0);
        if let Some(g) = opts.a_planes {
            a_plane = u32_param(g, "plane")?;
            let rows = if opts.trans_a { k } else { m };
            a_plane_stride = u32_param(rows * g, "plane")?;
            if opts.trans_a {
                a_k = a_plane;
            } else {
                a_row = a_plane;
            }
        }
        let (mut c_plane, mut c_plane_stride) = (0, 0);
        if let Some(g) = opts.c_planes {
            c_plane = u32_param(g, "plane")?;
            c_plane_stride = u32_param(m * g, "plane")?;
        }
        Ok(Params {
            m: m32,
            n: n32,
            k: k32,
            a_row,
            a_k,
            b_k,
            b_col,
            tiles_n: u32_param(tiles_n, "tiles")?,
            tiles: u32_param(tiles, "tiles")?,
            a_plane,
            a_plane_stride,
            c_plane,
            c_plane_stride,
        })
    }
}

/// The subgroup layouts' override constants for this product: how A and B are read, C's
/// store width, 16-row groups per block of 64 (`matmul_subgroup128` takes two blocks), eights
/// of columns per lane, planes and the bias's direction.
fn subgroup_constants(
    (m, n, k): (usize, usize, usize),
    opts: &MatmulOptions,
    (tile_rows, tile_cols): (usize, usize),
) -> [(&'static str, f64); 9] {
    let a_read = match opts.trans_a {
        false if k.is_multiple_of(8) => ARead::AlongK,
        true if m.is_multiple_of(8) => ARead::AlongM,
        _ => ARead::Scalar,
    };
    let b_read = match opts.trans_b {
        false if n.is_multiple_of(8) => BRead::AlongN8,
        false => BRead::AlongN,
        true if k.is_multiple_of(8) => BRead::AlongK8,
        true => BRead::AlongK,
    };
    let flag = |on: bool| f64::from(u8::from(on));
    [
        ("A_READ", f64::from(a_read as u32)),
        ("B_READ", f64::from(b_read as u32)),
        ("C_VEC4", flag(n.is_multiple_of(4))),
        ("C_VEC8", flag(n.is_multiple_of(8))),
        ("GROUPS", (tile_rows.min(64) / 16) as f64),
        ("LANE_EIGHTS", (tile_cols / 64) as f64),
        ("A_PLANES", flag(opts.a_planes.is_some())),
        ("C_PLANES", flag(opts.c_planes.is_some())),
        ("BIAS_ROWS", flag(opts.bias_rows)),
    ]
}

/// Computes op(A)·op(B) (+bias) (+ReLU) into a new M×N tensor.
pub fn matmul(gpu: &Gpu, a: &Tensor, b: &Tensor, opts: MatmulOptions) -> Result<Tensor> {
    let (m, n, _) = output_dims(a, b, &opts)?;
    let c = Tensor::zeros(gpu, &[m, n], DType::F32)?;
    matmul_dispatch(gpu, a, b, &c, opts)?.run(gpu)?;
    Ok(c)
}
