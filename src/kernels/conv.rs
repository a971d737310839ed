//! `shaders/conv.wgsl` with [`matmul`](super::matmul): 2-D convolution over NCHW tensors and
//! its gradients, as `torch.nn.functional.conv2d` with `groups = 1` (docs/semantics.md).
//!
//! The products run on the matmul kernels, so a convolution gets the adapter's fastest matmul
//! layout; around them, `conv.wgsl` gathers the input's taps into a scratch matrix (`im2col`)
//! and scatters them back (`col2im`, a gather in fixed order, no atomics). The scratch is
//! allocated once; convolutions may share one, or each keep its own so that backward reads the
//! taps its forward gathered (`Conv2dGrads::taps_kept`), as `nn::Sequential` does.
//!
//! ```
//! use wgml::gpu::{Gpu, Tensor};
//! use wgml::kernels::conv::{conv2d, Conv2dOptions};
//!
//! let gpu = Gpu::from_env()?;
//! let x = Tensor::from_slice(&gpu, &[1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?;
//! let w = Tensor::from_slice(&gpu, &[1.0f32, 10.0], &[2, 1, 1, 1])?; // [out, in, kh, kw]
//! let b = Tensor::from_slice(&gpu, &[0.5f32, 0.0], &[2])?;
//! let opts = Conv2dOptions { stride: (2, 1), ..Default::default() };
//! let y = conv2d(&gpu, &x, &w, Some(&b), &opts)?;
//! assert_eq!(y.shape(), [1, 2, 1, 2]);
//! assert_eq!(y.to_vec::<f32>(&gpu)?, [1.5, 2.5, 10.0, 20.0]);
//! # Ok::<(), wgml::Error>(())
//! ```

use super::matmul::{fuse_row_sums, matmul_dispatch, MatmulOptions};
use super::{policy, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Program, Shader, Tensor};

/// The convolution shader.
pub const SHADER: Shader = Shader {
    name: "conv.wgsl",
    source: include_str!("../../shaders/conv.wgsl"),
};

/// `torch.nn.Conv2d`'s options besides the sizes (`groups = 1`, zero padding), each
/// (height, width). The kernel's size comes from the weight, `[out, in, kh, kw]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conv2dOptions {
    /// Step between windows.
    pub stride: (usize, usize),
    /// Zeros added on each side.
    pub padding: (usize, usize),
    /// Spacing of the window's taps.
    pub dilation: (usize, usize),
}

impl Default for Conv2dOptions {
    /// Stride 1, no padding, dilation 1, as `nn.Conv2d`'s defaults.
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }
}

/// The sizes of one convolution: input `[batch, channels, height, width]`, weight
/// `[out_channels, channels, kernel.0, kernel.1]`, output `[batch, out_channels, out_height,
/// out_width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// N.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Output height.
    pub out_height: usize,
    /// Output width.
    pub out_width: usize,
}

impl Conv2dShape {
    /// The sizes of a convolution of an input of `input` shape by a weight of `weight` shape,
    /// with PyTorch's checks.
    pub fn new(input: &[usize], weight: &[usize], opts: &Conv2dOptions) -> Result<Self> {
        let [batch, channels, height, width] = *input else {
            return Err(Error::shape(format!(
                "conv2d takes (N, C, H, W) inputs, got shape {input:?}"
            )));
        };
        let [out_channels, in_channels, kh, kw] = *weight else {
            return Err(Error::shape(format!(
                "conv2d's weight must be [out, in, kh, kw], got shape {weight:?}"
            )));
        };
        if in_channels != channels {
            return Err(Error::shape(format!(
                "conv2d: the weight {weight:?} expects {in_channels} input channels, but the \
                 input {input:?} has {channels}"
            )));
        }
        if out_channels == 0 || in_channels == 0 || kh == 0 || kw == 0 {
            return Err(Error::shape(format!(
                "conv2d's weight must have no zero dimension, got shape {weight:?}"
            )));
        }
        let (out_height, out_width) = output_size((height, width), (kh, kw), opts)?;
        Ok(Conv2dShape {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel: (kh, kw),
            out_height,
            out_width,
        })
    }

