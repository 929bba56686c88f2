//! dl-explain: what a trained network looks at (course §8, 可解释性).
//!
//! > 深度学习模型通常是一个黑盒，难以解释其决策过程。未来需要研究如何提高模型的可解释性。
//! > *Deep models are usually black boxes whose decisions are hard to explain; how to make them
//! > interpretable is a question for the future.*
//!
//! Each method is one file with its formula and paper, works on any model given as a
//! [`dl_nn::Layer`] (Grad-CAM: a [`dl_nn::Sequential`] with a convolution), explains the score
//! of a chosen class before the softmax, and runs a whole batch through one backward pass:
//!
//! | method | attribution | file |
//! |---|---|---|
//! | [`vanilla_gradient`] | \|∂S_c/∂x\| (Simonyan 2013) | `saliency.rs` |
//! | [`gradient_times_input`] | x ⊙ ∂S_c/∂x (Shrikumar 2016) | `gradient_times_input.rs` |
//! | [`SmoothGrad`] | mean gradient over noisy copies (Smilkov 2017) | `smoothgrad.rs` |
//! | [`IntegratedGradients`] | path integral from a baseline, with its completeness error (Sundararajan 2017) | `integrated_gradients.rs` |
//! | [`grad_cam`] | ReLU(Σ αₖ Aᵏ) on the last convolution (Selvaraju 2017) | `grad_cam.rs` |
//! | [`Occlusion`] | probability drop under a sliding patch (Zeiler & Fergus 2014) | `occlusion.rs` |
//!
//! [`Method`] names them all for programs that let a person choose.
//!
//! [`cascading_randomization`] and [`deletion_curve`] are Adebayo et al.'s and Petsiuk et al.'s
//! sanity checks: a map that explains the model changes when the model does, and removing the
//! pixels it ranks first hurts the prediction faster than removing random ones.
//!
//! ```
//! use dl_explain::{gradient_times_input, IntegratedGradients};
//! use dl_nn::{Activation, Sequential, VarStore};
//! use dl_tensor::{DType, Device, Tensor};
//!
//! let store = VarStore::new(&Device::Cpu, DType::F32, 0);
//! let model = Sequential::builder(&store.root(), &[1, 4, 4])
//!     .flatten()?
//!     .dense(3, Activation::Softmax)?
//!     .build();
//! let image = Tensor::rand(0f32, 1.0, (1, 1, 4, 4), &Device::Cpu)?;
//! // For a linear score, Integrated Gradients from a black image is exactly gradient × input.
//! let ig = IntegratedGradients::default().attribute(&model, &image, &[2])?;
//! let gxi = gradient_times_input(&model, &image, &[2])?;
//! let gap = (ig.attributions - gxi)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(gap < 1e-5);
//! assert!(ig.completeness_error[0] < 1e-4);
//! # Ok::<(), dl_explain::ExplainError>(())
//! ```

mod error;
mod grad_cam;
mod gradient;
mod gradient_times_input;
mod integrated_gradients;
mod method;
mod occlusion;
mod saliency;
mod sanity;
mod smoothgrad;

pub use error::{ExplainError, Result};
pub use grad_cam::grad_cam;
pub use gradient::{class_score_gradient, class_scores};
pub use gradient_times_input::gradient_times_input;
pub use integrated_gradients::{IntegratedAttribution, IntegratedGradients};
pub use method::{display_scale, Attribution, Method};
pub use occlusion::Occlusion;
pub use saliency::vanilla_gradient;
pub use sanity::{
    area_under_curve, cascading_randomization, deletion_curve, mean_rank_correlation, spearman,
    RandomizationStage,
};
pub use smoothgrad::SmoothGrad;
