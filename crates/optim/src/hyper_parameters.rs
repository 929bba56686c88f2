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

/// What a hyper-parameter's value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// A finite number > 0 (learning rates, epsilons).
    Positive,
    /// A finite number >= 0 (weight decay).
    NonNegative,
    /// In [0, 1) (decay rates of running averages, momentum).
    FractionBelowOne,
    /// In [0, 1] (dampening).
    Fraction,
}

impl Range {
    /// Fails, naming the hyper-parameter and the allowed range, unless `value` is in range.
    pub fn check(self, name: &'static str, value: f64) -> Result<()> {
        match self {
            Self::Positive => positive(name, value),
            Self::NonNegative => non_negative(name, value),
            Self::FractionBelowOne => fraction_below_one(name, value),
            Self::Fraction => fraction(name, value),
        }
    }
}

/// The name of the learning rate in [`HyperParameters::ranges`].
const LEARNING_RATE: &str = "learning_rate";

/// An optimizer's hyper-parameters as data: serialisable (saved as one JSON entry of the
/// optimizer state), and checked in one place from the ranges each optimizer declares.
///
/// ```
/// use dl_optim::{AdamConfig, HyperParameters};
///
/// assert!(AdamConfig::default().validate().is_ok());
/// let error = AdamConfig::default().betas(0.9, 1.0).validate().unwrap_err();
/// assert!(error.to_string().contains("beta2"), "{error}");
/// ```
pub trait HyperParameters:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Default
{
    /// Every numeric hyper-parameter with its allowed range: `learning_rate` first.
    fn ranges(&self) -> Vec<(&'static str, f64, Range)>;

    /// Rules that tie several hyper-parameters together (none unless an optimizer says so).
    fn check_combinations(&self) -> Result<()> {
        Ok(())
    }

    /// Checks every hyper-parameter: each range, then the combinations.
    fn validate(&self) -> Result<()> {
        for (name, value, range) in self.ranges() {
            range.check(name, value)?;
        }
        self.check_combinations()
    }

    /// As [`HyperParameters::validate`], but a learning rate of exactly 0 passes: a schedule may
    /// have annealed the rate to 0 by the time a state was saved.
    fn validate_saved(&self) -> Result<()> {
        for (name, value, range) in self.ranges() {
            let range = if name == LEARNING_RATE {
                Range::NonNegative
            } else {
                range
            };
            range.check(name, value)?;
        }
        self.check_combinations()
    }
}

/// Writes builder-style setters (`config.momentum(0.9)`) for fields of a config struct, each
/// with its documentation.
macro_rules! setters {
    ($config:ty { $($(#[$doc:meta])* $field:ident: $kind:ty),+ $(,)? }) => {
        impl $config {
            $(
                $(#[$doc])*
                pub fn $field(mut self, $field: $kind) -> Self {
                    self.$field = $field;
                    self
                }
            )+
        }
    };
}
pub(crate) use setters;
