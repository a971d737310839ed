//! The `wgml` binary as a user runs it.

mod common;
use common::{idx_bytes, temp_dir};
use std::process::Command;

fn wgml(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgml"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// `n` random-looking 4×4 images per split, labels 0..10.
fn write_small_mnist(dir: &std::path::Path, n: u32) {
    let images: Vec<u8> = (0..16 * n).map(|i| (i * 97 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            idx_bytes(&[n, 4, 4], &images),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            idx_bytes(&[n], &labels),
        )
        .unwrap();
    }
}

#[test]
fn devices_marks_the_chosen_adapter() {
    let (ok, stdout, _) = wgml(&["devices"]);
    assert!(ok);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('*')).count(),
        1,
        "{stdout}"
    );
}

#[test]
fn train_json_prints_one_summary_line() {
    let dir = temp_dir("cli-json");
    write_small_mnist(&dir, 100);
    let (ok, stdout, stderr) = wgml(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--epochs",
        "2",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the JSON line on stdout: {stdout}");
    for key in [
        "\"epochs\":2",
        "\"train_samples\":100",
        "\"sec_per_epoch_median\":",
        "\"total_s\":",
        "\"test_acc\":",
        "\"adapter\":",
        "\"backend\":",
        "\"epoch_train_loss\":[",
        "\"epoch_test_acc\":[",
    ] {
        assert!(lines[0].contains(key), "{key} missing from {stdout}");
    }
    assert!(lines[0].starts_with('{') && lines[0].ends_with('}'));
}

#[test]
fn corrupt_or_missing_data_is_a_one_line_error() {
    let dir = temp_dir("cli-corrupt");
    write_small_mnist(&dir, 10);
    std::fs::write(dir.join("train-labels-idx1-ubyte"), [0u8, 0, 8, 1, 0, 0]).unwrap();
    let (ok, _, stderr) = wgml(&["train", "--data", dir.to_str().unwrap(), "--epochs", "1"]);
    assert!(!ok);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("train-labels-idx1-ubyte: truncated"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (ok, _, stderr) = wgml(&["train", "--data", "/definitely/not/here"]);
    assert!(
        !ok && stderr.contains("/definitely/not/here: is not a folder"),
        "{stderr}"
    );
}
