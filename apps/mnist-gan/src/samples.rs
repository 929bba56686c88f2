//! Turning generated images into files: a PNG grid for people, an animated GIF of the epochs,
//! and IDX (idx3-ubyte, white on black like MNIST) so that any MNIST reader can score them.
//! Every file is written to a temporary name and renamed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dl_data::IdxArray;
use dl_models::images_to_bytes;
use dl_tensor::Tensor;
use image::{codecs::gif::GifEncoder, Delay, Frame, GrayImage, RgbaImage};

/// The side of an image.
const SIDE: usize = 28;
/// Pixels between images in a grid.
const GAP: usize = 2;

/// The images `(N, 1, 28, 28)` in [−1, 1] as one grey picture, `columns` per row, separated by
/// a dark gap.
pub fn grid(images: &Tensor, columns: usize) -> Result<GrayImage> {
    let bytes = images_to_bytes(images)?;
    let count = bytes.len() / (SIDE * SIDE);
    let columns = columns.clamp(1, count.max(1));
    let rows = count.div_ceil(columns).max(1);
    let width = columns * (SIDE + GAP) + GAP;
    let height = rows * (SIDE + GAP) + GAP;
    let mut picture = GrayImage::new(width as u32, height as u32);
    for (index, image) in bytes.chunks_exact(SIDE * SIDE).enumerate() {
        let (row, column) = (index / columns, index % columns);
        let (top, left) = (GAP + row * (SIDE + GAP), GAP + column * (SIDE + GAP));
        for (y, line) in image.chunks_exact(SIDE).enumerate() {
            for (x, &value) in line.iter().enumerate() {
                picture.put_pixel((left + x) as u32, (top + y) as u32, image::Luma([value]));
            }
        }
    }
    Ok(picture)
}

/// Writes `bytes` to `path` atomically (temporary file, then rename), creating its directory.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory {}", parent.display()))?;
    }
    dl_nn::write_atomically(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Saves a picture as PNG.
pub fn save_png(picture: &GrayImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .context("cannot encode the PNG")?;
    write_file(path, &bytes)
}

/// Saves images `(N, 1, 28, 28)` in [−1, 1] as an idx3-ubyte file (N x 28 x 28 bytes).
pub fn save_idx(images: &Tensor, path: &Path) -> Result<()> {
    let data = images_to_bytes(images)?;
    let count = data.len() / (SIDE * SIDE);
    let array = IdxArray {
        dims: vec![count, SIDE, SIDE],
        data,
    };
    write_file(path, &array.to_bytes())
}

/// Saves images in the format `path`'s extension names: `.png` (a grid, 8 per row, or √N) or
/// `.idx` / `.idx3-ubyte` / `-idx3-ubyte` (IDX).
pub fn save_images(images: &Tensor, path: &Path) -> Result<()> {
    let name = path.to_string_lossy().to_lowercase();
    if name.ends_with(".png") {
        let count = images.dim(0)?;
        let columns = ((count as f64).sqrt().ceil() as usize).max(1);
        save_png(&grid(images, columns)?, path)
    } else if name.ends_with(".idx") || name.ends_with("idx3-ubyte") {
        save_idx(images, path)
    } else {
        bail!(
            "--out {} must end in .png (a grid to look at) or .idx (idx3-ubyte, for scoring)",
            path.display()
        )
    }
}

/// The file of epoch `epoch`'s samples in `directory`: `epoch-NNN.png`.
pub fn epoch_file(directory: &Path, epoch: usize) -> PathBuf {
    directory.join(format!("epoch-{epoch:03}.png"))
}

/// Assembles the epochs' grids found in `directory` (epoch 1 to `last`) into an animated GIF
/// at `path`, half a second a frame and two seconds on the last; returns how many frames.
pub fn save_gif(directory: &Path, last: usize, path: &Path) -> Result<usize> {
    let mut frames = Vec::new();
    for epoch in 1..=last {
        let file = epoch_file(directory, epoch);
        if !file.is_file() {
            continue;
        }
        let picture = image::open(&file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .to_luma8();
        frames.push(picture);
    }
    let count = frames.len();
    if count == 0 {
        return Ok(0);
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .context("cannot set the GIF's repeat")?;
        for (index, picture) in frames.into_iter().enumerate() {
            let milliseconds = if index + 1 == count { 2000 } else { 500 };
            let rgba = RgbaImage::from_fn(picture.width(), picture.height(), |x, y| {
                let value = picture.get_pixel(x, y).0[0];
                image::Rgba([value, value, value, 255])
            });
            encoder
                .encode_frame(Frame::from_parts(
                    rgba,
                    0,
                    0,
                    Delay::from_numer_denom_ms(milliseconds, 1),
                ))
                .context("cannot encode a GIF frame")?;
        }
    }
    write_file(path, &bytes)?;
    Ok(count)
}
