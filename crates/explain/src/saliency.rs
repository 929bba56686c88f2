//! Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2013, "Deep Inside Convolutional
//! Networks"): M = |∂S_c/∂x|, how much a small change of each pixel moves the class score.

use dl_nn::Layer;
use dl_tensor::Tensor;

use crate::{class_score_gradient, Result};

/// |∂S_c/∂x| for each example of `inputs` and its class in `classes` (same shape as `inputs`).
pub fn vanilla_gradient(model: &dyn Layer, inputs: &Tensor, classes: &[u32]) -> Result<Tensor> {
    Ok(class_score_gradient(model, inputs, classes)?.0.abs()?)
}
