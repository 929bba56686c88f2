//! Data augmentation (course appendix FAQ, "数据增强"): training on slightly moved, turned and
//! resized copies of each image, so the network learns that a digit shifted by two pixels is
//! the same digit — more data for free, and less overfitting.
//!
//! Each image of an (N, C, H, W) batch gets its own random affine transform — a rotation by θ
//! and a scaling by s about the image's centre c, then a shift t:
//!
//! ```text
//! output position p  ←  input position  c + (1/s)·R(−θ)·(p − c − t)
//! ```
//!
//! read with bilinear interpolation, 0 outside the image. Augmentation is for training only:
//! [`crate::BatchLoader`] applies it to training batches and never to evaluation ones. Apply it
//! to images in 0..1, before normalisation (0 is the background there).

use dl_tensor::{DType, SeededRng, Tensor, TensorError};

use crate::error::{DataError, Result};

/// How far the random transforms may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Largest shift, in pixels, along each axis (drawn uniformly in ±`max_shift`).
    pub max_shift: f32,
    /// Largest rotation, in degrees (drawn uniformly in ±`max_rotation_degrees`).
    pub max_rotation_degrees: f32,
    /// Smallest and largest scaling factor (drawn uniformly between them).
    pub scale_range: (f32, f32),
}

impl Default for AugmentConfig {
    /// Suited to MNIST: ±2 px, ±10°, 0.9–1.1 — a digit stays readable and inside the 28×28 frame.
    fn default() -> Self {
        Self {
            max_shift: 2.0,
            max_rotation_degrees: 10.0,
            scale_range: (0.9, 1.1),
        }
    }
}

impl AugmentConfig {
    /// The configuration that changes nothing: no shift, rotation or scaling.
    pub fn identity() -> Self {
        Self {
            max_shift: 0.0,
            max_rotation_degrees: 0.0,
            scale_range: (1.0, 1.0),
        }
    }

    /// Whether every transform this configuration can draw is the identity.
    pub fn is_identity(&self) -> bool {
        self.max_shift == 0.0 && self.max_rotation_degrees == 0.0 && self.scale_range == (1.0, 1.0)
    }

    /// Checks that the ranges make sense: shift and rotation finite and not negative, rotation
    /// at most 180°, scales finite with 0 < low ≤ high.
    pub fn validate(&self) -> Result<()> {
        if !self.max_shift.is_finite() || self.max_shift < 0.0 {
            return Err(DataError::config(
                "augmentation max_shift",
                format!("{} pixels; use a finite value ≥ 0", self.max_shift),
            ));
        }
        if !(0.0..=180.0).contains(&self.max_rotation_degrees) {
            return Err(DataError::config(
                "augmentation max_rotation_degrees",
                format!("{}°; use a value in 0..=180", self.max_rotation_degrees),
            ));
        }
        let (low, high) = self.scale_range;
        if !(low.is_finite() && high.is_finite() && low > 0.0 && low <= high) {
            return Err(DataError::config(
                "augmentation scale_range",
                format!("({low}, {high}); use finite scales with 0 < low ≤ high, e.g. (0.9, 1.1)"),
            ));
        }
        Ok(())
    }
}

/// One image's transform: rotation and scaling about the centre, then a shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineTransform {
    /// Shift to the right, in pixels.
    pub shift_x: f32,
    /// Shift downwards, in pixels.
    pub shift_y: f32,
    /// Counter-clockwise rotation as seen on screen (rows grow downwards), in degrees.
    pub rotation_degrees: f32,
    /// Scaling factor: above 1 enlarges.
    pub scale: f32,
}

impl AffineTransform {
    /// The transform that leaves an image unchanged.
    pub const IDENTITY: Self = Self {
        shift_x: 0.0,
        shift_y: 0.0,
        rotation_degrees: 0.0,
        scale: 1.0,
    };

    /// A pure shift: the pixel at (row, column) moves to (row + `shift_y`, column + `shift_x`).
    pub fn shift(shift_x: f32, shift_y: f32) -> Self {
        Self {
            shift_x,
            shift_y,
            ..Self::IDENTITY
        }
    }

    /// Draws a transform within `config`'s ranges.
    pub fn random(config: &AugmentConfig, rng: &mut SeededRng) -> Self {
        let (low, high) = config.scale_range;
        Self {
            shift_x: rng.uniform_range(-config.max_shift, config.max_shift),
            shift_y: rng.uniform_range(-config.max_shift, config.max_shift),
            rotation_degrees: rng
                .uniform_range(-config.max_rotation_degrees, config.max_rotation_degrees),
            scale: rng.uniform_range(low, high),
        }
    }

    /// Warps one channel (`height` × `width`, row-major) into `output` (same size): each output
    /// pixel reads the input at the inverse-transformed position, bilinearly, 0 outside.
    // ANCHOR: augment-warp
    pub fn warp_channel(&self, input: &[f32], height: usize, width: usize, output: &mut [f32]) {
        let angle = f64::from(self.rotation_degrees).to_radians();
        let (sin, cos) = angle.sin_cos();
        let inverse_scale = 1.0 / f64::from(self.scale);
        let centre_x = (width as f64 - 1.0) / 2.0;
        let centre_y = (height as f64 - 1.0) / 2.0;
        for row in 0..height {
            for column in 0..width {
                // p − c − t, turned back by θ and divided by s: with rows growing downwards, turning
                // back a counter-clockwise (on screen) rotation is the matrix [[cos, −sin], [sin, cos]].
                let x = column as f64 - centre_x - f64::from(self.shift_x);
                let y = row as f64 - centre_y - f64::from(self.shift_y);
                let source_x = centre_x + inverse_scale * (cos * x - sin * y);
                let source_y = centre_y + inverse_scale * (sin * x + cos * y);
                output[row * width + column] = bilinear(input, height, width, source_y, source_x);
            }
        }
    }
    // ANCHOR_END: augment-warp
}

