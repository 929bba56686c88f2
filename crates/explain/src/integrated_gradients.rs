//! Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
//! Networks"): the gradient integrated along the straight path from a baseline x′ to x,
//!
//! IGᵢ(x) = (xᵢ − x′ᵢ) · ∫₀¹ ∂S_c/∂xᵢ (x′ + α (x − x′)) dα,
//!
//! here by the trapezoid rule over `steps` intervals (all steps + 1 points of one image in one
//! batch). The attributions are *complete*: Σᵢ IGᵢ = S_c(x) − S_c(x′) up to the quadrature error,
//! which [`IntegratedGradients::attribute`] reports for every image, so a reader can see whether
//! the steps were enough.

use dl_nn::Layer;
use dl_tensor::{DType, Tensor};

use crate::{class_score_gradient, ExplainError, Result};

/// Integrated Gradients' settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntegratedGradients {
    /// Trapezoid intervals along the path (64 by default).
    pub steps: usize,
    /// The baseline's constant pixel value (0: a black image).
    pub baseline: f32,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        Self {
            steps: 64,
            baseline: 0.0,
        }
    }
}

/// Attributions with their completeness check.
#[derive(Debug, Clone)]
pub struct IntegratedAttribution {
    /// IG for every input value (the inputs' shape).
    pub attributions: Tensor,
    /// For each image, |Σ IG − (S_c(x) − S_c(x′))|.
    pub completeness_error: Vec<f32>,
    /// For each image, S_c(x) − S_c(x′), what the attributions should add up to.
    pub score_difference: Vec<f32>,
}

impl IntegratedGradients {
    /// Integrated Gradients for each example of `inputs` and its class in `classes`.
    pub fn attribute(
        &self,
        model: &dyn Layer,
        inputs: &Tensor,
        classes: &[u32],
    ) -> Result<IntegratedAttribution> {
        if self.steps == 0 || !self.baseline.is_finite() {
            return Err(ExplainError::BadSetting {
                setting: "Integrated Gradients",
                problem: format!(
                    "{} steps from a baseline of {}: give at least one step (64 is usual) and a finite baseline",
                    self.steps, self.baseline
                ),
            });
        }
        let inputs = inputs.to_dtype(DType::F32)?;
        let count = inputs.dim(0)?;
        if classes.len() != count {
            return Err(ExplainError::BadSetting {
                setting: "classes",
                problem: format!("{} classes for a batch of {count}", classes.len()),
            });
        }
        let points = self.steps + 1;
        let alphas: Vec<f32> = (0..points).map(|k| k as f32 / self.steps as f32).collect();
        // trapezoid weights: ½ at both ends, 1 inside, over `steps` intervals
        let weights: Vec<f32> = (0..points)
            .map(|k| if k == 0 || k == self.steps { 0.5 } else { 1.0 } / self.steps as f32)
            .collect();
        let mut maps = Vec::with_capacity(count);
        let mut completeness_error = Vec::with_capacity(count);
        let mut score_difference = Vec::with_capacity(count);
        for (index, &class) in classes.iter().enumerate() {
            let image = inputs.get(index)?;
            let baseline = (image.zeros_like()? + f64::from(self.baseline))?;
            let difference = (&image - &baseline)?;
            let mut shape = vec![points];
            shape.extend(std::iter::repeat_n(1, image.rank()));
            let alpha = Tensor::from_vec(alphas.clone(), shape.clone(), image.device())?;
            let path = baseline
                .unsqueeze(0)?
                .broadcast_add(&difference.unsqueeze(0)?.broadcast_mul(&alpha)?)?;
            let (gradients, scores) = class_score_gradient(model, &path, &vec![class; points])?;
            let weight = Tensor::from_vec(weights.clone(), shape, image.device())?;
            let average = gradients.broadcast_mul(&weight)?.sum(0)?;
            let attribution = average.mul(&difference)?;
            let scores = scores.to_vec1::<f32>()?;
            let expected = scores[self.steps] - scores[0];
            let total = attribution.sum_all()?.to_scalar::<f32>()?;
            completeness_error.push((total - expected).abs());
            score_difference.push(expected);
            maps.push(attribution);
        }
        Ok(IntegratedAttribution {
            attributions: Tensor::stack(&maps, 0)?,
            completeness_error,
            score_difference,
        })
    }
}
