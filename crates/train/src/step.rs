//! The step hook: what one batch of training does, as a trait the loop drives (burn's
//! `TrainStep`). The course's step (§3.1: forward pass → loss → backpropagation → w ← w − η ∂L/∂w)
//! is [`SupervisedStep`](crate::SupervisedStep); a GAN's step owns two optimizers and reports
//! two losses, a hyper-parameter search trial reports its metric — and all of them get the
//! trainer's progress line, history, NaN stop, callbacks and resumable checkpoints.

use dl_optim::{LearningRateSchedule, Optimizer};
use dl_tensor::Tensor;

use crate::{TrainingError, TrainingResult};

/// What a step measured on its batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepOutput {
    /// The loss the run watches: a NaN or infinite value stops training. For several losses (a
    /// GAN's), the one that best says whether training diverged.
    pub loss: f64,
    /// How many target elements the loss is a mean over: the batch's weight in the epoch's mean
    /// (examples, or tokens for sequences).
    pub targets: usize,
    /// Examples in the batch, for the throughput.
    pub examples: usize,
    /// Correct predictions among `targets`, when the step classifies.
    pub correct: Option<usize>,
    /// The step's own metrics (a GAN's `d_loss`, `g_loss`, `d_real`, `d_fake`): each is averaged
    /// over the epoch's examples, shown on the progress line and written to the history.
    pub metrics: Vec<(&'static str, f64)>,
}

/// One of a step's optimizers, as checkpoints see it.
pub struct StepOptimizer<'a> {
    /// Its name: `optimizer` for a step with one; a checkpoint stores its state in
    /// `<checkpoint stem>.<name>.safetensors`.
    pub name: &'a str,
    /// The optimizer.
    pub optimizer: &'a dyn Optimizer,
    /// The schedule driving its learning rate, if any.
    pub schedule: Option<&'a dyn LearningRateSchedule>,
}

/// One of a step's optimizers, for putting a saved run back.
pub struct StepOptimizerMut<'a> {
    /// Its name (see [`StepOptimizer::name`]).
    pub name: &'a str,
    /// The optimizer.
    pub optimizer: &'a mut dyn Optimizer,
    /// The schedule driving its learning rate, if any.
    pub schedule: Option<&'a mut dyn LearningRateSchedule>,
}

/// What the training loop calls for every batch. Batches are `(inputs, targets)` pairs; a step
/// that needs no targets (an unconditional GAN) ignores them.
pub trait TrainStep {
    /// Trains on one batch: forward pass, loss, backpropagation, one or more optimizer steps.
    fn train(&mut self, inputs: &Tensor, targets: &Tensor) -> TrainingResult<StepOutput>;

    /// Measures one validation batch without training. The default says the step has none.
    fn validate(&mut self, _inputs: &Tensor, _targets: &Tensor) -> TrainingResult<StepOutput> {
        Err(TrainingError::Config(
            "this training step has no validation: train without validation batches".into(),
        ))
    }

    /// Called after every epoch with the loss early stopping watches (the validation loss when
    /// there is one): schedules advance here.
    fn end_epoch(&mut self, _monitored_loss: f64) -> TrainingResult<()> {
        Ok(())
    }

    /// The learning rate recorded in the history (the first optimizer's).
    fn learning_rate(&self) -> f64;

    /// The optimizers and their schedules, for checkpoints.
    fn optimizers(&self) -> Vec<StepOptimizer<'_>>;

    /// The same, mutable, for resuming a run.
    fn optimizers_mut(&mut self) -> Vec<StepOptimizerMut<'_>>;
}
