//! Datasets fetched from mirrors, against a real HTTP server on the loopback interface.

mod common;
use common::{idx_bytes, temp_dir};
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wgml::data::download::{fetch, fetch_within, Deadlines, FetchError, RemoteFile, Source};
use wgml::data::Mnist;

/// What the server does for a path.
#[derive(Clone)]
enum Reply {
    File(Vec<u8>),
    /// Announces the full length, sends half, and hangs up.
    CutShort(Vec<u8>),
    /// Reads the request and answers nothing for 5 s.
    Silent,
    /// Announces the full length, sends half, then nothing for 5 s.
    StallsMidBody(Vec<u8>),
    /// Sends bytes without a length until the client hangs up (at most 256 MiB).
    Endless,
}

/// Serves `files` over HTTP/1.1 on 127.0.0.1 (at most 100 requests), returning its base URL and
/// a count of the requests it answered.
fn serve(files: HashMap<String, Reply>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/data/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(stream) = stream else { continue };
            let (files, seen) = (files.clone(), seen.clone());
            // Each connection on its own thread, so that a stalled one holds up no other.
            std::thread::spawn(move || answer(stream, &files, &seen));
        }
    });
    (base, count)
}

fn answer(mut stream: std::net::TcpStream, files: &HashMap<String, Reply>, seen: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    let _ = reader.read_line(&mut request);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) <= 2 {
            break;
        }
    }
    seen.fetch_add(1, Ordering::SeqCst);
    let path = request
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .trim_start_matches("/data/")
        .to_string();
    let _ = match files.get(&path) {
        Some(Reply::File(body)) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(body)
        }
        Some(Reply::CutShort(body)) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(&body[..body.len() / 2])
        }
        Some(Reply::Silent) => {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        }
        Some(Reply::StallsMidBody(body)) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body[..body.len() / 2]);
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        }
        Some(Reply::Endless) => {
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let chunk = vec![0x5a; 1 << 16];
            for _ in 0..4096 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
            Ok(())
        }
        None => write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    };
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small MNIST-format dataset as the four .gz files.
fn dataset() -> Vec<(String, Vec<u8>)> {
    let n = 30u32;
    let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let (im, lb) = (
        gzip(&idx_bytes(&[n, 28, 28], &images)),
        gzip(&idx_bytes(&[n], &labels)),
    );
    vec![
        ("train-images-idx3-ubyte.gz".into(), im.clone()),
        ("train-labels-idx1-ubyte.gz".into(), lb.clone()),
        ("t10k-images-idx3-ubyte.gz".into(), im),
        ("t10k-labels-idx1-ubyte.gz".into(), lb),
    ]
}

fn source(mirrors: Vec<String>) -> Source {
    Source {
        name: "tiny".into(),
        mirrors,
        files: dataset()
            .iter()
            .map(|(f, b)| RemoteFile {
                name: f.clone(),
                md5: md5_hex(b),
                bytes: b.len() as u64,
            })
            .collect(),
    }
}

const DEAD: &str = "http://127.0.0.1:1/";

#[test]
fn fetches_past_a_dead_mirror_verifies_and_caches() {
    let files = dataset()
        .into_iter()
        .map(|(f, b)| (f, Reply::File(b)))
        .collect();
    let (live, requests) = serve(files);
    let cache = temp_dir("fetch-ok");
    let mut reported = 0;
    let dir = fetch(
        &source(vec![DEAD.into(), live.clone()]),
        &cache,
        &mut |_, _, _| reported += 1,
    )
    .unwrap();
    assert_eq!(dir, cache.join("tiny"));
    let data = Mnist::load(&dir).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (30, 30));
    assert!(reported >= 4, "progress was reported");
    assert_eq!(requests.load(Ordering::SeqCst), 4);
    // Cached and intact: nothing is fetched again.
    fetch(&source(vec![live]), &cache, &mut |_, _, _| {}).unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 4);
}

