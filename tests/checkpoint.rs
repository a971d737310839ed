//! Nothing is lost: a process killed while it writes weights leaves the previous file whole.

mod common;
use common::temp_dir;
use std::process::Command;
use std::time::Duration;
use wgml::checkpoint;

const CHILD: &str = "WGML_CHECKPOINT_WRITER";
/// 32 MB per version: each write takes long enough for a kill to land inside it.
const LEN: usize = 8 << 20;

fn version(v: u32) -> Vec<wgml::nn::NamedTensor> {
    vec![
        ("a".into(), vec![LEN / 2], vec![v as f32; LEN / 2]),
        ("b".into(), vec![LEN / 2], vec![v as f32; LEN / 2]),
    ]
}

#[test]
fn killing_a_write_leaves_the_previous_weights_loadable() {
    if let Ok(path) = std::env::var(CHILD) {
        // The child: write versions 1, 2, 3, … until killed.
        for v in 1.. {
            checkpoint::save(path.as_ref(), &version(v)).unwrap();
        }
        return;
    }
    let dir = temp_dir("kill-writer");
    let path = dir.join("w.safetensors");
    checkpoint::save(&path, &version(0)).unwrap();
    let mut interrupted = 0;
    let mut rng = wgml::rng::Rng::new(5);
    for _ in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "killing_a_write_leaves_the_previous_weights_loadable",
                "--nocapture",
            ])
            .env(CHILD, &path)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + rng.below(400)));
        child.kill().unwrap();
        child.wait().unwrap();
        if dir.join(".w.safetensors.tmp").exists() {
            interrupted += 1;
        }
        // Whatever moment the kill hit, the file is one whole version.
        let tensors = checkpoint::load(&path).unwrap();
        let v = tensors[0].2[0];
        assert!(tensors
            .iter()
            .all(|(_, _, data)| data.len() == LEN / 2 && data.iter().all(|&x| x == v)));
    }
    println!(
        "{interrupted} of 6 kills landed inside a write; every time the previous file loaded whole"
    );
}
