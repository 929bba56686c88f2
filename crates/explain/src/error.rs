//! The error type of dl-explain: each message names the setting or model at fault and what
//! would be accepted.

/// Everything that can go wrong while explaining a prediction.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// A bad setting (0 samples, a patch larger than the image, a class out of range, ...).
    #[error("{setting}: {problem}")]
    BadSetting {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong and what would be accepted.
        problem: String,
    },
    /// A model the method cannot explain (Grad-CAM without a convolution, say).
    #[error("{method} cannot explain this model: {reason}")]
    UnsupportedModel {
        /// The method.
        method: &'static str,
        /// Why, and what to use instead.
        reason: String,
    },
    /// An error from a layer.
    #[error(transparent)]
    Nn(#[from] dl_nn::NnError),
    /// An error from backpropagation.
    #[error(transparent)]
    Autograd(#[from] dl_autograd::AutogradError),
    /// An error raised by Candle itself.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// The result type of dl-explain.
pub type Result<T> = std::result::Result<T, ExplainError>;
