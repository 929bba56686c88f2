//! Learning curves as a PNG: loss per epoch (training and validation) and, for classifiers,
//! accuracy per epoch, side by side. A widening gap between the training and validation curves
//! is overfitting made visible (course appendix, "如何防止过拟合").
//!
//! The text is drawn with the DejaVu Sans font embedded in the binary, so plotting needs no
//! system fonts or fontconfig.

use std::{path::Path, sync::Once};

use plotters::prelude::*;

use crate::{History, TrainingError, TrainingResult};

const FONT: &str = "sans-serif";
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 480;

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The embedded font is a valid TrueType file; should registration ever fail, plotters
        // reports the missing font when drawing, which becomes a TrainingError below.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

type Series = Vec<(f64, f64)>;

fn series(history: &History, pick: impl Fn(&crate::EpochRecord) -> Option<f64>) -> Series {
    history
        .epochs
        .iter()
        .filter_map(|record| pick(record).map(|value| (record.epoch as f64, value)))
        .collect()
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    curves: &[(&str, RGBColor, Series)],
) -> Result<(), String> {
    let points: Vec<(f64, f64)> = curves
        .iter()
        .flat_map(|(_, _, points)| points.iter().copied())
        .filter(|(_, value)| value.is_finite())
        .collect();
    if points.is_empty() {
        return Ok(());
    }
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(epoch, value) in &points {
        first = first.min(epoch);
        last = last.max(epoch);
        low = low.min(value);
        high = high.max(value);
    }
    if last <= first {
        first -= 0.5;
        last += 0.5;
    }
    let margin = ((high - low) * 0.05)
        .max(high.abs().max(low.abs()) * 0.02)
        .max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(first..last, (low - margin)..(high + margin))
        .map_err(|error| error.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(|error| error.to_string())?;
    for (label, color, curve) in curves {
        if curve.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                curve.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|error| error.to_string())?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                curve
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )
            .map_err(|error| error.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|error| error.to_string())
}

impl History {
    /// Draws the learning curves into a PNG file (written to a temporary name and renamed).
    pub fn plot_png(&self, path: &Path) -> TrainingResult<()> {
        let has_accuracy = self
            .epochs
            .iter()
            .any(|record| record.train_accuracy.is_some());
        let mut panels = vec![Panel {
            title: "loss".into(),
            x_label: "epoch".into(),
            curves: vec![
                (
                    "training loss".into(),
                    series(self, |record| Some(record.train_loss)),
                ),
                (
                    "validation loss".into(),
                    series(self, |record| record.validation_loss),
                ),
            ],
        }];
        if has_accuracy {
            panels.push(Panel {
                title: "accuracy".into(),
                x_label: "epoch".into(),
                curves: vec![
                    (
                        "training accuracy".into(),
                        series(self, |record| record.train_accuracy),
                    ),
                    (
                        "validation accuracy".into(),
                        series(self, |record| record.validation_accuracy),
                    ),
                ],
            });
        }
        plot_panels_png(path, "the learning curves", &panels)
    }
}

/// One chart of a figure: a title, the x axis's name and named curves of (x, y) points.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// The chart's title.
    pub title: String,
    /// What the x axis measures.
    pub x_label: String,
    /// The curves, each with its legend label (at most four are told apart by colour).
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws `panels` side by side into a PNG file (written to a temporary name and renamed);
/// `what` names the figure in errors. A pruning sweep's accuracy against sparsity, say.
pub fn plot_panels_png(path: &Path, what: &str, panels: &[Panel]) -> TrainingResult<()> {
    register_font();
    let failed = |problem: String| TrainingError::File {
        path: path.to_path_buf(),
        problem: format!("cannot draw {what}: {problem}"),
    };
    const COLORS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|error| failed(error.to_string()))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            let curves: Vec<(&str, RGBColor, Series)> = panel
                .curves
                .iter()
                .zip(COLORS.iter().cycle())
                .map(|((label, points), color)| (label.as_str(), *color, points.clone()))
                .collect();
            draw_panel(area, &panel.title, &panel.x_label, &curves).map_err(failed)?;
        }
        root.present().map_err(|error| failed(error.to_string()))?;
    }
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, pixels)
        .ok_or_else(|| failed("the pixel buffer has the wrong size".into()))?;
    let mut encoded = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut encoded, image::ImageFormat::Png)
        .map_err(|error| failed(error.to_string()))?;
    dl_tensor::write_atomically(path, encoded.get_ref()).map_err(|error| failed(error.to_string()))
}