/// The input sampled at the fractional position (row, column), 0 outside the image. The result
/// is clamped to the range of the (up to four) values it mixes, so rounding cannot take it out
/// of the input's range, and a weight of exactly 0 skips its pixel, so the identity is exact.
fn bilinear(input: &[f32], height: usize, width: usize, row: f64, column: f64) -> f32 {
    if !(row > -1.0 && row < height as f64 && column > -1.0 && column < width as f64) {
        return 0.0;
    }
    let top = row.floor();
    let left = column.floor();
    let down = (row - top) as f32;
    let right = (column - left) as f32;
    let (top, left) = (top as i64, left as i64);
    let mut value = 0.0f32;
    let mut low = f32::INFINITY;
    let mut high = f32::NEG_INFINITY;
    for (row_offset, row_weight) in [(0, 1.0 - down), (1, down)] {
        for (column_offset, column_weight) in [(0, 1.0 - right), (1, right)] {
            let weight = row_weight * column_weight;
            if weight == 0.0 {
                continue;
            }
            let (pixel_row, pixel_column) = (top + row_offset, left + column_offset);
            let inside = (0..height as i64).contains(&pixel_row)
                && (0..width as i64).contains(&pixel_column);
            let pixel = if inside {
                input[pixel_row as usize * width + pixel_column as usize]
            } else {
                0.0
            };
            value += weight * pixel;
            low = low.min(pixel);
            high = high.max(pixel);
        }
    }
    value.clamp(low, high)
}

/// Draws and applies a random transform per image, from its own seeded generator.
///
/// ```
/// use dl_data::{AugmentConfig, Augmenter};
/// use dl_tensor::{Device, Tensor};
/// let batch = Tensor::zeros((4, 1, 28, 28), dl_tensor::DType::F32, &Device::Cpu)?;
/// let mut augmenter = Augmenter::new(AugmentConfig::default(), 42)?;
/// assert_eq!(augmenter.apply(&batch)?.dims(), &[4, 1, 28, 28]);
/// # Ok::<(), dl_data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Augmenter {
    config: AugmentConfig,
    seed: u64,
    rng: SeededRng,
}

impl Augmenter {
    /// An augmenter drawing from `seed`; an invalid `config` is an error.
    pub fn new(config: AugmentConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            seed,
            rng: SeededRng::new(seed),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AugmentConfig {
        &self.config
    }

    /// The same augmenter restarted for one epoch of training: its draws depend only on the
    /// seed, the epoch and the batch's position in it, so a resumed run repeats them exactly.
    pub fn for_epoch(&self, epoch: usize) -> Augmenter {
        Self {
            config: self.config,
            seed: self.seed,
            rng: SeededRng::new(self.seed).fork(epoch as u64),
        }
    }

    /// Transforms every image of an (N, C, H, W) batch (all channels of an image alike),
    /// advancing the generator. Returns a tensor of the batch's shape, dtype and device.
    pub fn apply(&mut self, batch: &Tensor) -> Result<Tensor> {
        let [count, ..] = batch_dims(batch, "augment")?;
        let transforms: Vec<AffineTransform> = (0..count)
            .map(|_| AffineTransform::random(&self.config, &mut self.rng))
            .collect();
        if self.config.is_identity() {
            return Ok(batch.clone());
        }
        warp_batch(batch, &transforms)
    }
}

/// The (N, C, H, W) sizes of a floating-point batch of images, or an error naming `operation`.
fn batch_dims(batch: &Tensor, operation: &'static str) -> Result<[usize; 4]> {
    let problem = match batch.dims() {
        _ if !batch.dtype().is_float() => {
            format!("expected floating-point pixels, got {:?}", batch.dtype())
        }
        &[count, channels, height, width] => return Ok([count, channels, height, width]),
        dims => format!("expected an (N, C, H, W) batch of images, got shape {dims:?}"),
    };
    Err(DataError::Tensor(TensorError::BadInput {
        operation,
        problem,
    }))
}

/// Warps each image of an (N, C, H, W) batch with its given transform (for tests and
/// hand-made examples; [`Augmenter::apply`] draws the transforms).
pub fn warp_batch(batch: &Tensor, transforms: &[AffineTransform]) -> Result<Tensor> {
    let [count, channels, height, width] = batch_dims(batch, "warp_batch")?;
    if transforms.len() != count {
        return Err(DataError::Tensor(TensorError::BadInput {
            operation: "warp_batch",
            problem: format!("{} transforms for {count} images", transforms.len()),
        }));
    }
    let pixels = batch
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut warped = vec![0.0f32; pixels.len()];
    let plane = height * width;
    for (image, transform) in transforms.iter().enumerate() {
        for channel in 0..channels {
            let start = (image * channels + channel) * plane;
            let range = start..start + plane;
            transform.warp_channel(&pixels[range.clone()], height, width, &mut warped[range]);
        }
    }
    Ok(Tensor::from_vec(warped, batch.dims(), batch.device())?.to_dtype(batch.dtype())?)
}
