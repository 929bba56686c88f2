//! Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
//! Gradient-based Localization"): weigh the last convolution's feature maps Aᵏ by how much the
//! class score depends on each,
//!
//! αₖ = mean over positions of ∂S_c/∂Aᵏ,   L = ReLU(Σₖ αₖ Aᵏ),
//!
//! then scale L up to the input's size. Coarser than the pixel methods (one value per
//! convolution position) but class-discriminative and robust to gradient noise.

use dl_autograd::Gradients;
use dl_nn::{Activation, LayerStructure, Mode, Sequential};
use dl_tensor::{DType, Tensor, Var};

use crate::{gradient::pick, ExplainError, Result};

/// The Grad-CAM map of each image of `inputs` (N, C, H, W) for its class in `classes`, shaped
/// (N, H, W), from the last Conv2D layer of `model`.
pub fn grad_cam(model: &Sequential, inputs: &Tensor, classes: &[u32]) -> Result<Tensor> {
    let stages: Vec<_> = model.stages().collect();
    let last_convolution = stages
        .iter()
        .rposition(|stage| matches!(stage.structure, LayerStructure::Conv2d(_)))
        .ok_or_else(|| ExplainError::UnsupportedModel {
            method: "Grad-CAM",
            reason: "it has no Conv2D layer; use a gradient method (saliency, Integrated Gradients) instead".into(),
        })?;
    let inputs = inputs.to_dtype(DType::F32)?;
    let (_, _, height, width) = inputs.dims4().map_err(|_| ExplainError::BadSetting {
        setting: "Grad-CAM",
        problem: format!("needs images (N, C, H, W), got {:?}", inputs.dims()),
    })?;
    let mut features = inputs.clone();
    for stage in &stages[..=last_convolution] {
        features = stage
            .layer
            .forward_activated(&features, Mode::Eval, stage.activation)?;
    }
    let maps = Var::from_tensor(&features.detach())?;
    let mut logits = maps.as_tensor().clone();
    let last = stages.len() - 1;
    for (index, stage) in stages.iter().enumerate().skip(last_convolution + 1) {
        logits = if index == last && stage.activation == Activation::Softmax {
            stage.layer.forward(&logits, Mode::Eval)?
        } else {
            stage
                .layer
                .forward_activated(&logits, Mode::Eval, stage.activation)?
        };
    }
    let scores = pick(&logits, classes)?;
    let gradients = Gradients::compute(&scores.sum_all()?, [("features", &maps)])?;
    let gradient = match gradients.get("features") {
        Some(gradient) => gradient.clone(),
        None => maps.as_tensor().zeros_like()?,
    };
    let weights = gradient.mean_keepdim(3)?.mean_keepdim(2)?;
    let map = maps
        .as_tensor()
        .broadcast_mul(&weights)?
        .sum_keepdim(1)?
        .relu()?;
    Ok(map.upsample_nearest2d(height, width)?.squeeze(1)?)
}
