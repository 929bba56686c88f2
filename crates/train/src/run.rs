//! A resumable run: everything an interrupted training needs to go on as if it had never
//! stopped, saved and put back in one place, so that "resume equals uninterrupted" holds by
//! construction rather than by each app remembering seven steps.
//!
//! Gradient descent (course §3) carries state beyond the weights: the optimizer's buffers
//! (momentum, Adam's moments and step counts), the learning-rate schedule's progress, the
//! dropout masks still to be drawn, the step count and the history of epochs. A run's files,
//! beside `model.safetensors`:
//!
//! | file | holds |
//! |---|---|
//! | `model.safetensors` | the weights; metadata: the app's recipe, `epoch`, `global_step`, the schedules' progress (`schedule.*`), the dropout generators (`random_states`) |
//! | `model.optimizer.safetensors` | the optimizer's state (one file per optimizer: `model.<name>.safetensors`) |
//! | `model.csv` | the history, one row per epoch |

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use dl_nn::{Checkpoint, Layer, VarStore};
use dl_optim::{
    restore_schedule, schedule_state_metadata, LearningRateSchedule, ScheduleSpec, SCHEDULE_KEY,
};

use crate::{History, StepOptimizerMut, TrainingContext, TrainingError, TrainingResult};

/// The metadata key of the last finished epoch.
pub const EPOCH_KEY: &str = "epoch";
/// The metadata key of the optimizer steps taken.
pub const GLOBAL_STEP_KEY: &str = "global_step";

/// Where the state of the optimizer called `name` is kept beside `checkpoint`:
/// `model.safetensors` → `model.<name>.safetensors` (`model.optimizer.safetensors` for a
/// supervised step's one optimizer).
pub fn optimizer_state_file(checkpoint: &Path, name: &str) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    checkpoint.with_file_name(format!("{stem}.{name}.safetensors"))
}

/// Where the supervised step's optimizer state of `checkpoint` is kept:
/// `model.safetensors` → `model.optimizer.safetensors`.
pub fn optimizer_state_path(checkpoint: &Path) -> PathBuf {
    optimizer_state_file(checkpoint, crate::OPTIMIZER_NAME)
}

/// The metadata prefix of the optimizer called `name`'s schedule: none for the first, else
/// `<name>.` (so a GAN's two schedules keep apart).
fn schedule_prefix(index: usize, name: &str) -> String {
    if index == 0 {
        String::new()
    } else {
        format!("{name}.")
    }
}

/// A run put back from its files: what the trainer continues from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// The epochs trained so far.
    pub history: History,
    /// The optimizer steps taken so far.
    pub global_step: usize,
    /// Lines to show the person resuming: a schedule that starts over, say.
    pub notices: Vec<String>,
}

impl Resumed {
    /// The last finished epoch (0 for none).
    pub fn epoch(&self) -> usize {
        self.history.last().map_or(0, |record| record.epoch)
    }
}

/// A training run's files, named after its checkpoint; see the module documentation.
///
/// ```no_run
/// # use dl_train::Run;
/// let run = Run::new("checkpoints/model.safetensors");
/// assert_eq!(run.history_path(), std::path::Path::new("checkpoints/model.csv"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    checkpoint: PathBuf,
}

impl Run {
    /// The run whose checkpoint is `checkpoint`.
    pub fn new(checkpoint: impl Into<PathBuf>) -> Self {
        Self {
            checkpoint: checkpoint.into(),
        }
    }

    /// The checkpoint: weights and metadata.
    pub fn checkpoint_path(&self) -> &Path {
        &self.checkpoint
    }

    /// The history CSV: `model.safetensors` → `model.csv`.
    pub fn history_path(&self) -> PathBuf {
        self.checkpoint.with_extension("csv")
    }

    /// The learning curves: `model.safetensors` → `model.png`.
    pub fn plot_path(&self) -> PathBuf {
        self.checkpoint.with_extension("png")
    }

    /// The state file of the optimizer called `name` (see [`optimizer_state_file`]).
    pub fn optimizer_state_path(&self, name: &str) -> PathBuf {
        optimizer_state_file(&self.checkpoint, name)
    }

