//! Pruners: stop a trial early when its per-epoch reports show it will not win, so the budget
//! goes to promising configurations.
//!
//! - **Median** (Optuna's default rule, as Google Vizier's median stopping): after `warmup_epochs`
//!   and once `startup_trials` trials have completed, stop a trial whose best report so far is
//!   worse than the median of the completed trials' reports at the same epoch.
//! - **ASHA**, asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
//!   Hyperparameter Tuning"): rungs at `min_epochs · ηʳ` epochs; a trial reaching a rung goes on
//!   only if its value is in the best 1/η of the values seen at that rung (its own included; with
//!   fewer than η values, only the best goes on).

use serde::{Deserialize, Serialize};

use crate::{Direction, TrialRecord, TrialState};

/// When to stop a trial early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Pruner {
    /// Never.
    None,
    /// The median stopping rule.
    Median {
        /// Completed trials needed before any pruning (5).
        startup_trials: usize,
        /// Epochs always trained (0).
        warmup_epochs: usize,
    },
    /// Asynchronous successive halving.
    Asha {
        /// The first rung's epoch (1).
        min_epochs: usize,
        /// η: the share 1/η goes on at each rung (3).
        reduction_factor: usize,
    },
}

impl Pruner {
    /// The median rule with Optuna's defaults.
    pub fn median() -> Self {
        Self::Median {
            startup_trials: 5,
            warmup_epochs: 0,
        }
    }

    /// ASHA with Optuna's defaults (rungs at 1, 3, 9, ... epochs).
    pub fn asha() -> Self {
        Self::Asha {
            min_epochs: 1,
            reduction_factor: 3,
        }
    }

    /// The same pruner, never stopping a trial before `epochs` epochs: the median rule's
    /// `warmup_epochs` (Optuna's `n_warmup_steps`) or ASHA's first rung `min_epochs` (Optuna's
    /// `min_resource`; at least 1).
    pub fn with_warmup(self, epochs: usize) -> Self {
        match self {
            Self::None => Self::None,
            Self::Median { startup_trials, .. } => Self::Median {
                startup_trials,
                warmup_epochs: epochs,
            },
            Self::Asha {
                reduction_factor, ..
            } => Self::Asha {
                min_epochs: epochs.max(1),
                reduction_factor,
            },
        }
    }

    /// Whether a trial whose reports so far are `reports` (the last one just made, a number)
    /// should stop, judged against the trials in `visible`.
    pub fn should_prune(
        &self,
        direction: Direction,
        reports: &[(usize, f64)],
        visible: &[&TrialRecord],
    ) -> bool {
        let Some(&(epoch, value)) = reports.last() else {
            return false;
        };
        match *self {
            Self::None => false,
            Self::Median {
                startup_trials,
                warmup_epochs,
            } => {
                let completed: Vec<&&TrialRecord> = visible
                    .iter()
                    .filter(|trial| trial.state == TrialState::Complete)
                    .collect();
                if epoch <= warmup_epochs || completed.len() < startup_trials.max(1) {
                    return false;
                }
                // ANCHOR: median-rule
                let mut others: Vec<f64> = completed
                    .iter()
                    .filter_map(|trial| trial.report_at(epoch))
                    .filter(|value| value.is_finite())
                    .collect();
                if others.is_empty() {
                    return false;
                }
                others.sort_by(f64::total_cmp);
                let middle = others.len() / 2;
                let median = if others.len() % 2 == 1 {
                    others[middle]
                } else {
                    0.5 * (others[middle - 1] + others[middle])
                };
                let mut own: Vec<f64> = reports.iter().map(|&(_, value)| value).collect();
                direction.sort_best_first(&mut own);
                direction.better(median, own[0])
                // ANCHOR_END: median-rule
            }
            Self::Asha {
                min_epochs,
                reduction_factor,
            } => {
                let (min_epochs, factor) = (min_epochs.max(1), reduction_factor.max(2));
                let mut rung = min_epochs;
                while rung < epoch {
                    rung = rung.saturating_mul(factor);
                }
                if rung != epoch {
                    return false;
                }
                let mut competing: Vec<f64> = visible
                    .iter()
                    .filter_map(|trial| trial.report_at(epoch))
                    .filter(|value| value.is_finite())
                    .chain(std::iter::once(value))
                    .collect();
                direction.sort_best_first(&mut competing);
                let promoted = (competing.len() / factor).max(1);
                direction.better(competing[promoted - 1], value)
            }
        }
    }
}

