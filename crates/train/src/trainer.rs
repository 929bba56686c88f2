//! The training loop (course §3.1: gradient descent, repeated): for each epoch, for each batch,
//! one training step; then validation, the history row, callbacks and the progress line.
//!
//! The loop knows nothing about where batches come from: `fit` takes a function that returns
//! the batches of an epoch (any iterator of `(inputs, targets)` pairs, or of `Result`s of
//! them), so a Vec of tensors, a dl-data loader or a generator all work. Nor does it know what
//! a step does: [`Trainer::fit`] runs the course's supervised step, [`Trainer::fit_step`] any
//! [`TrainStep`] (a GAN's, a search trial's).

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use dl_nn::{Layer, Loss, VarStore};
use dl_optim::{LearningRateSchedule, Optimizer};
use dl_tensor::Tensor;

use crate::supervised::{SupervisedSettings, SupervisedStep};
use crate::{
    Callback, Control, EpochProgress, EpochRecord, Evaluation, History, IntoBatch, ProgressMode,
    Resumed, StepOutput, TrainStep, TrainingContext, TrainingError, TrainingResult,
};

/// Where an epoch's batches come from: any `FnMut(epoch) -> batches` (epochs count from 1),
/// the batches being an iterator of `(inputs, targets)` pairs or of `Result`s of them. (The
/// public methods spell the closure bounds out, so that closures' argument types are inferred.)
pub trait EpochBatches {
    /// One batch.
    type Batch: IntoBatch;
    /// The batches of an epoch.
    type Batches: Iterator<Item = Self::Batch>;

    /// The batches of epoch `epoch`.
    fn epoch(&mut self, epoch: usize) -> Self::Batches;
}

impl<F, I> EpochBatches for F
where
    F: FnMut(usize) -> I,
    I: IntoIterator,
    I::Item: IntoBatch,
{
    type Batch = I::Item;
    type Batches = I::IntoIter;

    fn epoch(&mut self, epoch: usize) -> Self::Batches {
        self(epoch).into_iter()
    }
}

/// No validation batches, for [`Trainer::fit_step`] without validation.
pub type NoValidation = fn(usize) -> Vec<(Tensor, Tensor)>;

/// Running sums of one pass over batches.
#[derive(Default)]
pub(crate) struct Totals {
    loss_sum: f64,
    targets: usize,
    correct: usize,
    classified: bool,
    examples: usize,
    metric_sums: BTreeMap<&'static str, f64>,
}

impl Totals {
    pub(crate) fn add(&mut self, output: &StepOutput) {
        self.loss_sum += output.loss * output.targets as f64;
        self.targets += output.targets;
        self.examples += output.examples;
        if let Some(correct) = output.correct {
            self.classified = true;
            self.correct += correct;
        }
        for (name, value) in &output.metrics {
            *self.metric_sums.entry(name).or_default() += value * output.examples as f64;
        }
    }

    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.targets.max(1) as f64
    }

    fn accuracy(&self) -> Option<f64> {
        self.classified
            .then(|| self.correct as f64 / self.targets.max(1) as f64)
    }

    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let examples = self.examples.max(1) as f64;
        self.metric_sums
            .iter()
            .map(|(name, sum)| (*name, sum / examples))
            .collect()
    }

    pub(crate) fn evaluation(&self) -> Evaluation {
        Evaluation {
            loss: self.mean_loss(),
            accuracy: self.accuracy(),
            targets: self.targets,
        }
    }
}

/// Trains a model with an optimizer, a loss and callbacks; see the module documentation.
///
/// ```
/// use dl_nn::{Activation, Loss, Sequential, VarStore};
/// use dl_optim::{Adam, AdamConfig};
/// use dl_tensor::{DType, Device, Tensor};
/// use dl_train::{ProgressMode, Trainer};
///
/// // Learn y = 2x + 1 with one Dense unit.
/// let store = VarStore::new(&Device::Cpu, DType::F32, 0);
/// let model = Sequential::builder(&store.root(), &[1]).dense(1, Activation::Identity)?.build();
/// let x = Tensor::new(&[[0f32], [1.0], [2.0], [3.0]], &Device::Cpu)?;
/// let y = Tensor::new(&[[1f32], [3.0], [5.0], [7.0]], &Device::Cpu)?;
/// let mut trainer = Trainer::new(Box::new(Adam::new(AdamConfig::default().learning_rate(0.1))?))
///     .loss(Loss::MeanSquaredError)
///     .epochs(300)
///     .progress(ProgressMode::Quiet);
/// let history = trainer.fit(&model, &store, |_epoch| vec![(x.clone(), y.clone())])?;
/// assert!(history.last().unwrap().train_loss < 1e-3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer {
    supervised: Option<SupervisedSettings>,
    epochs: usize,
    history: History,
    callbacks: Vec<Box<dyn Callback>>,
    history_path: Option<PathBuf>,
    progress: ProgressMode,
    global_step: usize,
}

