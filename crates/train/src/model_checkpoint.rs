//! Checkpointing, the course's defence against lost work (and, with the best epoch kept, one
//! against overfitting): after epochs, save the run — weights, optimizer state, schedule,
//! history — so that training can resume exactly ([`Run`]).

use std::{collections::BTreeMap, path::PathBuf};

use crate::{Callback, Control, EpochRecord, Run, TrainingContext, TrainingError, TrainingResult};

/// The metadata key of the loss the saved epoch was judged by.
pub const MONITORED_LOSS_KEY: &str = "monitored_loss";

/// Saves the model after epochs: the best one so far (lowest monitored loss) and/or the latest,
/// each as a whole [`Run`] (optimizer state and history beside it) so that training can resume
/// exactly.
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
        path: PathBuf,
        record: &EpochRecord,
        context: &TrainingContext<'_>,
    ) -> TrainingResult<()> {
        let mut metadata = self.metadata.clone();
        metadata.insert(
            MONITORED_LOSS_KEY.into(),
            record.monitored_loss().to_string(),
        );
        Run::new(&path).save(context, &metadata)?;
        self.newest = Some(path);
        Ok(())
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control> {
        let record = &context.record();
        if !record.monitored_loss().is_finite() {
            return Err(TrainingError::Config(format!(
                "epoch {} ended with a non-finite loss; no checkpoint written",
                record.epoch
            )));
        }
        if let Some(path) = self.last_path.clone() {
            self.save(path, record, context)?;
        }
        if record.monitored_loss() < self.best_loss {
            self.best_loss = record.monitored_loss();
            if let Some(path) = self.best_path.clone() {
                self.save(path, record, context)?;
            }
        }
        Ok(Control::Continue)
    }

    fn last_checkpoint(&self) -> Option<PathBuf> {
        self.newest.clone()
    }
}
