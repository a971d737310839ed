//! MNIST-format datasets: a folder of the four standard IDX files, or the bundled subset.

use super::idx::{self, IdxArray};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Classes in MNIST-format data (digits, or Fashion-MNIST's garments).
pub const CLASSES: usize = 10;

/// One split: images as bytes, one label per image.
#[derive(Clone, Debug)]
pub struct Split {
    /// samples × features bytes, row-major.
    pub images: Vec<u8>,
    /// One class per sample, each below [`CLASSES`].
    pub labels: Vec<u8>,
    /// Bytes per image (784 for 28×28).
    pub features: usize,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A train split and a test split.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// Training samples.
    pub train: Split,
    /// Held-out samples.
    pub test: Split,
}

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

macro_rules! bundled {
    ($name:literal) => {
        (
            concat!("bundled:", $name, ".gz"),
            include_bytes!(concat!("../../data/mnist-subset/", $name, ".gz")).as_slice(),
        )
    };
}

impl Mnist {
    /// Loads the four standard files (`train-images-idx3-ubyte` …, each optionally `.gz`) from
    /// `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::data(
                dir,
                "is not a folder of MNIST-format IDX files",
            ));
        }
        let [a, b, c, d] = FILES.map(|stem| read_one(dir, stem));
        let (a, c) = (a?, c?);
        let (train_dims, test_dims) = (a.dims.get(1..), c.dims.get(1..));
        // Sizes are compared once both splits hold images (3-D); `split` names other faults.
        if a.dims.len() == 3 && c.dims.len() == 3 && train_dims != test_dims {
            return Err(Error::data(
                dir.join(FILES[2]),
                format!(
                    "its images are {} but the training images ({}) are {}: both splits must \
                     have one size",
                    shape(test_dims),
                    FILES[0],
                    shape(train_dims)
                ),
            ));
        }
        Ok(Mnist {
            train: split((a, b?), &FILES[..2], dir)?,
            test: split((c, d?), &FILES[2..], dir)?,
        })
    }

    /// The real MNIST subset embedded in wgml (8,000 train / 2,000 test digits; see
    /// `data/mnist-subset/README.md`).
    pub fn bundled() -> Result<Self> {
        let files = [
            bundled!("train-images-idx3-ubyte"),
            bundled!("train-labels-idx1-ubyte"),
            bundled!("t10k-images-idx3-ubyte"),
            bundled!("t10k-labels-idx1-ubyte"),
        ];
        let [a, b, c, d] = files.map(|(name, bytes)| idx::parse(bytes, Path::new(name)));
        let dir = Path::new("bundled:");
        Ok(Mnist {
            train: split((a?, b?), &FILES[..2], dir)?,
            test: split((c?, d?), &FILES[2..], dir)?,
        })
    }
}

/// An image size as rows × columns.
fn shape(dims: Option<&[usize]>) -> String {
    let dims = dims.unwrap_or_default();
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

fn read_one(dir: &Path, stem: &str) -> Result<IdxArray> {
    let gz = dir.join(format!("{stem}.gz"));
    let path = if gz.exists() { gz } else { dir.join(stem) };
    if !path.exists() {
        return Err(Error::data(
            dir.join(format!("{stem}[.gz]")),
            "file not found",
        ));
    }
    idx::read(&path)
}

fn split((images, labels): (IdxArray, IdxArray), names: &[&str], dir: &Path) -> Result<Split> {
    let path = |i: usize| -> PathBuf { dir.join(names[i]) };
    let (samples, features) = match images.dims[..] {
        [n, h, w] => (n, h * w),
        ref d => {
            return Err(Error::data(
                path(0),
                format!("images must be 3-D (samples × rows × columns), got dimensions {d:?}"),
            ))
        }
    };
    if labels.dims.len() != 1 {
        return Err(Error::data(
            path(1),
            format!("labels must be 1-D, got dimensions {:?}", labels.dims),
        ));
    }
    if samples == 0 || features == 0 {
        return Err(Error::data(path(0), "holds no samples"));
    }
    if labels.dims[0] != samples {
        return Err(Error::data(
            path(1),
            format!(
                "has {} labels but {} holds {samples} images",
                labels.dims[0], names[0]
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(Error::data(
            path(1),
            format!("label {l} at index {i} is not a class in 0..{CLASSES}"),
        ));
    }
    Ok(Split {
        images: images.data,
        labels: labels.data,
        features,
    })
}