impl Default for Trainer {
    /// A trainer for [`Trainer::fit_step`], whose step brings its own optimizers: 1 epoch,
    /// automatic progress output.
    fn default() -> Self {
        Self {
            supervised: None,
            epochs: 1,
            history: History::default(),
            callbacks: Vec::new(),
            history_path: None,
            progress: ProgressMode::Auto,
            global_step: 0,
        }
    }
}

impl Trainer {
    /// A trainer of the supervised step with cross-entropy loss, 1 epoch and automatic
    /// progress output.
    pub fn new(optimizer: Box<dyn Optimizer>) -> Self {
        Self {
            supervised: Some(SupervisedSettings {
                optimizer,
                loss: Loss::CrossEntropy,
                clip_norm: None,
                clip_value: None,
                schedule: None,
            }),
            ..Self::default()
        }
    }

    /// Changes a supervised setting (no-op for a trainer made with [`Trainer::default`]).
    fn supervised_setting(mut self, change: impl FnOnce(&mut SupervisedSettings)) -> Self {
        if let Some(settings) = self.supervised.as_mut() {
            change(settings);
        }
        self
    }

    /// The loss to minimise (from the model's logits).
    pub fn loss(self, loss: Loss) -> Self {
        self.supervised_setting(|settings| settings.loss = loss)
    }

    /// The epoch number to train up to (counting epochs already in a resumed history).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Continues a previous run: its history is kept and epochs are numbered after it.
    pub fn resume_from(mut self, history: History, global_step: usize) -> Self {
        self.history = history;
        self.global_step = global_step;
        self
    }

    /// Continues a run put back by [`Run::restore`](crate::Run::restore).
    pub fn resume(self, resumed: &Resumed) -> Self {
        self.resume_from(resumed.history.clone(), resumed.global_step)
    }

    /// Rescales gradients so that their global norm is at most `max_norm` before each step.
    pub fn clip_norm(self, max_norm: f64) -> Self {
        self.supervised_setting(|settings| settings.clip_norm = Some(max_norm))
    }

    /// Clips every gradient element to `[-limit, limit]` before each step.
    pub fn clip_value(self, limit: f64) -> Self {
        self.supervised_setting(|settings| settings.clip_value = Some(limit))
    }

    /// Adds a callback (early stopping, checkpointing, or your own).
    pub fn callback(mut self, callback: Box<dyn Callback>) -> Self {
        self.callbacks.push(callback);
        self
    }

    /// Writes the history as CSV to `path` after every epoch.
    pub fn history_csv(mut self, path: impl Into<PathBuf>) -> Self {
        self.history_path = Some(path.into());
        self
    }

    /// How progress is shown.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }

    /// Drives the optimizer's learning rate by `schedule`: set before every step, advanced
    /// after every step and every epoch (plateau schedules watch the monitored loss).
    pub fn schedule(self, schedule: Box<dyn LearningRateSchedule>) -> Self {
        self.supervised_setting(|settings| settings.schedule = Some(schedule))
    }

    /// The supervised step's schedule, e.g. to save its state.
    pub fn learning_rate_schedule(&self) -> Option<&dyn LearningRateSchedule> {
        self.supervised.as_ref()?.schedule.as_deref()
    }

    /// The supervised step's optimizer, e.g. to read its learning rate.
    pub fn optimizer(&self) -> Option<&dyn Optimizer> {
        Some(self.supervised.as_ref()?.optimizer.as_ref())
    }

