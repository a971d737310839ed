//! The IDX format of MNIST and its relatives: a big-endian header, then raw values. Only
//! unsigned-byte data (type 0x08) is supported. Gzip-compressed files are detected by content.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// A decoded IDX file: dimensions and the bytes they describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file, gzip-compressed or raw.
pub fn read(path: &Path) -> Result<IdxArray> {
    if path.is_dir() {
        return Err(Error::data(path, "is a directory, not an IDX file"));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::reading(path, e))?;
    parse(&bytes, path)
}

/// Decodes IDX `bytes` (gzip-compressed or raw); `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| Error::data(path, format!("corrupt gzip stream: {e}")))?;
        return parse_raw(&raw, path);
    }
    parse_raw(bytes, path)
}

fn parse_raw(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let Some(&[z0, z1, dtype, ndims]) = bytes.first_chunk::<4>() else {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes, shorter than an IDX header",
                bytes.len()
            ),
        ));
    };
    if z0 != 0 || z1 != 0 || ndims == 0 {
        return Err(Error::data(
            path,
            format!("not an IDX file (magic bytes {z0:02x} {z1:02x} {dtype:02x} {ndims:02x})"),
        ));
    }
    if dtype != 0x08 {
        return Err(Error::data(
            path,
            format!("data type 0x{dtype:02x} is not supported (only unsigned bytes, 0x08)"),
        ));
    }
    let header = 4 + 4 * usize::from(ndims);
    let Some(dim_bytes) = bytes.get(4..header) else {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes, but a {ndims}-dimensional header needs {header}",
                bytes.len()
            ),
        ));
    };
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::data(path, format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found != expected {
        let what = if found < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(Error::data(
            path,
            format!("{what}: dimensions {dims:?} need {expected} bytes of data, found {found}"),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}
