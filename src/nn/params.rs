//! Every parameter of a model in one flat buffer, so an optimizer updates them in one dispatch.

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};

/// A parameter on the host: name, shape and row-major values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Name, shape and place of one parameter tensor in the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// PyTorch state_dict name, e.g. `0.weight`.
    pub name: String,
    /// Shape, e.g. `[out_features, in_features]`.
    pub shape: Vec<usize>,
    /// First element in the flat buffer.
    pub start: usize,
}

impl ParamInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the parameter has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Flat parameter and gradient buffers of the same layout. Each parameter starts at a multiple
/// of the device's storage offset alignment so that it can be bound on its own; the padding
/// between them holds zeros and stays zero under every optimizer.
pub struct Parameters {
    values: Tensor,
    grads: Tensor,
    infos: Vec<ParamInfo>,
}

impl Parameters {
    /// Lays out `params` (name, shape, initial values) and uploads them.
    pub fn new(gpu: &Gpu, params: Vec<NamedTensor>) -> Result<Self> {
        let align = (gpu.limits().min_storage_buffer_offset_alignment as usize / 4).max(1);
        let mut infos = Vec::with_capacity(params.len());
        let mut flat = Vec::new();
        for (name, shape, data) in params {
            let start = flat.len().next_multiple_of(align);
            flat.resize(start, 0.0);
            flat.extend_from_slice(&data);
            infos.push(ParamInfo { name, shape, start });
        }
        // Whole groups of 8, so that the optimizers' widest updates cover the buffer without
        // a dispatch for the rest. Padding stays zero: no kernel writes its gradient.
        flat.resize(flat.len().next_multiple_of(8), 0.0);
        let values = Tensor::from_slice(gpu, &flat, &[flat.len()])?;
        let grads = Tensor::zeros(gpu, &[flat.len()], DType::F32)?;
        Ok(Parameters {
            values,
            grads,
            infos,
        })
    }

    /// The flat parameter buffer.
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// The flat gradient buffer (same layout).
    pub fn grads(&self) -> &Tensor {
        &self.grads
    }

    /// Every parameter's name, shape and place, in order.
    pub fn infos(&self) -> &[ParamInfo] {
        &self.infos
    }

    fn info(&self, name: &str) -> Result<&ParamInfo> {
        self.infos
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::invalid(format!("no parameter named {name}")))
    }

    /// The view of parameter `name`.
    pub fn value(&self, name: &str) -> Result<Tensor> {
        let info = self.info(name)?;
        self.values.view(info.start, &info.shape)
    }

    /// The view of parameter `name`'s gradient.
    pub fn grad(&self, name: &str) -> Result<Tensor> {
        let info = self.info(name)?;
        self.grads.view(info.start, &info.shape)
    }

    /// Copies every parameter to the host: (name, shape, values), like a state_dict.
    pub fn state_dict(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let flat = self.values.to_vec::<f32>(gpu)?;
        Ok(self
            .infos
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.shape.clone(),
                    flat[p.start..p.start + p.len()].to_vec(),
                )
            })
            .collect())
    }

    /// Replaces every parameter, as PyTorch's strict `load_state_dict`: `tensors` must hold
    /// exactly this model's names with the same shapes. Nothing is changed unless all match.
    pub fn load_state_dict(&self, gpu: &Gpu, tensors: &[NamedTensor]) -> Result<()> {
        let quoted = |names: Vec<&str>| {
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing: Vec<&str> = self
            .infos
            .iter()
            .filter(|p| !tensors.iter().any(|(n, _, _)| *n == p.name))
            .map(|p| p.name.as_str())
            .collect();
        let unexpected: Vec<&str> = tensors
            .iter()
            .filter(|(n, _, _)| !self.infos.iter().any(|p| p.name == *n))
            .map(|(n, _, _)| n.as_str())
            .collect();
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!(
                "Missing key(s) in state_dict: {}.",
                quoted(missing)
            ));
        }
        if !unexpected.is_empty() {
            problems.push(format!(
                "Unexpected key(s) in state_dict: {}.",
                quoted(unexpected)
            ));
        }
        let mut flat = vec![0.0f32; self.values.len()];
        for (name, shape, data) in tensors {
            let Some(info) = self.infos.iter().find(|p| p.name == *name) else {
                continue;
            };
            if *shape != info.shape || data.len() != info.len() {
                problems.push(format!(
                    "size mismatch for {name}: copying a param with shape {shape:?} from \
                     checkpoint, the shape in current model is {:?}.",
                    info.shape
                ));
                continue;
            }
            flat[info.start..info.start + info.len()].copy_from_slice(data);
        }
        if !problems.is_empty() {
            return Err(Error::invalid(format!(
                "Error(s) in loading state_dict: {}",
                problems.join(" ")
            )));
        }
        self.values.write(gpu, &flat)
    }
}
