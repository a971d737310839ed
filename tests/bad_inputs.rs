//! Every bad input a user can hand wgml gets a clear error of a matchable kind, and nothing
//! panics: data files, weight files, tensors, models, hyper-parameters, environment and CLI.

mod common;
use common::{gpu, idx_bytes, temp_dir};
use std::path::{Path, PathBuf};
use wgml::data::{idx, GpuSplit, Mnist, Split};
use wgml::gpu::{DType, GpuOptions, Tensor};
use wgml::kernels::cross_entropy::{cross_entropy, CrossEntropyOptions, Reduction, Targets};
use wgml::kernels::matmul::{matmul, MatmulOptions};
use wgml::nn::{Layer, Sequential};
use wgml::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use wgml::train::{TrainConfig, Trainer};
use wgml::{checkpoint, Error};

type Case = (
    &'static str,
    Box<dyn Fn() -> wgml::Result<()>>,
    fn(&Error) -> bool,
    &'static str,
);

fn data_err(e: &Error) -> bool {
    matches!(e, Error::Data { .. })
}
fn shape_err(e: &Error) -> bool {
    matches!(e, Error::Shape(_))
}
fn invalid_err(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_))
}

fn parse(bytes: Vec<u8>) -> wgml::Result<()> {
    idx::parse(&bytes, Path::new("f.idx")).map(|_| ())
}

/// A folder holding a valid 4-sample, 2×2 MNIST-format dataset, then `edit` applied.
fn mnist_dir(name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let dir = temp_dir(name);
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            idx_bytes(&[4, 2, 2], &[9; 16]),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            idx_bytes(&[4], &[0, 1, 2, 3]),
        )
        .unwrap();
    }
    edit(&dir);
    dir
}

fn load_dir(dir: PathBuf) -> wgml::Result<()> {
    Mnist::load(&dir).map(|_| ())
}

fn write(dir: &Path, file: &str, bytes: Vec<u8>) {
    std::fs::write(dir.join(file), bytes).unwrap();
}

fn model() -> Sequential {
    Sequential::mlp(gpu(), &[4, 3, 2], 0).unwrap()
}

fn saved_weights(name: &str) -> PathBuf {
    let path = temp_dir(name).join("w.safetensors");
    checkpoint::save(&path, &model().params().state_dict(gpu()).unwrap()).unwrap();
    path
}

fn f32s(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).unwrap()
}

fn ce(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions) -> wgml::Result<()> {
    let t = if targets.dtype() == DType::I32 {
        Targets::Classes(&targets)
    } else {
        Targets::Probabilities(&targets)
    };
    cross_entropy(gpu(), &logits, t, opts).map(|_| ())
}

fn optimizer(config: OptimizerConfig) -> wgml::Result<()> {
    config.validate()
}

