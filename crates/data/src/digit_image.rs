//! Turning any photo or drawing of a digit into an MNIST-like input, the way MNIST itself was
//! made: grayscale, white digit on black, the digit scaled to fit a 20 x 20 box (keeping its
//! aspect ratio) and placed in a 28 x 28 image so that its centre of mass is at the centre.
//! A model trained on MNIST only recognises digits prepared like this (course §5.1, used by
//! `mnist-classifier predict`).

use std::path::Path;

use image::{imageops::FilterType, GrayImage, Luma};

use crate::{DataError, Result};

/// Side of the MNIST image.
pub const SIDE: u32 = 28;
/// Side of the box the digit is scaled into.
const DIGIT_BOX: u32 = 20;
/// A pixel brighter than this share of the brightest pixel belongs to the digit.
const INK_THRESHOLD: f32 = 0.2;

/// The most pixels an image may have (a 100-megapixel photo; larger ones are refused before
/// they are decoded, since decoding one takes its pixel count in bytes or more).
pub const MAX_PIXELS: u64 = 100_000_000;
/// The most memory the decoder may allocate for one image.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Reads an image file of any size and colour and prepares it as 784 values in 0..1 (row-major
/// 28 x 28).
pub fn load_digit(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|error| DataError::io(path, error))?;
    decode_digit(&bytes, path)
}

/// Decodes the image in `bytes` (PNG or JPEG, any size and colour; `path` names it in errors)
/// and prepares it as [`load_digit`] does. An image of more than [`MAX_PIXELS`] is refused from
/// its header, before it is decoded, and the decoder may allocate at most 512 MiB.
pub fn decode_digit(bytes: &[u8], path: &Path) -> Result<Vec<f32>> {
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|error| DataError::io(path, error))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|error| not_readable(path, bytes, &error))?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DataError::corrupt(
            path,
            format!(
                "{width} x {height} pixels, more than the {} megapixels this program decodes; shrink it first (a digit needs no more than a few hundred pixels a side)",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|error| not_readable(path, bytes, &error))?;
    prepare(&flatten_on_white(&decoded))
        .map_err(|problem| DataError::corrupt(path, format!("cannot find a digit: {problem}")))
}

/// The error for an image the decoder refused, naming what it can of the reason: a JPEG coding
/// process it does not support (its own message would be misleading), else the decoder's.
fn not_readable(path: &Path, bytes: &[u8], error: &image::ImageError) -> DataError {
    match unsupported_jpeg_process(bytes) {
        Some(process) => DataError::corrupt(
            path,
            format!("a {process} JPEG, which the decoder does not support; save it as an ordinary (baseline or progressive) JPEG or as PNG"),
        ),
        None => DataError::corrupt(path, format!("not a readable PNG or JPEG image: {error}")),
    }
}

/// The coding process of a JPEG whose frame header (SOF marker) names one the decoder does
/// not support: lossless, hierarchical (differential) or arithmetic-coded. `None` for a
/// baseline or progressive JPEG, or bytes that are not a JPEG.
fn unsupported_jpeg_process(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        match marker {
            0xC3 => return Some("lossless"),
            0xC5..=0xC7 => return Some("hierarchical (differential)"),
            0xC9..=0xCB | 0xCD..=0xCF => return Some("arithmetic-coded"),
            0xC0..=0xC2 | 0xDA => return None,
            0xFF => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        at += 2 + length;
    }
    None
}

/// Grayscale, with transparent areas composited over white (a drawing on a transparent
/// background becomes ink on paper). An opaque 8-bit grey image is used as it is; others are
/// read as 8-bit RGBA (4 bytes a pixel, not 16 as floats would take).
fn flatten_on_white(image: &image::DynamicImage) -> GrayImage {
    if let image::DynamicImage::ImageLuma8(gray) = image {
        return gray.clone();
    }
    let rgba = image.to_rgba8();
    GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [red, green, blue, alpha] =
            rgba.get_pixel(x, y).0.map(|value| f32::from(value) / 255.0);
        let luminance = 0.299 * red + 0.587 * green + 0.114 * blue;
        let on_white = alpha * luminance + (1.0 - alpha);
        Luma([(on_white.clamp(0.0, 1.0) * 255.0).round() as u8])
    })
}

/// Prepares a grayscale image: invert if the digit is dark on light, crop to the digit, scale
/// it into 20 x 20, and centre its mass in 28 x 28.
pub fn prepare(gray: &GrayImage) -> std::result::Result<Vec<f32>, String> {
    let (width, height) = gray.dimensions();
    if width == 0 || height == 0 {
        return Err("the image is empty".into());
    }
    let ink = ink_image(gray);
    let brightest = ink.pixels().map(|pixel| pixel.0[0]).max().unwrap_or(0);
    if brightest == 0 {
        return Err("the image is blank (a single colour)".into());
    }
    let threshold = (f32::from(brightest) * INK_THRESHOLD) as u8;
    let (mut left, mut top, mut right, mut bottom) = (width, height, 0, 0);
    for (x, y, pixel) in ink.enumerate_pixels() {
        if pixel.0[0] > threshold {
            left = left.min(x);
            top = top.min(y);
            right = right.max(x);
            bottom = bottom.max(y);
        }
    }
    let cropped =
        image::imageops::crop_imm(&ink, left, top, right - left + 1, bottom - top + 1).to_image();
    let scale = DIGIT_BOX as f32 / cropped.width().max(cropped.height()) as f32;
    let scaled_width = ((cropped.width() as f32 * scale).round() as u32).clamp(1, DIGIT_BOX);
    let scaled_height = ((cropped.height() as f32 * scale).round() as u32).clamp(1, DIGIT_BOX);
    let digit =
        image::imageops::resize(&cropped, scaled_width, scaled_height, FilterType::Triangle);
    let (centre_x, centre_y) = centre_of_mass(&digit);
    let offset = |centre: f32, size: u32| -> i64 {
        let placed = (SIDE as f32 / 2.0 - centre).round() as i64;
        placed.clamp(0, i64::from(SIDE - size))
    };
    let (offset_x, offset_y) = (
        offset(centre_x, scaled_width),
        offset(centre_y, scaled_height),
    );
    let mut canvas = GrayImage::new(SIDE, SIDE);
    image::imageops::overlay(&mut canvas, &digit, offset_x, offset_y);
    Ok(canvas
        .pixels()
        .map(|pixel| f32::from(pixel.0[0]) / 255.0)
        .collect())
}

