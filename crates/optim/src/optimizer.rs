//! The optimizer interface: one call turns the gradients of a backward pass into new weights.
//!
//! Course §3 "梯度下降" (gradient descent): each weight moves against its gradient,
//!   w ← w − η ∂L/∂w,
//! with learning rate η. SGD with momentum, Adam, AdamW and RMSprop refine *what* is
//! subtracted (running averages of past gradients, per-element step sizes), but all of them are
//! driven the same way: compute the loss, backpropagate to get [`Gradients`], call
//! [`Optimizer::step`]. Per-variable state (momentum buffers, moment estimates) is kept under
//! the variable's name, so it can be saved with [`Optimizer::state`] and resumed later.

use std::collections::HashSet;
use std::path::Path;

use dl_autograd::Gradients;
use dl_tensor::{Tensor, Var};

use crate::{OptimError, OptimizerState, Result};

/// An algorithm that updates weights from their gradients.
///
/// Implementations update, in place (`Var::set`), every variable listed in
/// [`Gradients::variables`] that has a gradient; a variable without one (the loss did not use
/// it) is skipped entirely: neither its value nor its state changes, as in PyTorch where
/// parameters whose `.grad` is `None` are skipped.
///
/// ```
/// use dl_autograd::Gradients;
/// use dl_optim::{Optimizer, Sgd, SgdConfig};
/// use dl_tensor::{Device, Var};
///
/// // L = ½ Σ w², so ∂L/∂w = w and one step of plain gradient descent gives w ← (1 − η) w.
/// let weight = Var::new(&[2.0f64, -4.0], &Device::Cpu)?;
/// let mut optimizer = Sgd::new(SgdConfig::new(0.25))?;
/// let loss = (weight.as_tensor().sqr()?.sum_all()? * 0.5)?;
/// optimizer.step(&Gradients::compute(&loss, [("weight", &weight)])?)?;
/// assert_eq!(weight.as_tensor().to_vec1::<f64>()?, vec![1.5, -3.0]);
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
// ANCHOR: optimizer-trait
pub trait Optimizer {
    /// Applies one update to every variable that has a gradient in `gradients`.
    ///
    /// Fails, before changing anything, when the learning rate is negative or not finite, two
    /// variables share a name, a gradient's shape differs from its variable's, or loaded state
    /// does not fit a variable's shape.
    fn step(&mut self, gradients: &Gradients) -> Result<()>;

    /// The learning rate η the next step will use.
    fn learning_rate(&self) -> f64;

    /// Changes the learning rate (what a schedule does between steps). The value is checked by
    /// the next [`Optimizer::step`]: 0 is allowed (a schedule may anneal to 0), a negative or
    /// non-finite value makes that step fail.
    fn set_learning_rate(&mut self, learning_rate: f64);

    /// Everything needed to resume: hyper-parameters, step counters and per-variable buffers.
    fn state(&self) -> Result<OptimizerState>;

    /// Restores a state produced by [`Optimizer::state`] of the same kind of optimizer,
    /// replacing this optimizer's hyper-parameters (including the learning rate) and buffers,
    /// as PyTorch's `load_state_dict` does. A state of another optimizer kind, with a missing
    /// or unexpected tensor, or with invalid values is an error and leaves `self` unchanged.
    /// Buffer shapes are compared with the variables at the next step, which fails (naming the
    /// tensor) when the model changed shape.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
    // ANCHOR_END: optimizer-trait

    /// Saves [`Optimizer::state`] to a safetensors file (see [`OptimizerState::save`]).
    fn save_state_file(&self, path: &Path) -> Result<()> {
        self.state()?.save(path)
    }

    /// Loads a file written by [`Optimizer::save_state_file`] and restores it; errors about the
    /// content (wrong kind, missing tensor, ...) name the file.
    fn load_state_file(&mut self, path: &Path) -> Result<()> {
        let state = OptimizerState::load(path)?;
        self.load_state(&state)
            .map_err(|source| OptimError::InStateFile {
                path: path.to_path_buf(),
                source: Box::new(source),
            })
    }
}

/// One variable to update and its gradient.
pub(crate) struct VariableUpdate<'a> {
    /// The variable's name, the key of its state.
    pub name: &'a str,
    /// The variable.
    pub variable: &'a Var,
    /// Its gradient, detached from any graph.
    pub gradient: Tensor,
}

impl VariableUpdate<'_> {
    /// The current value θ, detached so that the update builds no autograd graph.
    pub fn value(&self) -> Tensor {
        self.variable.as_tensor().detach()
    }
}

/// The variables of `gradients` that have a gradient, after checking that names are unique and
/// gradients have their variables' shapes.
pub(crate) fn variables_to_update(gradients: &Gradients) -> Result<Vec<VariableUpdate<'_>>> {
    let mut seen = HashSet::new();
    let mut updates = Vec::with_capacity(gradients.variables().len());
    for (name, variable) in gradients.variables() {
        if !seen.insert(name.as_str()) {
            return Err(OptimError::DuplicateVariable { name: name.clone() });
        }
        let Some(gradient) = gradients.of(variable) else {
            continue;
        };
        if gradient.dims() != variable.dims() {
            return Err(OptimError::GradientShapeMismatch {
                variable: name.clone(),
                variable_shape: variable.dims().to_vec(),
                gradient_shape: gradient.dims().to_vec(),
            });
        }
        updates.push(VariableUpdate {
            name,
            variable,
            gradient: gradient.detach(),
        });
    }
    Ok(updates)
}

/// The name of the state tensor `buffer` of `variable`, e.g. `hidden.weight.exp_avg`.
pub(crate) fn state_tensor_name(variable: &str, buffer: &str) -> String {
    format!("{variable}.{buffer}")
}

/// Fails unless the state tensor `buffer` of `update` has the variable's shape.
pub(crate) fn check_state_shape(
    update: &VariableUpdate<'_>,
    buffer: &str,
    tensor: &Tensor,
) -> Result<()> {
    if tensor.dims() == update.variable.dims() {
        Ok(())
    } else {
        Err(OptimError::StateShapeMismatch {
            tensor: state_tensor_name(update.name, buffer),
            expected: update.variable.dims().to_vec(),
            found: tensor.dims().to_vec(),
        })
    }
}

/// A state tensor on the variable's device and in its dtype (loaded state lives on the CPU in
/// the dtype it was saved in; this is a no-op once it has been moved).
pub(crate) fn on_variable_device(tensor: &Tensor, variable: &Var) -> Result<Tensor> {
    Ok(tensor
        .to_device(variable.device())?
        .to_dtype(variable.dtype())?)
}
