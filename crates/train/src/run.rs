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
//! | `model.safetensors` | the weights; metadata: the app's recipe, `epoch`, `global_step`, the schedules' progress (`schedule.*`), the dropout generators (`random_states`), and the SHA-256 of each file below (`run_files`) |
//! | `model.optimizer.safetensors` | the optimizer's state (one file per optimizer: `model.<name>.safetensors`) |
//! | `model.csv` | the history, one row per epoch |
//!
//! The files commit together. A save writes the companions (optimizer states, history) under
//! staged names (`.model.csv.staged`), then the checkpoint — the commit point, naming the
//! companions' digests — then renames the staged files into place. Whatever interrupts it (a
//! kill, a full disk), the files on disk are the previous complete set or the new one: before
//! the checkpoint's rename the previous set is untouched; after it, [`Run::restore`] finishes
//! the renames. A companion that does not match its digest (a torn or mixed set) is refused,
//! naming the file, instead of resuming into a run that differs from the uninterrupted one.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use dl_nn::{Checkpoint, Layer, VarStore};
use dl_optim::{
    restore_schedule, schedule_state_metadata, LearningRateSchedule, ScheduleSpec, SCHEDULE_KEY,
};
use dl_tensor::{remove_stale_temporaries, rename_durably, write_atomically};
use sha2::{Digest, Sha256};

use crate::{History, StepOptimizerMut, TrainingContext, TrainingError, TrainingResult};

/// The metadata key of the run's companion files and their SHA-256 digests (a JSON object,
/// file name after the checkpoint's stem → hex digest: `{"csv": …, "optimizer.safetensors": …}`
/// for `model.csv` and `model.optimizer.safetensors`; without the stem, so that the same run
/// saved under two names writes the same bytes).
pub const RUN_FILES_KEY: &str = "run_files";

/// The hex SHA-256 of `bytes`.
fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The digest a checkpoint records of its history: of the CSV without the timing columns
/// (`seconds`, `examples_per_second`), so that a run and its resumed twin, identical in all they
/// computed, record the same digest and write the same checkpoint bytes.
fn history_digest(csv: &str) -> String {
    let without_timings: Vec<String> = csv
        .lines()
        .map(|line| {
            line.split(',')
                .enumerate()
                .filter(|(column, _)| !matches!(column, 6 | 7))
                .map(|(_, cell)| cell)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    digest(without_timings.join("\n").as_bytes())
}

/// The digest a checkpoint records of the companion `path` with contents `bytes`.
fn companion_digest(path: &Path, bytes: &[u8]) -> String {
    if path.extension().is_some_and(|extension| extension == "csv") {
        history_digest(&String::from_utf8_lossy(bytes))
    } else {
        digest(bytes)
    }
}

/// Where a companion waits between its write and the checkpoint's commit:
/// `dir/model.csv` → `dir/.model.csv.staged`.
fn staged_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.staged"))
}

/// The file name of `path`.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The stem of a checkpoint's file name: `model` for `model.safetensors`.
fn stem(checkpoint: &Path) -> String {
    checkpoint
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into())
}

/// A file error of writing a run.
fn write_error(path: &Path, error: impl std::fmt::Display) -> TrainingError {
    TrainingError::File {
        path: path.to_path_buf(),
        problem: format!("cannot write it: {error}"),
    }
}

/// The metadata key of a run's training settings (a JSON object the program defines; both
/// apps record at least `seed`).
pub const TRAINING_KEY: &str = "training";

/// The metadata entry of a run's training settings: `settings` (the program's own struct) as
/// JSON under [`TRAINING_KEY`].
pub fn training_metadata(
    settings: &impl serde::Serialize,
) -> TrainingResult<BTreeMap<String, String>> {
    let json = serde_json::to_string(settings).map_err(|error| {
        TrainingError::Config(format!("cannot encode the training settings: {error}"))
    })?;
    Ok(BTreeMap::from([(TRAINING_KEY.to_string(), json)]))
}

/// The seed a checkpoint's run was trained with: `training.seed`, or the `seed` entry of an
/// older checkpoint.
pub fn recorded_seed(metadata: &BTreeMap<String, String>) -> Option<u64> {
    match metadata.get(TRAINING_KEY) {
        Some(json) => serde_json::from_str::<serde_json::Value>(json)
            .ok()?
            .get("seed")?
            .as_u64(),
        None => metadata.get("seed")?.parse().ok(),
    }
}

/// The metadata key of the last finished epoch.
pub const EPOCH_KEY: &str = "epoch";
/// The metadata key of the optimizer steps taken.
pub const GLOBAL_STEP_KEY: &str = "global_step";

