//! The error type of dl-autograd.

/// Everything that can go wrong while computing, clipping or checking gradients.
#[derive(Debug, thiserror::Error)]
pub enum AutogradError {
    /// The tensor handed to backward is not a single number.
    #[error("backward needs a scalar loss, got a tensor of shape {shape:?}: reduce it with sum or mean first")]
    LossNotScalar {
        /// The shape of the tensor that was given.
        shape: Vec<usize>,
    },
    /// The loss is NaN or infinite, so gradients would be meaningless.
    #[error(
        "the loss is {value}: gradients are not finite (lower the learning rate or check the data)"
    )]
    LossNotFinite {
        /// The loss value.
        value: f64,
    },
    /// A clipping threshold that is not a positive finite number.
    #[error("{what} must be a positive finite number, got {value}")]
    BadThreshold {
        /// Which threshold.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A gradient check could not run.
    #[error("gradient check: {0}")]
    Check(String),
    /// An error raised by Candle itself.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// `Result` with [`AutogradError`].
pub type Result<T> = std::result::Result<T, AutogradError>;
