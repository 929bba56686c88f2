//! Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): a
//! method that explains the *model* must change its maps when the model changes. Some popular
//! methods (guided backprop) give nearly the same picture for a trained and a random network:
//! they show edges of the input, not what the network uses.
//!
//! - [`cascading_randomization`] re-initialises the layers from the output down, one more at each
//!   stage, and measures the Spearman rank correlation ρ between the trained model's maps and
//!   the randomised one's. ρ must fall.
//! - [`deletion_curve`] removes pixels in the map's order, most important first, and records the
//!   class probability: a faithful map makes it fall faster (a smaller area under the curve)
//!   than a random order does (Petsiuk et al. 2018, "RISE").

use dl_nn::{Layer, LayerStructure, Mode, Sequential};
use dl_tensor::{DType, SeededRng, Tensor};

use crate::{gradient::pick, ExplainError, Result};

/// Spearman's rank correlation ρ of two equally long series (the Pearson correlation of their
/// ranks); 0 when either is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> Result<f64> {
    if a.len() != b.len() || a.is_empty() {
        return Err(ExplainError::BadSetting {
            setting: "Spearman correlation",
            problem: format!(
                "series of {} and {} values: both must have the same, non-zero length",
                a.len(),
                b.len()
            ),
        });
    }
    let widen = |series: &[f32]| {
        series
            .iter()
            .map(|&value| f64::from(value))
            .collect::<Vec<f64>>()
    };
    Ok(dl_tensor::spearman(&widen(a), &widen(b)).unwrap_or(0.0))
}

/// One stage of [`cascading_randomization`]: the layers re-initialised so far (from the top)
/// and the mean rank correlations of the maps with the trained model's.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomizationStage {
    /// The layer re-initialised last (all those above it are random too).
    pub layer: String,
    /// Mean Spearman ρ of |map| over the images: does the map still point at the same pixels?
    pub rank_correlation: f64,
    /// Mean Spearman ρ of the signed maps: do the pixels still push the score the same way?
    /// Methods that multiply by the input (gradient × input, Integrated Gradients) keep the
    /// input's own shape in |map| whatever the model; their sign is what the model decides.
    pub signed_rank_correlation: f64,
}

/// Re-initialises the Dense and Conv2D layers of `model` from the output down, cumulatively,
/// and after each layer compares `explain`'s maps with those of the trained model by Spearman's
/// ρ, of the absolute and of the signed attributions, per image. The weights are drawn from N(0, σ²) with σ the layer's own
/// standard deviation (and biases zeroed), from `seed`. The model's weights are restored
/// afterwards, whatever happens.
pub fn cascading_randomization<F>(
    model: &Sequential,
    seed: u64,
    mut explain: F,
) -> Result<Vec<RandomizationStage>>
where
    F: FnMut(&Sequential) -> Result<Tensor>,
{
    let original = explain(model)?;
    let snapshot = model.store().snapshot()?;
    let result = (|| {
        let mut rng = SeededRng::new(seed);
        let mut stages = Vec::new();
        let layers: Vec<_> = model
            .stages()
            .filter_map(|stage| match stage.structure {
                LayerStructure::Dense(dense) => Some((
                    stage.name.to_string(),
                    dense.weight().clone(),
                    dense.bias().cloned(),
                )),
                LayerStructure::Conv2d(conv) => Some((
                    stage.name.to_string(),
                    conv.weight().clone(),
                    conv.bias().cloned(),
                )),
                _ => None,
            })
            .collect();
        for (name, weight, bias) in layers.into_iter().rev() {
            let values = weight.as_tensor().to_dtype(DType::F32)?;
            let std = values.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
            let random: Vec<f32> = (0..values.elem_count())
                .map(|_| std * rng.normal())
                .collect();
            weight.set(
                &Tensor::from_vec(random, values.dims(), values.device())?
                    .to_dtype(weight.dtype())?,
            )?;
            if let Some(bias) = bias {
                bias.set(&bias.as_tensor().zeros_like()?)?;
            }
            let maps = explain(model)?;
            stages.push(RandomizationStage {
                layer: name,
                rank_correlation: mean_rank_correlation(&original, &maps, true)?,
                signed_rank_correlation: mean_rank_correlation(&original, &maps, false)?,
            });
        }
        Ok(stages)
    })();
    model.store().restore(&snapshot)?;
    result
}

/// The mean over images of Spearman's ρ between the maps `a` and `b`, both (N, …), of their
/// absolute values when `absolute`.
pub fn mean_rank_correlation(a: &Tensor, b: &Tensor, absolute: bool) -> Result<f64> {
    let count = a.dim(0)?;
    let values = |map: &Tensor| -> Result<Vec<f32>> {
        let map = if absolute { map.abs()? } else { map.clone() };
        Ok(map.flatten_all()?.to_vec1::<f32>()?)
    };
    let mut total = 0.0;
    for index in 0..count {
        let x = values(&a.get(index)?)?;
        let y = values(&b.get(index)?)?;
        total += spearman(&x, &y)?;
    }
    Ok(total / count.max(1) as f64)
}

/// The class probability of `image` (C, H, W) as its pixels are set to `fill` in the order of
/// `importance` (most important first; one value per pixel, (H, W) or (C, H, W) summed over
/// channels), in `steps` equal steps: `steps + 1` probabilities, from the untouched image to
/// the fully erased one.
pub fn deletion_curve(
    model: &dyn Layer,
    image: &Tensor,
    class: u32,
    importance: &Tensor,
    steps: usize,
    fill: f32,
) -> Result<Vec<f32>> {
    let image = image.to_dtype(DType::F32)?;
    let (channels, height, width) = image.dims3().map_err(|_| ExplainError::BadSetting {
        setting: "deletion curve",
        problem: format!("needs one image (C, H, W), got {:?}", image.dims()),
    })?;
    let pixels = height * width;
    let importance = match importance.rank() {
        3 => importance.sum(0)?,
        _ => importance.clone(),
    }
    .to_dtype(DType::F32)?
    .flatten_all()?
    .to_vec1::<f32>()?;
    if importance.len() != pixels || steps == 0 {
        return Err(ExplainError::BadSetting {
            setting: "deletion curve",
            problem: format!("{} importances for {pixels} pixels in {steps} steps: one per pixel, at least one step", importance.len()),
        });
    }
    let mut order: Vec<usize> = (0..pixels).collect();
    order.sort_by(|&a, &b| importance[b].total_cmp(&importance[a]).then(a.cmp(&b)));
    let original = image.flatten_all()?.to_vec1::<f32>()?;
    let mut batch = Vec::with_capacity((steps + 1) * original.len());
    for step in 0..=steps {
        let removed = step * pixels / steps;
        let mut erased = original.clone();
        for &pixel in &order[..removed] {
            for channel in 0..channels {
                erased[channel * pixels + pixel] = fill;
            }
        }
        batch.extend(erased);
    }
    let batch = Tensor::from_vec(batch, (steps + 1, channels, height, width), image.device())?;
    let probabilities = dl_nn::softmax(&model.forward(&batch, Mode::Eval)?)?;
    Ok(pick(&probabilities, &vec![class; steps + 1])?.to_vec1::<f32>()?)
}

/// The area under a deletion curve over [0, 1], by the trapezoid rule.
pub fn area_under_curve(curve: &[f32]) -> f64 {
    if curve.len() < 2 {
        return curve.first().map_or(0.0, |&value| f64::from(value));
    }
    let width = 1.0 / (curve.len() - 1) as f64;
    curve
        .windows(2)
        .map(|pair| width * (f64::from(pair[0]) + f64::from(pair[1])) / 2.0)
        .sum()
}
