//! Datasets: the IDX file format, MNIST-style folders, and datasets resident on the GPU.

pub mod download;
pub mod idx;
mod loader;
mod mnist;
pub mod picture;

pub use loader::GpuSplit;
pub use mnist::{Mnist, Split, CLASSES};
