//! When to prune during fine-tuning, and how much: all at once, in rounds (Han et al. 2015:
//! prune → retrain → prune …), or along Zhu & Gupta's polynomial (2017, "To prune, or not to
//! prune"; TF-MOT's `PolynomialDecay`):
//!
//! s_t = s_f + (s_i − s_f) · (1 − (t − t₀)/(t₁ − t₀))³, for t₀ ≤ t ≤ t₁, every Δt steps,
//!
//! which prunes fast while many redundant weights remain and slowly near the target.

use serde::{Deserialize, Serialize};

use crate::{CompressError, Result, Sparsity};

/// A sparsity that rises over optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PruningSchedule {
    /// The target at the first step, then fixed masks.
    OneShot {
        /// The sparsity.
        target: f64,
    },
    /// `rounds` equal rounds of `steps_per_round` steps; each round removes the same share of
    /// the weights still left, reaching `target` at the start of the last round.
    Iterative {
        /// The final sparsity.
        target: f64,
        /// How many prune → retrain rounds.
        rounds: u64,
        /// Optimizer steps per round (an epoch, typically).
        steps_per_round: u64,
    },
    /// Zhu & Gupta's cubic rise from `initial` at `begin_step` to `target` at `end_step`,
    /// re-pruning every `frequency` steps.
    Polynomial {
        /// Sparsity at `begin_step`.
        initial: f64,
        /// Sparsity from `end_step` on.
        target: f64,
        /// The first pruning step.
        begin_step: u64,
        /// The step at which the target is reached.
        end_step: u64,
        /// Steps between two pruning updates (TF-MOT's default: 100).
        frequency: u64,
    },
}

impl PruningSchedule {
    /// Checks the schedule's numbers: sparsities in [0, 1), initial ≤ target, at least one
    /// round or step, `end_step ≥ begin_step`.
    pub fn validate(&self) -> Result<()> {
        let bad = |problem: String| CompressError::BadSetting {
            setting: "pruning schedule",
            problem,
        };
        match *self {
            Self::OneShot { target } => {
                Sparsity::new(target)?;
            }
            Self::Iterative {
                target,
                rounds,
                steps_per_round,
            } => {
                Sparsity::new(target)?;
                if rounds == 0 || steps_per_round == 0 {
                    return Err(bad(format!(
                        "{rounds} rounds of {steps_per_round} steps: both must be at least 1"
                    )));
                }
            }
            Self::Polynomial {
                initial,
                target,
                begin_step,
                end_step,
                frequency,
            } => {
                Sparsity::new(initial)?;
                Sparsity::new(target)?;
                if initial > target {
                    return Err(bad(format!(
                        "the initial sparsity {initial} exceeds the target {target}"
                    )));
                }
                if end_step < begin_step || frequency == 0 {
                    return Err(bad(format!(
                        "steps {begin_step}..={end_step} every {frequency}: the end must not precede the start and the frequency must be at least 1"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The sparsity to prune to before optimizer step `step` (counted from 0), or `None` when
    /// the masks stay as they are at that step.
    ///
    /// ```
    /// use dl_compress::PruningSchedule;
    ///
    /// let schedule = PruningSchedule::Polynomial {
    ///     initial: 0.0, target: 0.8, begin_step: 0, end_step: 100, frequency: 50,
    /// };
    /// assert_eq!(schedule.sparsity_at(0), Some(0.0));
    /// assert_eq!(schedule.sparsity_at(10), None); // between two updates
    /// assert_eq!(schedule.sparsity_at(50), Some(0.8 - 0.8 * 0.5f64.powi(3))); // 0.7
    /// assert_eq!(schedule.sparsity_at(100), Some(0.8));
    /// assert_eq!(schedule.sparsity_at(150), None);
    /// ```
    pub fn sparsity_at(&self, step: u64) -> Option<f64> {
        match *self {
            Self::OneShot { target } => (step == 0).then_some(target),
            Self::Iterative {
                target,
                rounds,
                steps_per_round,
            } => {
                if !step.is_multiple_of(steps_per_round) || step / steps_per_round >= rounds {
                    return None;
                }
                let round = step / steps_per_round + 1;
                let kept = (1.0 - target).powf(round as f64 / rounds as f64);
                Some(if round == rounds { target } else { 1.0 - kept })
            }
            Self::Polynomial {
                initial,
                target,
                begin_step,
                end_step,
                frequency,
            } => {
                if step < begin_step || step > end_step {
                    return None;
                }
                if step != end_step && !(step - begin_step).is_multiple_of(frequency) {
                    return None;
                }
                if end_step == begin_step {
                    return Some(target);
                }
                let progress = (step - begin_step) as f64 / (end_step - begin_step) as f64;
                Some(target + (initial - target) * (1.0 - progress).powi(3))
            }
        }
    }

    /// The sparsity the schedule ends at.
    pub fn target(&self) -> f64 {
        match *self {
            Self::OneShot { target }
            | Self::Iterative { target, .. }
            | Self::Polynomial { target, .. } => target,
        }
    }
}
