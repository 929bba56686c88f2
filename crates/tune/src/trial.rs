//! A trial: one configuration trained and scored, with its per-epoch reports and how it ended.

use serde::{Deserialize, Serialize};

use crate::Config;

/// Whether a larger or a smaller value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Larger is better (an accuracy).
    Maximize,
    /// Smaller is better (a loss).
    Minimize,
}

impl Direction {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Self::Maximize => a > b,
            Self::Minimize => a < b,
        }
    }

    /// `values` sorted best first (NaN last).
    pub(crate) fn sort_best_first(self, values: &mut [f64]) {
        values.sort_by(|a, b| match self {
            Self::Maximize => b.total_cmp(a),
            Self::Minimize => a.total_cmp(b),
        });
    }
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Started and not finished (in a journal: interrupted).
    Running,
    /// Trained to the end; its value is the objective.
    Complete,
    /// Stopped early by the pruner; its value is its last report.
    Pruned,
    /// Failed: an error, a panic, or a value that is not a number.
    Failed,
}

/// One trial of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Its number, from 0 in the order trials start.
    pub id: usize,
    /// Its configuration.
    pub config: Config,
    /// How it ended.
    pub state: TrialState,
    /// The objective (complete) or the last report (pruned).
    pub value: Option<f64>,
    /// The (epoch, value) reports, in order.
    pub reports: Vec<(usize, f64)>,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
}

impl TrialRecord {
    /// The reported value at `epoch`, if the trial got there.
    pub fn report_at(&self, epoch: usize) -> Option<f64> {
        self.reports
            .iter()
            .find(|(reported, _)| *reported == epoch)
            .map(|&(_, value)| value)
    }

    /// The epochs it trained (its last report's epoch).
    pub fn epochs(&self) -> usize {
        self.reports.last().map_or(0, |&(epoch, _)| epoch)
    }
}
