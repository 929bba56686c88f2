//! The PNG of one explained image: the input as the model saw it, then one panel per method
//! with the attribution over it in a perceptual colour map (viridis: brightness rises evenly
//! with the value, and it reads in grey and for colour-blind eyes), captioned, with the top-3
//! classes above.

use std::{path::Path, sync::Once};

use anyhow::{Context, Result};
use plotters::prelude::*;

/// Pixels per input pixel.
const ZOOM: u32 = 8;
/// Room for the captions above and below the panels.
const HEADER: u32 = 34;
const FOOTER: u32 = 26;
const GAP: u32 = 8;
const FONT: &str = "sans-serif";

/// Viridis at nine evenly spaced points (matplotlib's values, rounded).
const VIRIDIS: [[f32; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// The viridis colour of `value` in [0, 1].
pub fn viridis(value: f32) -> [u8; 3] {
    let position = value.clamp(0.0, 1.0) * 8.0;
    let low = (position.floor() as usize).min(7);
    let share = position - low as f32;
    let mut colour = [0u8; 3];
    for (channel, out) in colour.iter_mut().enumerate() {
        let mixed = VIRIDIS[low][channel] * (1.0 - share) + VIRIDIS[low + 1][channel] * share;
        *out = mixed.round() as u8;
    }
    colour
}

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The embedded DejaVu Sans is a valid font; a failure would show as a drawing error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// One panel: its caption and, for an attribution, its values scaled to [0, 1].
pub struct Panel {
    /// The caption under it (the method).
    pub caption: String,
    /// `None` for the input itself; else one value in [0, 1] per pixel.
    pub heat: Option<Vec<f32>>,
}

/// Draws `pixels` (28 x 28 in [0, 1]) and `panels` side by side, `title` above, to `path`
/// (written to a temporary name, then renamed).
pub fn save(path: &Path, title: &str, pixels: &[f32], side: usize, panels: &[Panel]) -> Result<()> {
    register_font();
    let panel = side as u32 * ZOOM;
    let width = panels.len() as u32 * (panel + GAP) + GAP;
    let height = HEADER + panel + FOOTER;
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let failed = |error: String| anyhow::anyhow!("cannot draw {}: {error}", path.display());
        root.draw_text(
            title,
            &(FONT, 18).into_font().color(&BLACK),
            (GAP as i32, 8),
        )
        .map_err(|error| failed(error.to_string()))?;
        for (index, entry) in panels.iter().enumerate() {
            let left = GAP + index as u32 * (panel + GAP);
            for (pixel, &grey) in pixels.iter().enumerate() {
                let grey = grey.clamp(0.0, 1.0);
                let colour = match &entry.heat {
                    None => [(grey * 255.0) as u8; 3],
                    Some(heat) => {
                        // the digit shows through the heat: a quarter of its grey
                        let [r, g, b] = viridis(heat[pixel]);
                        let shade =
                            |channel: u8| (0.75 * f32::from(channel) + 0.25 * 255.0 * grey) as u8;
                        [shade(r), shade(g), shade(b)]
                    }
                };
                let (x, y) = (
                    (pixel % side) as u32 * ZOOM + left,
                    (pixel / side) as u32 * ZOOM + HEADER,
                );
                root.draw(&Rectangle::new(
                    [(x as i32, y as i32), ((x + ZOOM) as i32, (y + ZOOM) as i32)],
                    RGBColor(colour[0], colour[1], colour[2]).filled(),
                ))
                .map_err(|error| failed(error.to_string()))?;
            }
            root.draw_text(
                &entry.caption,
                &(FONT, 15).into_font().color(&BLACK),
                (left as i32, (HEADER + panel + 6) as i32),
            )
            .map_err(|error| failed(error.to_string()))?;
        }
        root.present().map_err(|error| failed(error.to_string()))?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer)
        .context("the pixel buffer has the wrong size")?;
    let mut encoded = std::io::Cursor::new(Vec::new());
    image.write_to(&mut encoded, image::ImageFormat::Png)?;
    dl_nn::write_atomically(path, encoded.get_ref())
        .with_context(|| format!("cannot write {}", path.display()))
}
