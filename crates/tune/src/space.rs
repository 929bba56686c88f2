//! The search space (course §8, 自动机器学习: 优化超参数): each hyper-parameter's type and range,
//! read from TOML, one table per parameter:
//!
//! ```toml
//! [learning_rate]
//! type = "float"      # a real number in [low, high]
//! low = 1e-4
//! high = 1e-2
//! log = true          # sampled uniformly in log space (for rates and decays)
//!
//! [width]
//! type = "int"        # an integer in [low, high], optionally on a step
//! low = 16
//! high = 64
//! step = 16
//!
//! [model]
//! type = "categorical"
//! choices = ["cnn", "lenet5"]
//!
//! [epochs]
//! type = "fixed"
//! value = 6
//! ```
//!
//! A float takes `points = N` (or a `step`) for the grid sampler. Parameters are kept in name
//! order, so a configuration, a grid and a seeded sample are the same on every run.

use std::{collections::BTreeMap, fmt, path::Path};

use dl_tensor::SeededRng;
use serde::{Deserialize, Serialize};

use crate::{Result, TuneError};

/// A hyper-parameter's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A name.
    Text(String),
}

impl Value {
    /// The value as a number (integers and floats; `true` is 1), for tables and rank
    /// correlations.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Bool(value) => Some(f64::from(u8::from(*value))),
            Self::Int(value) => Some(*value as f64),
            Self::Float(value) => Some(*value),
            Self::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(value) => write!(formatter, "{value}"),
            Self::Int(value) => write!(formatter, "{value}"),
            Self::Float(value) => write!(formatter, "{value}"),
            Self::Text(value) => formatter.write_str(value),
        }
    }
}

/// One configuration: a value for every parameter, by name.
pub type Config = BTreeMap<String, Value>;

/// A hyper-parameter's domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Parameter {
    /// An integer in [low, high], on multiples of `step` from `low` when given; `log` samples
    /// it uniformly in log space.
    Int {
        /// The smallest value.
        low: i64,
        /// The largest value.
        high: i64,
        /// Sample in log space (low must be positive).
        #[serde(default)]
        log: bool,
        /// The spacing of the allowed values, from `low`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<i64>,
    },
    /// A real number in [low, high].
    Float {
        /// The smallest value.
        low: f64,
        /// The largest value.
        high: f64,
        /// Sample in log space (low must be positive).
        #[serde(default)]
        log: bool,
        /// The spacing of the allowed values, from `low` (linear scale only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
        /// For the grid sampler: how many values, evenly spaced (in log space with `log`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        points: Option<usize>,
    },
    /// One of a list of values.
    Categorical {
        /// The values.
        choices: Vec<Value>,
    },
    /// Always the same value (a setting the search does not vary, recorded with each trial).
    Fixed {
        /// The value.
        value: Value,
    },
}

/// The most values one parameter may put on a grid.
const MAX_GRID_VALUES: usize = 10_000;

impl Parameter {
    /// Checks the domain; `name` names it in errors.
    fn validate(&self, name: &str) -> Result<()> {
        let problem = |text: String| Err(TuneError::space(name, text));
        match self {
            Self::Int {
                low,
                high,
                log,
                step,
            } => {
                if low > high {
                    return problem(format!("low {low} is above high {high}"));
                }
                if *log && *low < 1 {
                    return problem(format!("log = true needs low ≥ 1, not {low}"));
                }
                if let Some(step) = step {
                    if *step < 1 {
                        return problem(format!("step must be a positive integer, not {step}"));
                    }
                    if *log {
                        return problem("step and log cannot be combined".into());
                    }
                }
            }
            Self::Float {
                low,
                high,
                log,
                step,
                points,
            } => {
                if !low.is_finite() || !high.is_finite() || low > high {
                    return problem(format!(
                        "low {low} and high {high} must be finite with low ≤ high"
                    ));
                }
                if *log && *low <= 0.0 {
                    return problem(format!("log = true needs low > 0, not {low}"));
                }
                if let Some(step) = step {
                    if !(step.is_finite() && *step > 0.0) || *log {
                        return problem(format!(
                            "step {step} must be positive, on a linear scale (no log)"
                        ));
                    }
                }
                if points.is_some_and(|points| !(1..=MAX_GRID_VALUES).contains(&points)) {
                    return problem(format!("points must be 1 to {MAX_GRID_VALUES}"));
                }
            }
            Self::Categorical { choices } => {
                if choices.is_empty() {
                    return problem("choices is empty: list at least one value".into());
                }
                if choices
                    .iter()
                    .any(|value| matches!(value, Value::Float(value) if !value.is_finite()))
                {
                    return problem("every choice must be finite".into());
                }
            }
            Self::Fixed { value } => {
                if matches!(value, Value::Float(value) if !value.is_finite()) {
                    return problem("value must be finite".into());
                }
            }
        }
        Ok(())
    }

