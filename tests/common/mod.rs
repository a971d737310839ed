//! Shared test helpers: one GPU per test binary, seeded data, PyTorch's tolerances.
#![allow(dead_code)]

use std::sync::OnceLock;
use wgml::gpu::{DType, Gpu, Program, Tensor};
use wgml::kernels::counter::advance_dispatch;
use wgml::kernels::optim::{step_advance, OptimState, FACTORS};
use wgml::rng::Rng;

/// A fixture of `tests/golden/`, found at run time: under `WGML_FIXTURES` when set (test
/// binaries run on another machine), else in the source tree they were built from.
pub fn fixture(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("WGML_FIXTURES").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
        std::path::PathBuf::from,
    );
    dir.join(name)
}

/// The adapter `WGML_BACKEND` / `WGML_ADAPTER` select (lavapipe in CI), opened once.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::from_env().expect("a GPU adapter (install mesa-vulkan-drivers)"))
}

/// `n` values uniform in [lo, hi), from `seed`.
pub fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// Asserts |a − e| ≤ atol + rtol·|e| elementwise, naming the first failure.
pub fn assert_close(actual: &[f32], expected: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = (a - e).abs() <= atol + rtol * e.abs() || (a.is_nan() && e.is_nan());
        assert!(ok, "{what}: element {i} is {a}, expected {e}");
    }
}

/// PyTorch's float32 tolerance: 1e-5 + 1.3e-6·|e|.
pub fn assert_torch_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_close(actual, expected, 1e-5, 1.3e-6, what);
}

/// An IDX file's bytes: u8 data with `dims`.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// A fresh empty folder under the system's temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgml-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `update` (an optimizer's step on a fresh state, which advances its own step count) once
/// per gradient and returns the parameters.
pub fn run_optimizer(
    p0: &[f32],
    grads: &[Vec<f32>],
    update: impl Fn(&OptimState) -> wgml::Result<Program>,
) -> Vec<f32> {
    run_optimizer_counting(p0, grads, None, None, update).0
}

/// [`run_optimizer`] with `counter` advanced by the step too, and with `earlier = Some(adam)`
/// the step count advanced by a dispatch before the update's program (as a training step's
/// gather does; for Adam with its factors); also returns the program's dispatch count.
pub fn run_optimizer_counting(
    p0: &[f32],
    grads: &[Vec<f32>],
    counter: Option<&Tensor>,
    earlier: Option<bool>,
    update: impl Fn(&OptimState) -> wgml::Result<Program>,
) -> (Vec<f32>, usize) {
    let n = p0.len();
    let param = Tensor::from_slice(gpu(), p0, &[n]).unwrap();
    let grad = Tensor::zeros(gpu(), &[n], DType::F32).unwrap();
    let zeros = || Tensor::zeros(gpu(), &[n], DType::F32).unwrap();
    let (m, v, v_max) = (zeros(), zeros(), zeros());
    let step = Tensor::zeros(gpu(), &[1], DType::U32).unwrap();
    let factors = Tensor::zeros(gpu(), &[FACTORS], DType::F32).unwrap();
    let state = OptimState {
        step: &step,
        factors: &factors,
        grad: &grad,
        param: &param,
        m: &m,
        v: &v,
        v_max: &v_max,
        advanced_earlier: earlier.is_some(),
        counter,
    };
    let update = update(&state).unwrap();
    let mut step_program = Program::new();
    if let Some(adam) = earlier {
        step_program.push(advance_dispatch(gpu(), step_advance(&state, adam)).unwrap());
    }
    step_program.append(update.clone());
    for g in grads {
        grad.write(gpu(), g).unwrap();
        step_program.run(gpu()).unwrap();
    }
    assert_eq!(step.to_vec::<u32>(gpu()).unwrap(), vec![grads.len() as u32]);
    (param.to_vec(gpu()).unwrap(), update.dispatches().len())
}

/// `n` random-looking 4×4 images per split, labels 0..10.
pub fn write_small_mnist(dir: &std::path::Path, n: u32) {
    write_mnist_like(dir, n, 4);
}

/// [`write_small_mnist`] with `side` × `side` images (28 for the CNNs).
pub fn write_mnist_like(dir: &std::path::Path, n: u32, side: u32) {
    let images: Vec<u8> = (0..side * side * n).map(|i| (i * 97 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            idx_bytes(&[n, side, side], &images),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            idx_bytes(&[n], &labels),
        )
        .unwrap();
    }
}

/// lowbias32 of (i ^ seed·0x9E3779B9), as tests/golden/generate_lce.py's `hashes`.
pub fn hash(i: u32, seed: u32) -> u32 {
    let mut x = i ^ seed.wrapping_mul(0x9E37_79B9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// generate_lce.py's (and generate_cnn.py's) `values`: the same f32 bits.
pub fn values(count: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..count as u32)
        .map(|i| ((hash(i, seed) >> 8) as f32 * 2f32.powi(-24) - 0.5) * scale)
        .collect()
}
