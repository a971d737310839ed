//! The model API: layers with explicit forward and backward passes (no tape).
//!
//! A model is built once for a device; [`Sequential::forward_program`] and
//! [`Sequential::backward_program`] turn it into fixed lists of dispatches over a
//! [`Workspace`] allocated up front, so training records the same programs step after step.
//! Backward overwrites the gradients (it does not accumulate as PyTorch's `.grad` does), so no
//! `zero_grad` is needed.

mod conv;
mod layer;
mod linear;
mod params;
mod plan;
mod relu;
mod sequential;
mod spec;

pub use conv::{Conv2d, Conv2dParams};
pub use layer::{Layer, Module};
pub use linear::{Linear, LinearParams};
pub use params::{NamedTensor, ParamInfo, Parameters};
pub use relu::Relu;
pub use sequential::{Sequential, Workspace};
pub use spec::ModelSpec;
