//! Model weights as safetensors files with PyTorch's state_dict names and layout, so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` works on the PyTorch side and a
//! PyTorch export loads here.
//!
//! Files wgml writes carry a CRC-32 of their tensor data in the metadata (`wgml.crc32`), checked
//! on load, so a damaged or edited file is an error rather than silently different weights.

use crate::error::{Error, Result};
use crate::nn::NamedTensor;
use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;

/// The metadata key of the data checksum.
const CRC_KEY: &str = "wgml.crc32";

/// CRC-32 of the tensors' data, in name order.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut named: Vec<_> = tensors.collect();
    named.sort_by_key(|(name, _)| *name);
    let mut crc = flate2::Crc::new();
    for (_, data) in named {
        crc.update(data);
    }
    format!("{:08x}", crc.sum())
}
use std::path::Path;

/// Writes `tensors` (f32) to `path` atomically: a temporary file beside it is written, flushed
/// to disk and renamed over `path`, so a crash leaves either the old file or the new one.
pub fn save(path: &Path, tensors: &[NamedTensor]) -> Result<()> {
    save_with_metadata(path, tensors, HashMap::new())
}

/// [`save`], with string metadata stored beside the tensors.
pub fn save_with_metadata(
    path: &Path,
    tensors: &[NamedTensor],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
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
    let crc = checksum(
        tensors
            .iter()
            .zip(&bytes)
            .map(|((n, _, _), d)| (n.as_str(), d.as_slice())),
    );
    // "pt" marks the file as PyTorch-layout for safetensors.torch, as torch's own writer does.
    metadata.insert("format".into(), "pt".into());
    metadata.insert(CRC_KEY.into(), crc);
    let encoded = safetensors::serialize(views, Some(metadata))
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
    load_with_metadata(path).map(|(tensors, _)| tensors)
}

/// [`load`], with the file's string metadata.
pub fn load_with_metadata(path: &Path) -> Result<(Vec<NamedTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::reading(path, e))?;
    let invalid = |e: safetensors::SafeTensorError| {
        Error::data(path, format!("not a valid safetensors file: {e}"))
    };
    let file = SafeTensors::deserialize(&bytes).map_err(invalid)?;
    let (_, metadata): (usize, Metadata) = SafeTensors::read_metadata(&bytes).map_err(invalid)?;
    if let Some(expected) = metadata.metadata().as_ref().and_then(|m| m.get(CRC_KEY)) {
        let tensors = file.tensors();
        let actual = checksum(tensors.iter().map(|(n, v)| (n.as_str(), v.data())));
        if *expected != actual {
            return Err(Error::data(
                path,
                format!("checksum mismatch (stored {expected}, data {actual}): the file is damaged or was modified"),
            ));
        }
    }
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
    Ok((tensors, metadata.metadata().clone().unwrap_or_default()))
}

/// A model's weights from `path`: a run folder (its `model.safetensors`), a training checkpoint
/// (its parameters, without the optimizer's state), or a weight file (wgml's or PyTorch's).
pub fn load_weights(path: &Path) -> Result<Vec<NamedTensor>> {
    if path.is_dir() {
        let model = path.join("model.safetensors");
        if !model.is_file() {
            return Err(Error::data(
                path,
                "no model.safetensors here: not a wgml run folder (or no epoch has finished)",
            ));
        }
        return load(&model);
    }
    let (tensors, metadata) = load_with_metadata(path)?;
    if metadata.contains_key("wgml.epoch") {
        return Ok(load_training(path)?.params);
    }
    Ok(tensors)
}

/// Everything a training run needs to continue exactly where it stopped.
#[derive(Clone, Debug)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: usize,
    /// The shuffle generator's state.
    pub rng: u64,
    /// The model's parameters, by state_dict name.
    pub params: Vec<NamedTensor>,
    /// Optimizer steps taken.
    pub optimizer_step: u32,
    /// The optimizer's buffers (`optimizer.0`, …).
    pub optimizer: Vec<NamedTensor>,
}

/// Writes a [`TrainingState`] atomically: tensors plus `wgml.epoch`, `wgml.rng` and
/// `wgml.optimizer_step` metadata.
pub fn save_training(path: &Path, state: &TrainingState) -> Result<()> {
    let tensors: Vec<NamedTensor> = state
        .params
        .iter()
        .chain(&state.optimizer)
        .cloned()
        .collect();
    let metadata = HashMap::from([
        ("wgml.epoch".to_string(), state.epoch.to_string()),
        ("wgml.rng".to_string(), state.rng.to_string()),
        (
            "wgml.optimizer_step".to_string(),
            state.optimizer_step.to_string(),
        ),
    ]);
    save_with_metadata(path, &tensors, metadata)
}

/// Reads a [`TrainingState`] written by [`save_training`].
pub fn load_training(path: &Path) -> Result<TrainingState> {
    let (tensors, metadata) = load_with_metadata(path)?;
    let field = |key: &str| -> Result<u64> {
        metadata
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::data(path, format!("not a wgml training checkpoint (no {key})")))
    };
    let (optimizer, params) = tensors
        .into_iter()
        .partition(|(n, _, _)| n.starts_with("optimizer."));
    Ok(TrainingState {
        epoch: field("wgml.epoch")? as usize,
        rng: field("wgml.rng")?,
        params,
        optimizer_step: field("wgml.optimizer_step")? as u32,
        optimizer,
    })
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
