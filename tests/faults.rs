//! GPU faults surface as errors: validation errors, a lost device, a loss that turns NaN.

mod common;
use common::gpu;
use wgml::gpu::{DType, Gpu, Tensor};
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
