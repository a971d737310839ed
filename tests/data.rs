//! Every malformed data file is a one-line error that names the file and the problem.

mod common;
use common::{idx_bytes, temp_dir};
use std::io::Write;
use std::path::Path;
use wgml::data::{idx, Mnist};
use wgml::Error;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A valid MNIST folder with `n` 2×2 images per split, written raw.
fn write_mnist(dir: &Path, n: u32) {
    let images = idx_bytes(&[n, 2, 2], &vec![7; 4 * n as usize]);
    let labels = idx_bytes(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), &images).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), &labels).unwrap();
    }
}

fn parse_err(bytes: &[u8]) -> String {
    let err = idx::parse(bytes, Path::new("f.idx")).unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("f.idx: ") && !msg.contains('\n'), "{msg}");
    msg
}

#[test]
fn idx_parses_raw_and_gzip() {
    let raw = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let a = idx::parse(&raw, Path::new("x")).unwrap();
    assert_eq!(a.dims, vec![2, 3]);
    assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(idx::parse(&gzip(&raw), Path::new("x")).unwrap(), a);
}

#[test]
fn idx_reports_each_malformation() {
    assert!(parse_err(&[0, 0]).contains("shorter than an IDX header"));
    assert!(parse_err(&[1, 2, 8, 1, 0, 0, 0, 0]).contains("not an IDX file"));
    assert!(parse_err(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])
        .contains("data type 0x0d is not supported"));
    assert!(parse_err(&[0, 0, 8, 3, 0, 0, 0, 1]).contains("header needs 16"));
    assert!(parse_err(&idx_bytes(&[2, 3], &[1, 2, 3]))
        .contains("truncated: dimensions [2, 3] need 6 bytes of data, found 3"));
    assert!(parse_err(&idx_bytes(&[1], &[1, 2])).contains("trailing bytes"));
    let mut bad_gz = gzip(&idx_bytes(&[4], &[1, 2, 3, 4]));
    let n = bad_gz.len();
    bad_gz[n - 6] ^= 0xff; // corrupt the CRC
    assert!(parse_err(&bad_gz).contains("corrupt gzip stream"));
    assert!(parse_err(&bad_gz[..12]).contains("corrupt gzip stream"));
}

#[test]
fn idx_read_names_missing_files_and_directories() {
    let dir = temp_dir("idx-read");
    let err = idx::read(&dir.join("nope")).unwrap_err().to_string();
    assert!(err.ends_with("nope: file not found"), "{err}");
    let err = idx::read(&dir).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn mnist_folder_checks_consistency() {
    let dir = temp_dir("mnist-ok");
    write_mnist(&dir, 12);
    let m = Mnist::load(&dir).unwrap();
    assert_eq!((m.train.len(), m.train.features, m.test.len()), (12, 4, 12));

    let dir = temp_dir("mnist-count");
    write_mnist(&dir, 12);
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        idx_bytes(&[11], &[0; 11]),
    )
    .unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains(
            "train-labels-idx1-ubyte: has 11 labels but train-images-idx3-ubyte holds 12 images"
        ),
        "{err}"
    );

    let dir = temp_dir("mnist-label");
    write_mnist(&dir, 12);
    let mut labels = vec![0u8; 12];
    labels[5] = 12;
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[12], &labels),
    )
    .unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("label 12 at index 5 is not a class in 0..10"),
        "{err}"
    );

    let dir = temp_dir("mnist-empty");
    write_mnist(&dir, 0);
    assert!(Mnist::load(&dir)
        .unwrap_err()
        .to_string()
        .contains("holds no samples"));

    let dir = temp_dir("mnist-missing");
    write_mnist(&dir, 3);
    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("t10k-images-idx3-ubyte[.gz]: file not found"),
        "{err}"
    );

    let err = Mnist::load(&dir.join("absent")).unwrap_err().to_string();
    assert!(err.contains("is not a folder"), "{err}");
}

#[test]
fn bundled_subset_is_the_documented_split() {
    let m = Mnist::bundled().unwrap();
    assert_eq!(
        (m.train.len(), m.test.len(), m.train.features),
        (8000, 2000, 784)
    );
    let mut counts = [0; 10];
    for &l in &m.train.labels {
        counts[usize::from(l)] += 1;
    }
    assert_eq!(counts, [823, 914, 792, 826, 784, 681, 798, 848, 755, 779]);
}
