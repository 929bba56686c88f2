//! Callbacks: code the training loop runs after every epoch. One defence the course lists
//! against overfitting lives here: early stopping (stop when the validation loss has not
//! improved for `patience` epochs, optionally going back to the best weights); the other,
//! checkpointing, is [`ModelCheckpoint`](crate::ModelCheckpoint).

use std::path::PathBuf;

use dl_nn::{Layer, VarStore};
use dl_optim::{LearningRateSchedule, Optimizer};
use dl_tensor::Tensor;

use crate::{EpochRecord, History, StepOptimizer, TrainingResult};

/// What a callback sees at the end of an epoch.
pub struct TrainingContext<'a> {
    /// The model being trained (its random generators are saved with checkpoints).
    pub model: &'a dyn Layer,
    /// The model's variables.
    pub store: &'a VarStore,
    /// The step's optimizers with their schedules (their states are saved with checkpoints).
    pub optimizers: Vec<StepOptimizer<'a>>,
    /// All epochs so far, including the one just finished (see [`TrainingContext::record`]).
    pub history: &'a History,
    /// Optimizer steps taken so far.
    pub global_step: usize,
}

impl<'a> TrainingContext<'a> {
    /// The record of the epoch just finished (a default record before the first epoch, which
    /// callbacks are never called with).
    pub fn record(&self) -> EpochRecord {
        self.history.last().cloned().unwrap_or_default()
    }

    /// The first (for a supervised step, the only) optimizer.
    pub fn optimizer(&self) -> Option<&'a dyn Optimizer> {
        self.optimizers.first().map(|entry| entry.optimizer)
    }

    /// The first optimizer's learning-rate schedule, if any.
    pub fn schedule(&self) -> Option<&'a dyn LearningRateSchedule> {
        self.optimizers.first().and_then(|entry| entry.schedule)
    }
}

/// Whether training goes on after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on with the next epoch.
    Continue,
    /// Stop after this epoch.
    Stop,
}

/// Code run by the training loop after each epoch.
pub trait Callback {
    /// Called after each epoch ([`TrainingContext::record`] is its record); returning
    /// [`Control::Stop`] ends training.
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control>;

    /// Called once when training ends normally (after the last epoch or an early stop).
    fn on_train_end(&mut self, _context: &TrainingContext<'_>) -> TrainingResult<()> {
        Ok(())
    }

    /// The newest checkpoint this callback wrote, named in the error when training fails.
    fn last_checkpoint(&self) -> Option<PathBuf> {
        None
    }
}

/// Stops training when the monitored loss (validation loss if any, else training loss) has not
/// improved by more than `min_delta` for `patience` epochs.
pub struct EarlyStopping {
    patience: usize,
    min_delta: f64,
    restore_best_weights: bool,
    best_loss: f64,
    best_epoch: usize,
    best_weights: Option<Vec<(String, Tensor)>>,
    epochs_without_improvement: usize,
    stopped_at: Option<usize>,
}

impl EarlyStopping {
    /// Stop after `patience` epochs without improvement.
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            min_delta: 0.0,
            restore_best_weights: false,
            best_loss: f64::INFINITY,
            best_epoch: 0,
            best_weights: None,
            epochs_without_improvement: 0,
            stopped_at: None,
        }
    }

    /// Only a decrease larger than `min_delta` counts as an improvement.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// At the end of training, put back the weights of the best epoch (Keras'
    /// `restore_best_weights=True`).
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }

    /// The epoch at which training was stopped, if it was.
    pub fn stopped_at(&self) -> Option<usize> {
        self.stopped_at
    }

    /// The best epoch seen.
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control> {
        let record = context.record();
        let loss = record.monitored_loss();
        if loss < self.best_loss - self.min_delta {
            self.best_loss = loss;
            self.best_epoch = record.epoch;
            self.epochs_without_improvement = 0;
            if self.restore_best_weights {
                self.best_weights = Some(context.store.snapshot()?);
            }
            return Ok(Control::Continue);
        }
        self.epochs_without_improvement += 1;
        if self.epochs_without_improvement >= self.patience {
            self.stopped_at = Some(record.epoch);
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<()> {
        if let Some(weights) = &self.best_weights {
            context.store.restore(weights)?;
        }
        Ok(())
    }
}
