//! Cross-entropy from logits (course §3.1) in one pass: for each of N rows of class scores z and
//! its label y,
//!
//! ```text
//! L = (1/N) Σₙ [ log Σ_c e^(z_nc − mₙ) + mₙ − z_n,yₙ ],   mₙ = max_c z_nc
//! ∂L/∂z_nc = (softmax(zₙ)_c − [c = yₙ]) / N
//! ```
//!
//! Candle's composition of the same formula (max, subtract, exp, sum, log, subtract, gather,
//! mean) makes a temporary of the logits' size at each step and as many again backward; here
//! forward and backward are one loop over the rows each. Sums are accumulated in `f64`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType, D};

use super::dispatch_real;
use super::slices::{row_major, tensor_from, with_row_major};

/// The labels as indices, checked against the number of classes.
fn label_indices(labels: &CpuStorage, layout: &Layout, classes: usize) -> Result<Vec<usize>> {
    fn checked<L: Copy + TryInto<usize>>(values: &[L], classes: usize) -> Result<Vec<usize>> {
        values
            .iter()
            .map(|&label| match label.try_into() {
                Ok(index) if index < classes => Ok(index),
                _ => candle_core::bail!("cross-entropy: a label is outside 0..{classes}"),
            })
            .collect()
    }
    match labels {
        CpuStorage::U8(_) => checked(&row_major::<u8>(labels, layout)?, classes),
        CpuStorage::U32(_) => checked(&row_major::<u32>(labels, layout)?, classes),
        CpuStorage::I16(_) => checked(&row_major::<i16>(labels, layout)?, classes),
        CpuStorage::I32(_) => checked(&row_major::<i32>(labels, layout)?, classes),
        CpuStorage::I64(_) => checked(&row_major::<i64>(labels, layout)?, classes),
        other => candle_core::bail!(
            "cross-entropy: labels must be integer class indices, got {:?}",
            other.dtype()
        ),
    }
}

/// The custom op on logits `(rows, classes)` and labels `(rows)`.
struct CrossEntropyOp {
    classes: usize,
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "dl-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        labels: &CpuStorage,
        labels_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let labels = label_indices(labels, labels_layout, self.classes)?;
        dispatch_real!(logits.dtype(), "dl-cross-entropy", |T| {
            let logits = row_major::<T>(logits, logits_layout)?;
            let mut total = 0f64;
            for (row, &label) in logits.chunks_exact(self.classes).zip(&labels) {
                let maximum = row.iter().fold(T::NEG_INFINITY, |m, &z| m.max(z));
                let sum: f64 = row.iter().map(|&z| (z - maximum).exp().to_f64()).sum();
                total += sum.ln() + (maximum - row[label]).to_f64();
            }
            let mean = if labels.is_empty() {
                f64::NAN
            } else {
                total / labels.len() as f64
            };
            Ok((
                T::to_cpu_storage_owned(vec![T::from_f64(mean)]),
                Shape::from(()),
            ))
        })
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _loss: &Tensor,
        loss_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let labels = {
            let (storage, layout) = labels.storage_and_layout();
            match &*storage {
                candle_core::Storage::Cpu(cpu) => label_indices(cpu, layout, self.classes)?,
                _ => candle_core::bail!("cross-entropy: expected CPU labels"),
            }
        };
        dispatch_real!(logits.dtype(), "dl-cross-entropy", |T| {
            let scale =
                with_row_major::<T, _>(loss_grad, |g| Ok(g[0]))? / T::from_f64(labels.len() as f64);
            let grad = with_row_major::<T, _>(logits, |logits| {
                let mut grad = Vec::with_capacity(logits.len());
                for (row, &label) in logits.chunks_exact(self.classes).zip(&labels) {
                    let maximum = row.iter().fold(T::NEG_INFINITY, |m, &z| m.max(z));
                    let start = grad.len();
                    grad.extend(row.iter().map(|&z| (z - maximum).exp()));
                    let sum: T = grad[start..].iter().sum();
                    let factor = scale / sum;
                    for value in &mut grad[start..] {
                        *value *= factor;
                    }
                    grad[start + label] -= scale;
                }
                Ok(grad)
            })?;
            Ok((Some(tensor_from(grad, logits.shape())?), None))
        })
    }
}

/// The mean cross-entropy of `logits` `(rows, classes)` against integer `labels` `(rows)`, a
/// scalar: −(1/N) Σₙ log softmax(zₙ)\[yₙ\].
///
/// On the CPU with `f32` or `f64` logits the one-pass kernel of this module; elsewhere the same
/// formula in Candle operations. Fails when a label is outside `0..classes`.
///
/// ```
/// use dl_tensor::{kernels, DType, Device, Tensor};
///
/// // Equal scores over 4 classes: every label has probability 1/4, L = ln 4.
/// let logits = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
/// let labels = Tensor::new(&[0u32, 3], &Device::Cpu)?;
/// let loss = kernels::cross_entropy::cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
/// assert!((loss - 4f32.ln()).abs() < 1e-6);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (rows, classes) = logits.dims2()?;
    if labels.dims() != [rows] {
        candle_core::bail!(
            "cross-entropy: {rows} rows of logits need {rows} labels, got shape {:?}",
            labels.dims()
        );
    }
    if super::is_supported(&[logits]) && labels.device().is_cpu() {
        return logits.apply_op2(labels, CrossEntropyOp { classes });
    }
    let maximum = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&maximum)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_probabilities = shifted.broadcast_sub(&log_sum)?;
    let picked = log_probabilities.gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?;
    picked.mean_all()?.neg()
}
