//! One kernel from Rust: a fused Linear + ReLU, y = relu(x·Wᵀ + b), checked against the CPU.
//!
//! cargo run --release --example matmul

use wgml::gpu::{Gpu, Tensor};
use wgml::kernels::matmul::{matmul, MatmulOptions};
use wgml::reference;

fn main() -> wgml::Result<()> {
    let gpu = Gpu::from_env()?;
    let (m, k, n) = (3, 4, 2);
    let x: Vec<f32> = (0..m * k).map(|i| i as f32 / 10.0 - 0.5).collect();
    let w: Vec<f32> = (0..n * k).map(|i| 0.25 - i as f32 / 8.0).collect();
    let b = [0.1f32, -0.2];

    let bias = Tensor::from_slice(&gpu, &b, &[n])?;
    let opts = MatmulOptions {
        trans_b: true, // W is [out, in], as in nn.Linear
        bias: Some(&bias),
        relu: true,
        ..Default::default()
    };
    let y = matmul(
        &gpu,
        &Tensor::from_slice(&gpu, &x, &[m, k])?,
        &Tensor::from_slice(&gpu, &w, &[n, k])?,
        opts,
    )?;
    let y = y.to_vec::<f32>(&gpu)?;
    let expected = reference::matmul(&x, &w, m, n, k, false, true, Some(&b), true);
    println!("GPU ({}): {y:?}", gpu.info().name);
    println!("CPU reference: {expected:?}");
    Ok(())
}
