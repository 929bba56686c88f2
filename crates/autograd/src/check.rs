//! Gradient checking: does backpropagation compute the derivative it claims to?
//!
//! For a scalar loss L and one weight element w, the central difference
//!   ∂L/∂w ≈ (L(w + ε) − L(w − ε)) / 2ε
//! has error O(ε²). Comparing it with the analytic gradient from Candle's backward pass catches
//! wrong derivatives and gradients that are silently dropped (they show up as analytic zeros
//! where the difference is not zero). Run checks in `f64`, where ε = 1e-6 leaves about ten
//! significant digits; in `f32` use ε ≈ 1e-2 and expect errors near 1e-2.

use dl_tensor::{DType, SeededRng, Tensor, Var};

use crate::{AutogradError, Gradients, Result};

/// Settings of a gradient check.
#[derive(Debug, Clone)]
pub struct GradientCheck {
    /// The step ε of the central difference.
    pub epsilon: f64,
    /// The smallest denominator of the relative error |a − n| / max(|a|, |n|, floor), so that
    /// gradients near zero are compared absolutely.
    pub floor: f64,
    /// How many elements of each variable to perturb (chosen at random when the variable is
    /// larger; every element when it is smaller).
    pub max_elements_per_variable: usize,
    /// Seed of the choice of elements.
    pub seed: u64,
}

impl Default for GradientCheck {
    fn default() -> Self {
        Self {
            epsilon: 1e-6,
            floor: 1e-4,
            max_elements_per_variable: 48,
            seed: 0,
        }
    }
}

/// The outcome of [`check_gradients`].
#[derive(Debug, Clone)]
pub struct GradientCheckReport {
    /// The largest relative error over all checked elements.
    pub worst_relative_error: f64,
    /// The variable holding the worst element.
    pub worst_variable: String,
    /// The flat index of the worst element within its variable.
    pub worst_element: usize,
    /// Backpropagation's value at the worst element.
    pub analytic: f64,
    /// The central difference at the worst element.
    pub numeric: f64,
    /// How many elements were compared.
    pub elements_checked: usize,
}

impl std::fmt::Display for GradientCheckReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "worst relative error {:.3e} at {}[{}]: backprop {:.6e}, finite difference {:.6e} ({} elements checked)",
            self.worst_relative_error,
            self.worst_variable,
            self.worst_element,
            self.analytic,
            self.numeric,
            self.elements_checked
        )
    }
}

fn scalar_value(loss: &Tensor) -> Result<f64> {
    if loss.elem_count() != 1 {
        return Err(AutogradError::LossNotScalar {
            shape: loss.dims().to_vec(),
        });
    }
    Ok(loss.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0])
}

/// Overwrites one element of a variable (used to perturb it and to put it back).
fn set_element(variable: &Var, values: &mut [f64], index: usize, value: f64) -> Result<()> {
    values[index] = value;
    let replacement = Tensor::from_slice(values, variable.dims(), variable.device())?
        .to_dtype(variable.dtype())?;
    variable.set(&replacement)?;
    Ok(())
}

/// Compares the gradient that backpropagation computes for each variable with central finite
/// differences of `loss`, which must recompute the scalar loss from the variables' current values
/// each time it is called (and be deterministic: fix dropout masks first).
///
/// ```
/// use dl_autograd::{check_gradients, GradientCheck};
/// use dl_tensor::{DType, Device, Var};
///
/// // L = Σ tanh(x)²; dL/dx = 2 tanh(x)(1 − tanh²(x)).
/// let x = Var::new(&[0.3f64, -1.2, 2.0], &Device::Cpu)?;
/// let report = check_gradients(&[("x", &x)], || x.as_tensor().tanh()?.sqr()?.sum_all(), &GradientCheck::default())?;
/// assert!(report.worst_relative_error < 1e-7, "{report}");
/// # Ok::<(), dl_autograd::AutogradError>(())
/// ```
pub fn check_gradients<F>(
    variables: &[(&str, &Var)],
    mut loss: F,
    options: &GradientCheck,
) -> Result<GradientCheckReport>
where
    F: FnMut() -> dl_tensor::candle_core::Result<Tensor>,
{
    if variables.is_empty() {
        return Err(AutogradError::Check("no variables to check".into()));
    }
    let analytic_loss = loss()?;
    let gradients = Gradients::compute(&analytic_loss, variables.iter().copied())?;
    let mut rng = SeededRng::new(options.seed);
    let mut report = GradientCheckReport {
        worst_relative_error: 0.0,
        worst_variable: String::new(),
        worst_element: 0,
        analytic: 0.0,
        numeric: 0.0,
        elements_checked: 0,
    };
    for (name, variable) in variables {
        let mut values: Vec<f64> = variable
            .as_tensor()
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let analytic: Vec<f64> = match gradients.of(variable) {
            Some(gradient) => gradient.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?,
            None => vec![0.0; values.len()],
        };
        let mut elements = rng.permutation(values.len());
        elements.truncate(options.max_elements_per_variable);
        for index in elements {
            // ANCHOR: central-difference
            let original = values[index];
            set_element(variable, &mut values, index, original + options.epsilon)?;
            let plus = scalar_value(&loss()?)?;
            set_element(variable, &mut values, index, original - options.epsilon)?;
            let minus = scalar_value(&loss()?)?;
            set_element(variable, &mut values, index, original)?;
            let numeric = (plus - minus) / (2.0 * options.epsilon);
            // ANCHOR_END: central-difference
            let error = (analytic[index] - numeric).abs()
                / analytic[index].abs().max(numeric.abs()).max(options.floor);
            report.elements_checked += 1;
            if error > report.worst_relative_error || report.worst_variable.is_empty() {
                report.worst_relative_error = error;
                report.worst_variable = (*name).to_string();
                report.worst_element = index;
                report.analytic = analytic[index];
                report.numeric = numeric;
            }
        }
    }
    Ok(report)
}

/// Reduces a tensor to a scalar by a fixed random weighting, Σ_i r_i y_i with r_i ~ U(−1, 1):
/// a loss whose gradient ∂L/∂y = r differs element by element, so a check of a layer's output
/// exercises every output position (a plain sum would hide errors that cancel).
pub fn weighted_sum(output: &Tensor, seed: u64) -> dl_tensor::candle_core::Result<Tensor> {
    let weights = SeededRng::new(seed)
        .uniform_tensor(output.shape(), -1.0, 1.0, output.device())?
        .to_dtype(output.dtype())?;
    output.mul(&weights)?.sum_all()
}
