//! The `wgml` binary as a user runs it.

mod common;
use common::{temp_dir, write_small_mnist};
use std::process::Command;

fn wgml(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgml"))
        .current_dir(std::env::temp_dir())
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
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

#[test]
fn weights_saved_by_train_start_another_run_and_bad_files_are_errors() {
    let dir = temp_dir("cli-weights");
    write_small_mnist(&dir, 50);
    let data = dir.to_str().unwrap();
    let weights = dir.join("w.safetensors");
    let w = weights.to_str().unwrap();
    let (ok, _, stderr) = wgml(&[
        "train", "--data", data, "--epochs", "1", "--hidden", "8", "--save", w,
    ]);
    assert!(ok, "{stderr}");
    let saved = wgml::checkpoint::load(&weights).unwrap();
    let names: Vec<(&str, &[usize])> = saved
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("0.bias", &[8][..]),
            ("0.weight", &[8, 16]),
            ("2.bias", &[10]),
            ("2.weight", &[10, 8])
        ]
    );
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));

    let (ok, _, stderr) = wgml(&[
        "train",
        "--data",
        data,
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--init",
        w,
        "--no-shuffle",
    ]);
    assert!(ok, "{stderr}");

    let (ok, _, stderr) = wgml(&[
        "train", "--data", data, "--epochs", "1", "--hidden", "9", "--init", w,
    ]);
    assert!(
        !ok && stderr.contains("size mismatch for 0.bias: copying a param with shape [8]"),
        "{stderr}"
    );

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\0\0\0\0\0\0\0{not json at all").unwrap();
    let (ok, _, stderr) = wgml(&["train", "--data", data, "--init", garbage.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("garbage.safetensors: not a valid safetensors file"),
        "{stderr}"
    );

    let truncated = dir.join("truncated.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let (ok, _, stderr) = wgml(&[
        "train",
        "--data",
        data,
        "--init",
        truncated.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("truncated.safetensors: not a valid safetensors file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_hyper_parameters_are_errors_in_pytorchs_words() {
    let dir = temp_dir("cli-hyper");
    write_small_mnist(&dir, 10);
    let data = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--data", data, "--epochs", "1"];
        args.extend_from_slice(extra);
        let (ok, _, stderr) = wgml(&args);
        assert!(!ok, "{extra:?} should fail");
        stderr
    };
    assert!(run(&["--lr=-1"]).contains("Invalid learning rate: -1"));
    // A negative value may also follow its option as the next argument.
    assert!(run(&["--lr", "-1"]).contains("Invalid learning rate: -1"));
    assert!(
        run(&["--optimizer", "sgd", "--momentum=-0.5"]).contains("Invalid momentum value: -0.5")
    );
    assert!(run(&["--weight-decay=-0.1"]).contains("Invalid weight_decay value: -0.1"));
    assert!(run(&["--label-smoothing", "1.5"])
        .contains("label_smoothing must be between 0.0 and 1.0. Got: 1.5"));
}

#[test]
fn trainings_started_together_get_run_folders_of_their_own() {
    let data = temp_dir("cli-together-data");
    write_small_mnist(&data, 100);
    let cwd = temp_dir("cli-together");
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_wgml"))
                .current_dir(&cwd)
                .args(["train", "--data", data.to_str().unwrap(), "--epochs", "1"])
                .args(["--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut folders = std::collections::HashSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = stdout
            .split("\"run\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no run folder in {stdout}"));
        assert!(cwd.join(run).join("model.safetensors").exists(), "{run}");
        folders.insert(run.to_string());
    }
    assert_eq!(folders.len(), 3, "{folders:?}");
}

/// On a headless box (no XDG_RUNTIME_DIR) the commands print wgml's own lines only: nothing
/// from the drivers, no "error:" the user did not cause.
#[test]
fn headless_commands_print_nothing_but_their_own_lines() {
    let dir = temp_dir("cli-headless");
    write_small_mnist(&dir, 100);
    let out = dir.join("run");
    let runs: [&[&str]; 2] = [
        &["devices"],
        &[
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    ];
    for args in runs {
        let output = Command::new(env!("CARGO_BIN_EXE_wgml"))
            .current_dir(std::env::temp_dir())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("NODEVICE_SELECT")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} printed on stderr: {stderr}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(!stdout.contains("error"), "{args:?}: {stdout}");
    }
}

/// Adadelta from the command line: PyTorch's learning rate of 1.0, and a run that resumes.
#[test]
fn adadelta_trains_with_pytorchs_defaults_and_resumes() {
    let dir = temp_dir("cli-adadelta");
    write_small_mnist(&dir, 60);
    let out = dir.join("run");
    let data = dir.to_str().unwrap();
    let run = out.to_str().unwrap();
    let args = [
        "train",
        "--optimizer",
        "adadelta",
        "--epochs",
        "1",
        "--data",
        data,
    ];
    let (ok, _, stderr) = wgml(&[&args[..], &["--out", run]].concat());
    assert!(ok, "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["optimizer"].as_str(), config["lr"].as_f64()),
        (Some("adadelta"), Some(1.0))
    );
    let (ok, _, stderr) = wgml(&["train", "--resume", run, "--epochs", "2"]);
    assert!(ok, "{stderr}");
}

/// `--model cnn` takes examples/mnist's recipe; the run's weight file alone rebuilds the model
/// for eval and predict, and the run resumes with its own architecture.
#[test]
fn cnn_runs_carry_their_architecture_to_eval_predict_and_resume() {
    let dir = temp_dir("cli-cnn");
    common::write_mnist_like(&dir, 70, 28);
    let out = dir.join("run");
    let (data, run) = (dir.to_str().unwrap(), out.to_str().unwrap());
    let train = ["train", "--model", "cnn", "--epochs", "1", "--data", data];
    let (ok, _, stderr) = wgml(&[&train[..], &["--out", run]].concat());
    assert!(ok, "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["model"].as_str(), config["optimizer"].as_str()),
        (Some("cnn"), Some("adadelta"))
    );
    assert_eq!(config["lr_schedule"], serde_json::json!([1, 0.7]));
    for weights in [run.to_string(), format!("{run}/checkpoint.safetensors")] {
        let (ok, stdout, stderr) = wgml(&["eval", "--model", &weights, "--data", data, "--json"]);
        assert!(ok, "{stderr}");
        let eval: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert!(eval["accuracy"].as_f64().is_some(), "{stdout}");
    }
    let (ok, _, stderr) = wgml(&["train", "--resume", run, "--epochs", "2"]);
    assert!(ok, "{stderr}");
    // --init takes PyTorch's Net names too.
    let weights = wgml::checkpoint::load_weights(&out).unwrap();
    let net_names: Vec<_> = (weights.into_iter())
        .map(|(name, shape, values)| {
            let (layer, rest) = name.split_once('.').unwrap();
            let net = ["conv1", "", "conv2", "", "", "", "", "fc1", "", "", "fc2"];
            (
                format!("{}.{rest}", net[layer.parse::<usize>().unwrap()]),
                shape,
                values,
            )
        })
        .collect();
    let init = dir.join("net.safetensors");
    wgml::checkpoint::save(&init, &net_names).unwrap();
    let from_net = dir.join("from-net");
    let init_args = [
        "--init",
        init.to_str().unwrap(),
        "--out",
        from_net.to_str().unwrap(),
    ];
    let (ok, _, stderr) = wgml(&[&train[..], &init_args[..]].concat());
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = wgml(&[
        "train", "--model", "lenet5", "--hidden", "64", "--data", data,
    ]);
    assert!(
        !ok && stderr.contains("--hidden sets the MLP's widths"),
        "{stderr}"
    );
}
