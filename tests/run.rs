//! `wgml train` run folders, resuming, `wgml eval` and `wgml predict`, as a user runs them.

mod common;
use common::temp_dir;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wgml() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wgml"));
    c.current_dir(std::env::temp_dir()).stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> String {
    let out = wgml().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// metrics.csv without the seconds column.
/// metrics.csv's lines without their timings (the last two columns).
fn metrics(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn a_run_folder_holds_everything_and_eval_and_predict_use_it() {
    let dir = temp_dir("run-folder");
    let out = dir.join("run");
    let summary = run(&[
        "train",
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    for file in [
        "config.json",
        "metrics.csv",
        "model.safetensors",
        "checkpoint.safetensors",
        "chart.png",
        "predictions.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert_eq!(metrics(&out).len(), 3, "header and two epochs");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hidden"], serde_json::json!([32]));
    assert_eq!(image::open(out.join("chart.png")).unwrap().width(), 860);
    assert_eq!(
        image::open(out.join("predictions.png")).unwrap().height(),
        40 + 8 * 120
    );

    let model = out.join("model.safetensors");
    let eval: serde_json::Value =
        serde_json::from_str(run(&["eval", "--model", model.to_str().unwrap(), "--json"]).trim())
            .unwrap();
    assert_eq!(
        eval["accuracy"], summary["test_acc"],
        "eval agrees with training's last epoch"
    );
    let confusion: u64 = eval["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 2000);
    // The run folder and its training checkpoint name the same weights.
    for other in [out.clone(), out.join("checkpoint.safetensors")] {
        let again = run(&["eval", "--model", other.to_str().unwrap(), "--json"]);
        let mut again: serde_json::Value = serde_json::from_str(again.trim()).unwrap();
        assert_eq!(again["model"], other.to_str().unwrap());
        again["model"] = eval["model"].clone();
        assert_eq!(again, eval, "eval --model {}", other.display());
    }

    // A digit as a person might draw it: black on white, 4× larger, saved as PNG.
    let test = wgml::data::Mnist::bundled().unwrap().test;
    let digit = &test.images[..784];
    let drawn = image::GrayImage::from_fn(112, 112, |x, y| {
        image::Luma([255 - digit[(y / 4 * 28 + x / 4) as usize]])
    });
    let png = dir.join("seven.png");
    drawn.save(&png).unwrap();
    assert_eq!(test.labels[0], 7);
    let line = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--json",
        png.to_str().unwrap(),
    ]);
    let prediction: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(prediction["top"][0]["class"], 7, "{line}");
    assert_eq!(prediction["top"].as_array().unwrap().len(), 3);

    let unreadable = dir.join("notes.png");
    std::fs::write(&unreadable, b"not a picture").unwrap();
    let out = wgml()
        .args([
            "predict",
            "--model",
            model.to_str().unwrap(),
            unreadable.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("notes.png: cannot read image"),
        "{stderr}"
    );
}

#[test]
fn a_killed_run_resumes_to_the_same_numbers() {
    let dir = temp_dir("resume");
    let (whole, killed) = (dir.join("whole"), dir.join("killed"));
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--epochs",
            "3",
            "--hidden",
            "32",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    run(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());

    let mut child = wgml()
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !killed.join("metrics.csv").exists() || metrics(&killed).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no epoch finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = metrics(&killed).len() - 1;
    assert!(done < 3, "the kill came after the last epoch");

    run(&["train", "--resume", killed.to_str().unwrap()]);
    assert_eq!(
        metrics(&killed),
        metrics(&whole),
        "resumed after {done} epoch(s)"
    );
}