    /// Optimizer steps taken so far (including a resumed run's).
    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// The history so far (a resumed run's epochs included).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// What a callback or [`Run::save`](crate::Run::save) sees of the supervised run: the
    /// model, its variables, the optimizer and schedule, the history and the step count.
    pub fn context<'a>(&'a self, model: &'a dyn Layer, store: &'a VarStore) -> TrainingContext<'a> {
        TrainingContext {
            model,
            store,
            optimizers: self
                .supervised
                .as_ref()
                .map(SupervisedSettings::optimizers)
                .unwrap_or_default(),
            history: &self.history,
            global_step: self.global_step,
        }
    }

    /// What a callback or [`Run::save`](crate::Run::save) sees of a run of `step` (see
    /// [`Trainer::fit_step`]).
    pub fn step_context<'a, S: TrainStep + ?Sized>(
        &'a self,
        step: &'a S,
        model: &'a dyn Layer,
        store: &'a VarStore,
    ) -> TrainingContext<'a> {
        context(model, store, step, &self.history, self.global_step)
    }

    /// Puts a saved run back into the supervised step's optimizer and schedule (and the model's
    /// weights and dropout generators), then continues its history: resuming in one call.
    pub fn restore(
        mut self,
        run: &crate::Run,
        checkpoint: &dl_nn::Checkpoint,
        model: &dyn Layer,
        store: &VarStore,
        schedule_spec: Option<&dl_optim::ScheduleSpec>,
    ) -> TrainingResult<(Self, Resumed)> {
        let optimizers = self
            .supervised
            .as_mut()
            .map(SupervisedSettings::optimizers_mut)
            .unwrap_or_default();
        let resumed = run.restore(checkpoint, model, store, optimizers, schedule_spec)?;
        self = self.resume(&resumed);
        Ok((self, resumed))
    }

    /// Trains without validation data.
    pub fn fit<I: IntoIterator<Item: IntoBatch>>(
        &mut self,
        model: &dyn Layer,
        store: &VarStore,
        train: impl FnMut(usize) -> I,
    ) -> TrainingResult<History> {
        self.fit_supervised(model, store, train, None::<NoValidation>)
    }

    /// Trains and evaluates on the validation batches after every epoch.
    pub fn fit_with_validation<
        I: IntoIterator<Item: IntoBatch>,
        J: IntoIterator<Item: IntoBatch>,
    >(
        &mut self,
        model: &dyn Layer,
        store: &VarStore,
        train: impl FnMut(usize) -> I,
        validation: impl FnMut(usize) -> J,
    ) -> TrainingResult<History> {
        self.fit_supervised(model, store, train, Some(validation))
    }

    fn fit_supervised<T: EpochBatches, V: EpochBatches>(
        &mut self,
        model: &dyn Layer,
        store: &VarStore,
        train: T,
        validation: Option<V>,
    ) -> TrainingResult<History> {
        let variables = store.trainable_variables();
        if variables.is_empty() {
            return Err(TrainingError::Config(
                "the model has no trainable parameters".into(),
            ));
        }
        let Some(settings) = self.supervised.take() else {
            return Err(TrainingError::Config(
                "fit needs a trainer made with Trainer::new(optimizer); use fit_step for a step with its own optimizers".into(),
            ));
        };
        let mut settings = settings;
        let mut step = SupervisedStep {
            model,
            variables,
            settings: &mut settings,
        };
        let result = self.run_epochs(&mut step, model, store, train, validation);
        self.supervised = Some(settings);
        result
    }

    fn last_checkpoint(&self) -> Option<PathBuf> {
        self.callbacks
            .iter()
            .filter_map(|callback| callback.last_checkpoint())
            .next_back()
    }

    /// Trains with any [`TrainStep`]: the step trains on each batch and `model` / `store` are
    /// what callbacks and checkpoints see (the step's networks, their variables). Validation
    /// batches, when given, go through [`TrainStep::validate`] after every epoch.
    pub fn fit_step<I: IntoIterator<Item: IntoBatch>, J: IntoIterator<Item: IntoBatch>>(
        &mut self,
        step: &mut (impl TrainStep + ?Sized),
        model: &dyn Layer,
        store: &VarStore,
        train: impl FnMut(usize) -> I,
        validation: Option<impl FnMut(usize) -> J>,
    ) -> TrainingResult<History> {
        self.run_epochs(step, model, store, train, validation)
    }

    /// The loop of [`Trainer::fit_step`].
    fn run_epochs<S, T, V>(
        &mut self,
        step: &mut S,
        model: &dyn Layer,
        store: &VarStore,
        mut train: T,
        mut validation: Option<V>,
    ) -> TrainingResult<History>
    where
        S: TrainStep + ?Sized,
        T: EpochBatches,
        V: EpochBatches,
    {
        let first_epoch = self.history.last().map_or(1, |record| record.epoch + 1);
        for epoch in first_epoch..=self.epochs {
            let started = Instant::now();
            let batches = train.epoch(epoch);
            let (low, high) = batches.size_hint();
            let known_length = (Some(low) == high).then_some(low);
            let mut progress =
                EpochProgress::start(self.progress, epoch, self.epochs, known_length);
            let mut totals = Totals::default();
            for (index, batch) in batches.enumerate() {
                let batch_number = index + 1;
                let (inputs, targets) =
                    batch.into_batch().map_err(|source| TrainingError::Data {
                        epoch,
                        batch: batch_number,
                        source,
                    })?;
                let output = step.train(&inputs, &targets)?;
                if !output.loss.is_finite() {
                    return Err(TrainingError::NonFiniteLoss {
                        epoch,
                        batch: batch_number,
                        value: output.loss,
                        last_good_checkpoint: self.last_checkpoint(),
                    });
                }
                self.global_step += 1;
                totals.add(&output);
                progress.update(
                    batch_number,
                    totals.examples,
                    totals.mean_loss(),
                    totals.accuracy(),
                    &totals.metrics(),
                );
            }
            if totals.targets == 0 {
                return Err(TrainingError::NoBatches { epoch });
            }
            let training_seconds = started.elapsed().as_secs_f64();
            let validation_result = match validation.as_mut() {
                Some(source) => Some(validate(step, source.epoch(epoch))?),
                None => None,
            };
            let record = EpochRecord {
                epoch,
                train_loss: totals.mean_loss(),
                train_accuracy: totals.accuracy(),
                validation_loss: validation_result.map(|result| result.loss),
                validation_accuracy: validation_result.and_then(|result| result.accuracy),
                learning_rate: step.learning_rate(),
                seconds: started.elapsed().as_secs_f64(),
                examples_per_second: totals.examples as f64 / training_seconds.max(1e-9),
                metrics: totals
                    .metrics()
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value))
                    .collect(),
            };
            if let Some(loss) = record.validation_loss.filter(|loss| !loss.is_finite()) {
                return Err(TrainingError::NonFiniteLoss {
                    epoch,
                    batch: 0,
                    value: loss,
                    last_good_checkpoint: self.last_checkpoint(),
                });
            }
            step.end_epoch(record.monitored_loss())?;
            progress.finish(&record);
            self.history.epochs.push(record.clone());
            if let Some(path) = &self.history_path {
                self.history.write_csv(path)?;
            }
            let context = context(model, store, step, &self.history, self.global_step);
            let mut stop = false;
            for callback in &mut self.callbacks {
                stop |= callback.on_epoch_end(&context)? == Control::Stop;
            }
            if stop {
                break;
            }
        }
        let context = context(model, store, step, &self.history, self.global_step);
        for callback in &mut self.callbacks {
            callback.on_train_end(&context)?;
        }
        Ok(self.history.clone())
    }
}

