//! Pictures of a run: a chart of loss and accuracy per epoch, and a grid of test digits with
//! their predicted and true labels. Drawn with `plotters` into an RGB buffer, text in DejaVu
//! Sans (a subset embedded from `assets/`).

use crate::checkpoint::write_atomically;
use crate::error::{Error, Result};
use image::RgbImage;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::{RangedCoordf64, RangedCoordu32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

const INK: RGBColor = RGBColor(40, 40, 40);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(230, 120, 20);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const FONT: &str = "sans-serif";
/// Labelled ticks per axis, at most.
const TICKS: usize = 6;

/// Registers the embedded font with plotters, once per process.
fn font() -> Result<()> {
    static REGISTER: Once = Once::new();
    let mut result = Ok(());
    REGISTER.call_once(|| {
        let bytes = include_bytes!("../assets/DejaVuSans-subset.ttf");
        result = plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| Error::invalid("the embedded chart font does not load"));
    });
    result
}

fn drawing(e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("cannot draw the chart: {e}"))
}

/// The value axis of a panel: from 0 (loss) or the lowest value (accuracy) to the highest,
/// with a quarter of the span above it kept free for the legend.
fn value_range(values: &[f64], from_zero: bool) -> Range<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    // A flat series (one epoch) still gets an axis a few percent of its value wide.
    let span = (hi - lo).max(hi.abs() * 0.05).max(1e-6);
    (lo - span * 0.05)..(hi + span * 0.3)
}

/// The labelled ticks of a panel's value axis, as plotters places them for `values` (round
/// numbers: 1, 2 or 5 times a power of ten).
pub fn value_ticks(values: &[f64], from_zero: bool) -> Vec<f64> {
    RangedCoordf64::from(value_range(values, from_zero)).key_points(TICKS)
}

/// The labelled ticks of the epoch axis for `epochs` epochs: whole epochs only.
pub fn epoch_ticks(epochs: usize) -> Vec<u32> {
    let range = epoch_range(epochs);
    let last = range.end;
    let ticks = RangedCoordu32::from(range).key_points(TICKS);
    ticks.into_iter().filter(|&t| t > 0 && t < last).collect()
}

/// The epoch axis: an epoch of room on either side of epochs 1…n, whose ends are not labelled.
fn epoch_range(epochs: usize) -> Range<u32> {
    0..epochs as u32 + 1
}

/// One panel: `series` (label, values per epoch, colour) over epochs 1…n.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(&str, &[f64], RGBColor)],
    percent: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let epochs = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let all: Vec<f64> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22).into_font().color(&INK))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(epoch_range(epochs), value_range(&all, !percent))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_labels(TICKS)
        .y_labels(TICKS)
        .x_desc("epoch")
        .label_style((FONT, 15).into_font().color(&INK))
        .axis_desc_style((FONT, 15).into_font().color(&INK))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|&e| match e {
            0 => String::new(),
            e if e as usize > epochs => String::new(),
            e => e.to_string(),
        })
        .y_label_formatter(&|v| format_tick(*v))
        .draw()
        .map_err(drawing)?;
    for &(label, values, color) in series {
        let points = (1u32..).zip(values.iter().copied());
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(drawing)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        chart
            .draw_series(points.map(|p| Circle::new(p, 3, color.filled())))
            .map_err(drawing)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15).into_font().color(&INK))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(drawing)
}

/// A tick value without trailing zeros (0.25, 0.5, 90).
fn format_tick(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Loss (train and test) and test accuracy in percent per epoch, side by side, 860 × 400.
pub fn chart(train_loss: &[f64], test_loss: &[f64], test_accuracy: &[f64]) -> Result<RgbImage> {
    font()?;
    let (width, height) = (860u32, 400u32);
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (left, right) = root.split_horizontally(width / 2);
        let losses = [("train", train_loss, BLUE), ("test", test_loss, ORANGE)];
        panel(&left, "loss", &losses, false)?;
        let percent: Vec<f64> = test_accuracy.iter().map(|a| a * 100.0).collect();
        panel(
            &right,
            "test accuracy (%)",
            &[("test", &percent, GREEN)],
            true,
        )?;
        root.present().map_err(drawing)?;
    }
    RgbImage::from_raw(width, height, pixels).ok_or_else(|| drawing("buffer size"))
}

/// Square images (`side`×`side` bytes each, white on black) in a grid of `columns`, each
/// captioned "predicted/true"; mistakes are framed and captioned in red.
pub fn digit_grid(
    images: &[&[u8]],
    side: usize,
    predicted: &[usize],
    truth: &[usize],
    columns: usize,
) -> Result<RgbImage> {
    font()?;
    let (cell_w, cell_h, header) = (96i32, 120i32, 40i32);
    let side = side.max(1) as i32;
    let scale = (84 / side).max(1);
    let columns = columns.max(1);
    let rows = images.len().div_ceil(columns) as i32;
    let (width, height) = (
        columns as u32 * cell_w as u32,
        (header + rows * cell_h) as u32,
    );
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let title = (FONT, 24).into_font().color(&INK);
        root.draw_text("predicted/true", &title, (8, 8))
            .map_err(drawing)?;
        for (i, image) in images.iter().enumerate() {
            let (cx, cy) = (
                (i % columns) as i32 * cell_w,
                header + (i / columns) as i32 * cell_h,
            );
            let wrong = predicted.get(i) != truth.get(i);
            if wrong {
                let frame = [(cx + 3, cy + 3), (cx + 93, cy + 93)];
                root.draw(&Rectangle::new(frame, RED.filled()))
                    .map_err(drawing)?;
            }
            for (k, &v) in image.iter().enumerate().take((side * side) as usize) {
                let (x, y) = (
                    cx + 6 + (k as i32 % side) * scale,
                    cy + 6 + (k as i32 / side) * scale,
                );
                let shade = 255 - v;
                let cell = [(x, y), (x + scale, y + scale)];
                root.draw(&Rectangle::new(
                    cell,
                    RGBColor(shade, shade, shade).filled(),
                ))
                .map_err(drawing)?;
            }
            let caption = format!(
                "{}/{}",
                predicted.get(i).copied().unwrap_or(0),
                truth.get(i).copied().unwrap_or(0)
            );
            let color = if wrong { RED } else { GREEN };
            let style = (FONT, 18)
                .into_font()
                .color(&color)
                .pos(Pos::new(HPos::Center, VPos::Top));
            root.draw_text(&caption, &style, (cx + 48, cy + 96))
                .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    RgbImage::from_raw(width, height, pixels).ok_or_else(|| drawing("buffer size"))
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
