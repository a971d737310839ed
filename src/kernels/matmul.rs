//! `shaders/matmul.wgsl`: C = op(A)·op(B) (+bias) (+ReLU).

use super::{dims2, u32_param};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};

/// The matmul shader.
pub const SHADER: Shader = Shader {
    name: "matmul.wgsl",
    source: include_str!("../../shaders/matmul.wgsl"),
};

/// Output rows and columns per workgroup tile.
const TILE: usize = 64;

/// How the operands are read and what is done to the product.
#[derive(Clone, Copy, Default, Debug)]
pub struct MatmulOptions<'a> {
    /// A is stored K×M and read transposed.
    pub trans_a: bool,
    /// B is stored N×K and read transposed (as `nn.Linear` weights are).
    pub trans_b: bool,
    /// Adds `bias[j]` to every row of C (length N).
    pub bias: Option<&'a Tensor>,
    /// Applies max(·, 0) after the bias.
    pub relu: bool,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    tiles_n: u32,
    tiles: u32,
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

/// A prepared C = op(A)·op(B) (+bias) (+ReLU) writing into `c` (M×N).
pub fn matmul_dispatch(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let (m, n, k) = output_dims(a, b, &opts)?;
    c.expect_dtype(DType::F32)?;
    if c.shape() != [m, n] {
        return Err(Error::shape(format!(
            "matmul: output must be [{m}, {n}], got {:?}",
            c.shape()
        )));
    }
    if let Some(bias) = opts.bias {
        super::expect_len(bias, n, "matmul's bias")?;
    }
    let tiles_n = n.div_ceil(TILE);
    let tiles = m.div_ceil(TILE) * tiles_n;
    let flags = u32::from(opts.trans_a)
        | u32::from(opts.trans_b) << 1
        | u32::from(opts.bias.is_some()) << 2
        | u32::from(opts.relu) << 3;
    let params = Params {
        m: u32_param(m, "M")?,
        n: u32_param(n, "N")?,
        k: u32_param(k, "K")?,
        flags,
        tiles_n: u32_param(tiles_n, "tiles")?,
        tiles: u32_param(tiles, "tiles")?,
    };
    // Without a bias, A stands in for the unused binding.
    let bias = opts.bias.unwrap_or(a);
    Dispatch::new(
        gpu,
        SHADER,
        "matmul",
        &params,
        &[(1, a), (2, b), (3, bias), (4, c)],
        tiles as u64,
    )
}

/// Computes op(A)·op(B) (+bias) (+ReLU) into a new M×N tensor.
pub fn matmul(gpu: &Gpu, a: &Tensor, b: &Tensor, opts: MatmulOptions) -> Result<Tensor> {
    let (m, n, _) = output_dims(a, b, &opts)?;
    let c = Tensor::zeros(gpu, &[m, n], DType::F32)?;
    matmul_dispatch(gpu, a, b, &c, opts)?.run(gpu)?;
    Ok(c)
}
