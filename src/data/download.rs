//! Datasets that arrive by themselves: the four IDX files of MNIST or Fashion-MNIST, fetched from
//! a list of mirrors into a cache folder, each checked against its published MD5.
//!
//! A file is streamed to `.<name>.part` beside its final name and renamed only once its checksum
//! matches, so the cache never holds a half file under a real name, and the part file is removed
//! whatever goes wrong. Every wait has a deadline (connecting, the first byte of the answer,
//! each read of the body), and no more than the file's known size is read, so a stalled or
//! endless mirror costs bounded time and disk. Files already cached and intact are not fetched
//! again.

use crate::error::{Error, Result};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a dataset comes from: mirrors tried in turn, and each file's published MD5 and size.
#[derive(Clone, Debug)]
pub struct Source {
    /// The dataset's name, also its folder in the cache.
    pub name: String,
    /// Base URLs, each ending in `/`; a file's URL is the base followed by its name.
    pub mirrors: Vec<String>,
    /// Every file.
    pub files: Vec<RemoteFile>,
}

/// One file of a [`Source`].
#[derive(Clone, Debug)]
pub struct RemoteFile {
    /// The file's name on the mirrors and in the cache.
    pub name: String,
    /// Its published MD5, in hex.
    pub md5: String,
    /// Its size: a mirror that sends more is cut off.
    pub bytes: u64,
}

/// How long a mirror may keep wgml waiting.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// To connect.
    pub connect: Duration,
    /// From the request to the answer's headers.
    pub first_byte: Duration,
    /// For each read of the body.
    pub idle: Duration,
}

impl Default for Deadlines {
    /// 10 s to connect, 30 s to answer, 30 s without a byte of the body.
    fn default() -> Self {
        Deadlines {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        }
    }
}

impl Source {
    /// A known dataset, `mnist` or `fashion-mnist`, with its mirrors unless the environment
    /// names others (`WGML_MNIST_MIRROR`, `WGML_FASHION_MNIST_MIRROR`: comma-separated URLs).
    pub fn named(name: &str) -> Result<Self> {
        let (var, mirrors, sums, sizes): (&str, &[&str], [&str; 4], [u64; 4]) = match name {
            "mnist" => (
                "WGML_MNIST_MIRROR",
                &[
                    "https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/",
                    "http://yann.lecun.com/exdb/mnist/",
                ],
                [
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ],
                [9_912_422, 28_881, 1_648_877, 4_542],
            ),
            "fashion-mnist" => (
                "WGML_FASHION_MNIST_MIRROR",
                &[
                    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                ],
                [
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ],
                [26_421_880, 29_515, 4_422_102, 5_148],
            ),
            _ => {
                return Err(Error::invalid(format!(
                    "unknown dataset {name:?}: choose mnist or fashion-mnist"
                )))
            }
        };
        let mirrors = match std::env::var(var) {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|m| {
                    let m = m.trim();
                    if m.ends_with('/') {
                        m.to_string()
                    } else {
                        format!("{m}/")
                    }
                })
                .collect(),
            _ => mirrors.iter().map(|m| m.to_string()).collect(),
        };
        let stems = [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ];
        Ok(Source {
            name: name.to_string(),
            mirrors,
            files: (stems.iter().zip(sums).zip(sizes))
                .map(|((name, md5), bytes)| RemoteFile {
                    name: name.to_string(),
                    md5: md5.to_string(),
                    bytes,
                })
                .collect(),
        })
    }
}

/// The per-user cache folder: `WGML_DATA`, else `$XDG_CACHE_HOME/wgml`, else `~/.cache/wgml`.
pub fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("WGML_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("wgml");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".wgml-cache"),
        |h| PathBuf::from(h).join(".cache").join("wgml"),
    )
}

/// What went wrong fetching a dataset.
#[derive(Debug)]
pub enum FetchError {
    /// No mirror could be reached for a file (offline, or every mirror down).
    Unreachable(String),
    /// Anything else: a checksum mismatch, a file that cannot be written.
    Failed(Error),
}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Unreachable(why) => Error::invalid(why),
            FetchError::Failed(e) => e,
        }
    }
}

/// Progress of one file: its name, bytes so far, and its size when the server says it.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, Option<u64>);

