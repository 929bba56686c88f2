//! The course's training step (§3.1, gradient descent repeated): forward pass → loss →
//! backpropagation → optimizer step, for a model that maps inputs to logits and a loss against
//! targets; and [`evaluate`], the same forward pass and loss without training.

use dl_autograd::Gradients;
use dl_nn::{Layer, Loss, Mode};
use dl_optim::{LearningRateSchedule, Optimizer};
use dl_tensor::{DType, Tensor, Var, D};

use crate::{StepOptimizer, StepOptimizerMut, StepOutput, TrainStep, TrainingResult};

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

/// The name of a supervised step's one optimizer (its state file is
/// `<checkpoint stem>.optimizer.safetensors`).
pub const OPTIMIZER_NAME: &str = "optimizer";

/// What the trainer keeps of a supervised step between runs: the optimizer, the loss, gradient
/// clipping and the learning-rate schedule.
pub(crate) struct SupervisedSettings {
    pub(crate) optimizer: Box<dyn Optimizer>,
    pub(crate) loss: Loss,
    pub(crate) clip_norm: Option<f64>,
    pub(crate) clip_value: Option<f64>,
    pub(crate) schedule: Option<Box<dyn LearningRateSchedule>>,
}

/// The supervised step of one `fit`: the settings with the model and its variables.
pub(crate) struct SupervisedStep<'a> {
    pub(crate) model: &'a dyn Layer,
    pub(crate) variables: Vec<(String, Var)>,
    pub(crate) settings: &'a mut SupervisedSettings,
}

/// The loss of `logits` against `targets`, its value, and what it says about the batch.
fn measure(loss: Loss, logits: &Tensor, targets: &Tensor) -> TrainingResult<(Tensor, StepOutput)> {
    let loss = loss.compute(logits, targets)?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let output = StepOutput {
        loss: value,
        targets: targets.elem_count(),
        examples: targets.dims().first().copied().unwrap_or(1),
        correct: correct_predictions(&logits.detach(), targets)?,
        metrics: Vec::new(),
    };
    Ok((loss, output))
}

/// How many predictions are right, when `logits (..., classes)` face integer labels `(...)`.
fn correct_predictions(logits: &Tensor, targets: &Tensor) -> TrainingResult<Option<usize>> {
    let classifies = !targets.dtype().is_float()
        && logits.rank() == targets.rank() + 1
        && logits.dims()[..targets.rank()] == *targets.dims();
    if !classifies {
        return Ok(None);
    }
    let correct = logits
        .argmax(D::Minus1)?
        .eq(&targets.to_dtype(DType::U32)?)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(Some(correct as usize))
}

impl TrainStep for SupervisedStep<'_> {
    // ANCHOR: supervised-step
    fn train(&mut self, inputs: &Tensor, targets: &Tensor) -> TrainingResult<StepOutput> {
        let settings = &mut *self.settings;
        let logits = self.model.forward(inputs, Mode::Train)?;
        let (loss, output) = measure(settings.loss, &logits, targets)?;
        if !output.loss.is_finite() {
            // The loop stops the run; no step is taken with a broken gradient.
            return Ok(output);
        }
        let mut gradients = Gradients::compute(
            &loss,
            self.variables
                .iter()
                .map(|(name, var)| (name.as_str(), var)),
        )?;
        if let Some(limit) = settings.clip_value {
            gradients.clip_by_value(limit)?;
        }
        if let Some(max_norm) = settings.clip_norm {
            gradients.clip_by_norm(max_norm)?;
        }
        if let Some(schedule) = &settings.schedule {
            settings
                .optimizer
                .set_learning_rate(schedule.learning_rate());
        }
        settings.optimizer.step(&gradients)?;
        if let Some(schedule) = settings.schedule.as_mut() {
            schedule.after_step();
        }
        Ok(output)
    }
    // ANCHOR_END: supervised-step

    fn validate(&mut self, inputs: &Tensor, targets: &Tensor) -> TrainingResult<StepOutput> {
        let logits = self.model.forward(inputs, Mode::Eval)?;
        Ok(measure(self.settings.loss, &logits, targets)?.1)
    }

    fn end_epoch(&mut self, monitored_loss: f64) -> TrainingResult<()> {
        let settings = &mut *self.settings;
        if let Some(schedule) = settings.schedule.as_mut() {
            schedule.after_epoch(Some(monitored_loss))?;
            settings
                .optimizer
                .set_learning_rate(schedule.learning_rate());
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.settings.optimizer.learning_rate()
    }

    fn optimizers(&self) -> Vec<StepOptimizer<'_>> {
        self.settings.optimizers()
    }

    fn optimizers_mut(&mut self) -> Vec<StepOptimizerMut<'_>> {
        self.settings.optimizers_mut()
    }
}

impl SupervisedSettings {
    pub(crate) fn optimizers(&self) -> Vec<StepOptimizer<'_>> {
        vec![StepOptimizer {
            name: OPTIMIZER_NAME,
            optimizer: self.optimizer.as_ref(),
            schedule: self.schedule.as_deref(),
        }]
    }

    pub(crate) fn optimizers_mut(&mut self) -> Vec<StepOptimizerMut<'_>> {
        vec![StepOptimizerMut {
            name: OPTIMIZER_NAME,
            optimizer: self.optimizer.as_mut(),
            schedule: match self.schedule.as_mut() {
                Some(schedule) => Some(schedule.as_mut()),
                None => None,
            },
        }]
    }
}

/// Computes the loss and accuracy of `model` (in evaluation mode) over `batches`.
pub fn evaluate<I>(model: &dyn Layer, loss: Loss, batches: I) -> TrainingResult<Evaluation>
where
    I: IntoIterator,
    I::Item: IntoBatch,
{
    crate::trainer::measure_batches(batches, |inputs, targets| {
        let logits = model.forward(inputs, Mode::Eval)?;
        Ok(measure(loss, &logits, targets)?.1)
    })
}
