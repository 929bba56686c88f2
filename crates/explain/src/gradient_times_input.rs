//! Gradient × input (Shrikumar et al. 2016): A = x ⊙ ∂S_c/∂x, the first-order Taylor term of each
//! pixel's contribution to the score. For a linear model S = w·x + b it is exactly wᵢxᵢ.

use dl_nn::Layer;
use dl_tensor::{DType, Tensor};

use crate::{class_score_gradient, Result};

/// x ⊙ ∂S_c/∂x for each example of `inputs` and its class in `classes`.
pub fn gradient_times_input(model: &dyn Layer, inputs: &Tensor, classes: &[u32]) -> Result<Tensor> {
    let (gradient, _) = class_score_gradient(model, inputs, classes)?;
    Ok(gradient.mul(&inputs.to_dtype(DType::F32)?)?)
}