    /// The input's shape.
    pub fn input(&self) -> [usize; 4] {
        [self.batch, self.channels, self.height, self.width]
    }

    /// The weight's shape.
    pub fn weight(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.channels,
            self.kernel.0,
            self.kernel.1,
        ]
    }

    /// The output's shape.
    pub fn output(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }

    /// Taps per output: channels · kh · kw (the products' inner dimension).
    pub fn taps(&self) -> usize {
        self.channels * self.kernel.0 * self.kernel.1
    }

    /// Output positions: batch · out_height · out_width.
    pub fn positions(&self) -> usize {
        self.batch * self.out_height * self.out_width
    }

    /// Multiply-adds of the forward pass (each gradient takes as many).
    pub fn macs(&self) -> usize {
        self.positions() * self.out_channels * self.taps()
    }

    /// The same convolution over a batch of `batch`.
    pub fn with_batch(&self, batch: usize) -> Self {
        Conv2dShape { batch, ..*self }
    }
}

/// The output (height, width) of a convolution over (height, width) with a kernel of
/// (kh, kw), with PyTorch's checks.
pub fn output_size(
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    opts: &Conv2dOptions,
) -> Result<(usize, usize)> {
    let dims = [
        (h, kh, opts.stride.0, opts.padding.0, opts.dilation.0),
        (w, kw, opts.stride.1, opts.padding.1, opts.dilation.1),
    ];
    let mut out = [0; 2];
    for (i, (size, kernel, stride, pad, dilation)) in dims.into_iter().enumerate() {
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(Error::invalid(format!(
                "conv2d: kernel, stride and dilation must be positive, got kernel {kh}×{kw}, \
                 stride {:?}, dilation {:?}",
                opts.stride, opts.dilation
            )));
        }
        let Some(count) = super::window_count(size, (kernel, stride, pad, dilation)) else {
            return Err(Error::shape(format!(
                "conv2d: an input of {h}×{w} (padding {:?}) is smaller than the {kh}×{kw} \
                 kernel (dilation {:?})",
                opts.padding, opts.dilation
            )));
        };
        out[i] = count;
    }
    Ok((out[0], out[1]))
}

/// The matrices a convolution works in, allocated once: the input's taps `[taps, positions]`
/// (and, in backward, their gradient), the product `[out_channels, positions]` (where the
/// products cannot read and write NCHW in place), and the weight reordered for a
/// position-major taps' gradient ([`TapsGradLayout::PositionMajor`]). One scratch serves every
/// convolution it is large enough for.
pub struct Conv2dScratch {
    col: Tensor,
    product: Tensor,
    weight: Tensor,
}

impl Conv2dScratch {
    /// Scratch for convolutions of up to `taps × positions`, `out_channels × positions` and
    /// `out_channels × taps` values (`[Conv2dScratch::for_shapes]` sizes it for several).
    pub fn new(gpu: &Gpu, taps: usize, product: usize, weight: usize) -> Result<Self> {
        Ok(Conv2dScratch {
            col: Tensor::zeros(gpu, &[taps.max(1)], DType::F32)?,
            product: Tensor::zeros(gpu, &[product.max(1)], DType::F32)?,
            weight: Tensor::zeros(gpu, &[weight.max(1)], DType::F32)?,
        })
    }

    /// Scratch large enough for each of `shapes`.
    pub fn for_shapes(gpu: &Gpu, shapes: &[Conv2dShape]) -> Result<Self> {
        let most = |size: fn(&Conv2dShape) -> usize| shapes.iter().map(size).max().unwrap_or(0);
        Self::new(
            gpu,
            most(|s| s.taps() * s.positions()),
            most(|s| s.out_channels * s.positions()),
            most(|s| s.out_channels * s.taps()),
        )
    }