/// The image with ink bright and background dark: inverted when the border (the background) is
/// brighter than mid-grey, as for a dark digit on white paper.
fn ink_image(gray: &GrayImage) -> GrayImage {
    let (width, height) = gray.dimensions();
    let border: Vec<u32> = gray
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x == width - 1 || *y == height - 1)
        .map(|(_, _, pixel)| u32::from(pixel.0[0]))
        .collect();
    let border_mean = border.iter().sum::<u32>() as f32 / border.len().max(1) as f32;
    let mut ink = gray.clone();
    if border_mean > 127.0 {
        image::imageops::invert(&mut ink);
    }
    let background = if border.is_empty() {
        0
    } else {
        let mut sorted: Vec<u32> = border
            .iter()
            .map(|&value| {
                if border_mean > 127.0 {
                    255 - value
                } else {
                    value
                }
            })
            .collect();
        sorted.sort_unstable();
        sorted[sorted.len() / 2] as u8
    };
    for pixel in ink.pixels_mut() {
        pixel.0[0] = pixel.0[0].saturating_sub(background);
    }
    ink
}

fn centre_of_mass(image: &GrayImage) -> (f32, f32) {
    let (mut total, mut sum_x, mut sum_y) = (0f32, 0f32, 0f32);
    for (x, y, pixel) in image.enumerate_pixels() {
        let mass = f32::from(pixel.0[0]);
        total += mass;
        sum_x += mass * (x as f32 + 0.5);
        sum_y += mass * (y as f32 + 0.5);
    }
    if total == 0.0 {
        (image.width() as f32 / 2.0, image.height() as f32 / 2.0)
    } else {
        (sum_x / total, sum_y / total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_coding_processes_are_named_from_the_frame_header() {
        // SOI, an APP0 segment of 4 bytes (length 4 counts itself), then the frame header.
        let jpeg = |sof: u8| {
            vec![
                0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46, 0xFF, sof, 0x00, 0x0B,
            ]
        };
        assert_eq!(unsupported_jpeg_process(&jpeg(0xC0)), None);
        assert_eq!(unsupported_jpeg_process(&jpeg(0xC2)), None);
        assert_eq!(unsupported_jpeg_process(&jpeg(0xC3)), Some("lossless"));
        assert_eq!(
            unsupported_jpeg_process(&jpeg(0xC9)),
            Some("arithmetic-coded")
        );
        assert_eq!(
            unsupported_jpeg_process(&jpeg(0xCA)),
            Some("arithmetic-coded")
        );
        assert_eq!(
            unsupported_jpeg_process(&jpeg(0xC5)),
            Some("hierarchical (differential)")
        );
        assert_eq!(unsupported_jpeg_process(b"\x89PNG"), None);
        assert_eq!(unsupported_jpeg_process(&[0xFF, 0xD8, 0xFF]), None);
    }

    /// A dark vertical bar (a "1") on a white 100 x 60 page.
    fn dark_one_on_white() -> GrayImage {
        GrayImage::from_fn(60, 100, |x, y| {
            if (25..35).contains(&x) && (10..90).contains(&y) {
                Luma([10])
            } else {
                Luma([250])
            }
        })
    }

    #[test]
    fn dark_on_light_is_inverted_scaled_and_centred() {
        let pixels = prepare(&dark_one_on_white()).unwrap();
        assert_eq!(pixels.len(), 784);
        // Corners are background (black), the centre is ink (white).
        assert_eq!(pixels[0], 0.0);
        assert!(
            pixels[14 * 28 + 14] > 0.8,
            "centre {}",
            pixels[14 * 28 + 14]
        );
        // The 80-pixel-tall bar fills the 20-pixel box vertically: rows 4..24.
        let row_has_ink = |row: usize| (0..28).any(|column| pixels[row * 28 + column] > 0.5);
        assert!(!row_has_ink(2) && row_has_ink(5) && row_has_ink(22) && !row_has_ink(26));
        // Centre of mass at the centre.
        let (mut total, mut sum_x) = (0.0, 0.0);
        for (index, value) in pixels.iter().enumerate() {
            total += value;
            sum_x += value * ((index % 28) as f32 + 0.5);
        }
        assert!((sum_x / total - 14.0).abs() < 1.0);
    }

    #[test]
    fn light_on_dark_is_kept_and_blank_is_an_error() {
        let mut light = dark_one_on_white();
        image::imageops::invert(&mut light);
        assert_eq!(
            prepare(&light).unwrap(),
            prepare(&dark_one_on_white()).unwrap()
        );
        assert!(prepare(&GrayImage::from_pixel(10, 10, Luma([200]))).is_err());
    }
}
