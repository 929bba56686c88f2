//! The error type of dl-nn.

use std::path::PathBuf;

/// Everything that can go wrong while building, running or saving a network.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A layer received an input of a shape it cannot handle.
    #[error("{layer}: {problem}")]
    Shape {
        /// The layer's name (as in the summary and the checkpoint).
        layer: String,
        /// What is wrong, with the expected and actual shapes.
        problem: String,
    },
    /// A layer or model was configured with impossible settings.
    #[error("invalid configuration of {what}: {problem}")]
    Config {
        /// What was being configured.
        what: String,
        /// What is wrong and what would be valid.
        problem: String,
    },
    /// Two parameters were registered under the same name.
    #[error("a parameter named '{0}' already exists: give the layer another name")]
    DuplicateParameter(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong and what to do about it.
        problem: String,
    },
    /// Targets that do not fit the predictions given to a loss or metric.
    #[error("{what}: {problem}")]
    Target {
        /// The loss or metric.
        what: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// An error from gradient computation.
    #[error(transparent)]
    Autograd(#[from] dl_autograd::AutogradError),
    /// An error raised by dl-tensor.
    #[error(transparent)]
    Tensor(#[from] dl_tensor::TensorError),
    /// An error raised by Candle itself.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// `Result` with [`NnError`].
pub type Result<T> = std::result::Result<T, NnError>;

impl NnError {
    /// A shape error for the layer called `layer`.
    pub fn shape(layer: &str, problem: impl Into<String>) -> Self {
        Self::Shape {
            layer: layer.to_string(),
            problem: problem.into(),
        }
    }

    /// A configuration error for `what`.
    pub fn config(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Config {
            what: what.into(),
            problem: problem.into(),
        }
    }
}
