//! The training loop (course §3.1: gradient descent, repeated): for each epoch, for each batch,
//! forward pass → loss → backpropagation → optimizer step; then validation, the history row,
//! callbacks and the progress line.
//!
//! The loop knows nothing about where batches come from: `fit` takes a function that returns
//! the batches of an epoch (any iterator of `(inputs, targets)` pairs, or of `Result`s of
//! them), so a Vec of tensors, a dl-data loader or a generator all work.

use std::{path::PathBuf, time::Instant};

use dl_autograd::Gradients;
use dl_nn::{Layer, Loss, Mode, VarStore};
use dl_tensor::{DType, Tensor, D};

use super::{
    Callback, Control, EpochProgress, EpochRecord, History, ProgressMode, TrainingContext,
    TrainingError, TrainingResult,
};
use crate::{LearningRateSchedule, Optimizer};

/// Something that can be turned into one `(inputs, targets)` batch.
pub trait IntoBatch {
    /// The batch, or the data error that prevented it.
    fn into_batch(self) -> Result<(Tensor, Tensor), Box<dyn std::error::Error + Send + Sync>>;
}

impl IntoBatch for (Tensor, Tensor) {
    fn into_batch(self) -> Result<(Tensor, Tensor), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> IntoBatch for Result<(Tensor, Tensor), E> {
    fn into_batch(self) -> Result<(Tensor, Tensor), Box<dyn std::error::Error + Send + Sync>> {
        self.map_err(|error| Box::new(error) as _)
    }
}

/// Loss and accuracy of a model over a set of batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss per target element.
    pub loss: f64,
    /// Share of correct predictions, when the targets are class labels.
    pub accuracy: Option<f64>,
    /// Number of target elements seen (examples, or tokens for sequences).
    pub targets: usize,
}

/// Running sums of one pass over batches.
#[derive(Default)]
struct Totals {
    loss_sum: f64,
    targets: usize,
    correct: usize,
    classified: bool,
    examples: usize,
}

impl Totals {
    fn add(&mut self, loss: f64, logits: &Tensor, targets: &Tensor) -> TrainingResult<()> {
        let count = targets.elem_count();
        self.loss_sum += loss * count as f64;
        self.targets += count;
        self.examples += targets.dims().first().copied().unwrap_or(1);
        if is_classification(logits, targets) {
            self.classified = true;
            let predicted = logits.argmax(D::Minus1)?;
            let correct = predicted
                .eq(&targets.to_dtype(DType::U32)?)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?;
            self.correct += correct as usize;
        }
        Ok(())
    }

    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.targets.max(1) as f64
    }

    fn accuracy(&self) -> Option<f64> {
        self.classified
            .then(|| self.correct as f64 / self.targets.max(1) as f64)
    }
}

/// Logits `(..., classes)` against integer labels `(...)`.
fn is_classification(logits: &Tensor, targets: &Tensor) -> bool {
    !targets.dtype().is_float()
        && logits.rank() == targets.rank() + 1
        && logits.dims()[..targets.rank()] == *targets.dims()
}

fn scalar(loss: &Tensor) -> TrainingResult<f64> {
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Computes the loss and accuracy of `model` (in evaluation mode) over `batches`.
pub fn evaluate<I>(model: &dyn Layer, loss: Loss, batches: I) -> TrainingResult<Evaluation>
where
    I: IntoIterator,
    I::Item: IntoBatch,
{
    let mut totals = Totals::default();
    for (index, batch) in batches.into_iter().enumerate() {
        let (inputs, targets) = batch.into_batch().map_err(|source| TrainingError::Data {
            epoch: 0,
            batch: index + 1,
            source,
        })?;
        let logits = model.forward(&inputs, Mode::Eval)?;
        let value = scalar(&loss.compute(&logits, &targets)?)?;
        totals.add(value, &logits, &targets)?;
    }
    Ok(Evaluation {
        loss: totals.mean_loss(),
        accuracy: totals.accuracy(),
        targets: totals.targets,
    })
}

/// Trains a model with an optimizer, a loss and callbacks; see the module documentation.
///
/// ```
/// use dl_nn::{Activation, Loss, Sequential, VarStore};
/// use dl_optim::{Adam, AdamConfig, ProgressMode, Trainer};
/// use dl_tensor::{DType, Device, Tensor};
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
    optimizer: Box<dyn Optimizer>,
    loss: Loss,
    epochs: usize,
    history: History,
    clip_norm: Option<f64>,
    clip_value: Option<f64>,
    callbacks: Vec<Box<dyn Callback>>,
    history_path: Option<PathBuf>,
    progress: ProgressMode,
    schedule: Option<Box<dyn LearningRateSchedule>>,
    global_step: usize,
}

impl Trainer {
    /// A trainer with cross-entropy loss, 1 epoch and automatic progress output.
    pub fn new(optimizer: Box<dyn Optimizer>) -> Self {
        Self {
            optimizer,
            loss: Loss::CrossEntropy,
            epochs: 1,
            history: History::default(),
            clip_norm: None,
            clip_value: None,
            callbacks: Vec::new(),
            history_path: None,
            progress: ProgressMode::Auto,
            schedule: None,
            global_step: 0,
        }
    }

    /// The loss to minimise (from the model's logits).
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
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

    /// Rescales gradients so that their global norm is at most `max_norm` before each step.
    pub fn clip_norm(mut self, max_norm: f64) -> Self {
        self.clip_norm = Some(max_norm);
        self
    }