impl std::fmt::Display for Pruner {
    /// What the pruner does, in words: "no pruning", "median pruning (…)", "ASHA pruning (…)".
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::None => formatter.write_str("no pruning"),
            Self::Median {
                startup_trials,
                warmup_epochs,
            } => write!(
                formatter,
                "median pruning (from epoch {} once {startup_trials} trials are complete)",
                warmup_epochs + 1
            ),
            Self::Asha {
                min_epochs,
                reduction_factor,
            } => write!(
                formatter,
                "ASHA pruning (rungs at epochs {min_epochs}, {}, {}, ...; the best 1/{reduction_factor} go on)",
                min_epochs * reduction_factor,
                min_epochs * reduction_factor * reduction_factor
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn trial(id: usize, state: TrialState, curve: &[f64]) -> TrialRecord {
        TrialRecord {
            id,
            config: Config::new(),
            state,
            value: curve.last().copied(),
            reports: curve
                .iter()
                .enumerate()
                .map(|(index, &value)| (index + 1, value))
                .collect(),
            seconds: 0.0,
            error: None,
        }
    }

    #[test]
    fn the_median_rule_stops_a_curve_below_the_median_of_completed_ones() {
        // completed curves at epoch 2: 0.80, 0.85, 0.90 → median 0.85
        let done = [
            trial(0, TrialState::Complete, &[0.70, 0.80, 0.82]),
            trial(1, TrialState::Complete, &[0.75, 0.85, 0.88]),
            trial(2, TrialState::Complete, &[0.80, 0.90, 0.93]),
        ];
        let visible: Vec<&TrialRecord> = done.iter().collect();
        let rule = Pruner::Median {
            startup_trials: 3,
            warmup_epochs: 1,
        };
        let maximize = Direction::Maximize;
        // epoch 1 is warm-up: never pruned
        assert!(!rule.should_prune(maximize, &[(1, 0.1)], &visible));
        // best so far 0.84 < 0.85: pruned; 0.86 > 0.85: goes on
        assert!(rule.should_prune(maximize, &[(1, 0.84), (2, 0.5)], &visible));
        assert!(!rule.should_prune(maximize, &[(1, 0.5), (2, 0.86)], &visible));
        // with a loss (minimize), 0.84 is below the median 0.85: better, goes on
        assert!(!rule.should_prune(Direction::Minimize, &[(1, 0.9), (2, 0.84)], &visible));
        // fewer completed trials than startup_trials: never
        assert!(!rule.should_prune(maximize, &[(1, 0.0), (2, 0.0)], &visible[..2]));
        // pruned trials do not count towards the median
        let pruned = trial(3, TrialState::Pruned, &[0.1, 0.1]);
        let mut with_pruned = visible.clone();
        with_pruned.push(&pruned);
        assert!(!rule.should_prune(maximize, &[(1, 0.5), (2, 0.86)], &with_pruned));
    }

    #[test]
    fn a_warmup_keeps_slow_starters_until_it_ends() {
        let done = [
            trial(0, TrialState::Complete, &[0.90, 0.95, 0.96]),
            trial(1, TrialState::Complete, &[0.91, 0.95, 0.96]),
            trial(2, TrialState::Complete, &[0.92, 0.95, 0.96]),
            trial(3, TrialState::Complete, &[0.93, 0.95, 0.96]),
            trial(4, TrialState::Complete, &[0.94, 0.95, 0.96]),
        ];
        let visible: Vec<&TrialRecord> = done.iter().collect();
        let maximize = Direction::Maximize;
        let slow_start = [(1, 0.60), (2, 0.80)];
        // Optuna's default (no warmup) cuts it at epoch 1, below the median 0.92
        assert!(Pruner::median().should_prune(maximize, &slow_start[..1], &visible));
        // with two warm-up epochs it is judged first at epoch 3
        let patient = Pruner::median().with_warmup(2);
        assert_eq!(
            patient,
            Pruner::Median {
                startup_trials: 5,
                warmup_epochs: 2
            }
        );
        assert!(!patient.should_prune(maximize, &slow_start, &visible));
        assert!(patient.should_prune(maximize, &[(1, 0.6), (2, 0.8), (3, 0.9)], &visible));
        // ASHA's first rung moves; 0 counts as 1; None stays None
        assert_eq!(
            Pruner::asha().with_warmup(2),
            Pruner::Asha {
                min_epochs: 2,
                reduction_factor: 3
            }
        );
        assert_eq!(Pruner::asha().with_warmup(0), Pruner::asha());
        assert_eq!(Pruner::None.with_warmup(4), Pruner::None);
        assert_eq!(
            Pruner::median().with_warmup(2).to_string(),
            "median pruning (from epoch 3 once 5 trials are complete)"
        );
        assert_eq!(
            Pruner::asha().to_string(),
            "ASHA pruning (rungs at epochs 1, 3, 9, ...; the best 1/3 go on)"
        );
    }

    #[test]
    fn asha_promotes_the_best_third_at_each_rung() {
        let rule = Pruner::asha();
        let maximize = Direction::Maximize;
        // the first trial at rung 1 competes only with itself: promoted
        assert!(!rule.should_prune(maximize, &[(1, 0.5)], &[]));
        // epoch 2 is no rung: never pruned there
        let done: Vec<TrialRecord> = [0.9, 0.8, 0.7, 0.6, 0.5]
            .iter()
            .enumerate()
            .map(|(id, &value)| trial(id, TrialState::Pruned, &[value]))
            .collect();
        let visible: Vec<&TrialRecord> = done.iter().collect();
        assert!(!rule.should_prune(maximize, &[(1, 0.95), (2, 0.0)], &visible));
        // six values at rung 1 → the best 6 / 3 = 2 go on: 0.9 and the new one if above 0.8
        assert!(!rule.should_prune(maximize, &[(1, 0.85)], &visible));
        assert!(rule.should_prune(maximize, &[(1, 0.75)], &visible));
        // rung 3: only the trial's own value there → promoted
        assert!(!rule.should_prune(maximize, &[(1, 0.95), (2, 0.96), (3, 0.1)], &visible));
        assert!(!Pruner::None.should_prune(maximize, &[(1, f64::MIN)], &visible));
    }
}
