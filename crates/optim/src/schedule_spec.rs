//! Learning-rate schedules written as text, for command lines such as `--schedule cosine:warmup=500`.
//!
//! Course §3 "梯度下降" (gradient descent) with a changing step size η: this file only turns a
//! description into one of the schedules of [`crate::schedule`], where the formulas live.
//!
//! Grammar: a name, then parameters separated by `:`. Parameters are given in order or by
//! name (`name=value`); named ones may follow positional ones, not the other way round.
//!
//! | text                                   | schedule                                  |
//! |----------------------------------------|-------------------------------------------|
//! | `constant`                             | [`ConstantSchedule`]                      |
//! | `step:<step_size>[:<gamma>]`           | [`StepDecay`], γ defaults to 0.1          |
//! | `exponential:<gamma>`                  | [`ExponentialDecay`]                      |
//! | `cosine[:warmup=<steps>][:min_lr=<η>]` | [`CosineWithWarmup`], defaults 0 and 0    |
//! | `plateau[:patience=..][:factor=..][:threshold=..][:cooldown=..][:min_lr=..][:mode=min\|max][:threshold_mode=rel\|abs]` | [`ReduceOnPlateau`], PyTorch defaults |
//!
//! `warmup_steps` and `min_learning_rate` are accepted as long forms of `warmup` and `min_lr`.

use std::fmt;
use std::str::FromStr;

use crate::hyper_parameters::{non_negative, require};
use crate::schedule::{
    ConstantSchedule, CosineWithWarmup, ExponentialDecay, LearningRateSchedule, PlateauConfig,
    PlateauMode, ReduceOnPlateau, StepDecay, ThresholdMode,
};
use crate::{OptimError, Result};

/// A learning-rate schedule as described on a command line, before the base learning rate and
/// the length of training are known.
///
/// ```
/// use dl_optim::ScheduleSpec;
///
/// let spec: ScheduleSpec = "cosine:warmup=500".parse()?;
/// assert_eq!(spec, ScheduleSpec::Cosine { warmup_steps: 500, min_learning_rate: 0.0 });
/// assert_eq!(spec.to_string(), "cosine:warmup=500:min_lr=0");
///
/// let error = "step:ten".parse::<ScheduleSpec>().unwrap_err().to_string();
/// assert!(error.contains("step_size"), "{error}");
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ScheduleSpec {
    /// [`ConstantSchedule`].
    #[default]
    Constant,
    /// [`StepDecay`]: multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between reductions.
        step_size: usize,
        /// The factor applied at each reduction.
        gamma: f64,
    },
    /// [`ExponentialDecay`]: multiply by `gamma` every epoch.
    Exponential {
        /// The factor applied every epoch.
        gamma: f64,
    },
    /// [`CosineWithWarmup`]: linear warm-up, then cosine annealing, per optimizer step.
    Cosine {
        /// Optimizer steps of linear warm-up.
        warmup_steps: usize,
        /// The learning rate reached at the end.
        min_learning_rate: f64,
    },
    /// [`ReduceOnPlateau`]: reduce when the validation metric stops improving.
    Plateau(PlateauConfig),
}

/// The names of the schedules, for error messages.
const SCHEDULE_NAMES: &str = "constant, step, exponential, cosine or plateau";

impl ScheduleSpec {
    /// Checks the ranges of the parameters that do not depend on the base learning rate.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Constant => Ok(()),
            Self::Step { step_size, gamma } => StepDecay::new(1.0, step_size, gamma).map(drop),
            Self::Exponential { gamma } => ExponentialDecay::new(1.0, gamma).map(drop),
            Self::Cosine {
                min_learning_rate, ..
            } => non_negative("min_learning_rate", min_learning_rate),
            Self::Plateau(config) => config.validate(),
        }
    }

    /// The schedule starting from `base_learning_rate`, for a training run of `total_steps`
    /// optimizer steps (used by the cosine schedule only; pass epochs × batches per epoch).
    ///
    /// Fails when a parameter is out of range, e.g. more warm-up steps than `total_steps` or a
    /// minimum learning rate above the base one.
    pub fn build(
        &self,
        base_learning_rate: f64,
        total_steps: usize,
    ) -> Result<Box<dyn LearningRateSchedule>> {
        Ok(match *self {
            Self::Constant => Box::new(ConstantSchedule::new(base_learning_rate)?),
            Self::Step { step_size, gamma } => {
                Box::new(StepDecay::new(base_learning_rate, step_size, gamma)?)
            }
            Self::Exponential { gamma } => {
                Box::new(ExponentialDecay::new(base_learning_rate, gamma)?)
            }
            Self::Cosine {
                warmup_steps,
                min_learning_rate,
            } => Box::new(CosineWithWarmup::new(
                base_learning_rate,
                total_steps,
                warmup_steps,
                min_learning_rate,
            )?),
            Self::Plateau(config) => {
                require(
                    "min_learning_rate",
                    config.min_learning_rate,
                    config.min_learning_rate <= base_learning_rate,
                    &format!("at most the base learning rate {base_learning_rate}"),
                )?;
                Box::new(ReduceOnPlateau::new(base_learning_rate, config)?)
            }
        })
    }
}