#[test]
fn a_corrupted_file_is_an_error_naming_it_and_nothing_is_kept() {
    let mut files: HashMap<String, Reply> = dataset()
        .into_iter()
        .map(|(f, b)| (f, Reply::File(b)))
        .collect();
    files.insert(
        "train-labels-idx1-ubyte.gz".into(),
        Reply::File(b"tampered labels".to_vec()),
    );
    let (live, _) = serve(files);
    let cache = temp_dir("fetch-corrupt");
    let err = match fetch(&source(vec![live]), &cache, &mut |_, _, _| {}) {
        Err(FetchError::Failed(e)) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        err.contains("train-labels-idx1-ubyte.gz: checksum mismatch"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(cache.join("tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().contains("train-labels")),
        "{left:?}"
    );
}

#[test]
fn a_cut_download_leaves_no_half_file_and_dead_mirrors_mean_offline() {
    let mut files: HashMap<String, Reply> = dataset()
        .into_iter()
        .map(|(f, b)| (f, Reply::File(b)))
        .collect();
    let images = dataset()[0].1.clone();
    files.insert("train-images-idx3-ubyte.gz".into(), Reply::CutShort(images));
    let (live, _) = serve(files);
    let cache = temp_dir("fetch-cut");
    match fetch(&source(vec![live]), &cache, &mut |_, _, _| {}) {
        Err(FetchError::Unreachable(why)) => {
            assert!(why.contains("train-images-idx3-ubyte.gz"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(cache.join("tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    match fetch(&source(vec![DEAD.into()]), &cache, &mut |_, _, _| {}) {
        Err(FetchError::Unreachable(why)) => assert!(why.contains("127.0.0.1:1"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_cli_trains_offline_and_refuses_a_corrupted_dataset() {
    let wgml = |mirror: &str, out: &std::path::Path, cache: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wgml"))
            .current_dir(std::env::temp_dir())
            .env("WGML_MNIST_MIRROR", mirror)
            .args([
                "train",
                "--dataset",
                "mnist",
                "--epochs",
                "1",
                "--hidden",
                "8",
                "--data-dir",
            ])
            .arg(cache)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let dir = temp_dir("cli-fetch");
    let out = wgml(DEAD, &dir.join("offline"), &dir.join("cache"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("offline: ")
            && l.ends_with("training on the bundled MNIST subset instead")),
        "{stderr}"
    );

    // The real MNIST checksums cannot match these files.
    let files = dataset()
        .into_iter()
        .map(|(f, b)| (f, Reply::File(b)))
        .collect();
    let (live, _) = serve(files);
    let out = wgml(&live, &dir.join("corrupt"), &dir.join("cache"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("train-images-idx3-ubyte.gz: checksum mismatch"),
        "{stderr}"
    );
    assert!(
        !dir.join("corrupt").exists(),
        "no run folder for a run that never started"
    );
}

/// Files left in a cache folder.
fn left(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect()
        })
        .unwrap_or_default()
}

const QUICK: Deadlines = Deadlines {
    connect: Duration::from_secs(2),
    first_byte: Duration::from_millis(500),
    idle: Duration::from_millis(500),
};

/// A mirror that never answers is given up on at the deadline, and the next one serves;
/// a stall inside the body and an endless body end in errors, leaving no part file and
/// writing no more than the file's size.
#[test]
fn stalled_and_endless_mirrors_cost_bounded_time_and_disk() {
    let good: HashMap<String, Reply> = dataset()
        .into_iter()
        .map(|(f, b)| (f, Reply::File(b)))
        .collect();
    let silent = good.keys().map(|f| (f.clone(), Reply::Silent)).collect();
    let ((silent, _), (live, _)) = (serve(silent), serve(good));
    let cache = temp_dir("fetch-stalls");
    let started = Instant::now();
    fetch_within(
        &source(vec![silent, live]),
        &cache,
        QUICK,
        &mut |_, _, _| {},
    )
    .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "four 0.5 s deadlines took {took:?}"
    );

    let images = dataset()[0].1.clone();
    for (reply, expected) in [
        (Reply::StallsMidBody(images), "timeout"),
        (Reply::Endless, "sent more than the file's"),
    ] {
        let files = [("train-images-idx3-ubyte.gz".to_string(), reply)]
            .into_iter()
            .collect();
        let (mirror, _) = serve(files);
        let cache = temp_dir("fetch-stall-body");
        let started = Instant::now();
        match fetch_within(&source(vec![mirror]), &cache, QUICK, &mut |_, _, _| {}) {
            Err(FetchError::Unreachable(why)) => {
                assert!(why.to_lowercase().contains(expected), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{expected}");
        assert!(
            left(&cache.join("tiny")).is_empty(),
            "{:?}",
            left(&cache.join("tiny"))
        );
    }
}
