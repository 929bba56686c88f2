//! SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"): the average
//! gradient over n noisy copies of the input,
//!
//! M = (1/n) Σ_k ∂S_c/∂x (x + ε_k),   ε_k ~ N(0, σ²),  σ = `noise` · (max x − min x),
//!
//! which averages away the gradient's pixel-to-pixel jitter. The n copies of one image go
//! through the model as one batch. The noise comes from the project's seeded generator, so the
//! same seed gives the same map.

use dl_nn::Layer;
use dl_tensor::{DType, SeededRng, Tensor};

use crate::{class_score_gradient, ExplainError, Result};

/// SmoothGrad's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothGrad {
    /// Noisy copies per image (the paper's n; 50).
    pub samples: usize,
    /// σ as a share of the input's range (the paper's 10–20%; 0.15).
    pub noise: f32,
    /// The noise generator's seed.
    pub seed: u64,
}

impl Default for SmoothGrad {
    fn default() -> Self {
        Self {
            samples: 50,
            noise: 0.15,
            seed: 0,
        }
    }
}

impl SmoothGrad {
    /// The averaged gradient for each example of `inputs` and its class in `classes`.
    pub fn attribute(&self, model: &dyn Layer, inputs: &Tensor, classes: &[u32]) -> Result<Tensor> {
        if self.samples == 0 || !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(ExplainError::BadSetting {
                setting: "SmoothGrad",
                problem: format!(
                    "{} samples with noise {}: give at least one sample and a noise level ≥ 0 (0.15 is usual)",
                    self.samples, self.noise
                ),
            });
        }
        let inputs = inputs.to_dtype(DType::F32)?;
        if classes.len() != inputs.dim(0)? {
            return Err(ExplainError::BadSetting {
                setting: "classes",
                problem: format!(
                    "{} classes for a batch of {}",
                    classes.len(),
                    inputs.dim(0)?
                ),
            });
        }
        let mut rng = SeededRng::new(self.seed);
        let mut maps = Vec::with_capacity(inputs.dim(0)?);
        for (index, &class) in classes.iter().enumerate() {
            let image = inputs.get(index)?;
            let low = image.min_all()?.to_scalar::<f32>()?;
            let high = image.max_all()?.to_scalar::<f32>()?;
            let sigma = self.noise * (high - low);
            let noise: Vec<f32> = (0..self.samples * image.elem_count())
                .map(|_| sigma * rng.normal())
                .collect();
            let mut shape = vec![self.samples];
            shape.extend_from_slice(image.dims());
            let noisy = image.unsqueeze(0)?.broadcast_add(&Tensor::from_vec(
                noise,
                shape,
                image.device(),
            )?)?;
            let (gradient, _) = class_score_gradient(model, &noisy, &vec![class; self.samples])?;
            maps.push(gradient.mean(0)?);
        }
        Ok(Tensor::stack(&maps, 0)?)
    }
}
