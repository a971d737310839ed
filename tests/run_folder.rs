//! The run folder as a transaction: kills at every file write, two runs at once, edited files,
//! `--resume` with other settings, and output paths checked before training.

mod common;
use common::{temp_dir, write_small_mnist};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn wgml(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgml"));
    command.current_dir(std::env::temp_dir()).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// metrics.csv's numbers (not its timings), one line per epoch.
fn metrics(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    (text.lines().skip(1))
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect()
}

fn train_args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let args = [
        "train",
        "--data",
        data,
        "--hidden",
        "8",
        "--batch-size",
        "16",
    ];
    [&args[..], &["--epochs", epochs, "--out", out]].concat()
}

/// A kill right after each file write of a run (config, then per epoch metrics, chart, model,
/// checkpoint; then the predictions) leaves a folder that `--resume` finishes with exactly the
/// numbers of a run never interrupted.
#[test]
fn a_kill_after_any_file_write_resumes_to_the_same_numbers() {
    let dir = temp_dir("kill-every-write");
    write_small_mnist(&dir, 100);
    let data = dir.to_str().unwrap();
    let whole = dir.join("whole");
    let out = wgml(&train_args(data, whole.to_str().unwrap(), "2"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = metrics(&whole);
    assert_eq!(expected.len(), 2);
    // 1 config + 2 epochs × 4 files + predictions.
    for n in 1..=10 {
        let run = dir.join(format!("killed-{n}"));
        let run_str = run.to_str().unwrap();
        let at = n.to_string();
        let killed = wgml(
            &train_args(data, run_str, "2"),
            &[("WGML_TEST_ABORT_AFTER_WRITES", &at)],
        );
        assert!(!killed.status.success(), "write {n}: the abort hook fired");
        let resumed = wgml(&["train", "--resume", run_str], &[]);
        assert!(
            resumed.status.success(),
            "after write {n}: {}",
            stderr(&resumed)
        );
        assert_eq!(metrics(&run), expected, "killed after write {n}");
        for file in [
            "model.safetensors",
            "checkpoint.safetensors",
            "predictions.png",
        ] {
            assert!(run.join(file).is_file(), "after write {n}: {file}");
        }
    }
}

/// Two runs started on one folder at once: one trains, the other stops with a clear error, and
/// the folder holds one run's files only. A resume while a run holds the folder names its PID.
#[test]
fn one_run_per_folder() {
    let dir = temp_dir("one-run-per-folder");
    write_small_mnist(&dir, 400);
    let data = dir.to_str().unwrap();
    let shared = dir.join("shared");
    let shared_str = shared.to_str().unwrap();
    let spawn = |seed: &str| {
        let mut args = train_args(data, shared_str, "6");
        args.extend(["--seed", seed]);
        Command::new(env!("CARGO_BIN_EXE_wgml"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("1"), spawn("2"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() != b.status.success(),
        "exactly one run trains: {} / {}",
        stderr(&a),
        stderr(&b)
    );
    let (winner_seed, loser) = if a.status.success() { (1, b) } else { (2, a) };
    let message = stderr(&loser);
    assert!(
        message.contains("in use by another wgml train") || message.contains("already holds a run"),
        "{message}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["seed"], winner_seed,
        "config of the run that trained"
    );
    assert_eq!(metrics(&shared).len(), 6);

    // A resume while another process trains in the folder.
    let busy = dir.join("busy");
    let busy_str = busy.to_str().unwrap();
    let mut long = Command::new(env!("CARGO_BIN_EXE_wgml"))
        .args(train_args(data, busy_str, "400"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !busy.join("config.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = wgml(&["train", "--resume", busy_str], &[]);
    long.kill().unwrap();
    long.wait().unwrap();
    let message = stderr(&second);
    assert!(!second.status.success());
    assert!(
        message.contains(&format!("in use by another wgml train (PID {})", long.id())),
        "{message}"
    );
}

/// Flipping one digit of the stored shuffle state in a checkpoint's header is refused.
#[test]
fn an_edited_checkpoint_header_is_refused() {
    let dir = temp_dir("edited-header");
    write_small_mnist(&dir, 50);
    let run = dir.join("run");
    let run_str = run.to_str().unwrap();
    assert!(wgml(&train_args(dir.to_str().unwrap(), run_str, "1"), &[])
        .status
        .success());
    let path = run.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let key = b"\"wgml.rng\":\"";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&path, &bytes).unwrap();
    let out = wgml(&["train", "--resume", run_str, "--epochs", "2"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
}

/// Settings that `--resume` would ignore, outputs that would fail after an epoch, and options
/// that do nothing are refused before any training, naming what is wrong.
#[test]
fn settings_are_checked_before_training() {
    let dir = temp_dir("checked-settings");
    write_small_mnist(&dir, 50);
    let data = dir.to_str().unwrap();
    let run = dir.join("run");
    let run_str = run.to_str().unwrap();
    assert!(wgml(&train_args(data, run_str, "1"), &[]).status.success());

    let out = wgml(
        &["train", "--resume", run_str, "--lr", "0.1", "--hidden", "4"],
        &[],
    );
    let message = stderr(&out);
    assert!(!out.status.success());
    assert!(
        message.contains("--lr, --hidden cannot change them"),
        "{message}"
    );
    let out = wgml(&["train", "--resume", run_str, "--epochs", "2"], &[]);
    assert!(
        out.status.success(),
        "--epochs may extend: {}",
        stderr(&out)
    );

    let fresh = dir.join("fresh");
    let missing = dir.join("no-such-folder").join("w.safetensors");
    let mut args = train_args(data, fresh.to_str().unwrap(), "1");
    args.extend(["--save", missing.to_str().unwrap()]);
    let started = Instant::now();
    let out = wgml(&args, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("its folder does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!fresh.exists(), "no run folder for a run that cannot save");
    assert!(started.elapsed() < Duration::from_secs(30));

    let out = wgml(&["train", "--epochs", "0", "--data", data], &[]);
    assert!(
        !out.status.success(),
        "--epochs 0 writes a folder that cannot resume"
    );
    let out = wgml(&["train", "--momentum", "0.9", "--data", data], &[]);
    assert!(stderr(&out).contains("--momentum applies to --optimizer sgd only"));
}
