//! The IDX format of MNIST and its relatives: a big-endian header, then raw values. Only
//! unsigned-byte data (type 0x08) is supported. Gzip-compressed files are detected by content.

use crate::error::{Error, Result};
use std::io::{BufRead, Read};
use std::path::Path;

/// A decoded IDX file: dimensions and the bytes they describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// The most data bytes an IDX header may promise: far beyond any MNIST-style dataset, and
/// a bound on what a lying header can make wgml read.
pub const MAX_BYTES: usize = 2 << 30;

/// Reads an IDX file, gzip-compressed or raw. The header is read first; then at most the bytes
/// it promises are read or inflated, so a file that lies about its size costs no more memory
/// than it holds.
pub fn read(path: &Path) -> Result<IdxArray> {
    if path.is_dir() {
        return Err(Error::data(path, "is a directory, not an IDX file"));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::reading(path, e))?;
    let mut file = std::io::BufReader::new(file);
    let gzip = file
        .fill_buf()
        .map_err(|e| Error::reading(path, e))?
        .starts_with(&GZIP);
    if gzip {
        parse_stream(flate2::bufread::GzDecoder::new(file), path, GZIP_ERROR)
    } else {
        parse_stream(file, path, READ_ERROR)
    }
}

/// Decodes IDX `bytes` (gzip-compressed or raw); `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP) {
        return parse_stream(flate2::read::GzDecoder::new(bytes), path, GZIP_ERROR);
    }
    parse_stream(bytes, path, READ_ERROR)
}

const GZIP: [u8; 2] = [0x1f, 0x8b];
const GZIP_ERROR: &str = "corrupt gzip stream";
const READ_ERROR: &str = "cannot read";

/// Reads up to `buf.len()` bytes, fewer only at the end of the stream.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8], path: &Path, what: &str) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::data(path, format!("{what}: {e}"))),
        }
    }
    Ok(filled)
}

/// Decodes an IDX stream; `what` begins the message of a read error.
fn parse_stream(mut reader: impl Read, path: &Path, what: &str) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic, path, what)?;
    if got < 4 {
        return Err(Error::data(
            path,
            format!("truncated: {got} bytes, shorter than an IDX header"),
        ));
    }
    let [z0, z1, dtype, ndims] = magic;
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
    let mut dim_bytes = vec![0u8; 4 * usize::from(ndims)];
    let got = read_up_to(&mut reader, &mut dim_bytes, path, what)?;
    if got < dim_bytes.len() {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes, but a {ndims}-dimensional header needs {header}",
                4 + got
            ),
        ));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&bytes| bytes <= MAX_BYTES)
        .ok_or_else(|| {
            Error::data(
                path,
                format!(
                    "dimensions {dims:?} promise more than the {} GiB of data wgml reads from \
                     one file",
                    MAX_BYTES >> 30
                ),
            )
        })?;
    // One byte more than promised tells trailing data from an exact fit.
    let mut data = Vec::new();
    (&mut reader)
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::data(path, format!("{what}: {e}")))?;
    if data.len() != expected {
        let (what, found) = if data.len() < expected {
            ("truncated", data.len().to_string())
        } else {
            ("trailing bytes", "more".to_string())
        };
        return Err(Error::data(
            path,
            format!("{what}: dimensions {dims:?} need {expected} bytes of data, found {found}"),
        ));
    }
    Ok(IdxArray { dims, data })
}
