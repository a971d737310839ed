//! Pictures of a run: a chart of loss and accuracy per epoch, and a grid of test digits with
//! their predicted and true labels. Text is drawn with a small built-in bitmap font.

use crate::checkpoint::write_atomically;
use crate::error::{Error, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([230, 120, 20]);
const GREEN: Rgb<u8> = Rgb([44, 160, 44]);
const RED: Rgb<u8> = Rgb([214, 39, 40]);

/// 5×7 glyphs, one string of 35 cells per character ('#' is ink).
fn glyph(c: char) -> Option<&'static str> {
    Some(match c {
        '0' => ".###.#...##..###.#.###..##...#.###.",
        '1' => "..#...##....#....#....#....#...###.",
        '2' => ".###.#...#....#...#...#...#...#####",
        '3' => "#####...#...#.....#.....##...#.###.",
        '4' => "...#...##..#.#.#..#.#####...#....#.",
        '5' => "######....####.....#....##...#.###.",
        '6' => "..##..#...#....####.#...##...#.###.",
        '7' => "#####....#...#...#...#....#....#...",
        '8' => ".###.#...##...#.###.#...##...#.###.",
        '9' => ".###.#...##...#.####....#...#..##..",
        '.' => "..........................##...##..",
        '%' => "##...##..#...#...#...#...#..##...##",
        '-' => "...............#####...............",
        ':' => "......##...##........##...##.......",
        '/' => ".........#...#...#...#...#.........",
        ' ' => "...................................",
        'a' => "...........###.....#.#####...#.####",
        'c' => "...........###.#....#....#...#.###.",
        'd' => "....#....#.##.##..###...##...#.####",
        'e' => "...........###.#...#######.....###.",
        'g' => "...........#####...#.####....#.###.",
        'h' => "#....#....#.##.##..##...##...##...#",
        'i' => "..#........##....#....#....#...###.",
        'l' => ".##....#....#....#....#....#...###.",
        'n' => "..........#.##.##..##...##...##...#",
        'o' => "...........###.#...##...##...#.###.",
        'p' => "..........####.#...#####.#....#....",
        'r' => "..........#.##.##..##....#....#....",
        's' => "...........#####.....###.....#####.",
        't' => ".#....#...###...#....#....#..#..##.",
        'u' => "..........#...##...##...##..##.##.#",
        'y' => "..........#...##...#.####....#.###.",
        _ => return None,
    })
}

/// Draws `text` with its top-left corner at (x, y), each font cell `scale` pixels wide.
fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, color: Rgb<u8>) {
    for (i, c) in s.chars().enumerate() {
        let Some(cells) = glyph(c) else { continue };
        for (k, cell) in cells.bytes().enumerate() {
            if cell == b'#' {
                let (gx, gy) = ((k % 5) as i64, (k / 5) as i64);
                fill(
                    img,
                    x + (i as i64 * 6 + gx) * scale,
                    y + gy * scale,
                    scale,
                    scale,
                    color,
                );
            }
        }
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 6 * scale
}

fn fill(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, color: Rgb<u8>) {
    for py in y.max(0)..(y + h).min(i64::from(img.height())) {
        for px in x.max(0)..(x + w).min(i64::from(img.width())) {
            img.put_pixel(px as u32, py as u32, color);
        }
    }
}

/// A straight line of width 2 (a few hundred pixels at most, so stepping is fine).
fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: Rgb<u8>) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()) * 2.0).ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        fill(img, x.round() as i64 - 1, y.round() as i64 - 1, 2, 2, color);
    }
}

/// A labelled series for [`chart`].
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// One value per epoch.
    pub values: &'a [f64],
}

