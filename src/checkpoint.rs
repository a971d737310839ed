//! Model weights as safetensors files with PyTorch's state_dict names and layout, so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` works on the PyTorch side and a
//! PyTorch export loads here.
//!
//! Files wgml writes carry a CRC-32 of everything else in the file (`wgml.checksum`: every
//! metadata entry, every tensor's name, shape and data), checked on load, so a damaged or edited
//! file is an error rather than silently different weights or training state. Files from
//! earlier versions carry `wgml.crc32`, a CRC-32 of the tensor data alone, still checked.

use crate::error::{Error, Result};
use crate::nn::{ModelSpec, NamedTensor};
use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The metadata key of the whole-file checksum.
const CHECKSUM_KEY: &str = "wgml.checksum";
/// The metadata key of the data-only checksum that earlier versions wrote.
const LEGACY_CRC_KEY: &str = "wgml.crc32";
/// The largest safetensors header read (the safetensors crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// CRC-32 of the metadata (but the checksum itself) and of each tensor's name, dtype, shape and
/// data, in name order, each field length-prefixed so that no two files share an input.
fn checksum<'a>(
    metadata: &HashMap<String, String>,
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> String {
    let mut crc = flate2::Crc::new();
    let mut field = |bytes: &[u8]| {
        crc.update(&(bytes.len() as u64).to_le_bytes());
        crc.update(bytes);
    };
    let mut entries: Vec<_> = metadata
        .iter()
        .filter(|(k, _)| *k != CHECKSUM_KEY)
        .collect();
    entries.sort();
    for (key, value) in entries {
        field(key.as_bytes());
        field(value.as_bytes());
    }
    let mut named: Vec<_> = tensors.collect();
    named.sort_by_key(|t| t.0);
    for (name, dtype, shape, data) in named {
        field(name.as_bytes());
        field(format!("{dtype:?}{shape:?}").as_bytes());
        field(data);
    }
    format!("{:08x}", crc.sum())
}

/// The data-only CRC-32 of files written by earlier versions.
fn legacy_checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
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
    // "pt" marks the file as PyTorch-layout for safetensors.torch, as torch's own writer does.
    metadata.insert("format".into(), "pt".into());
    let crc = checksum(
        &metadata,
        (tensors.iter().zip(&bytes))
            .map(|((n, shape, _), d)| (n.as_str(), Dtype::F32, shape.as_slice(), d.as_slice())),
    );
    metadata.insert(CHECKSUM_KEY.into(), crc);
    let encoded = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::data(path, format!("cannot encode: {e}")))?;
    write_atomically(path, &encoded)
}

/// Writes `bytes` to a temporary file beside `path` (a name no other writer uses), syncs it,
/// and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let io = |e: std::io::Error| Error::data(path, format!("cannot write: {e}"));
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::data(path, "is not a file path"))?;
    let count = WRITES.fetch_add(1, Ordering::Relaxed) + 1;
    let tmp = path.with_file_name(format!(
        ".{}.{}-{count}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)?;
    abort_if_asked(count);
    Ok(())
}

/// A test hook: with `WGML_TEST_ABORT_AFTER_WRITES=N` the process aborts right after its N-th
/// atomic write, as a kill at that moment would end it.
fn abort_if_asked(count: u64) {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("WGML_TEST_ABORT_AFTER_WRITES")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(count) {
        std::process::abort();
    }
}

/// Reads every tensor of a safetensors file as f32 (F64 is converted; other dtypes are errors).
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    load_with_metadata(path).map(|(tensors, _)| tensors)
}