impl fmt::Display for ScheduleSpec {
    /// The canonical text, which parses back to the same spec.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Constant => write!(formatter, "constant"),
            Self::Step { step_size, gamma } => write!(formatter, "step:{step_size}:{gamma}"),
            Self::Exponential { gamma } => write!(formatter, "exponential:{gamma}"),
            Self::Cosine {
                warmup_steps,
                min_learning_rate,
            } => write!(
                formatter,
                "cosine:warmup={warmup_steps}:min_lr={min_learning_rate}"
            ),
            Self::Plateau(config) => write!(
                formatter,
                "plateau:patience={}:factor={}:threshold={}:cooldown={}:min_lr={}:mode={}:threshold_mode={}",
                config.patience,
                config.factor,
                config.threshold,
                config.cooldown,
                config.min_learning_rate,
                match config.mode {
                    PlateauMode::Min => "min",
                    PlateauMode::Max => "max",
                },
                match config.threshold_mode {
                    ThresholdMode::Relative => "rel",
                    ThresholdMode::Absolute => "abs",
                },
            ),
        }
    }
}

/// The parameters of one schedule kind: canonical names in positional order, and long aliases.
struct Parameters {
    kind: &'static str,
    names: &'static [&'static str],
    aliases: &'static [(&'static str, &'static str)],
}

impl Parameters {
    /// Matches the `:`-separated `arguments` to parameter names: positional ones in order, then
    /// `name=value` ones. Returns the value given for each name (`None` when not given).
    fn assign<'a>(
        &self,
        arguments: &[&'a str],
    ) -> std::result::Result<Vec<Option<&'a str>>, String> {
        let mut values: Vec<Option<&str>> = vec![None; self.names.len()];
        let mut named_seen = false;
        for (position, argument) in arguments.iter().enumerate() {
            let argument = argument.trim();
            if argument.is_empty() {
                return Err(
                    "a parameter is empty (two ':' in a row, or a ':' at the end)".to_string(),
                );
            }
            if self.names.is_empty() {
                return Err(format!(
                    "{} takes no parameters, got '{argument}'",
                    self.kind
                ));
            }
            let (index, value) = match argument.split_once('=') {
                Some((key, value)) => {
                    named_seen = true;
                    let key = key.trim().to_ascii_lowercase();
                    let canonical = self
                        .aliases
                        .iter()
                        .find(|(alias, _)| *alias == key)
                        .map_or(key.as_str(), |(_, canonical)| canonical);
                    let index = self
                        .names
                        .iter()
                        .position(|name| *name == canonical)
                        .ok_or_else(|| self.unknown_parameter(&key))?;
                    (index, value.trim())
                }
                None if named_seen => {
                    return Err(format!(
                        "the positional parameter '{argument}' follows a named one: give positional parameters first"
                    ))
                }
                None if position >= self.names.len() => {
                    return Err(format!(
                        "{} takes at most {} parameter{} ({}), got {}",
                        self.kind,
                        self.names.len(),
                        if self.names.len() == 1 { "" } else { "s" },
                        self.names.join(", "),
                        arguments.len()
                    ))
                }
                None => (position, argument),
            };
            if values[index].replace(value).is_some() {
                return Err(format!("{} is given twice", self.names[index]));
            }
        }
        Ok(values)
    }

    fn unknown_parameter(&self, key: &str) -> String {
        format!(
            "{} has no parameter '{key}': it takes {}",
            self.kind,
            self.names.join(", ")
        )
    }
}

/// Parses one parameter value, or returns `default` when it was not given.
fn parse_or<T: FromStr>(
    value: Option<&str>,
    name: &str,
    expected: &str,
    default: T,
) -> std::result::Result<T, String> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} = '{text}' is not {expected}")),
    }
}