/// One panel: a title, y axis from the data's range, x axis over epochs, series as lines.
fn panel(img: &mut RgbImage, x0: i64, title: &str, series: &[(Series, Rgb<u8>)], percent: bool) {
    let (w, h, top, left, bottom) = (430i64, 400i64, 60i64, 70i64, 50i64);
    let (px0, py0, pw, ph) = (x0 + left, top, w - left - 20, h - top - bottom);
    text(img, x0 + left, 14, title, 3, INK);
    let finite = series
        .iter()
        .flat_map(|(s, _)| s.values.iter().copied())
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.08;
    let (lo, hi) = (lo - pad, hi + pad);
    let epochs = series
        .iter()
        .map(|(s, _)| s.values.len())
        .max()
        .unwrap_or(0);
    let x_of = |i: usize| {
        px0 as f64
            + if epochs > 1 {
                i as f64 * pw as f64 / (epochs - 1) as f64
            } else {
                pw as f64 / 2.0
            }
    };
    let y_of = |v: f64| py0 as f64 + (hi - v) / (hi - lo) * ph as f64;
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = y_of(v).round() as i64;
        fill(img, px0, y, pw, 1, GRID);
        let label = if percent {
            format!("{:.1}", v * 100.0)
        } else {
            format!("{v:.3}")
        };
        text(img, px0 - 8 - text_width(&label, 2), y - 7, &label, 2, INK);
    }
    fill(img, px0, py0, 2, ph, INK);
    fill(img, px0, py0 + ph, pw, 2, INK);
    let ticks: Vec<usize> = if epochs <= 10 {
        (0..epochs).collect()
    } else {
        vec![0, epochs / 2, epochs - 1]
    };
    for i in ticks {
        let label = (i + 1).to_string();
        let x = x_of(i).round() as i64;
        fill(img, x, py0 + ph, 2, 6, INK);
        text(
            img,
            x - text_width(&label, 2) / 2,
            py0 + ph + 10,
            &label,
            2,
            INK,
        );
    }
    text(
        img,
        px0 + pw / 2 - text_width("epoch", 2) / 2,
        py0 + ph + 30,
        "epoch",
        2,
        INK,
    );
    for (n, (s, color)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| (x_of(i), y_of(v)))
            .collect();
        for pair in points.windows(2) {
            line(img, pair[0], pair[1], *color);
        }
        for &(x, y) in &points {
            fill(
                img,
                x.round() as i64 - 3,
                y.round() as i64 - 3,
                6,
                6,
                *color,
            );
        }
        let ly = top + 8 + n as i64 * 20;
        fill(img, px0 + pw - 150, ly + 4, 20, 4, *color);
        text(img, px0 + pw - 124, ly, s.label, 2, INK);
    }
}

/// Loss (train and test) and test accuracy per epoch, side by side.
pub fn chart(train_loss: &[f64], test_loss: &[f64], test_accuracy: &[f64]) -> RgbImage {
    let mut img = RgbImage::from_pixel(860, 400, WHITE);
    let losses = [
        (
            Series {
                label: "train",
                values: train_loss,
            },
            BLUE,
        ),
        (
            Series {
                label: "test",
                values: test_loss,
            },
            ORANGE,
        ),
    ];
    panel(&mut img, 0, "loss", &losses, false);
    panel(
        &mut img,
        430,
        "test accuracy %",
        &[(
            Series {
                label: "test",
                values: test_accuracy,
            },
            GREEN,
        )],
        true,
    );
    img
}

/// Square images (`side`×`side` bytes each, white on black) in a grid of `columns`, each
/// captioned "predicted/true"; mistakes are framed and captioned in red.
pub fn digit_grid(
    images: &[&[u8]],
    side: usize,
    predicted: &[usize],
    truth: &[usize],
    columns: usize,
) -> RgbImage {
    let (cell_w, cell_h, header) = (96i64, 120i64, 40i64);
    let side = side.max(1) as i64;
    let scale = (84 / side).max(1);
    let columns = columns.max(1);
    let rows = images.len().div_ceil(columns);
    let mut img = RgbImage::from_pixel(
        (columns as i64 * cell_w) as u32,
        (header + rows as i64 * cell_h) as u32,
        WHITE,
    );
    text(&mut img, 8, 10, "predicted/true", 3, INK);
    for (i, pixels) in images.iter().enumerate() {
        let (cx, cy) = (
            (i % columns) as i64 * cell_w,
            header + (i / columns) as i64 * cell_h,
        );
        let wrong = predicted.get(i) != truth.get(i);
        let color = if wrong { RED } else { GREEN };
        if wrong {
            fill(&mut img, cx + 3, cy + 3, 90, 90, RED);
        }
        for (k, &v) in pixels.iter().enumerate().take((side * side) as usize) {
            let (x, y) = (k as i64 % side, k as i64 / side);
            let shade = 255 - v;
            fill(
                &mut img,
                cx + 6 + x * scale,
                cy + 6 + y * scale,
                scale,
                scale,
                Rgb([shade, shade, shade]),
            );
        }
        let caption = format!(
            "{}/{}",
            predicted.get(i).copied().unwrap_or(0),
            truth.get(i).copied().unwrap_or(0)
        );
        text(
            &mut img,
            cx + 48 - text_width(&caption, 2) / 2,
            cy + 96,
            &caption,
            2,
            color,
        );
    }
    img
}

/// Encodes `img` as PNG and writes it atomically.
pub fn save_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::data(path, format!("cannot encode PNG: {e}")))?;
    write_atomically(path, &bytes)
}
