//! Loss functions (course §3.1 "梯度下降算法"): the number L that gradient descent drives down.
//!
//! - Cross-entropy for classification, from logits: L = −(1/N) Σₙ log softmax(zₙ)[yₙ],
//!   computed with log-softmax so large logits neither overflow nor lose precision (on the CPU
//!   by `dl_tensor::kernels::cross_entropy` in one pass, unless `DL_PLAIN_CANDLE=1`).
//! - Mean squared error for regression: L = (1/N) Σ (ŷ − y)².
//! - Binary cross-entropy from logits for yes/no outputs:
//!   L = (1/N) Σ max(z, 0) − z·y + log(1 + e^(−|z|)), the stable form of
//!   −[y log σ(z) + (1 − y) log(1 − σ(z))].

use std::{fmt, str::FromStr};

use dl_tensor::{kernels, DType, Tensor, D};

use crate::{log_softmax, NnError, Result};

/// Mean cross-entropy between class scores and integer labels.
///
/// `logits` has shape `(..., classes)` and `labels` the leading shape `(...)` with any integer
/// type, so a batch of sequences `(N, T, vocabulary)` with labels `(N, T)` works directly.
///
/// ```
/// use dl_nn::cross_entropy;
/// use dl_tensor::{Device, Tensor};
/// // Equal scores over 4 classes: L = log 4.
/// let logits = Tensor::zeros((2, 4), dl_tensor::DType::F32, &Device::Cpu)?;
/// let labels = Tensor::new(&[0u32, 3], &Device::Cpu)?;
/// let loss = cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
/// assert!((loss - 4f32.ln()).abs() < 1e-6);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let what = "cross-entropy";
    if logits.rank() < 2 || logits.dims()[..logits.rank() - 1] != *labels.dims() {
        return Err(NnError::Target {
            what,
            problem: format!(
                "logits of shape {:?} need labels of shape {:?}, got {:?}",
                logits.dims(),
                &logits.dims()[..logits.rank().saturating_sub(1)],
                labels.dims()
            ),
        });
    }
    if labels.dtype().is_float() {
        return Err(NnError::Target {
            what,
            problem: format!(
                "labels must be integer class indices, got {:?}",
                labels.dtype()
            ),
        });
    }
    let classes = logits.dim(D::Minus1)?;
    let rows = labels.elem_count();
    let flat_labels = labels.flatten_all()?.to_dtype(DType::I64)?;
    if rows > 0 {
        let smallest = flat_labels.min(0)?.to_scalar::<i64>()?;
        let largest = flat_labels.max(0)?.to_scalar::<i64>()?;
        if smallest < 0 || largest >= classes as i64 {
            return Err(NnError::Target {
                what,
                problem: format!(
                    "labels must be in 0..{classes}, found values from {smallest} to {largest}"
                ),
            });
        }
    }
    let logits = logits.reshape((rows, classes))?;
    if kernels::applies_to(&[&logits]) && flat_labels.device().is_cpu() {
        // Log-softmax, pick and mean in one pass; backward (softmax − one-hot)/N.
        return Ok(kernels::cross_entropy::cross_entropy(
            &logits,
            &flat_labels,
        )?);
    }
    // ANCHOR: cross-entropy
    let log_probabilities = log_softmax(&logits)?;
    let picked = log_probabilities.gather(&flat_labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?;
    Ok(picked.mean_all()?.neg()?)
    // ANCHOR_END: cross-entropy
}

fn check_same_shape(what: &'static str, predictions: &Tensor, targets: &Tensor) -> Result<()> {
    if predictions.dims() != targets.dims() {
        return Err(NnError::Target {
            what,
            problem: format!(
                "predictions have shape {:?} but targets {:?}",
                predictions.dims(),
                targets.dims()
            ),
        });
    }
    Ok(())
}

/// Mean squared error, (1/N) Σ (ŷ − y)², over all elements.
pub fn mse(predictions: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check_same_shape("mean squared error", predictions, targets)?;
    let targets = targets.to_dtype(predictions.dtype())?;
    Ok(predictions.sub(&targets)?.sqr()?.mean_all()?)
}

/// Binary cross-entropy from logits z and targets y in [0, 1], averaged over all elements.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check_same_shape("binary cross-entropy", logits, targets)?;
    let targets = targets.to_dtype(logits.dtype())?;
    let softplus_of_negative_magnitude = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    Ok(logits
        .relu()?
        .sub(&logits.mul(&targets)?)?
        .add(&softplus_of_negative_magnitude)?
        .mean_all()?)
}

/// A loss chosen by name, for training loops and command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// [`cross_entropy`] from logits and integer labels.
    #[default]
    CrossEntropy,
    /// [`mse`].
    MeanSquaredError,
    /// [`binary_cross_entropy_with_logits`].
    BinaryCrossEntropyWithLogits,
}

impl Loss {
    /// Computes the loss of `predictions` against `targets`.
    pub fn compute(&self, predictions: &Tensor, targets: &Tensor) -> Result<Tensor> {
        match self {
            Self::CrossEntropy => cross_entropy(predictions, targets),
            Self::MeanSquaredError => mse(predictions, targets),
            Self::BinaryCrossEntropyWithLogits => {
                binary_cross_entropy_with_logits(predictions, targets)
            }
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::CrossEntropy => "cross_entropy",
            Self::MeanSquaredError => "mse",
            Self::BinaryCrossEntropyWithLogits => "binary_cross_entropy",
        })
    }
}

impl FromStr for Loss {
    type Err = NnError;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cross_entropy" | "crossentropy" | "sparse_categorical_crossentropy" => {
                Ok(Self::CrossEntropy)
            }
            "mse" | "mean_squared_error" => Ok(Self::MeanSquaredError),
            "binary_cross_entropy" | "binary_crossentropy" | "bce" => {
                Ok(Self::BinaryCrossEntropyWithLogits)
            }
            _ => Err(NnError::config(
                "loss",
                format!("unknown loss '{text}': use cross_entropy, mse or binary_cross_entropy"),
            )),
        }
    }
}
