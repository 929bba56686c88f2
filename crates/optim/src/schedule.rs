//! Learning-rate schedules: how the step size η of gradient descent changes during training.
//!
//! Course §3 "梯度下降" (gradient descent) uses a fixed η in w ← w − η ∂L/∂w; in practice a
//! large η early makes fast progress and a small η late settles into a minimum. Each schedule
//! here states its unit: [`StepDecay`], [`ExponentialDecay`] and [`ReduceOnPlateau`] change η
//! once per **epoch** (as PyTorch's `StepLR`, `ExponentialLR` and `ReduceLROnPlateau` are
//! usually stepped), [`CosineWithWarmup`] once per **optimizer step** (batch).
//!
//! A training loop drives any of them through [`LearningRateSchedule`]:
//!
//! ```
//! use dl_optim::{LearningRateSchedule, Optimizer, ScheduleSpec, Sgd, SgdConfig};
//!
//! let mut optimizer = Sgd::new(SgdConfig::new(0.1))?;
//! let spec: ScheduleSpec = "step:2:0.5".parse()?;
//! let mut schedule = spec.build(optimizer.learning_rate(), 100)?;
//! let mut used = Vec::new();
//! for _epoch in 0..5 {
//!     optimizer.set_learning_rate(schedule.learning_rate());
//!     used.push(optimizer.learning_rate());
//!     // ... for each batch: backward, optimizer.step(..), schedule.after_step() ...
//!     schedule.after_epoch(None)?;
//! }
//! assert_eq!(used, vec![0.1, 0.1, 0.05, 0.05, 0.025]);
//! # Ok::<(), dl_optim::OptimError>(())
//! ```

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt::Debug;

use crate::hyper_parameters::{non_negative, positive, require};
use crate::state::parse_value;
use crate::{OptimError, Result};

/// A learning rate that changes as training advances.
///
/// Call [`after_step`](LearningRateSchedule::after_step) after every optimizer step and
/// [`after_epoch`](LearningRateSchedule::after_epoch) after every epoch, and set the
/// optimizer's learning rate to [`learning_rate`](LearningRateSchedule::learning_rate) before
/// each step; each schedule advances on the calls of its own unit and ignores the other.
pub trait LearningRateSchedule: Debug {
    /// The learning rate for the next optimizer step.
    fn learning_rate(&self) -> f64;

    /// Records that an optimizer step (one batch) was taken. Per-step schedules advance here.
    fn after_step(&mut self) {}

    /// Records the end of an epoch, with the validation metric when one was computed.
    /// Per-epoch schedules advance here; [`ReduceOnPlateau`] fails without a metric.
    fn after_epoch(&mut self, validation_metric: Option<f64>) -> Result<()>;

    /// The schedule's progress as text values, to save with a checkpoint.
    fn state(&self) -> BTreeMap<String, String>;

    /// Restores progress saved by [`state`](LearningRateSchedule::state).
    fn load_state(&mut self, values: &BTreeMap<String, String>) -> Result<()>;
}

/// The same learning rate throughout: η_t = η₀.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantSchedule {
    learning_rate: f64,
}

impl ConstantSchedule {
    /// A constant learning rate η₀ > 0.
    pub fn new(learning_rate: f64) -> Result<Self> {
        positive("learning_rate", learning_rate)?;
        Ok(Self { learning_rate })
    }
}

impl LearningRateSchedule for ConstantSchedule {
    fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    fn after_epoch(&mut self, _validation_metric: Option<f64>) -> Result<()> {
        Ok(())
    }

    fn state(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn load_state(&mut self, _values: &BTreeMap<String, String>) -> Result<()> {
        Ok(())
    }
}

/// Checks a decay factor γ of a per-epoch schedule: in (0, 1].
fn check_gamma(gamma: f64) -> Result<()> {
    require(
        "gamma",
        gamma,
        gamma > 0.0 && gamma <= 1.0,
        "in (0, 1] (the factor the learning rate is multiplied by)",
    )
}

/// Multiplies the learning rate by γ every `step_size` epochs (PyTorch's `StepLR`):
/// η_e = η₀ · γ^⌊e / step_size⌋ for epoch e = 0, 1, 2, ...
#[derive(Debug, Clone, PartialEq)]
pub struct StepDecay {
    base_learning_rate: f64,
    step_size: usize,
    gamma: f64,
    epoch: usize,
}

impl StepDecay {
    /// Decay by `gamma` ∈ (0, 1] every `step_size` >= 1 epochs from η₀ = `base_learning_rate`.
    pub fn new(base_learning_rate: f64, step_size: usize, gamma: f64) -> Result<Self> {
        positive("learning_rate", base_learning_rate)?;
        require(
            "step_size",
            step_size as f64,
            step_size >= 1,
            "at least 1 epoch",
        )?;
        check_gamma(gamma)?;
        Ok(Self {
            base_learning_rate,
            step_size,
            gamma,
            epoch: 0,
        })
    }

