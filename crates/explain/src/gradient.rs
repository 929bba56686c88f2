//! The one backward pass every gradient method is made of: ∂S_c/∂x for a batch, where S_c is
//! the score of class c before the softmax (Simonyan et al. 2013). Examples do not interact in
//! evaluation mode, so the gradient of Σ_n S_{c_n}(x_n) with respect to the batch holds each
//! example's own gradient: one backward pass serves the whole batch.

use dl_autograd::Gradients;
use dl_nn::{Layer, Mode};
use dl_tensor::{DType, Tensor, Var};

use crate::{ExplainError, Result};

/// The class scores (logits) `model` gives `inputs`, one per example, for `classes`.
pub fn class_scores(model: &dyn Layer, inputs: &Tensor, classes: &[u32]) -> Result<Tensor> {
    let logits = model.forward(inputs, Mode::Eval)?;
    pick(&logits, classes)
}

/// `logits[n, classes[n]]` for every n.
pub(crate) fn pick(logits: &Tensor, classes: &[u32]) -> Result<Tensor> {
    let (batch, count) = logits.dims2()?;
    if classes.len() != batch {
        return Err(ExplainError::BadSetting {
            setting: "classes",
            problem: format!("{} classes for a batch of {batch}", classes.len()),
        });
    }
    if let Some(class) = classes.iter().find(|&&class| class as usize >= count) {
        return Err(ExplainError::BadSetting {
            setting: "class",
            problem: format!(
                "class {class} does not exist: the model has {count} classes (0 to {})",
                count - 1
            ),
        });
    }
    let index = Tensor::new(classes, logits.device())?.unsqueeze(1)?;
    Ok(logits.gather(&index, 1)?.squeeze(1)?)
}

/// ∂S_c/∂x for every example of `inputs` (same shape), with the scores S_c.
pub fn class_score_gradient(
    model: &dyn Layer,
    inputs: &Tensor,
    classes: &[u32],
) -> Result<(Tensor, Tensor)> {
    // ANCHOR: class-score-gradient
    let input = Var::from_tensor(&inputs.to_dtype(DType::F32)?.detach())?;
    let scores = class_scores(model, input.as_tensor(), classes)?;
    let gradients = Gradients::compute(&scores.sum_all()?, [("input", &input)])?;
    let gradient = match gradients.get("input") {
        Some(gradient) => gradient.clone(),
        // a model whose scores do not depend on the input: a zero gradient
        None => input.as_tensor().zeros_like()?,
    };
    Ok((gradient, scores.detach()))
    // ANCHOR_END: class-score-gradient
}