    /// Scratch for one convolution of `shape` as `gpu` runs it in a model: its forward pass
    /// and, when `backward` is `Some(dx wanted)`, its backward pass (with the adapter's own
    /// [`TapsGradLayout`]). It holds the product matrix only where one of them goes through it.
    pub fn for_convolution(gpu: &Gpu, shape: &Conv2dShape, backward: Option<bool>) -> Result<Self> {
        let dx_layout = |dx: bool| dx.then(|| TapsGradLayout::Auto.resolve(gpu, shape));
        let in_place = forward_in_planes(gpu, shape)
            && backward.is_none_or(|dx| backward_in_planes(gpu, shape, dx_layout(dx)));
        let product = if in_place {
            0
        } else {
            shape.out_channels * shape.positions()
        };
        Self::new(
            gpu,
            shape.taps() * shape.positions(),
            product,
            shape.out_channels * shape.taps(),
        )
    }

    /// Bytes it holds.
    pub fn bytes(&self) -> u64 {
        4 * (self.col.len() + self.product.len() + self.weight.len()) as u64
    }

    /// The views for `shape`: col `[taps, positions]`, weight `[out_channels, taps]`.
    fn views(&self, shape: &Conv2dShape) -> Result<(Tensor, Tensor)> {
        let (taps, positions, out) = (shape.taps(), shape.positions(), shape.out_channels);
        if taps * positions > self.col.len() || out * taps > self.weight.len() {
            return Err(self.too_small(shape));
        }
        Ok((
            self.col.view(0, &[taps, positions])?,
            self.weight.view(0, &[out, taps])?,
        ))
    }

    /// The product's view for `shape`, `[out_channels, positions]`.
    fn product(&self, shape: &Conv2dShape) -> Result<Tensor> {
        let (out, positions) = (shape.out_channels, shape.positions());
        if out * positions > self.product.len() {
            return Err(self.too_small(shape));
        }
        self.product.view(0, &[out, positions])
    }

    fn too_small(&self, shape: &Conv2dShape) -> Error {
        Error::shape(format!(
            "conv2d: the scratch holds {}, {} and {} values, too few for {shape:?}",
            self.col.len(),
            self.product.len(),
            self.weight.len()
        ))
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dilation_h: u32,
    dilation_w: u32,
}

/// The uniform block of this module's shaders, as the host lays it out (checked against the
/// WGSL in `tests/shaders.rs`).
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    super::layouts_of!(
        [SHADER],
        Params {
            batch,
            channels,
            height,
            width,
            out_channels,
            out_height,
            out_width,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            dilation_h,
            dilation_w
        }
    )
}

impl Params {
    fn new(shape: &Conv2dShape, opts: &Conv2dOptions) -> Result<Self> {
        // Every index the kernels form stays below N·C·H·W, taps·positions or O·positions.
        let largest = [
            shape.batch * shape.channels * shape.height * shape.width,
            shape.taps() * shape.positions(),
            shape.out_channels * shape.positions(),
        ];
        u32_param(
            largest.into_iter().max().unwrap_or(0),
            "conv2d's largest tensor",
        )?;
        let v = |x: usize, what: &str| u32_param(x, what);
        Ok(Params {
            batch: v(shape.batch, "batch")?,
            channels: v(shape.channels, "channels")?,
            height: v(shape.height, "height")?,
            width: v(shape.width, "width")?,
            out_channels: v(shape.out_channels, "out channels")?,
            out_height: v(shape.out_height, "output height")?,
            out_width: v(shape.out_width, "output width")?,
            kernel_h: v(shape.kernel.0, "kernel")?,
            kernel_w: v(shape.kernel.1, "kernel")?,
            stride_h: v(opts.stride.0, "stride")?,
            stride_w: v(opts.stride.1, "stride")?,
            pad_h: v(opts.padding.0, "padding")?,
            pad_w: v(opts.padding.1, "padding")?,
            dilation_h: v(opts.dilation.0, "dilation")?,
            dilation_w: v(opts.dilation.1, "dilation")?,
        })
    }
}