fn small_mnist() -> Mnist {
    let split = || Split {
        images: vec![1; 4 * 8],
        labels: vec![0, 1, 2, 3, 4, 5, 6, 7],
        features: 4,
    };
    Mnist {
        train: split(),
        test: split(),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // IDX files.
        ("IDX shorter than a header", Box::new(|| parse(vec![0, 0])), data_err, "shorter than an IDX header"),
        ("IDX wrong magic", Box::new(|| parse(vec![7, 7, 8, 1, 0, 0, 0, 0])), data_err, "not an IDX file"),
        ("IDX wrong dtype code", Box::new(|| parse(vec![0, 0, 0x0c, 1, 0, 0, 0, 1, 0, 0, 0, 0])), data_err, "data type 0x0c is not supported"),
        ("IDX header cut short", Box::new(|| parse(vec![0, 0, 8, 3, 0, 0, 0, 1])), data_err, "header needs 16"),
        ("IDX data cut short", Box::new(|| parse(idx_bytes(&[3, 3], &[0; 5]))), data_err, "truncated: dimensions [3, 3] need 9 bytes of data, found 5"),
        ("IDX trailing bytes", Box::new(|| parse(idx_bytes(&[2], &[0; 3]))), data_err, "trailing bytes"),
        ("IDX dimensions overflow", Box::new(|| parse(idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]))), data_err, "promise more than"),
        ("IDX gzip header promising 2^32 - 1 images", Box::new(|| {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&idx_bytes(&[u32::MAX, 28, 28], &[0; 4096])).unwrap();
            parse(gz.finish().unwrap())
        }), data_err, "promise more than the 2 GiB of data"),
        ("IDX file holding less than its header promises", Box::new(|| {
            let p = temp_dir("bad-idx-promise").join("f.idx");
            std::fs::write(&p, idx_bytes(&[100_000_000], &[7; 10])).unwrap();
            idx::read(&p).map(|_| ())
        }), data_err, "truncated: dimensions [100000000] need 100000000 bytes of data, found 10"),
        ("IDX corrupt gzip", Box::new(|| parse(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3])), data_err, "corrupt gzip stream"),
        ("IDX path is a directory", Box::new(|| idx::read(&temp_dir("bad-dir")).map(|_| ())), data_err, "is a directory"),
        ("IDX file missing", Box::new(|| idx::read(Path::new("/nonexistent/f.idx")).map(|_| ())), data_err, "/nonexistent/f.idx: file not found"),
        // MNIST folders.
        ("data folder missing", Box::new(|| load_dir(PathBuf::from("/nonexistent/mnist"))), data_err, "is not a folder"),
        ("data file missing", Box::new(|| load_dir(mnist_dir("bad-missing", |d| std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap()))), data_err, "t10k-labels-idx1-ubyte[.gz]: file not found"),
        ("images not 3-D", Box::new(|| load_dir(mnist_dir("bad-2d", |d| write(d, "train-images-idx3-ubyte", idx_bytes(&[4, 4], &[0; 16]))))), data_err, "images must be 3-D"),
        ("labels not 1-D", Box::new(|| load_dir(mnist_dir("bad-labels-2d", |d| write(d, "train-labels-idx1-ubyte", idx_bytes(&[2, 2], &[0; 4]))))), data_err, "labels must be 1-D"),
        ("image and label counts differ", Box::new(|| load_dir(mnist_dir("bad-count", |d| write(d, "t10k-labels-idx1-ubyte", idx_bytes(&[3], &[0; 3]))))), data_err, "has 3 labels but t10k-images-idx3-ubyte holds 4 images"),
        ("label beyond the classes", Box::new(|| load_dir(mnist_dir("bad-label", |d| write(d, "train-labels-idx1-ubyte", idx_bytes(&[4], &[0, 1, 10, 3]))))), data_err, "label 10 at index 2 is not a class in 0..10"),
        ("zero samples", Box::new(|| load_dir(mnist_dir("bad-empty", |d| {
            write(d, "train-images-idx3-ubyte", idx_bytes(&[0, 2, 2], &[]));
            write(d, "train-labels-idx1-ubyte", idx_bytes(&[0], &[]));
        }))), data_err, "holds no samples"),
        ("test images of another size", Box::new(|| load_dir(mnist_dir("bad-test-size", |d| write(d, "t10k-images-idx3-ubyte", idx_bytes(&[4, 3, 3], &[0; 36]))))), data_err, "t10k-images-idx3-ubyte: its images are 3×3 but the training images (train-images-idx3-ubyte) are 2×2"),
        // Weight files.
        ("weights header longer than the file", Box::new(|| {
            let p = temp_dir("bad-header-length").join("w.safetensors");
            let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
            bytes.extend_from_slice(&[b' '; 64]);
            std::fs::write(&p, bytes).unwrap();
            checkpoint::load(&p).map(|_| ())
        }), data_err, "promise a 1099511627776-byte header in a 72-byte file"),
        ("weights holding NaN", Box::new(|| {
            let p = temp_dir("bad-nan-weights").join("w.safetensors");
            checkpoint::save(&p, &[("0.weight".into(), vec![2, 2], vec![0.5, f32::NAN, 0.0, 1.0])]).unwrap();
            checkpoint::load_weights(&p).map(|_| ())
        }), data_err, "tensor 0.weight holds NaN: weights must be finite numbers"),
        ("weights file missing", Box::new(|| checkpoint::load(Path::new("/nonexistent/w.safetensors")).map(|_| ())), data_err, "file not found"),
        ("weights not safetensors", Box::new(|| {
            let p = temp_dir("bad-garbage").join("w.safetensors");
            std::fs::write(&p, b"definitely not a safetensors file").unwrap();
            checkpoint::load(&p).map(|_| ())
        }), data_err, "not a valid safetensors file"),
        ("weights truncated", Box::new(|| {
            let p = saved_weights("bad-truncated");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 8]).unwrap();
            checkpoint::load(&p).map(|_| ())
        }), data_err, "not a valid safetensors file"),
        ("weights tampered", Box::new(|| {
            let p = saved_weights("bad-tampered");
            let mut bytes = std::fs::read(&p).unwrap();
            let n = bytes.len();
            bytes[n - 3] ^= 0x40;
            std::fs::write(&p, &bytes).unwrap();
            checkpoint::load(&p).map(|_| ())
        }), data_err, "checksum mismatch"),
        ("weights of the wrong model", Box::new(|| {
            let p = saved_weights("bad-other-model");
            let other = Sequential::mlp(gpu(), &[4, 5, 2], 0).unwrap();
            other.params().load_state_dict(gpu(), &checkpoint::load(&p)?)
        }), invalid_err, "size mismatch for 0.bias: copying a param with shape [3] from checkpoint, the shape in current model is [5]."),
        ("weights with missing and unexpected names", Box::new(|| {
            model().params().load_state_dict(gpu(), &[("fc1.weight".into(), vec![3, 4], vec![0.0; 12])])
        }), invalid_err, "Missing key(s) in state_dict: \"0.weight\", \"0.bias\", \"2.weight\", \"2.bias\". Unexpected key(s) in state_dict: \"fc1.weight\"."),
        // Tensors and kernels.
        ("matmul inner dimensions differ", Box::new(|| matmul(gpu(), &f32s(&[0.0; 6], &[2, 3]), &f32s(&[0.0; 8], &[4, 2]), MatmulOptions::default()).map(|_| ())), shape_err, "op(A) is 2×3 but op(B) is 4×2"),
        ("matmul of a 1-D tensor", Box::new(|| matmul(gpu(), &f32s(&[0.0; 3], &[3]), &f32s(&[0.0; 3], &[3, 1]), MatmulOptions::default()).map(|_| ())), shape_err, "matmul's A must be 2-D"),
        ("tensor written with the wrong length", Box::new(|| f32s(&[0.0; 4], &[4]).write(gpu(), &[1.0f32; 3])), shape_err, "writing 3 elements into a tensor of shape [4]"),
        ("tensor read as the wrong type", Box::new(|| f32s(&[0.0; 4], &[4]).to_vec::<i32>(gpu()).map(|_| ())), shape_err, "expected a I32 tensor, got F32"),
        ("view past the end", Box::new(|| f32s(&[0.0; 4], &[4]).view(2, &[3]).map(|_| ())), shape_err, "exceeds a tensor of shape [4]"),
        ("tensor beyond max_buffer_size", Box::new(|| Tensor::zeros(gpu(), &[usize::MAX / 8], DType::F32).map(|_| ())), |e| matches!(e, Error::Limit { .. }), "max_buffer_size"),
        // Cross-entropy.
        ("CE batch sizes differ", Box::new(|| ce(f32s(&[0.0; 6], &[3, 2]), Tensor::from_slice(gpu(), &[0i32, 1], &[2]).unwrap(), Default::default())), shape_err, "Expected input batch_size (3) to match target batch_size (2)."),
        ("CE spatial target shape differs", Box::new(|| ce(f32s(&[0.0; 12], &[2, 2, 3]), Tensor::from_slice(gpu(), &[0i32; 4], &[2, 2]).unwrap(), Default::default())), shape_err, "Expected target size [2, 3], got [2, 2]"),
        ("CE weight of the wrong length", Box::new(|| {
            let w = f32s(&[1.0; 3], &[3]);
            ce(f32s(&[0.0; 4], &[2, 2]), Tensor::from_slice(gpu(), &[0i32, 1], &[2]).unwrap(), CrossEntropyOptions { weight: Some(&w), ..Default::default() })
        }), shape_err, "weight tensor should be defined either for all 2 classes or no classes but got weight tensor of shape: [3]"),
        ("CE label smoothing above 1", Box::new(|| ce(f32s(&[0.0; 4], &[2, 2]), Tensor::from_slice(gpu(), &[0i32, 1], &[2]).unwrap(), CrossEntropyOptions { label_smoothing: 1.2, ..Default::default() })), invalid_err, "label_smoothing must be between 0.0 and 1.0. Got: 1.2"),
        ("CE ignore_index with probabilities", Box::new(|| ce(f32s(&[0.0; 4], &[2, 2]), f32s(&[0.5; 4], &[2, 2]), CrossEntropyOptions { ignore_index: 0, ..Default::default() })), invalid_err, "ignore_index is not supported for floating point target"),
        ("CE target out of bounds", Box::new(|| ce(f32s(&[0.0; 4], &[2, 2]), Tensor::from_slice(gpu(), &[0i32, 12], &[2]).unwrap(), Default::default())), |e| matches!(e, Error::TargetOutOfBounds(12)), "Target 12 is out of bounds."),
        ("CE reduction name", Box::new(|| "average".parse::<Reduction>().map(|_| ())), invalid_err, "average is not a valid value for reduction"),
        // Models and training.
        ("layer widths do not chain", Box::new(|| Sequential::new(gpu(), &[Layer::Linear { in_features: 4, out_features: 3 }, Layer::Linear { in_features: 5, out_features: 2 }], 0).map(|_| ())), shape_err, "layer 1: Linear(5, 2) follows a layer with 3 outputs"),
        ("model not starting with Linear", Box::new(|| Sequential::new(gpu(), &[Layer::Relu], 0).map(|_| ())), invalid_err, "must start with a Linear layer"),
        ("model larger than a buffer", Box::new(|| Sequential::mlp(gpu(), &[784, 10_000_000, 10], 0).map(|_| ())), |e| matches!(e, Error::Limit { .. }), "the model's parameters (7950000010 floats) needs 31800000040"),
        ("MLP without sizes", Box::new(|| Sequential::mlp(gpu(), &[784], 0).map(|_| ())), invalid_err, "an MLP needs at least input and output sizes"),
        ("model input width differs from the data", Box::new(|| Trainer::new(gpu(), Sequential::mlp(gpu(), &[5, 2], 0)?, &small_mnist(), TrainConfig::default()).map(|_| ())), shape_err, "the model takes 5 features but the data has 4"),
        ("batch size zero", Box::new(|| Trainer::new(gpu(), model(), &small_mnist(), TrainConfig { batch_size: 0, ..TrainConfig::default() }).map(|_| ())), invalid_err, "batch size must be at least 1"),
        ("pass order beyond the split", Box::new(|| GpuSplit::upload(gpu(), &small_mnist().train)?.start_pass(gpu(), &[0, 1, 2, 3, 4, 5, 6, 99])), invalid_err, "sample index 99 in the order is past the 8 samples"),
        // Hyper-parameters.
        ("negative learning rate", Box::new(|| optimizer(OptimizerConfig::Adam(AdamConfig { lr: -1e-3, ..Default::default() }))), invalid_err, "Invalid learning rate: -0.001"),
        ("negative epsilon", Box::new(|| optimizer(OptimizerConfig::Adam(AdamConfig { eps: -1.0, ..Default::default() }))), invalid_err, "Invalid epsilon value: -1"),
        ("beta of 1", Box::new(|| optimizer(OptimizerConfig::Adam(AdamConfig { betas: (0.9, 1.0), ..Default::default() }))), invalid_err, "Invalid beta parameter at index 1: 1"),
        ("negative weight decay", Box::new(|| optimizer(OptimizerConfig::Sgd(SgdConfig { weight_decay: -0.5, ..Default::default() }))), invalid_err, "Invalid weight_decay value: -0.5"),
        ("negative momentum", Box::new(|| optimizer(OptimizerConfig::Sgd(SgdConfig { momentum: -0.9, ..Default::default() }))), invalid_err, "Invalid momentum value: -0.9"),
        ("Nesterov without momentum", Box::new(|| optimizer(OptimizerConfig::Sgd(SgdConfig { nesterov: true, ..Default::default() }))), invalid_err, "Nesterov momentum requires a momentum and zero dampening"),
        // Environment.
        ("adapter that does not exist", Box::new(|| wgml::gpu::Gpu::new(&GpuOptions { adapter_name: Some("no such adapter".into()), ..Default::default() }).map(|_| ())), |e| matches!(e, Error::NoAdapter { .. }), "no suitable GPU adapter (any backend, name containing \"no such adapter\"); adapters found: "),
    ]
}

