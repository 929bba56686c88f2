//! Gradients of named variables: what backpropagation produced, how large it is, and where it
//! is missing.
//!
//! The course's update rule w ← w − η ∂L/∂w needs ∂L/∂w for every weight. Candle's `backward`
//! returns them keyed by tensor id; `Gradients` keys them by the parameter names a learner sees
//! (`hidden.weight`), and adds the two tools training relies on: the global norm
//! ‖g‖ = sqrt(Σ_w Σ_i g_{w,i}²) and clipping.

use dl_tensor::{DType, Tensor, Var};

use crate::{AutogradError, Result};

/// The gradient of a scalar loss with respect to each of a set of named variables.
pub struct Gradients {
    variables: Vec<(String, Var)>,
    /// The gradient of each variable, in the same order (`None`: the loss does not reach it).
    values: Vec<Option<Tensor>>,
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
        let mut store = loss.backward()?;
        let variables: Vec<(String, Var)> = variables
            .into_iter()
            .map(|(name, variable)| (name.into(), variable.clone()))
            .collect();
        let values = variables
            .iter()
            .map(|(_, variable)| store.remove(variable.as_tensor()))
            .collect();
        Ok(Self { variables, values })
    }

    /// The position of `variable` among the variables.
    fn index_of(&self, variable: &Var) -> Option<usize> {
        let id = variable.as_tensor().id();
        self.variables
            .iter()
            .position(|(_, known)| known.as_tensor().id() == id)
    }

    /// The gradient of the variable called `name`, if the loss depends on it.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        let index = self.variables.iter().position(|(known, _)| known == name)?;
        self.values[index].as_ref()
    }

    /// The gradient of `variable`, if the loss depends on it.
    pub fn of(&self, variable: &Var) -> Option<&Tensor> {
        self.values[self.index_of(variable)?].as_ref()
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
            .zip(&self.values)
            .filter(|(_, value)| value.is_none())
            .map(|((name, _), _)| name.as_str())
            .collect()
    }

    /// The global L2 norm sqrt(Σ g²) over every variable's gradient.
    pub fn global_norm(&self) -> Result<f64> {
        let mut sum_of_squares = 0f64;
        for gradient in self.values.iter().flatten() {
            {
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
        for gradient in self.values.iter_mut().flatten() {
            *gradient = gradient.clamp(-limit, limit)?;
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
            for gradient in self.values.iter_mut().flatten() {
                *gradient = gradient.affine(scale, 0.0)?;
            }
        }
        Ok(norm)
    }

    /// New gradients, each `transform(name, gradient)` of this one's; variables without a
    /// gradient stay without. What an optimizer wrapper uses to change gradients it does not
    /// own (pruning zeroes the gradients of removed weights).
    ///
    /// ```
    /// use dl_autograd::Gradients;
    /// use dl_tensor::{Device, Var};
    ///
    /// let weight = Var::new(&[1.0f32, 2.0], &Device::Cpu)?;
    /// let loss = weight.as_tensor().sqr()?.sum_all()?; // ∂L/∂w = 2w
    /// let gradients = Gradients::compute(&loss, [("w", &weight)])?;
    /// let halved = gradients.map(|_, gradient| Ok((gradient * 0.5)?))?;
    /// assert_eq!(halved.get("w").unwrap().to_vec1::<f32>()?, vec![1.0, 2.0]);
    /// # Ok::<(), dl_autograd::AutogradError>(())
    /// ```
    pub fn map<F>(&self, mut transform: F) -> Result<Self>
    where
        F: FnMut(&str, &Tensor) -> Result<Tensor>,
    {
        let values = self
            .variables
            .iter()
            .zip(&self.values)
            .map(|((name, _), value)| {
                value
                    .as_ref()
                    .map(|gradient| transform(name, gradient))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            variables: self.variables.clone(),
            values,
        })
    }

    /// Replaces the gradient of `variable` (for example after an optimizer adds weight decay);
    /// a variable not among [`Gradients::variables`] is added, named `(unnamed)`.
    pub fn set(&mut self, variable: &Var, gradient: Tensor) {
        match self.index_of(variable) {
            Some(index) => self.values[index] = Some(gradient),
            None => {
                self.variables
                    .push(("(unnamed)".to_string(), variable.clone()));
                self.values.push(Some(gradient));
            }
        }
    }
}
