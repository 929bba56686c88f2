//! The error type of dl-compress: every message names the layer, file or value at fault and
//! what would be accepted.

use std::path::PathBuf;

/// Everything that can go wrong while pruning, quantizing or reading a compressed model.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A sparsity outside [0, 1).
    #[error("sparsity {value} is not allowed: it must be a fraction in [0, 1) (0.9 removes 90% of the weights)")]
    BadSparsity {
        /// The value given.
        value: f64,
    },
    /// More weights asked to be removed than there are.
    #[error("cannot prune {requested} weights: the model has only {available} prunable weights")]
    TooManyWeights {
        /// Weights asked for.
        requested: usize,
        /// Prunable weights in the model.
        available: usize,
    },
    /// A model without any layer that can be pruned or quantized.
    #[error("the model has no Dense or Conv2D layer: there is nothing to {action}")]
    NothingToCompress {
        /// What was asked (`prune`, `quantize`).
        action: &'static str,
    },
    /// A layer the method does not handle.
    #[error("layer '{layer}' ({kind}) cannot be {action}: {reason}")]
    UnsupportedLayer {
        /// The layer's name.
        layer: String,
        /// Its kind.
        kind: &'static str,
        /// What was asked (`quantized`, `pruned structurally`).
        action: &'static str,
        /// Why not, and what to do.
        reason: String,
    },
    /// A bad setting (a schedule whose end precedes its start, 0 calibration images, ...).
    #[error("{setting}: {problem}")]
    BadSetting {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong and what would be accepted.
        problem: String,
    },
    /// A compressed file that cannot be read back.
    #[error("{path}: {problem}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// An error from a layer or checkpoint.
    #[error(transparent)]
    Nn(#[from] dl_nn::NnError),
    /// An error from backpropagation.
    #[error(transparent)]
    Autograd(#[from] dl_autograd::AutogradError),
    /// An error from a checkpoint's recipe or the model zoo.
    #[error(transparent)]
    Models(#[from] dl_models::ModelsError),
    /// An error from an optimizer.
    #[error(transparent)]
    Optim(#[from] dl_optim::OptimError),
    /// An error from a kernel.
    #[error(transparent)]
    Tensor(#[from] dl_tensor::TensorError),
    /// An error raised by Candle itself.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// The result type of dl-compress.
pub type Result<T> = std::result::Result<T, CompressError>;

impl From<CompressError> for dl_optim::OptimError {
    /// Pruning inside an optimizer step reports through the optimizer's error type.
    fn from(error: CompressError) -> Self {
        match error {
            CompressError::Optim(inner) => inner,
            CompressError::Candle(inner) => Self::Candle(inner),
            CompressError::Autograd(inner) => Self::Autograd(inner),
            other => Self::Wrapper {
                wrapper: "pruning",
                problem: other.to_string(),
            },
        }
    }
}

/// Writes `bytes` to `path` atomically (a temporary name, then a rename), naming the file in
/// the error.
pub(crate) fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    dl_tensor::write_atomically(path, bytes).map_err(|source| CompressError::Io {
        path: path.to_path_buf(),
        source,
    })
}
