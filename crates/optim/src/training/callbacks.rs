//! Callbacks: code the training loop runs after every epoch. Two defences the course lists
//! against overfitting and lost work live here: early stopping (stop when the validation loss
//! has not improved for `patience` epochs, optionally going back to the best weights) and
//! checkpointing (save the best and the latest model, and the optimizer state to resume from).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use dl_nn::{Layer, VarStore};
use dl_tensor::Tensor;

use super::{EpochRecord, History, TrainingError, TrainingResult};
use crate::{LearningRateSchedule, Optimizer};

/// What a callback sees at the end of an epoch.
pub struct TrainingContext<'a> {
    /// The model being trained (its random generators are saved with checkpoints).
    pub model: &'a dyn Layer,
    /// The model's variables.
    pub store: &'a VarStore,
    /// The optimizer (for saving its state).
    pub optimizer: &'a dyn Optimizer,
    /// The learning-rate schedule, if any (its state is saved with checkpoints).
    pub schedule: Option<&'a dyn LearningRateSchedule>,
    /// All epochs so far, including the one just finished.
    pub history: &'a History,
    /// Optimizer steps taken so far.
    pub global_step: usize,
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
    /// Called after each epoch, with its record; returning [`Control::Stop`] ends training.
    fn on_epoch_end(
        &mut self,
        record: &EpochRecord,
        context: &TrainingContext<'_>,
    ) -> TrainingResult<Control>;

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
    fn on_epoch_end(
        &mut self,
        record: &EpochRecord,
        context: &TrainingContext<'_>,
    ) -> TrainingResult<Control> {
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

/// Saves the model after epochs: the best one so far (lowest monitored loss) and/or the latest,
/// each with the optimizer state beside it so that training can resume exactly.
///
/// Each checkpoint's metadata holds the given map plus `epoch`, `global_step`,
/// `monitored_loss` and the schedule's state under `schedule.*` keys.
pub struct ModelCheckpoint {
    best_path: Option<PathBuf>,
    last_path: Option<PathBuf>,
    metadata: BTreeMap<String, String>,
    best_loss: f64,
    newest: Option<PathBuf>,
}

/// Where the optimizer state of the checkpoint `checkpoint` is kept:
/// `model.safetensors` → `model.optimizer.safetensors`.
pub fn optimizer_state_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    checkpoint.with_file_name(format!("{stem}.optimizer.safetensors"))
}

impl ModelCheckpoint {
    /// Saves nothing until [`ModelCheckpoint::best`] or [`ModelCheckpoint::last`] names a file.
    pub fn new(metadata: BTreeMap<String, String>) -> Self {
        Self {
            best_path: None,
            last_path: None,
            metadata,
            best_loss: f64::INFINITY,
            newest: None,
        }
    }

    /// Keep the best model in `path`.
    pub fn best(mut self, path: impl Into<PathBuf>) -> Self {
        self.best_path = Some(path.into());
        self
    }

    /// Keep the latest model in `path`.
    pub fn last(mut self, path: impl Into<PathBuf>) -> Self {
        self.last_path = Some(path.into());
        self
    }

    fn save(
        &mut self,
        path: &Path,
        record: &EpochRecord,
        context: &TrainingContext<'_>,
    ) -> TrainingResult<()> {
        let mut metadata = self.metadata.clone();
        metadata.insert("epoch".into(), record.epoch.to_string());
        metadata.insert("global_step".into(), context.global_step.to_string());
        metadata.insert("monitored_loss".into(), record.monitored_loss().to_string());
        if let Some(schedule) = context.schedule {
            metadata.extend(crate::schedule_state_metadata(schedule));
        }
        metadata.extend(dl_nn::random_states_metadata(context.model));
        dl_nn::save_checkpoint(path, context.store, &metadata)?;
        context
            .optimizer
            .save_state_file(&optimizer_state_path(path))?;
        self.newest = Some(path.to_path_buf());
        Ok(())
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(
        &mut self,
        record: &EpochRecord,
        context: &TrainingContext<'_>,
    ) -> TrainingResult<Control> {
        if !record.monitored_loss().is_finite() {
            return Err(TrainingError::Config(format!(
                "epoch {} ended with a non-finite loss; no checkpoint written",
                record.epoch
            )));
        }
        if let Some(path) = self.last_path.clone() {
            self.save(&path, record, context)?;
        }
        if record.monitored_loss() < self.best_loss {
            self.best_loss = record.monitored_loss();
            if let Some(path) = self.best_path.clone() {
                self.save(&path, record, context)?;
            }
        }
        Ok(Control::Continue)
    }

    fn last_checkpoint(&self) -> Option<PathBuf> {
        self.newest.clone()
    }
}