fn expect(t: &Tensor, shape: &[usize], what: &str) -> Result<()> {
    t.expect_dtype(DType::F32)?;
    if t.shape() != shape {
        return Err(Error::shape(format!(
            "conv2d's {what} must be {shape:?}, got {:?}",
            t.shape()
        )));
    }
    Ok(())
}

/// One of `conv.wgsl`'s entries over `shape`, one invocation per element of `elements`.
fn dispatch(
    gpu: &Gpu,
    entry: &'static str,
    constants: &[(&'static str, f64)],
    params: &Params,
    tensors: &[(u32, &Tensor)],
    elements: usize,
) -> Result<Dispatch> {
    let groups = elements.div_ceil(256) as u64;
    Dispatch::specialized(gpu, SHADER, entry, constants, params, tensors, groups)
}

fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}

/// Workgroups of 64 invocations for `count` invocations along x, and `rows` along y.
fn grid(count: usize, rows: usize) -> Result<[u32; 3]> {
    let x = u32_param(count.div_ceil(64), "workgroups")?;
    Ok([x, u32_param(rows, "workgroups")?, 1])
}

/// x's taps into col `[taps, positions]`: four positions per invocation where they come in
/// fours and the taps fit the grid, else one.
fn im2col(
    gpu: &Gpu,
    shape: &Conv2dShape,
    params: &Params,
    x: &Tensor,
    col: &Tensor,
) -> Result<Dispatch> {
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    if shape.positions().is_multiple_of(4) && shape.taps() <= max {
        let d = Dispatch::new(gpu, SHADER, "im2col4", params, &[(1, x), (6, col)], 1)?;
        return d.on_grid(gpu, grid(shape.positions().div_ceil(8), shape.taps())?);
    }
    dispatch(gpu, "im2col", &[], params, &[(1, x), (2, col)], col.len())
}

/// Whether the NCHW movers can go four values at a time: planes in fours, samples within the
/// grid.
fn quads(gpu: &Gpu, shape: &Conv2dShape) -> bool {
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    (shape.out_height * shape.out_width).is_multiple_of(4) && shape.batch <= max
}

/// The shape of a convolution of `x` by `weight`, checked.
fn shape_of(x: &Tensor, weight: &Tensor, opts: &Conv2dOptions) -> Result<Conv2dShape> {
    x.expect_dtype(DType::F32)?;
    weight.expect_dtype(DType::F32)?;
    Conv2dShape::new(x.shape(), weight.shape(), opts)
}

/// A prepared forward pass: y = conv2d(x, weight) (+ bias) (then ReLU when `relu`), y
/// `[N, O, OH, OW]`. Three dispatches: im2col, the product, and the NCHW store with the
/// epilogue; two where the product itself writes NCHW with the epilogue
/// ([`MatmulOptions::c_planes`]: the subgroup layouts, output planes of a multiple of 8).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    relu: bool,
    y: &Tensor,
    scratch: &Conv2dScratch,
    opts: &Conv2dOptions,
) -> Result<Program> {
    let shape = shape_of(x, weight, opts)?;
    expect(y, &shape.output(), "output")?;
    if let Some(b) = bias {
        expect(b, &[shape.out_channels], "bias")?;
    }
    let params = Params::new(&shape, opts)?;
    let (col, _) = scratch.views(&shape)?;
    let w = weight.reshape(&[shape.out_channels, shape.taps()])?;
    let mut program = Program::new();
    program.push(im2col(gpu, &shape, &params, x, &col)?);
    if forward_in_planes(gpu, &shape) {
        let nchw = MatmulOptions {
            bias,
            bias_rows: bias.is_some(),
            relu,
            c_planes: planes(&shape),
            ..Default::default()
        };
        let y = y.reshape(&[shape.out_channels, shape.positions()])?;
        program.push(matmul_dispatch(gpu, &w, &col, &y, nchw)?);
        return Ok(program);
    }
    let product = scratch.product(&shape)?;
    program.push(matmul_dispatch(
        gpu,
        &w,
        &col,
        &product,
        MatmulOptions::default(),
    )?);
    let constants = [("BIAS", flag(bias.is_some())), ("RELU", flag(relu))];
    let bias = bias.unwrap_or(&product);
    program.push(if quads(gpu, &shape) {
        let tensors = [(3, bias), (5, &product), (6, y)];
        let plane = shape.out_channels * shape.out_height * shape.out_width;
        Dispatch::specialized(gpu, SHADER, "to_nchw4", &constants, &params, &tensors, 1)?
            .on_grid(gpu, grid(plane / 4, shape.batch)?)?
    } else {
        let tensors = [(1, &product), (2, y), (3, bias)];
        dispatch(gpu, "to_nchw", &constants, &params, &tensors, y.len())?
    });
    Ok(program)
}