/// [`load`], with the file's string metadata.
pub fn load_with_metadata(path: &Path) -> Result<(Vec<NamedTensor>, HashMap<String, String>)> {
    let bytes = read_bounded(path)?;
    let invalid = |e: safetensors::SafeTensorError| {
        Error::data(path, format!("not a valid safetensors file: {e}"))
    };
    let file = SafeTensors::deserialize(&bytes).map_err(invalid)?;
    let (_, metadata): (usize, Metadata) = SafeTensors::read_metadata(&bytes).map_err(invalid)?;
    let strings = metadata.metadata().clone().unwrap_or_default();
    let tensors = file.tensors();
    let stored = |key| strings.get(key).map(|v: &String| (key, v.clone()));
    let actual = match stored(CHECKSUM_KEY).or_else(|| stored(LEGACY_CRC_KEY)) {
        Some((CHECKSUM_KEY, expected)) => Some((
            expected,
            checksum(
                &strings,
                (tensors.iter()).map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())),
            ),
        )),
        Some((_, expected)) => Some((
            expected,
            legacy_checksum(tensors.iter().map(|(n, v)| (n.as_str(), v.data()))),
        )),
        None => None,
    };
    if let Some((expected, actual)) = actual.filter(|(e, a)| e != a) {
        return Err(Error::data(
            path,
            format!(
                "checksum mismatch (stored {expected}, contents {actual}): the file is damaged \
                 or was modified"
            ),
        ));
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
    Ok((tensors, strings))
}

/// The bytes of a safetensors file, read only once its 8-byte header length and the file's
/// size agree with a safetensors file: anything else is refused without being read.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::reading(path, e))?;
    let size = file.metadata().map_err(|e| Error::reading(path, e))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| Error::data(path, "not a valid safetensors file: shorter than 8 bytes"))?;
    let header = u64::from_le_bytes(prefix);
    if header > MAX_HEADER || header > size - 8 {
        return Err(Error::data(
            path,
            format!(
                "not a valid safetensors file: its first 8 bytes promise a {header}-byte header \
                 in a {size}-byte file"
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(&prefix);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::reading(path, e))?;
    Ok(bytes)
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
        return load_weights(&model);
    }
    let (tensors, metadata) = load_with_metadata(path)?;
    let tensors = if metadata.contains_key("wgml.epoch") {
        load_training(path)?.params
    } else {
        tensors
    };
    for (name, _, values) in &tensors {
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::data(
                path,
                format!("tensor {name} holds {bad}: weights must be finite numbers"),
            ));
        }
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
    /// The model's architecture (absent from checkpoints of earlier versions).
    pub model: Option<ModelSpec>,
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
    let mut metadata = HashMap::from([
        ("wgml.epoch".to_string(), state.epoch.to_string()),
        ("wgml.rng".to_string(), state.rng.to_string()),
        (
            "wgml.optimizer_step".to_string(),
            state.optimizer_step.to_string(),
        ),
    ]);
    if let Some(spec) = &state.model {
        metadata.insert(MODEL_KEY.to_string(), spec.to_json());
    }
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
        model: model_spec(path, &metadata)?,
    })
}

/// The metadata key of a weight file's architecture ([`ModelSpec`] as JSON).
pub const MODEL_KEY: &str = "wgml.model";

/// Writes a model's weights with its architecture, so that the file alone rebuilds it
/// (`wgml eval`, `wgml predict`); PyTorch reads the tensors as a state_dict.
pub fn save_model(path: &Path, weights: &[NamedTensor], spec: &ModelSpec) -> Result<()> {
    let metadata = HashMap::from([(MODEL_KEY.to_string(), spec.to_json())]);
    save_with_metadata(path, weights, metadata)
}

/// The architecture stored with the weights at `path` (a run folder, a checkpoint or a weight
/// file), or `None` for files without one (PyTorch's, earlier versions').
pub fn load_model_spec(path: &Path) -> Result<Option<ModelSpec>> {
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    let (_, metadata) = load_with_metadata(&file)?;
    model_spec(&file, &metadata)
}

fn model_spec(path: &Path, metadata: &HashMap<String, String>) -> Result<Option<ModelSpec>> {
    (metadata.get(MODEL_KEY))
        .map(|text| ModelSpec::from_json(text).map_err(|e| Error::data(path, e.to_string())))
        .transpose()
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
