//! Any picture of a digit, made to look like an MNIST sample.

use crate::error::{Error, Result};
use image::{imageops, GrayImage, Luma};
use std::path::Path;

/// Reads a PNG or JPEG (told apart by their contents, not the file name) of any size and colour
/// and returns 28×28 bytes as MNIST draws digits: light ink on a dark background (inverted when
/// the background is light), the digit scaled to fit a 20×20 box and centred by its centre of
/// mass. Transparent pixels count as white paper. A truncated file, or a picture with no ink on
/// it, is an error.
pub fn load_digit(path: &Path) -> Result<Vec<u8>> {
    let bad = |e: &dyn std::fmt::Display| Error::data(path, format!("cannot read image: {e}"));
    let bytes = std::fs::read(path).map_err(|e| Error::reading(path, e))?;
    let format = image::guess_format(&bytes).map_err(|e| bad(&e))?;
    // JPEG decoders fill a cut-off picture with grey rather than fail: a whole JPEG ends with
    // its end-of-image marker.
    if format == image::ImageFormat::Jpeg && !bytes.ends_with(&[0xFF, 0xD9]) {
        return Err(bad(&"the JPEG is truncated (no end-of-image marker)"));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes), format);
    reader.limits(image::Limits::default());
    let img = reader.decode().map_err(|e| bad(&e))?;
    mnist_like(&on_white(&img))
        .ok_or_else(|| Error::data(path, "no digit found: the picture is blank"))
}

/// The picture in grayscale, transparent parts composited onto white paper.
fn on_white(img: &image::DynamicImage) -> GrayImage {
    if !img.color().has_alpha() {
        return img.to_luma8();
    }
    let rgba = img.to_rgba8();
    GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = f32::from(a) / 255.0;
        let luma = 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
        Luma([(alpha * luma + (1.0 - alpha) * 255.0).round() as u8])
    })
}

/// The MNIST preprocessing of [`load_digit`] on a grayscale image; `None` when it has no ink.
pub fn mnist_like(gray: &GrayImage) -> Option<Vec<u8>> {
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
        return None;
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
    Some(out)
}
