//! GPU faults surface as errors: validation errors, a lost device, a loss that turns NaN.

mod common;
use common::gpu;
use wgml::gpu::{DType, Dispatch, Gpu, Program, Shader, Tensor};
use wgml::Error;

#[test]
fn a_validation_error_is_reported_by_the_next_check() {
    let g = Gpu::from_env().unwrap();
    // Raw wgpu use that breaks a rule: mappable for reading and writing at once.
    let _bad = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("bad"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
        mapped_at_creation: false,
    });
    let err = g.wait().unwrap_err();
    assert!(matches!(err, Error::Gpu(_)), "{err:?}");
    assert!(err.to_string().contains("bad"), "{err}");
    g.check().unwrap(); // reported once
}

#[test]
fn a_lost_device_fails_cleanly() {
    let g = Gpu::from_env().unwrap();
    let t = Tensor::from_slice(&g, &[1.0f32, 2.0], &[2]).unwrap();
    g.device().destroy();
    let err = t.to_vec::<f32>(&g).unwrap_err();
    assert!(matches!(err, Error::Gpu(_) | Error::Readback(_)), "{err:?}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    // Later work keeps failing cleanly.
    let again = Tensor::zeros(&g, &[4], DType::F32).and_then(|t| t.to_vec::<f32>(&g));
    assert!(again.is_err(), "{again:?}");
}

#[test]
fn tensors_beyond_the_device_limit_are_refused_with_the_limit_named() {
    let max = gpu().limits().max_buffer_size;
    let elements = (max / 4 + 1) as usize;
    let err = Tensor::zeros(gpu(), &[elements], DType::F32).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: "max_buffer_size",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("to stay under it"), "{err}");
}

#[test]
fn a_kernel_that_does_not_compile_fails_its_dispatches_cleanly() {
    let g = Gpu::from_env().unwrap();
    let shader = Shader {
        name: "broken.wgsl",
        source: "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
    };
    // The compile runs in the background: building succeeds, readying reports.
    let d = Dispatch::new(&g, shader, "main", &(), &[], 1).unwrap();
    let err = d.ready().unwrap_err();
    assert!(matches!(err, Error::Gpu(_)), "{err:?}");
    assert!(err.to_string().contains("broken.wgsl::main"), "{err}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    assert!(d.run(&g).is_err());
    // Submitted as it is, it runs nothing, and the next wait says why.
    Program::from(d).submit(&g, 1);
    let err = g.wait().unwrap_err();
    assert!(err.to_string().contains("broken.wgsl::main"), "{err}");
    g.check().unwrap();
}

#[test]
fn kernels_compile_side_by_side_once_each() {
    let g = Gpu::from_env().unwrap();
    let shader = Shader {
        name: "constant.wgsl",
        source: "@group(0) @binding(1) var<storage, read_write> x: array<f32>;
                 override VALUE: f32 = 0.0;
                 @compute @workgroup_size(1) fn main() { x[0] = VALUE; }",
    };
    let before = g.creations().pipelines;
    let outs: Vec<_> = (0..6)
        .map(|_| Tensor::zeros(&g, &[1], DType::F32).unwrap())
        .collect();
    // Three values, each asked for twice while its first compile may still be under way.
    let dispatches: Vec<_> = (outs.iter().enumerate())
        .map(|(i, out)| {
            let value = (i % 3) as f64 + 1.0;
            Dispatch::specialized(&g, shader, "main", &[("VALUE", value)], &(), &[(1, out)], 1)
                .unwrap()
        })
        .collect();
    let mut program = Program::new();
    dispatches.into_iter().for_each(|d| program.push(d));
    program.run(&g).unwrap();
    assert_eq!(g.creations().pipelines - before, 3);
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.to_vec::<f32>(&g).unwrap(), [(i % 3) as f32 + 1.0]);
    }
}
