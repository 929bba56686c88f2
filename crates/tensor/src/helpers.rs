//! Small helpers the course keeps using: the predicted class (argmax), one-hot targets and the
//! fraction of correct predictions (accuracy).

use candle_core::{DType, Tensor, D};

use crate::{Result, TensorError};

/// The index of the largest value along the last dimension, as `u32` (the predicted class of
/// each row of logits or probabilities).
///
/// ```
/// use dl_tensor::{argmax, Device, Tensor};
/// let scores = Tensor::new(&[[0.1f32, 2.0, -1.0], [3.0, 0.0, 0.5]], &Device::Cpu)?;
/// assert_eq!(argmax(&scores)?.to_vec1::<u32>()?, vec![1, 0]);
/// # Ok::<(), dl_tensor::TensorError>(())
/// ```
pub fn argmax(scores: &Tensor) -> Result<Tensor> {
    if scores.rank() == 0 {
        return Err(TensorError::BadInput {
            operation: "argmax",
            problem: "needs at least one dimension, got a scalar".into(),
        });
    }
    Ok(scores.argmax(D::Minus1)?)
}

/// Turns class indices (any integer dtype, any shape) into one-hot `f32` vectors of length
/// `classes`, appended as a new last dimension. An index `>= classes` is an error.
///
/// ```
/// use dl_tensor::{one_hot, Device, Tensor};
/// let labels = Tensor::new(&[2u32, 0], &Device::Cpu)?;
/// let encoded = one_hot(&labels, 3)?;
/// assert_eq!(encoded.to_vec2::<f32>()?, vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]]);
/// # Ok::<(), dl_tensor::TensorError>(())
/// ```
pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let indices: Vec<i64> = labels.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let mut values = vec![0f32; indices.len() * classes];
    for (row, &index) in indices.iter().enumerate() {
        let class = usize::try_from(index)
            .ok()
            .filter(|&class| class < classes)
            .ok_or_else(|| TensorError::BadInput {
                operation: "one_hot",
                problem: format!("label {index} at position {row} is outside 0..{classes}"),
            })?;
        values[row * classes + class] = 1.0;
    }
    let mut shape = labels.dims().to_vec();
    shape.push(classes);
    Ok(Tensor::from_vec(values, shape, labels.device())?)
}

/// The fraction of rows whose largest score is at the labelled class.
///
/// `scores` has shape `(N, classes)` (logits or probabilities), `labels` shape `(N,)` with any
/// integer dtype. Returns 0.0 for an empty batch.
///
/// ```
/// use dl_tensor::{accuracy, Device, Tensor};
/// let scores = Tensor::new(&[[0.9f32, 0.1], [0.2, 0.8], [0.6, 0.4]], &Device::Cpu)?;
/// let labels = Tensor::new(&[0u32, 1, 1], &Device::Cpu)?;
/// assert!((accuracy(&scores, &labels)? - 2.0 / 3.0).abs() < 1e-12);
/// # Ok::<(), dl_tensor::TensorError>(())
/// ```
pub fn accuracy(scores: &Tensor, labels: &Tensor) -> Result<f64> {
    let rows = labels.elem_count();
    if scores.rank() != 2 || scores.dim(0)? != rows {
        return Err(TensorError::BadInput {
            operation: "accuracy",
            problem: format!(
                "scores of shape {:?} do not match {} labels: expected (N, classes)",
                scores.dims(),
                rows
            ),
        });
    }
    if rows == 0 {
        return Ok(0.0);
    }
    let predicted = argmax(scores)?.to_dtype(DType::I64)?;
    let correct = predicted
        .eq(&labels.flatten_all()?.to_dtype(DType::I64)?)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(f64::from(correct) / rows as f64)
}
