//! Model weights as safetensors files with PyTorch's state_dict names and layout, so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` works on the PyTorch side and a
//! PyTorch export loads here.

use crate::error::{Error, Result};
use crate::nn::NamedTensor;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::io::Write;
use std::path::Path;

/// Writes `tensors` (f32) to `path` atomically: a temporary file beside it is written, flushed
/// to disk and renamed over `path`, so a crash leaves either the old file or the new one.
pub fn save(path: &Path, tensors: &[NamedTensor]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, data)| data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.as_str(), view))
                .map_err(|e| Error::data(path, format!("cannot store {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let encoded = safetensors::serialize(views, None)
        .map_err(|e| Error::data(path, format!("cannot encode: {e}")))?;
    write_atomically(path, &encoded)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::data(path, format!("cannot write: {e}"));
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::data(path, "is not a file path"))?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads every tensor of a safetensors file as f32 (F64 is converted; other dtypes are errors).
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => format!("cannot read: {e}"),
        };
        Error::data(path, reason)
    })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e}")))?;
    let mut tensors: Vec<NamedTensor> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = to_f32(&view).ok_or_else(|| {
                Error::data(
                    path,
                    format!(
                        "tensor {name} has dtype {:?}; wgml reads F32 and F64",
                        view.dtype()
                    ),
                )
            })?;
            Ok((name, view.shape().to_vec(), values))
        })
        .collect::<Result<_>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

fn to_f32(view: &TensorView) -> Option<Vec<f32>> {
    let data = view.data();
    Some(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => return None,
    })
}
