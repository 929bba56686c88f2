//! The error type of dl-tensor: device choice and tensor-helper failures.

/// Everything that can go wrong in dl-tensor.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// A `--device` string that names no known device.
    #[error("unknown device '{given}': use cpu, cuda, cuda:N, metal or auto")]
    UnknownDevice {
        /// The text that was given.
        given: String,
    },
    /// A device whose backend was not compiled into this build.
    #[error("device '{device}' is not available in this build: rebuild with `--features {feature}` (and the {feature} toolkit installed), or use --device cpu")]
    BackendNotCompiled {
        /// The device that was asked for.
        device: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// A helper received a tensor of the wrong shape or type.
    #[error("{operation}: {problem}")]
    BadInput {
        /// The helper that was called.
        operation: &'static str,
        /// What is wrong with its input.
        problem: String,
    },
    /// A thread count that cannot be used.
    #[error("--threads {threads}: {problem}")]
    Threads {
        /// The count asked for.
        threads: usize,
        /// Why it cannot be used, and what to do.
        problem: String,
    },
    /// An error raised by Candle itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`TensorError`].
pub type Result<T> = std::result::Result<T, TensorError>;
