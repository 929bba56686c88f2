//! The bridge between a search and a training loop (course §8, 自动机器学习): a
//! [`dl_train::Callback`] that reports one number of each epoch's record to the trial, and stops
//! training when the pruner says so, the way Optuna's `TFKerasPruningCallback` does for Keras.

use std::sync::{Arc, Mutex};

use dl_train::{Callback, Control, EpochRecord, TrainingContext, TrainingResult};

use crate::{Reporter, TrialStop};

/// Reports each epoch's metric to a trial; see [`ReportEpochs::new`].
pub struct ReportEpochs {
    reporter: Reporter,
    metric: fn(&EpochRecord) -> Option<f64>,
    last_epoch: usize,
    stop: StopSignal,
}

/// Whether the pruner stopped a trial's training, read after training returns.
#[derive(Clone, Default)]
pub struct StopSignal(Arc<Mutex<Option<TrialStop>>>);

impl ReportEpochs {
    /// A callback that reports `metric` of each epoch (a missing one as NaN) through
    /// `reporter`, that of `last_epoch`, the training's last, without letting the pruner judge
    /// it (see [`crate::Trial::report_last`]); and the signal that says, after training,
    /// whether the pruner stopped it.
    pub fn new(
        reporter: Reporter,
        metric: fn(&EpochRecord) -> Option<f64>,
        last_epoch: usize,
    ) -> (Self, StopSignal) {
        let stop = StopSignal::default();
        let callback = Self {
            reporter,
            metric,
            last_epoch,
            stop: stop.clone(),
        };
        (callback, stop)
    }
}

impl Callback for ReportEpochs {
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control> {
        let record = context.record();
        let value = (self.metric)(&record).unwrap_or(f64::NAN);
        let reported = if record.epoch >= self.last_epoch {
            self.reporter.report_last(record.epoch, value)
        } else {
            self.reporter.report(record.epoch, value)
        };
        Ok(match reported {
            Ok(()) => Control::Continue,
            Err(stop) => {
                *self.stop.lock() = Some(stop);
                Control::Stop
            }
        })
    }
}

impl StopSignal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<TrialStop>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The trial's result: the pruner's stop when it stopped training, else `outcome` (an
    /// error becoming a failed trial).
    pub fn outcome<T, E: std::fmt::Display>(
        &self,
        outcome: std::result::Result<T, E>,
    ) -> std::result::Result<T, TrialStop> {
        match self.lock().take() {
            Some(stop) => Err(stop),
            None => outcome.map_err(TrialStop::failed),
        }
    }
}
