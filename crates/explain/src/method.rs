//! Every attribution method behind one name, for programs that let a person choose (course §8,
//! 可解释性): `explain --method`, the `serve` page's menu and its `?method=` parameter all go
//! through [`Method`], so a method added here is offered everywhere.

use std::{fmt, str::FromStr};

use dl_nn::{LayerStructure, Sequential};
use dl_tensor::Tensor;

use crate::{
    grad_cam, gradient_times_input, vanilla_gradient, ExplainError, IntegratedGradients, Occlusion,
    Result, SmoothGrad,
};

/// An attribution method, with the default settings of its paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// |∂S_c/∂x| (Simonyan 2013).
    Saliency,
    /// x ⊙ ∂S_c/∂x (Shrikumar 2016).
    GradientTimesInput,
    /// The gradient averaged over 50 noisy copies, σ = 15% of the range (Smilkov 2017).
    SmoothGrad,
    /// Integrated Gradients from a black image in 64 steps (Sundararajan 2017).
    IntegratedGradients,
    /// Grad-CAM on the last convolution (Selvaraju 2017).
    GradCam,
    /// The probability drop under a sliding 4 x 4 patch (Zeiler & Fergus 2014).
    Occlusion,
}

/// A method's attribution of a batch.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// One value per input value for the gradient methods (the inputs' shape); one per pixel
    /// (N, H, W) for Grad-CAM and occlusion.
    pub map: Tensor,
    /// Integrated Gradients' completeness error per image; `None` for the other methods.
    pub completeness_error: Option<Vec<f32>>,
}

impl Method {
    /// Every method, in the order the course's chapter presents them.
    pub const ALL: [Method; 6] = [
        Method::Saliency,
        Method::GradientTimesInput,
        Method::SmoothGrad,
        Method::IntegratedGradients,
        Method::GradCam,
        Method::Occlusion,
    ];

    /// The short name that [`Method::from_str`] reads (`saliency`, `gradxinput`, `smoothgrad`,
    /// `ig`, `gradcam`, `occlusion`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Saliency => "saliency",
            Self::GradientTimesInput => "gradxinput",
            Self::SmoothGrad => "smoothgrad",
            Self::IntegratedGradients => "ig",
            Self::GradCam => "gradcam",
            Self::Occlusion => "occlusion",
        }
    }

    /// The name people read in captions (`integrated gradients`, `grad-cam`, ...).
    pub fn title(self) -> &'static str {
        match self {
            Self::Saliency => "saliency",
            Self::GradientTimesInput => "gradient x input",
            Self::SmoothGrad => "smoothgrad",
            Self::IntegratedGradients => "integrated gradients",
            Self::GradCam => "grad-cam",
            Self::Occlusion => "occlusion",
        }
    }

    /// Whether the method can explain `model`: Grad-CAM needs a convolution.
    pub fn supports(self, model: &Sequential) -> bool {
        self != Self::GradCam
            || model
                .stages()
                .any(|stage| matches!(stage.structure, LayerStructure::Conv2d(_)))
    }

    /// The attribution of each image of `inputs` (N, C, H, W) for its class in `classes`.
    pub fn attribute(
        self,
        model: &Sequential,
        inputs: &Tensor,
        classes: &[u32],
    ) -> Result<Attribution> {
        let plain = |map: Tensor| Attribution {
            map,
            completeness_error: None,
        };
        Ok(match self {
            Self::Saliency => plain(vanilla_gradient(model, inputs, classes)?),
            Self::GradientTimesInput => plain(gradient_times_input(model, inputs, classes)?),
            Self::SmoothGrad => plain(SmoothGrad::default().attribute(model, inputs, classes)?),
            Self::IntegratedGradients => {
                let ig = IntegratedGradients::default().attribute(model, inputs, classes)?;
                Attribution {
                    map: ig.attributions,
                    completeness_error: Some(ig.completeness_error),
                }
            }
            Self::GradCam => plain(grad_cam(model, inputs, classes)?),
            Self::Occlusion => plain(Occlusion::default().attribute(model, inputs, classes)?),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.key())
    }
}

impl FromStr for Method {
    type Err = ExplainError;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|method| method.key() == text)
            .ok_or_else(|| ExplainError::BadSetting {
                setting: "method",
                problem: format!(
                    "unknown method {text:?}: choose one of {}",
                    Self::ALL.map(Method::key).join(", ")
                ),
            })
    }
}

/// Scales an attribution for display: magnitudes divided by their 99th percentile and clipped to
/// [0, 1], so that a few extreme pixels do not leave the rest of the map dark.
pub fn display_scale(attribution: &[f32]) -> Vec<f32> {
    let mut magnitudes: Vec<f32> = attribution.iter().map(|value| value.abs()).collect();
    if magnitudes.is_empty() {
        return magnitudes;
    }
    let mut sorted = magnitudes.clone();
    sorted.sort_by(f32::total_cmp);
    let top = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)].max(f32::MIN_POSITIVE);
    for value in &mut magnitudes {
        *value = (*value / top).min(1.0);
    }
    magnitudes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_and_an_unknown_one_lists_the_choices() {
        for method in Method::ALL {
            assert_eq!(method.key().parse::<Method>().unwrap(), method);
        }
        let message = "guided-backprop".parse::<Method>().unwrap_err().to_string();
        assert!(
            message.contains("guided-backprop")
                && message.contains("saliency, gradxinput, smoothgrad, ig, gradcam, occlusion"),
            "{message}"
        );
    }

    #[test]
    fn display_scale_clips_at_the_99th_percentile() {
        let mut values: Vec<f32> = (0..100).map(|index| -(index as f32)).collect();
        values[99] = -1000.0;
        let scaled = display_scale(&values);
        // the 99th percentile is the outlier itself here (index 99 of 100), so nothing clips
        assert_eq!(scaled[99], 1.0);
        assert!((scaled[98] - 98.0 / 1000.0).abs() < 1e-6);
        let values: Vec<f32> = (0..1000).map(|index| index as f32).collect();
        let scaled = display_scale(&values);
        assert_eq!(scaled[999], 1.0);
        assert_eq!(scaled[990], 1.0);
        assert!((scaled[495] - 0.5).abs() < 1e-6);
        assert!(display_scale(&[0.0; 4]).iter().all(|&value| value == 0.0));
    }
}
