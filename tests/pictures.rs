//! Pictures as people hand them to `wgml predict`: drawing-app PNGs with transparency, files
//! whose name says another format, cut-off JPEGs, blank pages, and several files at once.

mod common;
use common::temp_dir;
use image::{GrayImage, Luma, Rgba, RgbaImage};
use std::path::{Path, PathBuf};
use wgml::data::picture::load_digit;
use wgml::data::Mnist;

/// The bundled test set's first digit (a 7), 4× larger, as black ink: (x, y) → ink in 0..=255.
fn seven() -> impl Fn(u32, u32) -> u8 {
    let test = Mnist::bundled().unwrap().test;
    let digit = test.images[..784].to_vec();
    move |x, y| digit[(y / 4 * 28 + x / 4) as usize]
}

fn opaque(dir: &Path) -> PathBuf {
    let ink = seven();
    let path = dir.join("opaque.png");
    GrayImage::from_fn(112, 112, |x, y| Luma([255 - ink(x, y)]))
        .save(&path)
        .unwrap();
    path
}

#[test]
fn transparent_and_misnamed_pictures_read_as_their_ink() {
    let dir = temp_dir("pictures-alpha");
    let expected = load_digit(&opaque(&dir)).unwrap();
    // A drawing app's export: black strokes whose opacity is the ink, on a transparent canvas.
    let ink = seven();
    let transparent = dir.join("strokes.png");
    RgbaImage::from_fn(112, 112, |x, y| Rgba([0, 0, 0, ink(x, y)]))
        .save(&transparent)
        .unwrap();
    assert_eq!(load_digit(&transparent).unwrap(), expected);
    // A PNG named .jpg is read by its contents.
    let misnamed = dir.join("digit.jpg");
    std::fs::copy(opaque(&dir), &misnamed).unwrap();
    assert_eq!(load_digit(&misnamed).unwrap(), expected);
}

#[test]
fn cut_off_and_blank_pictures_are_errors() {
    let dir = temp_dir("pictures-bad");
    let ink = seven();
    let jpeg = dir.join("seven.jpg");
    GrayImage::from_fn(112, 112, |x, y| Luma([255 - ink(x, y)]))
        .save(&jpeg)
        .unwrap();
    assert!(load_digit(&jpeg).is_ok());
    let bytes = std::fs::read(&jpeg).unwrap();
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = load_digit(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut.jpg: cannot read image: the JPEG is truncated"),
        "{err}"
    );
    let blank = dir.join("blank.png");
    GrayImage::from_pixel(64, 64, Luma([255]))
        .save(&blank)
        .unwrap();
    let err = load_digit(&blank).unwrap_err().to_string();
    assert!(
        err.contains("no digit found: the picture is blank"),
        "{err}"
    );
}

#[test]
fn predict_answers_every_good_file_and_reports_the_bad_ones() {
    let dir = temp_dir("pictures-predict");
    let weights = dir.join("w.safetensors");
    let model = wgml::nn::Sequential::mlp(common::gpu(), &[784, 10], 0).unwrap();
    let state = model.params().state_dict(common::gpu()).unwrap();
    wgml::checkpoint::save(&weights, &state).unwrap();
    let good = opaque(&dir);
    let bad = dir.join("notes.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgml"))
        .args(["predict", "--model", weights.to_str().unwrap()])
        .args([&bad, &good])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "a bad file makes the exit non-zero");
    assert!(
        stdout.contains("opaque.png: "),
        "the good file is answered: {stdout}"
    );
    assert!(stderr.contains("notes.png: cannot read image"), "{stderr}");
    assert!(
        stderr.contains("1 of 2 pictures could not be classified"),
        "{stderr}"
    );
}