    /// η_e = η₀ · γ^⌊e / step_size⌋.
    ///
    /// ```
    /// let schedule = dl_optim::StepDecay::new(0.1, 10, 0.5)?;
    /// assert_eq!(schedule.learning_rate_at(9), 0.1);
    /// assert_eq!(schedule.learning_rate_at(10), 0.05);
    /// assert_eq!(schedule.learning_rate_at(25), 0.025);
    /// # Ok::<(), dl_optim::OptimError>(())
    /// ```
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        self.base_learning_rate * power(self.gamma, epoch / self.step_size)
    }
}

impl LearningRateSchedule for StepDecay {
    fn learning_rate(&self) -> f64 {
        self.learning_rate_at(self.epoch)
    }

    fn after_epoch(&mut self, _validation_metric: Option<f64>) -> Result<()> {
        self.epoch += 1;
        Ok(())
    }

    fn state(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("epoch".to_string(), self.epoch.to_string())])
    }

    fn load_state(&mut self, values: &BTreeMap<String, String>) -> Result<()> {
        self.epoch = parse_value(values, "epoch")?;
        Ok(())
    }
}

/// Multiplies the learning rate by γ every epoch (PyTorch's `ExponentialLR`):
/// η_e = η₀ · γ^e for epoch e = 0, 1, 2, ... — a [`StepDecay`] whose step is one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialDecay(StepDecay);

impl ExponentialDecay {
    /// Decay by `gamma` ∈ (0, 1] every epoch from η₀ = `base_learning_rate`.
    pub fn new(base_learning_rate: f64, gamma: f64) -> Result<Self> {
        Ok(Self(StepDecay::new(base_learning_rate, 1, gamma)?))
    }

    /// η_e = η₀ · γ^e.
    ///
    /// ```
    /// let schedule = dl_optim::ExponentialDecay::new(1.0, 0.5)?;
    /// assert_eq!(schedule.learning_rate_at(3), 0.125);
    /// # Ok::<(), dl_optim::OptimError>(())
    /// ```
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        self.0.learning_rate_at(epoch)
    }
}

impl LearningRateSchedule for ExponentialDecay {
    fn learning_rate(&self) -> f64 {
        self.0.learning_rate()
    }

    fn after_epoch(&mut self, validation_metric: Option<f64>) -> Result<()> {
        self.0.after_epoch(validation_metric)
    }

    fn state(&self) -> BTreeMap<String, String> {
        self.0.state()
    }

    fn load_state(&mut self, values: &BTreeMap<String, String>) -> Result<()> {
        self.0.load_state(values)
    }
}

/// γ^n for a count n (saturating: γ^n has reached 0 or stays 1 long before `i32::MAX`).
fn power(gamma: f64, exponent: usize) -> f64 {
    gamma.powi(i32::try_from(exponent).unwrap_or(i32::MAX))
}

/// Linear warm-up followed by cosine annealing, counted in **optimizer steps**: with base rate
/// η₀, minimum η_min, W warm-up steps and T steps in all, the rate of step s = 0, 1, 2, ... is
///
/// ```text
/// η_s = η₀ · (s + 1) / W                                    for s < W
/// η_s = η_min + (η₀ − η_min) · (1 + cos(π p)) / 2,
///       p = min(1, (s − W) / (T − W))                       for s >= W
/// ```
///
/// Warm-up rises from η₀/W to η₀ at step W − 1 (never 0, so no step is wasted), which keeps
/// the first updates small while Adam's moment estimates are still noisy; the cosine then falls
/// smoothly from η₀ at step W to η_min at step T (and stays there). This is PyTorch's
/// `CosineAnnealingLR(T_max = T − W, eta_min)` after a linear warm-up. To anneal per epoch
/// instead, build it with T = the number of epochs and use
/// [`learning_rate_at`](CosineWithWarmup::learning_rate_at) with the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineWithWarmup {
    base_learning_rate: f64,
    total_steps: usize,
    warmup_steps: usize,
    min_learning_rate: f64,
    step: usize,
}

