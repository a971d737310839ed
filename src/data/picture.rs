//! Any picture of a digit, made to look like an MNIST sample.

use crate::error::{Error, Result};
use image::{imageops, GrayImage, Luma};
use std::path::Path;

/// Reads a PNG or JPEG of any size and colour and returns 28×28 bytes as MNIST draws digits:
/// light ink on a dark background (inverted when the background is light), the digit scaled to
/// fit a 20×20 box and centred by its centre of mass.
pub fn load_digit(path: &Path) -> Result<Vec<u8>> {
    let img =
        image::open(path).map_err(|e| Error::data(path, format!("cannot read image: {e}")))?;
    Ok(mnist_like(&img.to_luma8()))
}

/// The MNIST preprocessing of [`load_digit`] on a grayscale image.
pub fn mnist_like(gray: &GrayImage) -> Vec<u8> {
    let (w, h) = gray.dimensions();
    let mut img = gray.clone();
    // The border's mean tells the background: invert a light one.
    let border: Vec<u32> = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]))
        .map(|(x, y)| u32::from(gray.get_pixel(x, y)[0]))
        .collect();
    if border.iter().sum::<u32>() > 127 * border.len() as u32 {
        imageops::invert(&mut img);
    }
    // Crop to the ink, then scale the longer side to 20 pixels.
    let ink = |p: &Luma<u8>| p[0] > 40;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if ink(p) {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    let mut out = vec![0u8; 784];
    if x1 < x0 {
        return out; // blank picture
    }
    let crop = imageops::crop_imm(&img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let (cw, ch) = crop.dimensions();
    let scale = 20.0 / cw.max(ch) as f32;
    let (sw, sh) = (
        ((cw as f32 * scale).round() as u32).max(1),
        ((ch as f32 * scale).round() as u32).max(1),
    );
    let digit = imageops::resize(&crop, sw, sh, imageops::FilterType::Triangle);
    // Centre of mass to the middle of the 28×28 field.
    let (mut mass, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (x, y, p) in digit.enumerate_pixels() {
        let v = f64::from(p[0]);
        (mass, mx, my) = (mass + v, mx + v * f64::from(x), my + v * f64::from(y));
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        (f64::from(sw) / 2.0, f64::from(sh) / 2.0)
    };
    let (ox, oy) = ((14.0 - cx).round() as i64, (14.0 - cy).round() as i64);
    for (x, y, p) in digit.enumerate_pixels() {
        let (tx, ty) = (i64::from(x) + ox, i64::from(y) + oy);
        if (0..28).contains(&tx) && (0..28).contains(&ty) {
            out[(ty * 28 + tx) as usize] = p[0];
        }
    }
    out
}
