//! The error type of the training loop.

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// The loss became NaN or infinite: the run stopped and the last good checkpoint (if any) was
    /// kept.
    #[error("training stopped at epoch {epoch}, batch {batch}: the loss is {value}. Lower the learning rate, clip gradients or check the data for bad values.{}", match last_good_checkpoint { Some(path) => format!(" The last good checkpoint is {}.", path.display()), None => String::new() })]
    NonFiniteLoss {
        /// Epoch (1-based) where it happened.
        epoch: usize,
        /// Batch (1-based) within the epoch.
        batch: usize,
        /// The loss value.
        value: f64,
        /// The newest checkpoint written before the failure.
        last_good_checkpoint: Option<PathBuf>,
    },
    /// The training batches of an epoch were empty.
    #[error("epoch {epoch} had no training batches: the data set is empty or smaller than one batch (with drop-last)")]
    NoBatches {
        /// The epoch.
        epoch: usize,
    },
    /// The batch source failed.
    #[error("reading batch {batch} of epoch {epoch}: {source}")]
    Data {
        /// The epoch.
        epoch: usize,
        /// The batch.
        batch: usize,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A configuration the loop cannot run with.
    #[error("training configuration: {0}")]
    Config(String),
    /// Writing the history or a checkpoint failed.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// A saved run could not be put back.
    #[error("resuming from {}: {what}", checkpoint.display())]
    Resume {
        /// The checkpoint being resumed.
        checkpoint: PathBuf,
        /// What could not be restored.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A run's files do not belong together (a save was interrupted, or files were mixed).
    #[error("{}: {problem}; resume from a checkpoint whose files were saved together (or train again without --resume)", checkpoint.display())]
    TornRun {
        /// The checkpoint of the run.
        checkpoint: PathBuf,
        /// Which file does not fit, and how.
        problem: String,
    },
    /// An output would overwrite an input or a file that is not one of ours.
    #[error("{}: {problem}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why it cannot be written there, and what to do.
        problem: String,
    },
    /// An error from the model, loss or checkpoint code.
    #[error(transparent)]
    Model(#[from] dl_nn::NnError),
    /// An error from the optimizer or schedule.
    #[error(transparent)]
    Optimizer(#[from] dl_optim::OptimError),
    /// An error from backpropagation.
    #[error(transparent)]
    Autograd(#[from] dl_autograd::AutogradError),
    /// A device that cannot be used.
    #[error(transparent)]
    Device(#[from] dl_tensor::TensorError),
    /// An error raised by Candle.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// `Result` with [`TrainingError`].
pub type TrainingResult<T> = std::result::Result<T, TrainingError>;