/// The planes of a convolution's output and of its gradient as products read and write them in
/// place: one plane of OH·OW values per sample and channel of the NCHW tensor.
fn planes(shape: &Conv2dShape) -> Option<usize> {
    Some(shape.out_height * shape.out_width)
}

/// Whether the forward product writes y in NCHW itself, with the epilogue, on `gpu`.
fn forward_in_planes(gpu: &Gpu, shape: &Conv2dShape) -> bool {
    let nchw = MatmulOptions {
        c_planes: planes(shape),
        ..Default::default()
    };
    in_planes(
        gpu,
        (shape.out_channels, shape.positions(), shape.taps()),
        &nchw,
    )
}

/// Whether the backward products read dy in place on `gpu`: the weight gradient's, and the taps'
/// gradient's when dx is wanted (`dx_layout`; taps-major reads dy as B, which planes do not
/// cover).
fn backward_in_planes(gpu: &Gpu, shape: &Conv2dShape, dx_layout: Option<TapsGradLayout>) -> bool {
    let (out, positions, taps) = (shape.out_channels, shape.positions(), shape.taps());
    in_planes(
        gpu,
        (out, taps, positions),
        &weight_grad_read(planes(shape)),
    ) && dx_layout.is_none_or(|layout| {
        layout == TapsGradLayout::PositionMajor
            && in_planes(gpu, (positions, taps, out), &taps_grad_read(planes(shape)))
    })
}

/// The weight gradient's product dy·colᵀ, reading dy in `planes` when given.
fn weight_grad_read(planes: Option<usize>) -> MatmulOptions<'static> {
    MatmulOptions {
        trans_b: true,
        a_planes: planes,
        ..Default::default()
    }
}

/// The taps' gradient's product dyᵀ·W, reading dy in `planes` when given.
fn taps_grad_read(planes: Option<usize>) -> MatmulOptions<'static> {
    MatmulOptions {
        trans_a: true,
        a_planes: planes,
        ..Default::default()
    }
}

/// Whether the M×N×K product `opts` describes, with its planes, runs on `gpu`: the layout it
/// resolves to reads and writes them, and writes row sums (the bias gradient's).
fn in_planes(gpu: &Gpu, dims: (usize, usize, usize), opts: &MatmulOptions) -> bool {
    let kernel = opts.kernel.resolve(gpu, dims, opts);
    kernel.supports(gpu, dims, opts) && kernel.sums_rows()
}

/// Where a convolution's backward pass writes.
#[derive(Clone, Copy)]
pub struct Conv2dGrads<'a> {
    /// d(loss)/dx, the input's shape; `None` when nothing needs it (a first layer).
    pub dx: Option<&'a Tensor>,
    /// Zeroes dx where this tensor (the input's shape) is ≤ 0: the backward of a ReLU whose
    /// output is the input, fused.
    pub gate: Option<&'a Tensor>,
    /// d(loss)/d(weight).
    pub dweight: &'a Tensor,
    /// d(loss)/d(bias), when the layer has one.
    pub dbias: Option<&'a Tensor>,
    /// The scratch still holds the input's taps from this convolution's forward pass (nothing
    /// has used it since): backward skips gathering them again.
    pub taps_kept: bool,
    /// How the input gradient's product lays out the taps' gradient.
    pub taps_grad: TapsGradLayout,
}