    /// For numbers, the sampling scale's bounds: [low, high], or their logarithms with `log`.
    pub(crate) fn scale_bounds(&self) -> Option<(f64, f64)> {
        match *self {
            Self::Int { low, high, log, .. } => Some(if log {
                ((low as f64).ln(), (high as f64).ln())
            } else {
                (low as f64, high as f64)
            }),
            Self::Float { low, high, log, .. } => Some(if log {
                (low.ln(), high.ln())
            } else {
                (low, high)
            }),
            _ => None,
        }
    }

    /// A number's position on the sampling scale.
    pub(crate) fn position_of(&self, value: &Value) -> Option<f64> {
        let number = value.as_f64()?;
        match self {
            Self::Int { log: true, .. } | Self::Float { log: true, .. } => Some(number.ln()),
            Self::Int { .. } | Self::Float { .. } => Some(number),
            _ => None,
        }
    }

    /// The allowed value nearest to a position on the sampling scale.
    pub(crate) fn value_at(&self, internal: f64) -> Value {
        match *self {
            Self::Int {
                low,
                high,
                log,
                step,
            } => {
                let number = if log { internal.exp() } else { internal };
                let step = step.unwrap_or(1);
                let steps = ((number - low as f64) / step as f64).round().max(0.0) as i64;
                let largest = (high - low) / step;
                Value::Int(low + steps.min(largest) * step)
            }
            Self::Float {
                low,
                high,
                log,
                step,
                ..
            } => {
                let number = if log { internal.exp() } else { internal };
                let number = match step {
                    Some(step) => {
                        let largest = ((high - low) / step + 1e-9).floor();
                        on_step(low + ((number - low) / step).round().clamp(0.0, largest) * step)
                    }
                    None => number,
                };
                Value::Float(number.clamp(low, high))
            }
            Self::Categorical { ref choices } => choices[0].clone(),
            Self::Fixed { ref value } => value.clone(),
        }
    }

    /// A value drawn uniformly (on the sampling scale) from the domain.
    pub(crate) fn sample_uniform(&self, rng: &mut SeededRng) -> Value {
        match self {
            Self::Categorical { choices } => choices[rng.below(choices.len())].clone(),
            Self::Fixed { value } => value.clone(),
            Self::Int { .. } | Self::Float { .. } => {
                let (low, high) = self.scale_bounds().expect("a number");
                // integers: widen by half a step each side so that the ends are as likely
                let widen = match self {
                    Self::Int {
                        log: false, step, ..
                    } => 0.5 * step.unwrap_or(1) as f64,
                    _ => 0.0,
                };
                let position = low - widen + rng.uniform_f64() * (high - low + 2.0 * widen);
                self.value_at(position)
            }
        }
    }

    /// Every value of the grid: each integer (or step), each choice, or `points` evenly spaced
    /// floats.
    pub(crate) fn grid_values(&self, name: &str) -> Result<Vec<Value>> {
        let values: Vec<Value> = match *self {
            Self::Int {
                low, high, step, ..
            } => {
                let step = step.unwrap_or(1);
                let count = ((high - low) / step + 1) as usize;
                if count > MAX_GRID_VALUES {
                    return Err(TuneError::space(
                        name,
                        format!("{count} integers are too many for a grid: give a step"),
                    ));
                }
                (0..count as i64)
                    .map(|index| Value::Int(low + index * step))
                    .collect()
            }
            Self::Float {
                low,
                high,
                log,
                step,
                points,
            } => {
                let count = match (points, step) {
                    (Some(points), _) => points,
                    (None, Some(step)) => ((high - low) / step + 1e-9).floor() as usize + 1,
                    (None, None) => {
                        return Err(TuneError::space(
                            name,
                            "a float needs `points = N` (or a `step`) for the grid sampler",
                        ))
                    }
                };
                if count > MAX_GRID_VALUES {
                    return Err(TuneError::space(
                        name,
                        format!("{count} grid values are too many"),
                    ));
                }
                let (low_internal, high_internal) = self.scale_bounds().expect("a number");
                (0..count)
                    .map(|index| {
                        let share = if count == 1 {
                            0.5
                        } else {
                            index as f64 / (count - 1) as f64
                        };
                        let position = low_internal + share * (high_internal - low_internal);
                        match (step, points) {
                            (Some(step), None) => Value::Float(on_step(low + index as f64 * step)),
                            _ if log => Value::Float(position.exp().clamp(low, high)),
                            _ => Value::Float(position),
                        }
                    })
                    .collect()
            }
            Self::Categorical { ref choices } => choices.clone(),
            Self::Fixed { ref value } => vec![value.clone()],
        };
        Ok(values)
    }
}

/// A value on a float step without the binary rounding of `low + k · step` (0.15, not
/// 0.15000000000000002): rounded to 12 significant digits.
fn on_step(value: f64) -> f64 {
    format!("{value:.11e}").parse().unwrap_or(value)
}

/// The hyper-parameters a search varies, in name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SearchSpace {
    parameters: BTreeMap<String, Parameter>,
}

impl SearchSpace {
    /// A space of `parameters`, checked.
    pub fn new(parameters: BTreeMap<String, Parameter>) -> Result<Self> {
        if parameters.is_empty() {
            return Err(TuneError::space("(the space)", "it has no parameters"));
        }
        for (name, parameter) in &parameters {
            if name.trim().is_empty() {
                return Err(TuneError::space("(a parameter)", "its name is empty"));
            }
            parameter.validate(name)?;
        }
        Ok(Self { parameters })
    }