    /// Saves the run: the weights with `metadata` plus the epoch, the step count, every
    /// schedule's progress and the dropout generators; every optimizer's state; the history.
    pub fn save(
        &self,
        context: &TrainingContext<'_>,
        metadata: &BTreeMap<String, String>,
    ) -> TrainingResult<()> {
        let mut metadata = metadata.clone();
        metadata.insert(
            EPOCH_KEY.into(),
            context
                .history
                .last()
                .map_or(0, |record| record.epoch)
                .to_string(),
        );
        metadata.insert(GLOBAL_STEP_KEY.into(), context.global_step.to_string());
        for (index, entry) in context.optimizers.iter().enumerate() {
            if let Some(schedule) = entry.schedule {
                let prefix = schedule_prefix(index, entry.name);
                metadata.extend(
                    schedule_state_metadata(schedule)
                        .into_iter()
                        .map(|(key, value)| (format!("{prefix}{key}"), value)),
                );
            }
        }
        metadata.extend(dl_nn::random_states_metadata(context.model));
        dl_nn::save_checkpoint(&self.checkpoint, context.store, &metadata)?;
        for entry in &context.optimizers {
            entry
                .optimizer
                .save_state_file(&self.optimizer_state_path(entry.name))?;
        }
        context.history.write_csv(&self.history_path())
    }

    /// Reads the checkpoint to resume from: its metadata says how to rebuild the model.
    pub fn open(&self) -> TrainingResult<Checkpoint> {
        Ok(Checkpoint::load(&self.checkpoint)?)
    }

    /// The run to resume and its checkpoint, when a `--resume` path was given.
    pub fn open_resumed(path: Option<PathBuf>) -> TrainingResult<Option<(Self, Checkpoint)>> {
        path.map(|path| {
            let run = Self::new(path);
            let checkpoint = run.open()?;
            Ok((run, checkpoint))
        })
        .transpose()
    }

    /// Puts the run back into a freshly built model: the weights, the dropout generators, every
    /// optimizer's state, the schedules (continued when they were built from the same
    /// `schedule_spec` as the saved run's, restarted with a notice otherwise), and returns the
    /// history and step count for [`Trainer::resume`](crate::Trainer::resume).
    pub fn restore(
        &self,
        checkpoint: &Checkpoint,
        model: &dyn Layer,
        store: &VarStore,
        optimizers: Vec<StepOptimizerMut<'_>>,
        schedule_spec: Option<&ScheduleSpec>,
    ) -> TrainingResult<Resumed> {
        let path = &self.checkpoint;
        let resuming = |what: String| {
            move |source: Box<dyn std::error::Error + Send + Sync>| TrainingError::Resume {
                checkpoint: path.clone(),
                what,
                source,
            }
        };
        checkpoint.restore_into(path, store)?;
        // Dropout continues with the masks the uninterrupted run would have drawn.
        dl_nn::restore_random_states(model, &checkpoint.metadata)
            .map_err(|error| resuming("the dropout generators".into())(Box::new(error)))?;
        let mut notices = Vec::new();
        for (index, entry) in optimizers.into_iter().enumerate() {
            let state_path = self.optimizer_state_path(entry.name);
            entry
                .optimizer
                .load_state_file(&state_path)
                .map_err(|error| {
                    resuming(format!(
                        "it needs the optimizer state saved beside it, {}",
                        state_path.display()
                    ))(Box::new(error))
                })?;
            if let (Some(schedule), Some(spec)) = (entry.schedule, schedule_spec) {
                if let Some(notice) = restore_prefixed_schedule(
                    schedule,
                    spec,
                    &checkpoint.metadata,
                    &schedule_prefix(index, entry.name),
                )
                .map_err(|error| resuming("the learning-rate schedule".into())(Box::new(error)))?
                {
                    notices.push(format!("{} {notice}", path.display()));
                }
            }
        }
        let history_path = self.history_path();
        let history = History::read_csv(&history_path).map_err(|error| {
            resuming(format!(
                "it needs the history saved beside it, {}",
                history_path.display()
            ))(Box::new(error))
        })?;
        let global_step = checkpoint
            .metadata
            .get(GLOBAL_STEP_KEY)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        Ok(Resumed {
            history,
            global_step,
            notices,
        })
    }
}

/// [`restore_schedule`] on the metadata entries under `prefix` (with the prefix removed);
/// returns the notice to show when the schedule starts over.
fn restore_prefixed_schedule(
    schedule: &mut dyn LearningRateSchedule,
    spec: &ScheduleSpec,
    metadata: &BTreeMap<String, String>,
    prefix: &str,
) -> dl_optim::Result<Option<String>> {
    let own: BTreeMap<String, String> = metadata
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(prefix)?.to_string(), value.clone())))
        .filter(|(key, _)| key == SCHEDULE_KEY || key.starts_with("schedule."))
        .collect();
    Ok(restore_schedule(schedule, spec, &own)?.notice(spec))
}