impl CosineWithWarmup {
    /// A schedule over `total_steps` >= 1 steps, of which the first `warmup_steps` (at most
    /// `total_steps`) warm up, annealing from `base_learning_rate` > 0 to `min_learning_rate`
    /// in [0, base].
    pub fn new(
        base_learning_rate: f64,
        total_steps: usize,
        warmup_steps: usize,
        min_learning_rate: f64,
    ) -> Result<Self> {
        positive("learning_rate", base_learning_rate)?;
        require(
            "total_steps",
            total_steps as f64,
            total_steps >= 1,
            "at least 1",
        )?;
        require(
            "warmup_steps",
            warmup_steps as f64,
            warmup_steps <= total_steps,
            &format!("at most the total number of steps, {total_steps}"),
        )?;
        non_negative("min_learning_rate", min_learning_rate)?;
        require(
            "min_learning_rate",
            min_learning_rate,
            min_learning_rate <= base_learning_rate,
            &format!("at most the base learning rate {base_learning_rate}"),
        )?;
        Ok(Self {
            base_learning_rate,
            total_steps,
            warmup_steps,
            min_learning_rate,
            step: 0,
        })
    }

    /// The learning rate of optimizer step `step` (0-based), by the formula above.
    ///
    /// ```
    /// // 10 warm-up steps, 110 in all: step 4 is halfway up, step 60 halfway down.
    /// let schedule = dl_optim::CosineWithWarmup::new(1.0, 110, 10, 0.0)?;
    /// assert_eq!(schedule.learning_rate_at(4), 0.5);
    /// assert_eq!(schedule.learning_rate_at(10), 1.0);
    /// assert!((schedule.learning_rate_at(60) - 0.5).abs() < 1e-12);
    /// assert_eq!(schedule.learning_rate_at(110), 0.0);
    /// # Ok::<(), dl_optim::OptimError>(())
    /// ```
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.base_learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let annealing_steps = (self.total_steps - self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / annealing_steps as f64).min(1.0);
        self.min_learning_rate
            + (self.base_learning_rate - self.min_learning_rate) * (1.0 + (PI * progress).cos())
                / 2.0
    }
}

impl LearningRateSchedule for CosineWithWarmup {
    fn learning_rate(&self) -> f64 {
        self.learning_rate_at(self.step)
    }

    fn after_step(&mut self) {
        self.step += 1;
    }

    fn after_epoch(&mut self, _validation_metric: Option<f64>) -> Result<()> {
        Ok(())
    }

    fn state(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("step".to_string(), self.step.to_string())])
    }

    fn load_state(&mut self, values: &BTreeMap<String, String>) -> Result<()> {
        self.step = parse_value(values, "step")?;
        Ok(())
    }
}

/// Whether a smaller or a larger metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss): PyTorch's `mode = "min"`.
    Min,
    /// Higher is better (an accuracy): PyTorch's `mode = "max"`.
    Max,
}

/// How much better a metric must be to count as an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better by a fraction of the best: `metric < best · (1 − threshold)` in min mode
    /// (PyTorch's `threshold_mode = "rel"`).
    Relative,
    /// Better by an amount: `metric < best − threshold` in min mode (`"abs"`).
    Absolute,
}

/// Settings of [`ReduceOnPlateau`], with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateauConfig {
    /// Whether lower (`Min`, default) or higher metrics are better.
    pub mode: PlateauMode,
    /// The factor in (0, 1) the learning rate is multiplied by (default 0.1).
    pub factor: f64,
    /// How many epochs without improvement are tolerated (default 10): the rate drops after
    /// `patience + 1` bad epochs in a row.
    pub patience: usize,
    /// The improvement that counts, >= 0 (default 1e-4).
    pub threshold: f64,
    /// Whether `threshold` is relative (default) or absolute.
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting bad epochs again (default 0).
    pub cooldown: usize,
    /// The learning rate never goes below this, >= 0 (default 0).
    pub min_learning_rate: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        Self {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Relative,
            cooldown: 0,
            min_learning_rate: 0.0,
        }
    }
}

impl PlateauConfig {
    /// Checks the ranges of `factor`, `threshold` and `min_learning_rate`.
    pub fn validate(&self) -> Result<()> {
        require(
            "factor",
            self.factor,
            self.factor > 0.0 && self.factor < 1.0,
            "in (0, 1)",
        )?;
        non_negative("threshold", self.threshold)?;
        non_negative("min_learning_rate", self.min_learning_rate)
    }
}

