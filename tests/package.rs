//! What the package declares about itself: the minimum Rust version it states is no lower than
//! any locked dependency's.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::Command;

fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: HashMap<&str, &Value> = (meta["packages"].as_array().unwrap().iter())
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: HashMap<&str, &Value> = (meta["resolve"]["nodes"].as_array().unwrap().iter())
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // Walk the library's normal dependencies (not dev or build ones) from the root.
    let root = meta["resolve"]["root"].as_str().unwrap();
    let (mut seen, mut todo) = (HashSet::new(), vec![root]);
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let kinds = dep["dep_kinds"].as_array().unwrap();
            if kinds.iter().any(|k| k["kind"].is_null()) {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let declared = version(packages[root]["rust_version"].as_str().unwrap());
    let needed = (seen.iter().filter(|&&id| id != root))
        .filter_map(|id| {
            let p = packages[id];
            let v = p["rust_version"].as_str()?;
            let name = format!("{} {}", p["name"].as_str()?, p["version"].as_str()?);
            Some((version(v), format!("{name} needs {v}")))
        })
        .max()
        .unwrap();
    assert!(
        needed.0 <= declared,
        "Cargo.toml's rust-version {declared:?} is below what {} (raise it, and the README's)",
        needed.1
    );
    println!("highest: {}", needed.1);
}
