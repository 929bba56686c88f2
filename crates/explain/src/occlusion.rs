//! Occlusion (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks"):
//! slide a patch of `fill` over the image and record how much the class probability drops with
//! each position covered. A pixel's attribution is the mean drop over the patches that cover it.
//! No gradient is involved: it is the model-agnostic reference the gradient methods are read
//! against. All positions of one image go through the model as one batch.

use dl_nn::{Layer, Mode};
use dl_tensor::{DType, Tensor};

use crate::{gradient::pick, ExplainError, Result};

/// Occlusion's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Occlusion {
    /// The square patch's side, in pixels.
    pub patch: usize,
    /// Pixels between two patch positions.
    pub stride: usize,
    /// The value the patch writes (0: black).
    pub fill: f32,
}

impl Default for Occlusion {
    fn default() -> Self {
        Self {
            patch: 4,
            stride: 2,
            fill: 0.0,
        }
    }
}

/// The start of every patch position along a side of `size` pixels, the last one flush with
/// the edge so that every pixel is covered.
fn starts(size: usize, patch: usize, stride: usize) -> Vec<usize> {
    let mut starts: Vec<usize> = (0..=size - patch).step_by(stride).collect();
    if starts.last() != Some(&(size - patch)) {
        starts.push(size - patch);
    }
    starts
}

impl Occlusion {
    /// The mean probability drop per pixel for each image (C, H, W) of `inputs` and its class in
    /// `classes`, shaped (N, H, W).
    pub fn attribute(&self, model: &dyn Layer, inputs: &Tensor, classes: &[u32]) -> Result<Tensor> {
        let inputs = inputs.to_dtype(DType::F32)?;
        let (count, channels, height, width) =
            inputs.dims4().map_err(|_| ExplainError::BadSetting {
                setting: "occlusion",
                problem: format!("needs images (N, C, H, W), got {:?}", inputs.dims()),
            })?;
        if self.patch == 0
            || self.stride == 0
            || self.patch > height.min(width)
            || !self.fill.is_finite()
        {
            return Err(ExplainError::BadSetting {
                setting: "occlusion",
                problem: format!(
                    "a {0}x{0} patch every {1} pixels on {height}x{width} images: the patch must fit and both must be at least 1",
                    self.patch, self.stride
                ),
            });
        }
        if classes.len() != count {
            return Err(ExplainError::BadSetting {
                setting: "classes",
                problem: format!("{} classes for a batch of {count}", classes.len()),
            });
        }
        let rows = starts(height, self.patch, self.stride);
        let columns = starts(width, self.patch, self.stride);
        let mut maps = Vec::with_capacity(count);
        for (index, &class) in classes.iter().enumerate() {
            let image = inputs.get(index)?.flatten_all()?.to_vec1::<f32>()?;
            let mut batch = Vec::with_capacity((rows.len() * columns.len() + 1) * image.len());
            batch.extend_from_slice(&image);
            for &y in &rows {
                for &x in &columns {
                    let mut occluded = image.clone();
                    for channel in 0..channels {
                        for dy in 0..self.patch {
                            let start = (channel * height + y + dy) * width + x;
                            occluded[start..start + self.patch].fill(self.fill);
                        }
                    }
                    batch.extend(occluded);
                }
            }
            let positions = rows.len() * columns.len();
            let batch = Tensor::from_vec(
                batch,
                (positions + 1, channels, height, width),
                inputs.device(),
            )?;
            let probabilities = dl_nn::softmax(&model.forward(&batch, Mode::Eval)?)?;
            let probability =
                pick(&probabilities, &vec![class; positions + 1])?.to_vec1::<f32>()?;
            let mut total = vec![0f32; height * width];
            let mut covers = vec![0u32; height * width];
            for (position, drop) in probability[1..]
                .iter()
                .map(|p| probability[0] - p)
                .enumerate()
            {
                let (y, x) = (
                    rows[position / columns.len()],
                    columns[position % columns.len()],
                );
                for dy in 0..self.patch {
                    for dx in 0..self.patch {
                        total[(y + dy) * width + x + dx] += drop;
                        covers[(y + dy) * width + x + dx] += 1;
                    }
                }
            }
            let map: Vec<f32> = total
                .iter()
                .zip(&covers)
                .map(|(total, &covers)| {
                    if covers == 0 {
                        0.0
                    } else {
                        total / covers as f32
                    }
                })
                .collect();
            maps.push(Tensor::from_vec(map, (height, width), inputs.device())?);
        }
        Ok(Tensor::stack(&maps, 0)?)
    }
}