/// Reductions smaller than this are ignored (PyTorch's `eps` of `ReduceLROnPlateau`).
const SMALLEST_REDUCTION: f64 = 1e-8;

/// Lowers the learning rate when a validation metric stops improving (PyTorch's
/// `ReduceLROnPlateau`), fed once per **epoch**:
///
/// ```text
/// if metric is better than best (by threshold): best ← metric, bad ← 0   else bad ← bad + 1
/// if in cooldown: cooldown ← cooldown − 1, bad ← 0
/// if bad > patience: η ← max(η · factor, η_min), cooldown ← cooldown epochs, bad ← 0
/// ```
///
/// ```
/// use dl_optim::{PlateauConfig, ReduceOnPlateau};
///
/// let config = PlateauConfig { patience: 1, factor: 0.5, ..PlateauConfig::default() };
/// let mut schedule = ReduceOnPlateau::new(0.1, config)?;
/// assert_eq!(schedule.record(1.0), 0.1); // improves on +∞
/// assert_eq!(schedule.record(1.0), 0.1); // 1 bad epoch: within patience
/// assert_eq!(schedule.record(1.0), 0.05); // 2 bad epochs > patience: halve
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    config: PlateauConfig,
    learning_rate: f64,
    best: f64,
    bad_epochs: usize,
    cooldown_remaining: usize,
}

impl ReduceOnPlateau {
    /// Starts at `learning_rate` > 0, with no best metric yet.
    pub fn new(learning_rate: f64, config: PlateauConfig) -> Result<Self> {
        positive("learning_rate", learning_rate)?;
        config.validate()?;
        Ok(Self {
            config,
            learning_rate,
            best: match config.mode {
                PlateauMode::Min => f64::INFINITY,
                PlateauMode::Max => f64::NEG_INFINITY,
            },
            bad_epochs: 0,
            cooldown_remaining: 0,
        })
    }

    /// The best metric seen so far (±∞ before the first).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs without improvement counted towards `patience`.
    pub fn bad_epochs(&self) -> usize {
        self.bad_epochs
    }

    /// Records one epoch's validation metric and returns the learning rate for the next epoch.
    /// A NaN metric counts as no improvement.
    pub fn record(&mut self, metric: f64) -> f64 {
        if self.improves(metric) {
            self.best = metric;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_remaining > 0 {
            self.cooldown_remaining -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.config.patience {
            let reduced =
                (self.learning_rate * self.config.factor).max(self.config.min_learning_rate);
            if self.learning_rate - reduced > SMALLEST_REDUCTION {
                self.learning_rate = reduced;
            }
            self.cooldown_remaining = self.config.cooldown;
            self.bad_epochs = 0;
        }
        self.learning_rate
    }

    fn improves(&self, metric: f64) -> bool {
        let PlateauConfig {
            mode,
            threshold,
            threshold_mode,
            ..
        } = self.config;
        match (mode, threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Relative) => metric < self.best * (1.0 - threshold),
            (PlateauMode::Min, ThresholdMode::Absolute) => metric < self.best - threshold,
            (PlateauMode::Max, ThresholdMode::Relative) => metric > self.best * (1.0 + threshold),
            (PlateauMode::Max, ThresholdMode::Absolute) => metric > self.best + threshold,
        }
    }
}

impl LearningRateSchedule for ReduceOnPlateau {
    fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    fn after_epoch(&mut self, validation_metric: Option<f64>) -> Result<()> {
        let metric = validation_metric.ok_or(OptimError::MissingMetric {
            schedule: "reduce-on-plateau",
        })?;
        self.record(metric);
        Ok(())
    }

    fn state(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("learning_rate".to_string(), self.learning_rate.to_string()),
            ("best".to_string(), self.best.to_string()),
            ("bad_epochs".to_string(), self.bad_epochs.to_string()),
            (
                "cooldown_remaining".to_string(),
                self.cooldown_remaining.to_string(),
            ),
        ])
    }

    fn load_state(&mut self, values: &BTreeMap<String, String>) -> Result<()> {
        let learning_rate = parse_value(values, "learning_rate")?;
        positive("learning_rate", learning_rate)?;
        let best = parse_value(values, "best")?;
        let bad_epochs = parse_value(values, "bad_epochs")?;
        let cooldown_remaining = parse_value(values, "cooldown_remaining")?;
        self.learning_rate = learning_rate;
        self.best = best;
        self.bad_epochs = bad_epochs;
        self.cooldown_remaining = cooldown_remaining;
        Ok(())
    }
}