/// Parses one required parameter value.
fn parse_required<T: FromStr>(
    value: Option<&str>,
    name: &str,
    expected: &str,
    example: &str,
) -> std::result::Result<T, String> {
    let text = value.ok_or_else(|| format!("{name} is required, e.g. {example}"))?;
    text.parse()
        .map_err(|_| format!("{name} = '{text}' is not {expected}"))
}

const WHOLE: &str = "a whole number >= 0";
const NUMBER: &str = "a number";

fn parse_spec(text: &str) -> std::result::Result<ScheduleSpec, String> {
    let mut parts = text.trim().split(':');
    let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let arguments: Vec<&str> = parts.collect();
    if name.is_empty() {
        return Err(format!("no schedule named: use {SCHEDULE_NAMES}"));
    }
    let spec = match name.as_str() {
        "constant" => {
            Parameters {
                kind: "constant",
                names: &[],
                aliases: &[],
            }
            .assign(&arguments)?;
            ScheduleSpec::Constant
        }
        "step" => {
            let values = Parameters {
                kind: "step",
                names: &["step_size", "gamma"],
                aliases: &[],
            }
            .assign(&arguments)?;
            ScheduleSpec::Step {
                step_size: parse_required(
                    values[0],
                    "step_size",
                    "a whole number of epochs",
                    "step:10:0.5",
                )?,
                gamma: parse_or(values[1], "gamma", NUMBER, 0.1)?,
            }
        }
        "exponential" => {
            let values = Parameters {
                kind: "exponential",
                names: &["gamma"],
                aliases: &[],
            }
            .assign(&arguments)?;
            ScheduleSpec::Exponential {
                gamma: parse_required(values[0], "gamma", NUMBER, "exponential:0.95")?,
            }
        }
        "cosine" => {
            let values = Parameters {
                kind: "cosine",
                names: &["warmup", "min_lr"],
                aliases: &[("warmup_steps", "warmup"), ("min_learning_rate", "min_lr")],
            }
            .assign(&arguments)?;
            ScheduleSpec::Cosine {
                warmup_steps: parse_or(values[0], "warmup", "a whole number of steps", 0)?,
                min_learning_rate: parse_or(values[1], "min_lr", NUMBER, 0.0)?,
            }
        }
        "plateau" => {
            let values = Parameters {
                kind: "plateau",
                names: &[
                    "patience",
                    "factor",
                    "threshold",
                    "cooldown",
                    "min_lr",
                    "mode",
                    "threshold_mode",
                ],
                aliases: &[("min_learning_rate", "min_lr")],
            }
            .assign(&arguments)?;
            let defaults = PlateauConfig::default();
            let mode = match values[5].map(str::to_ascii_lowercase).as_deref() {
                None => defaults.mode,
                Some("min") => PlateauMode::Min,
                Some("max") => PlateauMode::Max,
                Some(other) => return Err(format!("mode = '{other}' is not min or max")),
            };
            let threshold_mode = match values[6].map(str::to_ascii_lowercase).as_deref() {
                None => defaults.threshold_mode,
                Some("rel" | "relative") => ThresholdMode::Relative,
                Some("abs" | "absolute") => ThresholdMode::Absolute,
                Some(other) => return Err(format!("threshold_mode = '{other}' is not rel or abs")),
            };
            ScheduleSpec::Plateau(PlateauConfig {
                patience: parse_or(values[0], "patience", WHOLE, defaults.patience)?,
                factor: parse_or(values[1], "factor", NUMBER, defaults.factor)?,
                threshold: parse_or(values[2], "threshold", NUMBER, defaults.threshold)?,
                cooldown: parse_or(values[3], "cooldown", WHOLE, defaults.cooldown)?,
                min_learning_rate: parse_or(
                    values[4],
                    "min_lr",
                    NUMBER,
                    defaults.min_learning_rate,
                )?,
                mode,
                threshold_mode,
            })
        }
        other => return Err(format!("unknown schedule '{other}': use {SCHEDULE_NAMES}")),
    };
    spec.validate().map_err(|error| error.to_string())?;
    Ok(spec)
}

impl FromStr for ScheduleSpec {
    type Err = OptimError;

    /// Parses the grammar in the [module documentation](self); errors quote the text and say
    /// which parameter is wrong.
    fn from_str(text: &str) -> Result<Self> {
        parse_spec(text).map_err(|problem| OptimError::BadSchedule {
            given: text.to_string(),
            problem,
        })
    }
}