/// Where the state of the optimizer called `name` is kept beside `checkpoint`:
/// `model.safetensors` → `model.<name>.safetensors` (`model.optimizer.safetensors` for a
/// supervised step's one optimizer).
pub fn optimizer_state_file(checkpoint: &Path, name: &str) -> PathBuf {
    checkpoint.with_file_name(format!("{}.{name}.safetensors", stem(checkpoint)))
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
    /// schedule's progress and the dropout generators; every optimizer's state; the history —
    /// committed together (see the module documentation).
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
        let mut companions = Vec::new();
        for (index, entry) in context.optimizers.iter().enumerate() {
            if let Some(schedule) = entry.schedule {
                let prefix = schedule_prefix(index, entry.name);
                metadata.extend(
                    schedule_state_metadata(schedule)
                        .into_iter()
                        .map(|(key, value)| (format!("{prefix}{key}"), value)),
                );
            }
            let path = self.optimizer_state_path(entry.name);
            let bytes =
                entry
                    .optimizer
                    .state()?
                    .to_bytes()
                    .map_err(|error| TrainingError::File {
                        path: path.clone(),
                        problem: format!("cannot encode the optimizer state: {error}"),
                    })?;
            companions.push((path, bytes));
        }
        companions.push((self.history_path(), context.history.to_csv().into_bytes()));
        metadata.extend(dl_nn::random_states_metadata(context.model));

        // 1. The companions, under staged names; the previous set is untouched.
        let mut digests = serde_json::Map::new();
        for (path, bytes) in &companions {
            remove_stale_temporaries(path);
            let staged = staged_path(path);
            remove_stale_temporaries(&staged);
            write_atomically(&staged, bytes).map_err(|error| write_error(&staged, error))?;
            let suffix = file_name(path)
                .strip_prefix(&format!("{}.", stem(&self.checkpoint)))
                .map(str::to_string)
                .unwrap_or_else(|| file_name(path));
            digests.insert(suffix, companion_digest(path, bytes).into());
        }
        // 2. The commit point: the checkpoint, naming the companions it goes with.
        metadata.insert(
            RUN_FILES_KEY.into(),
            serde_json::Value::Object(digests).to_string(),
        );
        remove_stale_temporaries(&self.checkpoint);
        dl_nn::save_checkpoint(&self.checkpoint, context.store, &metadata)?;
        // 3. The companions into place.
        for (path, _) in &companions {
            rename_durably(&staged_path(path), path).map_err(|error| write_error(path, error))?;
        }
        Ok(())
    }

    /// Checks that the checkpoint's companions are the ones it was saved with, finishing a save
    /// that was interrupted after its commit point (renaming staged files into place) and
    /// removing what an uncommitted save left. A checkpoint from before digests were recorded
    /// is taken as it is.
    fn settle(&self, checkpoint: &Checkpoint) -> TrainingResult<()> {
        let torn = |problem: String| TrainingError::TornRun {
            checkpoint: self.checkpoint.clone(),
            problem,
        };
        let Some(recorded) = checkpoint.metadata.get(RUN_FILES_KEY) else {
            return Ok(());
        };
        let recorded: BTreeMap<String, String> =
            serde_json::from_str(recorded).map_err(|error| {
                torn(format!(
                    "its '{RUN_FILES_KEY}' entry cannot be read ({error})"
                ))
            })?;
        for (suffix, expected) in &recorded {
            if suffix.is_empty() || suffix.contains(['/', '\\']) {
                return Err(torn(format!(
                    "its '{RUN_FILES_KEY}' entry names '{suffix}', which is not a file beside it"
                )));
            }
            let name = format!("{}.{suffix}", stem(&self.checkpoint));
            let path = self.checkpoint.with_file_name(&name);
            remove_stale_temporaries(&path);
            let staged = staged_path(&path);
            if let Ok(bytes) = std::fs::read(&staged) {
                if companion_digest(&path, &bytes) == *expected {
                    rename_durably(&staged, &path).map_err(|error| write_error(&path, error))?;
                } else {
                    // Left by a save that never reached its commit point.
                    let _ = std::fs::remove_file(&staged);
                }
            }
            let bytes = std::fs::read(&path).map_err(|error| {
                torn(format!("{name}, saved with it, cannot be read ({error})"))
            })?;
            if companion_digest(&path, &bytes) != *expected {
                return Err(torn(format!(
                    "{name} is not the file saved with it (its contents changed since: an interrupted save, or a file from another run)"
                )));
            }
        }
        Ok(())
    }

    /// Checks before training that the run's files can be written where they are asked for:
    /// the checkpoint's name ends in `.safetensors`; none of its files (`optimizers` names the
    /// step's optimizers) is one of the `inputs`; any that exists already is one of ours (a
    /// checkpoint, optimizer state or history of this project, or a plot beside one of our
    /// checkpoints); and the directory takes a file.
    pub fn check_outputs(&self, optimizers: &[&str], inputs: &[&Path]) -> TrainingResult<()> {
        let refuse = |path: &Path, problem: String| TrainingError::Output {
            path: path.to_path_buf(),
            problem,
        };
        if self
            .checkpoint
            .extension()
            .and_then(|extension| extension.to_str())
            != Some("safetensors")
        {
            return Err(refuse(
                &self.checkpoint,
                "a checkpoint's name must end in .safetensors (its history .csv, plot .png and optimizer state .optimizer.safetensors are written beside it); pick another --out".into(),
            ));
        }
        let mut outputs = vec![
            self.checkpoint.clone(),
            self.history_path(),
            self.plot_path(),
        ];
        outputs.extend(
            optimizers
                .iter()
                .map(|name| self.optimizer_state_path(name)),
        );
        let same_file = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        for output in &outputs {
            if let Some(input) = inputs.iter().find(|input| same_file(output, input)) {
                return Err(refuse(
                    output,
                    format!(
                        "training would overwrite its input {} here; pick another --out",
                        input.display()
                    ),
                ));
            }
        }
        let checkpoint_is_ours = !self.checkpoint.exists() || is_our_checkpoint(&self.checkpoint);
        for output in outputs.iter().filter(|output| output.exists()) {
            let ours = if *output == self.checkpoint {
                is_our_checkpoint(output)
            } else if *output == self.history_path() {
                std::fs::read_to_string(output)
                    .is_ok_and(|text| text.starts_with(crate::CSV_HEADER))
            } else if *output == self.plot_path() {
                checkpoint_is_ours && self.checkpoint.exists()
            } else {
                dl_optim::OptimizerState::load(output).is_ok()
            };
            if !ours {
                return Err(refuse(
                    output,
                    "exists and is not a file this program wrote; it is left alone: move it, or pick another --out".into(),
                ));
            }
        }
        let probe = self
            .checkpoint
            .with_file_name(format!(".{}.probe", file_name(&self.checkpoint)));
        write_atomically(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|error| {
                refuse(
                    &self.checkpoint,
                    format!("cannot write there ({error}); pick a writable --out"),
                )
            })
    }

    /// Reads the checkpoint to resume from: its metadata says how to rebuild the model.
    pub fn open(&self) -> TrainingResult<Checkpoint> {
        Ok(Checkpoint::load(&self.checkpoint)?)
    }

    /// The seed a resumed run continues with: `given` (a `--seed`), else the one `checkpoint`
    /// was trained with (see [`recorded_seed`]); and a notice when `given` differs from it, since
    /// the batches and dropout masks then differ from the uninterrupted run's.
    pub fn seed_to_continue(
        &self,
        checkpoint: &Checkpoint,
        given: Option<u64>,
    ) -> (Option<u64>, Option<String>) {
        let Some(recorded) = recorded_seed(&checkpoint.metadata) else {
            return (given, None);
        };
        match given {
            None => (Some(recorded), None),
            Some(given) if given != recorded => (
                Some(given),
                Some(format!(
                    "{} was trained with seed {recorded}; --seed {given} shuffles and drops out differently from here on",
                    self.checkpoint.display()
                )),
            ),
            Some(given) => (Some(given), None),
        }
    }

    /// The run to resume and its checkpoint, when a `--resume` path was given; `seed` (a
    /// `--seed`, if any) becomes the seed to continue with (see [`Run::seed_to_continue`]; a
    /// different one given is said on standard output).
    pub fn open_resumed(
        path: Option<PathBuf>,
        seed: &mut Option<u64>,
    ) -> TrainingResult<Option<(Self, Checkpoint)>> {
        let Some(path) = path else {
            return Ok(None);
        };
        let run = Self::new(path);
        let checkpoint = run.open()?;
        let (continued, notice) = run.seed_to_continue(&checkpoint, *seed);
        *seed = continued;
        if let Some(notice) = notice {
            println!("{notice}");
        }
        Ok(Some((run, checkpoint)))
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
        self.settle(checkpoint)?;
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

/// Whether `path` is a checkpoint this project wrote (its metadata has a recipe, or the program
/// name older checkpoints carried, or run files).
fn is_our_checkpoint(path: &Path) -> bool {
    Checkpoint::load(path).is_ok_and(|checkpoint| {
        ["recipe", "app", RUN_FILES_KEY]
            .iter()
            .any(|key| checkpoint.metadata.contains_key(*key))
    })
}