    /// Reads a space from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let parameters: BTreeMap<String, Parameter> = toml::from_str(text).map_err(|error| {
            TuneError::space("(the file)", error.to_string().trim().to_string())
        })?;
        Self::new(parameters)
    }

    /// Reads the space in the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            TuneError::space(
                &path.display().to_string(),
                format!("cannot read it: {error}"),
            )
        })?;
        Self::from_toml(&text).map_err(|error| match error {
            TuneError::Space { parameter, problem } => TuneError::Space {
                parameter: format!("{}: {parameter}", path.display()),
                problem,
            },
            other => other,
        })
    }

    /// The parameters, in name order.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Parameter)> {
        self.parameters
            .iter()
            .map(|(name, parameter)| (name.as_str(), parameter))
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameters.get(name)
    }

    /// Whether `config` has a value of the right kind for every parameter and no others.
    pub fn contains(&self, config: &Config) -> bool {
        config.len() == self.parameters.len()
            && self.parameters.iter().all(|(name, parameter)| {
                config.get(name).is_some_and(|value| match parameter {
                    Parameter::Int { low, high, .. } => {
                        matches!(value, Value::Int(value) if value >= low && value <= high)
                    }
                    Parameter::Float { low, high, .. } => value
                        .as_f64()
                        .is_some_and(|value| value >= *low && value <= *high),
                    Parameter::Categorical { choices } => choices.contains(value),
                    Parameter::Fixed { value: fixed } => fixed == value,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = r#"
        [learning_rate]
        type = "float"
        low = 1e-4
        high = 1e-2
        log = true
        points = 3

        [width]
        type = "int"
        low = 16
        high = 64
        step = 16

        [model]
        type = "categorical"
        choices = ["cnn", "lenet5"]

        [epochs]
        type = "fixed"
        value = 6
    "#;

    #[test]
    fn a_space_reads_from_toml_and_gives_its_grids() {
        let space = SearchSpace::from_toml(SPACE).unwrap();
        let names: Vec<&str> = space.parameters().map(|(name, _)| name).collect();
        assert_eq!(names, ["epochs", "learning_rate", "model", "width"]);
        let grid = |name: &str| space.get(name).unwrap().grid_values(name).unwrap();
        assert_eq!(grid("width"), [16, 32, 48, 64].map(Value::Int));
        // 1e-4, 1e-3, 1e-2: evenly spaced in log space
        let rates: Vec<f64> = grid("learning_rate")
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (rate, expected) in rates.iter().zip([1e-4, 1e-3, 1e-2]) {
            assert!((rate / expected - 1.0).abs() < 1e-12, "{rates:?}");
        }
        assert_eq!(grid("model").len(), 2);
        let dropout = Parameter::Float {
            low: 0.0,
            high: 0.5,
            log: false,
            step: Some(0.05),
            points: None,
        };
        let values = dropout.grid_values("dropout").unwrap();
        assert_eq!(values.len(), 11);
        assert_eq!(values[3], Value::Float(0.15));
        assert_eq!(dropout.value_at(0.149), Value::Float(0.15));
        assert_eq!(grid("epochs"), [Value::Int(6)]);
    }

    #[test]
    fn uniform_samples_stay_in_the_domain_and_reach_both_ends() {
        let space = SearchSpace::from_toml(SPACE).unwrap();
        let mut rng = SeededRng::new(3);
        let mut widths = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let config: Config = space
                .parameters()
                .map(|(name, parameter)| (name.to_string(), parameter.sample_uniform(&mut rng)))
                .collect();
            assert!(space.contains(&config), "{config:?}");
            if let Value::Int(width) = config["width"] {
                widths.insert(width);
            }
        }
        assert_eq!(widths.into_iter().collect::<Vec<_>>(), [16, 32, 48, 64]);
    }

    #[test]
    fn bad_spaces_name_the_parameter_and_the_fix() {
        let cases = [
            (
                "[a]\ntype = \"float\"\nlow = 1.0\nhigh = 0.5",
                "a: low 1 and high 0.5",
            ),
            (
                "[a]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\nlog = true",
                "log = true needs low > 0",
            ),
            (
                "[a]\ntype = \"int\"\nlow = 0\nhigh = 4\nstep = 0",
                "step must be a positive",
            ),
            (
                "[a]\ntype = \"categorical\"\nchoices = []",
                "choices is empty",
            ),
            (
                "[a]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\nstep = 0.1\nlog = false\nextra = 1",
                "unknown field",
            ),
            ("[a]\ntype = \"normal\"", "unknown variant"),
            ("", "no parameters"),
        ];
        for (text, expected) in cases {
            let message = SearchSpace::from_toml(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
        let space = SearchSpace::from_toml("[a]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0").unwrap();
        let message = space
            .get("a")
            .unwrap()
            .grid_values("a")
            .unwrap_err()
            .to_string();
        assert!(message.contains("points = N"), "{message}");
    }
}
