//! Batch normalisation in training mode (course §6, the defences that let deeper networks
//! train) as one operation each way: for an input x of shape (N, C, …) and each channel c, with
//! m = the number of values of that channel in the batch,
//!
//! ```text
//! μ = (1/m) Σ x        σ² = (1/m) Σ (x − μ)²        x̂ = (x − μ) / √(σ² + ε)
//! y = γ x̂ + β
//! ```
//!
//! and backward, from ∂L/∂y:
//!
//! ```text
//! ∂L/∂β = Σ ∂L/∂y      ∂L/∂γ = Σ ∂L/∂y · x̂
//! ∂L/∂x = γ / (m √(σ² + ε)) · (m ∂L/∂y − ∂L/∂β − x̂ ∂L/∂γ)
//! ```
//!
//! Written with Candle operations the statistics are reductions over dimensions 0, 2 and 3 at
//! once, which Candle's CPU backend walks element by element through the strides: the course's
//! two-block CNN spent about 70% of its training time there. Here each channel's values are read
//! as N contiguous runs, and sums are accumulated in `f64`.

use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// Per channel, the batch mean and 1/√(σ² + ε), and the biased variance σ².
#[derive(Debug, Clone)]
struct Statistics {
    mean: Vec<f64>,
    inverse_std: Vec<f64>,
    variance: Vec<f64>,
}

/// The batch's statistics that [`batch_norm_train`] computed, for the running averages.
#[derive(Debug, Clone)]
pub struct BatchStatistics {
    /// The mean of each channel, shape (C), outside the computation graph.
    pub mean: Tensor,
    /// The biased variance (divided by m) of each channel, shape (C), outside the graph.
    pub variance: Tensor,
}

/// The input's shape read as (samples, channels, values per channel and sample).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    samples: usize,
    channels: usize,
    spatial: usize,
}

impl Geometry {
    fn of(shape: &Shape) -> Result<Self> {
        let dims = shape.dims();
        if dims.len() < 2 {
            candle_core::bail!("batch norm: expected an input of shape (N, C, ...), got {dims:?}");
        }
        Ok(Self {
            samples: dims[0],
            channels: dims[1],
            spatial: dims[2..].iter().product(),
        })
    }

    /// Values per channel in the batch, m.
    fn count(&self) -> usize {
        self.samples * self.spatial
    }

    /// The runs of channel `channel`: one slice of `spatial` values per sample.
    fn runs<'a, T>(&self, data: &'a [T], channel: usize) -> impl Iterator<Item = &'a [T]> {
        let (per_sample, spatial) = (self.channels * self.spatial, self.spatial);
        (0..self.samples).map(move |sample| {
            let start = sample * per_sample + channel * spatial;
            &data[start..start + spatial]
        })
    }

    /// Runs `per_channel` for every channel, in parallel when the input is large.
    fn map_channels<R: Send>(&self, per_channel: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
        if worth_parallel(self.samples * self.channels * self.spatial) {
            (0..self.channels)
                .into_par_iter()
                .map(&per_channel)
                .collect()
        } else {
            (0..self.channels).map(per_channel).collect()
        }
    }

    /// Fills `output` sample by sample with `fill(sample's output, sample index)`, in parallel
    /// when the input is large.
    fn fill_samples<T: Send>(&self, output: &mut [T], fill: impl Fn(&mut [T], usize) + Sync) {
        let per_sample = (self.channels * self.spatial).max(1);
        if worth_parallel(output.len()) {
            output
                .par_chunks_mut(per_sample)
                .enumerate()
                .for_each(|(sample, chunk)| fill(chunk, sample));
        } else {
            output
                .chunks_mut(per_sample)
                .enumerate()
                .for_each(|(sample, chunk)| fill(chunk, sample));
        }
    }
}

/// The custom op on (input (N, C, …), γ (C), β (C)).
struct BatchNormOp {
    epsilon: f64,
    statistics: Arc<OnceLock<Statistics>>,
}