/// What callbacks and checkpoints see of a run of `step`.
fn context<'a, S: TrainStep + ?Sized>(
    model: &'a dyn Layer,
    store: &'a VarStore,
    step: &'a S,
    history: &'a History,
    global_step: usize,
) -> TrainingContext<'a> {
    TrainingContext {
        model,
        store,
        optimizers: step.optimizers(),
        history,
        global_step,
    }
}

/// The step's validation over `batches`.
fn validate<S, J>(step: &mut S, batches: J) -> TrainingResult<Evaluation>
where
    S: TrainStep + ?Sized,
    J: IntoIterator,
    J::Item: IntoBatch,
{
    measure_batches(batches, |inputs, targets| step.validate(inputs, targets))
}

/// The totals of `measure` over `batches` (no training): validation and [`evaluate`](crate::evaluate).
pub(crate) fn measure_batches<J>(
    batches: J,
    mut measure: impl FnMut(&Tensor, &Tensor) -> TrainingResult<StepOutput>,
) -> TrainingResult<Evaluation>
where
    J: IntoIterator,
    J::Item: IntoBatch,
{
    let mut totals = Totals::default();
    for (index, batch) in batches.into_iter().enumerate() {
        let (inputs, targets) = batch.into_batch().map_err(|source| TrainingError::Data {
            epoch: 0,
            batch: index + 1,
            source,
        })?;
        totals.add(&measure(&inputs, &targets)?);
    }
    Ok(totals.evaluation())
}