/// The layout of the taps' gradient, the product that `col2im` turns into dx.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TapsGradLayout {
    /// The adapter's faster one ([`policy::taps_grad_layout`]).
    #[default]
    Auto,
    /// `[taps, positions]` = Wᵀ·dy', as the forward's taps: neighbouring inputs read
    /// neighbouring values in `col2im` (coalesced on GPUs).
    TapsMajor,
    /// `[positions, taps]` = dy'ᵀ·W, W's taps reordered so that each tap's channels lie side
    /// by side (one more small dispatch): the product writes rows of `taps` values rather than
    /// rows of every position, which CPU adapters run faster, and `col2im` reads four channels
    /// per access where their number is a multiple of 4.
    PositionMajor,
}

impl TapsGradLayout {
    /// The concrete layout on `gpu` for a convolution of `shape`.
    pub fn resolve(self, gpu: &Gpu, shape: &Conv2dShape) -> Self {
        match self {
            TapsGradLayout::Auto => policy::taps_grad_layout(gpu.profile(), shape),
            layout => layout,
        }
    }
}

/// A prepared backward pass from dy (`[N, O, OH, OW]`): the weight's and bias's gradients and,
/// when asked, the input's. Unless `grads.taps_kept`, it gathers the input's taps again, so it
/// needs nothing the forward pass left in the scratch. Up to seven dispatches: im2col, dy to
/// `[O, positions]` (skipped where the products read dy in place,
/// [`MatmulOptions::a_planes`]), the bias's row sums, dW = dy·colᵀ, the taps' gradient (Wᵀ·dy,
/// or dyᵀ·W after reordering W's taps, as `grads.taps_grad` says), and col2im with the gate.
pub fn conv2d_backward(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    grads: Conv2dGrads,
    scratch: &Conv2dScratch,
    opts: &Conv2dOptions,
) -> Result<Program> {
    let shape = shape_of(x, weight, opts)?;
    expect(dy, &shape.output(), "output gradient")?;
    expect(grads.dweight, &shape.weight(), "weight gradient")?;
    if let Some(db) = grads.dbias {
        expect(db, &[shape.out_channels], "bias gradient")?;
    }
    if let Some(dx) = grads.dx {
        expect(dx, &shape.input(), "input gradient")?;
    }
    if let Some(gate) = grads.gate {
        expect(gate, &shape.input(), "gate")?;
        if grads.dx.is_none() {
            return Err(Error::invalid(
                "conv2d: a gate applies to dx, and no dx was given",
            ));
        }
    }
    if let Some(budget) = policy::loop_budget(gpu.profile()) {
        // row_sum's lanes each walk every 64th position.
        if shape.positions().div_ceil(64) > budget {
            return Err(Error::invalid(format!(
                "conv2d: {} output positions per channel exceed what this adapter's loop \
                 budget lets the bias gradient sum ({}); use smaller batches",
                shape.positions(),
                budget * 64
            )));
        }
    }
    let params = Params::new(&shape, opts)?;
    let (col, reordered) = scratch.views(&shape)?;
    let w = weight.reshape(&[shape.out_channels, shape.taps()])?;
    let dw = grads.dweight.reshape(&[shape.out_channels, shape.taps()])?;
    let mut program = Program::new();
    if !grads.taps_kept {
        program.push(im2col(gpu, &shape, &params, x, &col)?);
    }
    let dx_layout = grads.dx.map(|_| grads.taps_grad.resolve(gpu, &shape));
    let position_major = dx_layout == Some(TapsGradLayout::PositionMajor);
    // The products read dy in place, as planes of [O, positions], where their layouts can;
    // else a copy.
    let (product, planes) = if backward_in_planes(gpu, &shape, dx_layout) {
        let dy_rows = dy.reshape(&[shape.out_channels, shape.positions()])?;
        (dy_rows, planes(&shape))
    } else {
        let product = scratch.product(&shape)?;
        program.push(if quads(gpu, &shape) {
            let plane = shape.out_channels * shape.out_height * shape.out_width;
            Dispatch::new(
                gpu,
                SHADER,
                "from_nchw4",
                &params,
                &[(5, dy), (6, &product)],
                1,
            )?
            .on_grid(gpu, grid(plane / 4, shape.batch)?)?
        } else {
            let tensors = [(1, dy), (2, &product)];
            dispatch(gpu, "from_nchw", &[], &params, &tensors, product.len())?
        });
        (product, None)
    };
    let mut weight_grad = weight_grad_read(planes);
    // The bias gradient: the product's row sums, beside the weight gradient where its layout
    // writes them.
    if let Some(db) = grads.dbias {
        if !fuse_row_sums(gpu, &product, &col, &mut weight_grad, db)? {
            let groups = shape.out_channels as u64;
            let tensors = [(1, &product), (2, db)];
            program.push(Dispatch::new(
                gpu, SHADER, "row_sum", &params, &tensors, groups,
            )?);
        }
    }
    program.push(matmul_dispatch(gpu, &product, &col, &dw, weight_grad)?);
    if let Some(dx) = grads.dx {
        let transposed = taps_grad_read(planes);
        if position_major {
            // dy'ᵀ·W with W's taps reordered (u, v, c): each tap's channels side by side.
            let tensors = [(1, weight), (2, &reordered)];
            let entry = "weight_channels_inner";
            program.push(dispatch(
                gpu,
                entry,
                &[],
                &params,
                &tensors,
                reordered.len(),
            )?);
            let col = col.reshape(&[shape.positions(), shape.taps()])?;
            program.push(matmul_dispatch(
                gpu, &product, &reordered, &col, transposed,
            )?);
        } else {
            program.push(matmul_dispatch(gpu, &w, &product, &col, transposed)?);
        }
        // Without a gate, the taps stand in for its binding (read-only, like them).
        let gate = grads.gate.unwrap_or(&col);
        let constants = [
            ("GATE", flag(grads.gate.is_some())),
            ("UNIT_STRIDE", flag(opts.stride == (1, 1))),
            ("POSITION_MAJOR", flag(position_major)),
        ];
        program.push(if position_major && shape.channels.is_multiple_of(4) {
            let tensors = [(5, &col), (2, dx), (4, gate)];
            let entry = "col2im_channels4";
            dispatch(gpu, entry, &constants, &params, &tensors, dx.len() / 4)?
        } else {
            let tensors = [(1, &col), (2, dx), (4, gate)];
            dispatch(gpu, "col2im", &constants, &params, &tensors, dx.len())?
        });
    }
    Ok(program)
}

