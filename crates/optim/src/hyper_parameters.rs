//! Range checks for hyper-parameters, shared by every optimizer and schedule: a bad value is an
//! [`OptimError::BadHyperParameter`] naming the parameter, the value and the allowed range,
//! never a panic and never a silent NaN later in training.

use crate::{OptimError, Result};

/// Fails with `allowed` as the explanation unless `ok`.
pub(crate) fn require(name: &'static str, value: f64, ok: bool, allowed: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::BadHyperParameter {
            name,
            value: value.to_string(),
            allowed: allowed.to_string(),
        })
    }
}

/// A finite number > 0 (learning rates, epsilons).
pub(crate) fn positive(name: &'static str, value: f64) -> Result<()> {
    require(
        name,
        value,
        value.is_finite() && value > 0.0,
        "a finite number > 0",
    )
}

/// A finite number >= 0 (weight decay, thresholds, minimum learning rates).
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<()> {
    require(
        name,
        value,
        value.is_finite() && value >= 0.0,
        "a finite number >= 0",
    )
}

/// A number in [0, 1) (decay rates of running averages, momentum).
pub(crate) fn fraction_below_one(name: &'static str, value: f64) -> Result<()> {
    require(name, value, (0.0..1.0).contains(&value), "in [0, 1)")
}

/// A number in [0, 1] (dampening).
pub(crate) fn fraction(name: &'static str, value: f64) -> Result<()> {
    require(name, value, (0.0..=1.0).contains(&value), "in [0, 1]")
}

/// The learning rate an optimizer is about to step with: schedules may lower it to exactly 0
/// (cosine annealing to a minimum of 0), which is allowed; negative, NaN or infinite is not.
pub(crate) fn current_learning_rate(value: f64) -> Result<()> {
    require(
        "learning_rate",
        value,
        value.is_finite() && value >= 0.0,
        "a finite number >= 0 when stepping (set_learning_rate was given this value)",
    )
}