    /// Clips every gradient element to `[-limit, limit]` before each step.
    pub fn clip_value(mut self, limit: f64) -> Self {
        self.clip_value = Some(limit);
        self
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
    pub fn schedule(mut self, schedule: Box<dyn LearningRateSchedule>) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// The schedule, e.g. to save its state.
    pub fn learning_rate_schedule(&self) -> Option<&dyn LearningRateSchedule> {
        self.schedule.as_deref()
    }

    /// The optimizer, e.g. to save its state or read its learning rate.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// Optimizer steps taken so far (including a resumed run's).
    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// Trains without validation data.
    pub fn fit<T, I>(
        &mut self,
        model: &dyn Layer,
        store: &VarStore,
        train: T,
    ) -> TrainingResult<History>
    where
        T: FnMut(usize) -> I,
        I: IntoIterator,
        I::Item: IntoBatch,
    {
        self.run(
            model,
            store,
            train,
            None::<fn(usize) -> Vec<(Tensor, Tensor)>>,
        )
    }

    /// Trains and evaluates on the validation batches after every epoch.
    pub fn fit_with_validation<T, I, V, J>(
        &mut self,
        model: &dyn Layer,
        store: &VarStore,
        train: T,
        validation: V,
    ) -> TrainingResult<History>
    where
        T: FnMut(usize) -> I,
        I: IntoIterator,
        I::Item: IntoBatch,
        V: FnMut(usize) -> J,
        J: IntoIterator,
        J::Item: IntoBatch,
    {
        self.run(model, store, train, Some(validation))
    }

    fn last_checkpoint(&self) -> Option<PathBuf> {
        self.callbacks
            .iter()
            .filter_map(|callback| callback.last_checkpoint())
            .next_back()
    }

    fn run<T, I, V, J>(
        &mut self,
        model: &dyn Layer,
        store: &VarStore,
        mut train: T,
        mut validation: Option<V>,
    ) -> TrainingResult<History>
    where
        T: FnMut(usize) -> I,
        I: IntoIterator,
        I::Item: IntoBatch,
        V: FnMut(usize) -> J,
        J: IntoIterator,
        J::Item: IntoBatch,
    {
        let variables = store.trainable_variables();
        if variables.is_empty() {
            return Err(TrainingError::Config(
                "the model has no trainable parameters".into(),
            ));
        }
        let first_epoch = self.history.last().map_or(1, |record| record.epoch + 1);
        for epoch in first_epoch..=self.epochs {
            let started = Instant::now();
            let batches = train(epoch).into_iter();
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
                let logits = model.forward(&inputs, Mode::Train)?;
                let loss = self.loss.compute(&logits, &targets)?;
                let value = scalar(&loss)?;
                if !value.is_finite() {
                    return Err(TrainingError::NonFiniteLoss {
                        epoch,
                        batch: batch_number,
                        value,
                        last_good_checkpoint: self.last_checkpoint(),
                    });
                }
                let mut gradients = Gradients::compute(
                    &loss,
                    variables.iter().map(|(name, var)| (name.as_str(), var)),
                )?;
                if let Some(limit) = self.clip_value {
                    gradients.clip_by_value(limit)?;
                }
                if let Some(max_norm) = self.clip_norm {
                    gradients.clip_by_norm(max_norm)?;
                }
                if let Some(schedule) = &self.schedule {
                    self.optimizer.set_learning_rate(schedule.learning_rate());
                }
                self.optimizer.step(&gradients)?;
                self.global_step += 1;
                if let Some(schedule) = self.schedule.as_mut() {
                    schedule.after_step();
                }
                totals.add(value, &logits.detach(), &targets)?;
                progress.update(
                    batch_number,
                    totals.examples,
                    totals.mean_loss(),
                    totals.accuracy(),
                );
            }
            if totals.targets == 0 {
                return Err(TrainingError::NoBatches { epoch });
            }
            let training_seconds = started.elapsed().as_secs_f64();
            let validation_result = match validation.as_mut() {
                Some(source) => Some(evaluate(model, self.loss, source(epoch))?),
                None => None,
            };
            let record = EpochRecord {
                epoch,
                train_loss: totals.mean_loss(),
                train_accuracy: totals.accuracy(),
                validation_loss: validation_result.map(|result| result.loss),
                validation_accuracy: validation_result.and_then(|result| result.accuracy),
                learning_rate: self.optimizer.learning_rate(),
                seconds: started.elapsed().as_secs_f64(),
                examples_per_second: totals.examples as f64 / training_seconds.max(1e-9),
            };
            if let Some(loss) = record.validation_loss.filter(|loss| !loss.is_finite()) {
                return Err(TrainingError::NonFiniteLoss {
                    epoch,
                    batch: 0,
                    value: loss,
                    last_good_checkpoint: self.last_checkpoint(),
                });
            }
            if let Some(schedule) = self.schedule.as_mut() {
                schedule.after_epoch(Some(record.monitored_loss()))?;
                self.optimizer.set_learning_rate(schedule.learning_rate());
            }
            progress.finish(&record);
            self.history.epochs.push(record.clone());
            if let Some(path) = &self.history_path {
                self.history.write_csv(path)?;
            }
            let context = TrainingContext {
                model,
                store,
                optimizer: self.optimizer.as_ref(),
                schedule: self.schedule.as_deref(),
                history: &self.history,
                global_step: self.global_step,
            };
            let mut stop = false;
            for callback in &mut self.callbacks {
                stop |= callback.on_epoch_end(&record, &context)? == Control::Stop;
            }
            if stop {
                break;
            }
        }
        let context = TrainingContext {
            model,
            store,
            optimizer: self.optimizer.as_ref(),
            schedule: self.schedule.as_deref(),
            history: &self.history,
            global_step: self.global_step,
        };
        for callback in &mut self.callbacks {
            callback.on_train_end(&context)?;
        }
        Ok(self.history.clone())
    }
}