/// conv2d(x, weight) + bias in one call (allocates).
pub fn conv2d(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    opts: &Conv2dOptions,
) -> Result<Tensor> {
    let shape = shape_of(x, weight, opts)?;
    let y = Tensor::zeros(gpu, &shape.output(), DType::F32)?;
    let scratch = Conv2dScratch::for_shapes(gpu, &[shape])?;
    conv2d_forward(gpu, x, weight, bias, false, &y, &scratch, opts)?.run(gpu)?;
    Ok(y)
}

/// The gradients of conv2d(x, weight) + bias from dy in one call (allocates): (dx, dweight,
/// dbias).
pub fn conv2d_gradients(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    opts: &Conv2dOptions,
) -> Result<(Tensor, Tensor, Tensor)> {
    let shape = shape_of(x, weight, opts)?;
    let dx = Tensor::zeros(gpu, &shape.input(), DType::F32)?;
    let dw = Tensor::zeros(gpu, &shape.weight(), DType::F32)?;
    let db = Tensor::zeros(gpu, &[shape.out_channels], DType::F32)?;
    let scratch = Conv2dScratch::for_shapes(gpu, &[shape])?;
    let grads = Conv2dGrads {
        dx: Some(&dx),
        gate: None,
        dweight: &dw,
        dbias: Some(&db),
        taps_kept: false,
        taps_grad: TapsGradLayout::Auto,
    };
    conv2d_backward(gpu, x, weight, dy, grads, &scratch, opts)?.run(gpu)?;
    Ok((dx, dw, db))
}