/// Makes sure every file of `source` is in `cache/<name>/` and intact, fetching what is missing
/// within the default [`Deadlines`]; returns that folder.
pub fn fetch(
    source: &Source,
    cache: &Path,
    progress: Progress,
) -> std::result::Result<PathBuf, FetchError> {
    fetch_within(source, cache, Deadlines::default(), progress)
}

/// [`fetch`] with other deadlines.
pub fn fetch_within(
    source: &Source,
    cache: &Path,
    deadlines: Deadlines,
    progress: Progress,
) -> std::result::Result<PathBuf, FetchError> {
    let dir = cache.join(&source.name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        FetchError::Failed(Error::data(
            &dir,
            format!("cannot create the cache folder: {e}"),
        ))
    })?;
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(deadlines.connect))
            .timeout_recv_response(Some(deadlines.first_byte))
            .timeout_per_read(Some(deadlines.idle))
            .build(),
    );
    for remote in &source.files {
        let file = &remote.name;
        let path = dir.join(file);
        if path.is_file() && md5_of_file(&path).as_deref() == Some(remote.md5.as_str()) {
            continue;
        }
        let mut reasons = Vec::new();
        let mut fetched = false;
        for mirror in &source.mirrors {
            let url = format!("{mirror}{file}");
            match download(&agent, &url, &path, remote, progress) {
                Ok(()) => {
                    fetched = true;
                    break;
                }
                Err(Attempt::Unreachable(why)) => reasons.push(format!("{url}: {why}")),
                Err(Attempt::Mismatch(why)) => {
                    return Err(FetchError::Failed(Error::data(&path, why)))
                }
                Err(Attempt::Local(e)) => return Err(FetchError::Failed(e)),
            }
        }
        if !fetched {
            return Err(FetchError::Unreachable(format!(
                "could not fetch {file} of {} from any mirror ({})",
                source.name,
                reasons.join("; ")
            )));
        }
    }
    Ok(dir)
}

enum Attempt {
    /// The mirror did not answer, or not with the file.
    Unreachable(String),
    /// The mirror sent a file whose checksum is wrong.
    Mismatch(String),
    /// The file could not be written here.
    Local(Error),
}

fn download(
    agent: &ureq::Agent,
    url: &str,
    path: &Path,
    remote: &RemoteFile,
    progress: Progress,
) -> std::result::Result<(), Attempt> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let part = path.with_file_name(format!(".{name}.part"));
    let result = stream_to(agent, url, &part, remote, &name, progress)
        .and_then(|()| std::fs::rename(&part, path).map_err(|e| write_error(&part, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

fn write_error(part: &Path, e: std::io::Error) -> Attempt {
    Attempt::Local(Error::data(part, format!("cannot write: {e}")))
}

/// Streams `url` into `part`, at most the file's size, checking its MD5.
fn stream_to(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    remote: &RemoteFile,
    name: &str,
    progress: Progress,
) -> std::result::Result<(), Attempt> {
    let unreachable = |e: &dyn std::fmt::Display| Attempt::Unreachable(e.to_string());
    let response = agent.get(url).call().map_err(|e| unreachable(&e))?;
    let total = response.body().content_length();
    if let Some(announced) = total.filter(|&t| t > remote.bytes) {
        return Err(Attempt::Unreachable(format!(
            "announces {announced} bytes, more than the file's {}",
            remote.bytes
        )));
    }
    let mut body = response.into_body().into_reader();
    let local = |e: std::io::Error| write_error(part, e);
    let mut out = std::fs::File::create(part).map_err(local)?;
    let mut hasher = Md5::new();
    let (mut buf, mut done) = (vec![0u8; 1 << 16], 0u64);
    loop {
        let n = body.read(&mut buf).map_err(|e| unreachable(&e))?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if done > remote.bytes {
            return Err(Attempt::Unreachable(format!(
                "sent more than the file's {} bytes",
                remote.bytes
            )));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(local)?;
        progress(name, done, total);
    }
    out.sync_all().map_err(local)?;
    let actual = hex(&hasher.finalize());
    if actual != remote.md5 {
        return Err(Attempt::Mismatch(format!(
            "checksum mismatch: {url} sent a file with MD5 {actual}, the published one is {}",
            remote.md5
        )));
    }
    Ok(())
}

fn md5_of_file(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