#[test]
fn every_bad_input_is_a_clear_error() {
    let cases = cases();
    for (name, run, kind, message) in &cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        let result = outcome.unwrap_or_else(|_| panic!("{name}: panicked"));
        let err = result.err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(kind(&err), "{name}: wrong kind {err:?}");
        let text = err.to_string();
        assert!(
            text.contains(message),
            "{name}: {text:?} does not say {message:?}"
        );
        assert!(!text.contains('\n'), "{name}: not one line: {text:?}");
        println!("ok  {name}: {text}");
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());
}

#[test]
fn bad_command_lines_are_one_line_errors() {
    let wgml = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgml"))
            .current_dir(std::env::temp_dir())
            .current_dir(std::env::temp_dir())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} succeeded");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    assert!(wgml(&["train", "--batch-size", "0"], &[]).contains("0 is not in 1.."));
    assert!(wgml(&["train", "--epochs", "many"], &[]).contains("invalid digit found in string"));
    assert!(wgml(&["train", "--optimizer", "rmsprop"], &[]).contains("invalid value 'rmsprop'"));
    assert!(wgml(&["fly"], &[]).contains("unrecognized subcommand 'fly'"));
    assert!(wgml(&["train"], &[("WGML_BACKEND", "cuda")])
        .contains("error: WGML_BACKEND=cuda is not valid: one of vulkan, gl, metal, dx12"));
    assert!(wgml(&["devices"], &[("WGML_LIMITS", "huge")])
        .contains("error: WGML_LIMITS=huge is not valid: adapter or webgpu"));
    assert!(wgml(&["devices"], &[("WGML_KEEP_AWAKE", "yes")])
        .contains("error: WGML_KEEP_AWAKE=yes is not valid: 1 or 0"));
    assert!(wgml(&["train", "--init", "/nonexistent.safetensors"], &[])
        .contains("error: /nonexistent.safetensors: file not found"));
    // Refused before any allocation: no abort, no backtrace, in a moment.
    let started = std::time::Instant::now();
    let huge = wgml(&["train", "--hidden", "10000000"], &[]);
    assert!(
        huge.contains("the model's parameters (7950000010 floats) needs"),
        "{huge}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