impl BatchNormOp {
    fn forward<T: Real>(
        &self,
        input: &[T],
        geometry: Geometry,
        weight: &[T],
        bias: &[T],
    ) -> Vec<T> {
        let count = geometry.count() as f64;
        let per_channel = geometry.map_channels(|channel| {
            let sum: f64 = geometry
                .runs(input, channel)
                .flat_map(|run| run.iter())
                .map(|value| value.to_f64())
                .sum();
            let mean = sum / count;
            let squares: f64 = geometry
                .runs(input, channel)
                .flat_map(|run| run.iter())
                .map(|value| (value.to_f64() - mean).powi(2))
                .sum();
            (mean, squares / count)
        });
        let mean: Vec<f64> = per_channel.iter().map(|&(mean, _)| mean).collect();
        let variance: Vec<f64> = per_channel.iter().map(|&(_, variance)| variance).collect();
        let inverse_std: Vec<f64> = variance
            .iter()
            .map(|variance| 1.0 / (variance + self.epsilon).sqrt())
            .collect();
        // y = x · scale + shift with scale = γ/√(σ²+ε) and shift = β − μ · scale.
        let scale: Vec<T> = (0..geometry.channels)
            .map(|c| T::from_f64(weight[c].to_f64() * inverse_std[c]))
            .collect();
        let shift: Vec<T> = (0..geometry.channels)
            .map(|c| T::from_f64(bias[c].to_f64() - mean[c] * weight[c].to_f64() * inverse_std[c]))
            .collect();
        let mut output = vec![T::zero(); input.len()];
        let per_sample = geometry.channels * geometry.spatial;
        geometry.fill_samples(&mut output, |chunk, sample| {
            let source = &input[sample * per_sample..(sample + 1) * per_sample];
            for (channel, (out, x)) in chunk
                .chunks_mut(geometry.spatial.max(1))
                .zip(source.chunks(geometry.spatial.max(1)))
                .enumerate()
            {
                let (scale, shift) = (scale[channel], shift[channel]);
                for (out, &x) in out.iter_mut().zip(x) {
                    *out = x * scale + shift;
                }
            }
        });
        let _ = self.statistics.set(Statistics {
            mean,
            inverse_std,
            variance,
        });
        output
    }

