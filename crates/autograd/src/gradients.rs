//! Gradients of named variables: what backpropagation produced, how large it is, and where it
//! is missing.
//!
//! The course's update rule w ← w − η ∂L/∂w needs ∂L/∂w for every weight. Candle's `backward`
//! returns them keyed by tensor id; `Gradients` keys them by the parameter names a learner sees
//! (`hidden.weight`), and adds the two tools training relies on: the global norm
//! ‖g‖ = sqrt(Σ_w Σ_i g_{w,i}²) and clipping.

use dl_tensor::{candle_core::backprop::GradStore, DType, Tensor, Var};

use crate::{AutogradError, Result};

/// The gradient of a scalar loss with respect to each of a set of named variables.
pub struct Gradients {
    variables: Vec<(String, Var)>,
    store: GradStore,
}

impl Gradients {
    /// Runs backpropagation from `loss` (a scalar) and keeps the gradients of `variables`.
    ///
    /// Fails when the loss is not a scalar or not finite; a variable that the loss does not
    /// depend on is kept and reported by [`Gradients::missing`].
    pub fn compute<'a, N, I>(loss: &Tensor, variables: I) -> Result<Self>
    where
        N: Into<String>,
        I: IntoIterator<Item = (N, &'a Var)>,
    {
        if loss.elem_count() != 1 {
            return Err(AutogradError::LossNotScalar {
                shape: loss.dims().to_vec(),
            });
        }
        let value = loss.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0];
        if !value.is_finite() {
            return Err(AutogradError::LossNotFinite { value });
        }
        let store = loss.backward()?;
        let variables = variables
            .into_iter()
            .map(|(name, variable)| (name.into(), variable.clone()))
            .collect();
        Ok(Self { variables, store })
    }

    /// The gradient of the variable called `name`, if the loss depends on it.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        let (_, variable) = self.variables.iter().find(|(known, _)| known == name)?;
        self.store.get(variable.as_tensor())
    }

    /// The gradient of `variable`, if the loss depends on it.
    pub fn of(&self, variable: &Var) -> Option<&Tensor> {
        self.store.get(variable.as_tensor())
    }

    /// The named variables, in the order they were given.
    pub fn variables(&self) -> &[(String, Var)] {
        &self.variables
    }

    /// Names of the variables that received no gradient: either the loss does not use them, or
    /// an operation on the way (a fused op with no backward) dropped it silently.
    pub fn missing(&self) -> Vec<&str> {
        self.variables
            .iter()
            .filter(|(_, variable)| self.store.get(variable.as_tensor()).is_none())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The global L2 norm sqrt(Σ g²) over every variable's gradient.
    pub fn global_norm(&self) -> Result<f64> {
        let mut sum_of_squares = 0f64;
        for (_, variable) in &self.variables {
            if let Some(gradient) = self.store.get(variable.as_tensor()) {
                sum_of_squares += gradient
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sum_of_squares.sqrt())
    }

    /// Limits every gradient element to `[-limit, limit]`.
    pub fn clip_by_value(&mut self, limit: f64) -> Result<()> {
        if !(limit.is_finite() && limit > 0.0) {
            return Err(AutogradError::BadThreshold {
                what: "the clipping value",
                value: limit,
            });
        }
        for (_, variable) in &self.variables {
            if let Some(gradient) = self.store.get(variable.as_tensor()) {
                let clipped = gradient.clamp(-limit, limit)?;
                self.store.insert(variable.as_tensor(), clipped);
            }
        }
        Ok(())
    }

    /// Rescales all gradients together so that their global norm is at most `max_norm`
    /// (g ← g · max_norm / ‖g‖ when ‖g‖ > max_norm), keeping their direction. Returns the norm
    /// measured before clipping, which is worth logging: a growing norm warns of divergence.
    pub fn clip_by_norm(&mut self, max_norm: f64) -> Result<f64> {
        if !(max_norm.is_finite() && max_norm > 0.0) {
            return Err(AutogradError::BadThreshold {
                what: "the maximum gradient norm",
                value: max_norm,
            });
        }
        let norm = self.global_norm()?;
        if norm > max_norm {
            let scale = max_norm / norm;
            for (_, variable) in &self.variables {
                if let Some(gradient) = self.store.get(variable.as_tensor()) {
                    let scaled = gradient.affine(scale, 0.0)?;
                    self.store.insert(variable.as_tensor(), scaled);
                }
            }
        }
        Ok(norm)
    }

    /// Replaces the gradient of `variable` (for example after an optimizer adds weight decay).
    pub fn set(&mut self, variable: &Var, gradient: Tensor) {
        self.store.insert(variable.as_tensor(), gradient);
    }

    /// The underlying Candle store, for code that works with Candle's optimizers directly.
    pub fn into_store(self) -> GradStore {
        self.store
    }
}