    /// (∂L/∂x, ∂L/∂γ, ∂L/∂β).
    fn backward<T: Real>(
        &self,
        input: &[T],
        geometry: Geometry,
        weight: &[T],
        output_grad: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let Some(statistics) = self.statistics.get() else {
            candle_core::bail!("batch norm: backward before forward");
        };
        let sums = geometry.map_channels(|channel| {
            let (mean, inverse_std) = (statistics.mean[channel], statistics.inverse_std[channel]);
            let mut bias_grad = 0f64;
            let mut weight_grad = 0f64;
            for (x, dy) in geometry
                .runs(input, channel)
                .zip(geometry.runs(output_grad, channel))
            {
                for (&x, &dy) in x.iter().zip(dy) {
                    let dy = dy.to_f64();
                    bias_grad += dy;
                    weight_grad += dy * (x.to_f64() - mean) * inverse_std;
                }
            }
            (weight_grad, bias_grad)
        });
        let count = geometry.count() as f64;
        // ∂L/∂x = a·∂L/∂y + b·x + c per channel, from the formula in the header with x̂ expanded.
        let coefficients: Vec<(T, T, T)> = (0..geometry.channels)
            .map(|c| {
                let (mean, inverse_std) = (statistics.mean[c], statistics.inverse_std[c]);
                let (weight_grad, bias_grad) = sums[c];
                let factor = weight[c].to_f64() * inverse_std / count;
                let a = factor * count;
                let b = -factor * weight_grad * inverse_std;
                let c0 = -factor * bias_grad + factor * weight_grad * inverse_std * mean;
                (T::from_f64(a), T::from_f64(b), T::from_f64(c0))
            })
            .collect();
        let mut input_grad = vec![T::zero(); input.len()];
        let per_sample = geometry.channels * geometry.spatial;
        let spatial = geometry.spatial.max(1);
        geometry.fill_samples(&mut input_grad, |chunk, sample| {
            let range = sample * per_sample..(sample + 1) * per_sample;
            for (channel, ((out, x), dy)) in chunk
                .chunks_mut(spatial)
                .zip(input[range.clone()].chunks(spatial))
                .zip(output_grad[range].chunks(spatial))
                .enumerate()
            {
                let (a, b, c) = coefficients[channel];
                for ((out, &x), &dy) in out.iter_mut().zip(x).zip(dy) {
                    *out = a * dy + b * x + c;
                }
            }
        });
        let weight_grad = sums.iter().map(|&(w, _)| T::from_f64(w)).collect();
        let bias_grad = sums.iter().map(|&(_, b)| T::from_f64(b)).collect();
        Ok((input_grad, weight_grad, bias_grad))
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "dl-batch-norm"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let geometry = Geometry::of(input_layout.shape())?;
        dispatch_real!(input.dtype(), "dl-batch-norm", |T| {
            let output = self.forward::<T>(
                &row_major::<T>(input, input_layout)?,
                geometry,
                &row_major::<T>(weight, weight_layout)?,
                &row_major::<T>(bias, bias_layout)?,
            );
            Ok((
                T::to_cpu_storage_owned(output),
                input_layout.shape().clone(),
            ))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let geometry = Geometry::of(input.shape())?;
        dispatch_real!(input.dtype(), "dl-batch-norm", |T| {
            let (input_grad, weight_grad, bias_grad) = with_row_major::<T, _>(input, |x| {
                with_row_major::<T, _>(weight, |weight| {
                    with_row_major::<T, _>(output_grad, |dy| self.backward(x, geometry, weight, dy))
                })
            })?;
            let channels = geometry.channels;
            Ok((
                Some(tensor_from(input_grad, input.shape())?),
                Some(tensor_from(weight_grad, channels)?),
                Some(tensor_from(bias_grad, channels)?),
            ))
        })
    }
}

/// Batch normalisation of `input` `(N, C, …)` with the batch's own statistics, scaled by `weight`
/// γ `(C)` and shifted by `bias` β `(C)`: returns y and the batch's mean and biased variance
/// (for the running averages a layer keeps). Backpropagates to the input, γ and β.
///
/// The tensors must be on the CPU, all `f32` or all `f64` (see [`super::is_supported`]).
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// // One channel holding 1, 2, 3, 4: mean 2.5, variance 1.25.
/// let input = Tensor::new(&[[1f32], [2.], [3.], [4.]], &Device::Cpu)?;
/// let (weight, bias) = (Tensor::new(&[1f32], &Device::Cpu)?, Tensor::new(&[0f32], &Device::Cpu)?);
/// let (output, statistics) = kernels::batch_norm::batch_norm_train(&input, &weight, &bias, 0.0)?;
/// assert_eq!(statistics.mean.to_vec1::<f32>()?, [2.5]);
/// assert_eq!(statistics.variance.to_vec1::<f32>()?, [1.25]);
/// let normalised = output.flatten_all()?.to_vec1::<f32>()?;
/// assert!((normalised[0] + 1.5 / 1.25f32.sqrt()).abs() < 1e-6);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn batch_norm_train(
    input: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    epsilon: f64,
) -> Result<(Tensor, BatchStatistics)> {
    let geometry = Geometry::of(input.shape())?;
    for (what, tensor) in [("weight", weight), ("bias", bias)] {
        if tensor.dims() != [geometry.channels] {
            candle_core::bail!(
                "batch norm: {what} of shape {:?} does not match {} channels",
                tensor.dims(),
                geometry.channels
            );
        }
    }
    if !super::is_supported(&[input, weight, bias]) {
        candle_core::bail!("batch norm kernel: expected CPU tensors, all f32 or all f64");
    }
    let statistics = Arc::new(OnceLock::new());
    let output = input.apply_op3(
        weight,
        bias,
        BatchNormOp {
            epsilon,
            statistics: Arc::clone(&statistics),
        },
    )?;
    let Some(statistics) = statistics.get() else {
        candle_core::bail!("batch norm: the forward pass did not run");
    };
    let dtype = input.dtype();
    let to_tensor = |values: &[f64]| -> Result<Tensor> {
        Tensor::new(values, &candle_core::Device::Cpu)?.to_dtype(dtype)
    };
    Ok((
        output,
        BatchStatistics {
            mean: to_tensor(&statistics.mean)?,
            variance: to_tensor(&statistics.variance)?,
        },
    ))
}
