//! Leaky ReLU (course §4.2; Maas et al., "Rectifier Nonlinearities Improve Neural Network
//! Acoustic Models", 2013), y = x for x > 0 and αx otherwise, in one pass forward and one
//! backward: ∂L/∂x = ∂L/∂y · (1 if y > 0 else α), read from the output (for α > 0, y and x
//! have the same sign).
//!
//! Candle spells it max(x, αx): a scaled copy and a maximum forward, and backward the
//! maximum's masks (two comparisons, their conversions and products), each a pass over the
//! tensor with a temporary. A GAN's discriminator applies it after every layer.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

struct LeakyReluOp {
    slope: f64,
}

fn map<T: Real>(values: &mut [T], f: impl Fn(T) -> T + Sync) {
    if worth_parallel(values.len()) {
        values
            .par_chunks_mut(CHUNK)
            .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = f(*v)));
    } else {
        values.iter_mut().for_each(|v| *v = f(*v));
    }
}

impl CustomOp1 for LeakyReluOp {
    fn name(&self) -> &'static str {
        "dl-leaky-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch_real!(storage.dtype(), "dl-leaky-relu", |T| {
            let (slope, zero) = (T::from_f64(self.slope), T::from_f64(0.0));
            let mut values = row_major::<T>(storage, layout)?.into_owned();
            map(&mut values, |x| if x > zero { x } else { x * slope });
            Ok((T::to_cpu_storage_owned(values), layout.shape().clone()))
        })
    }

    fn bwd(
        &self,
        _input: &Tensor,
        output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<Option<Tensor>> {
        dispatch_real!(output.dtype(), "dl-leaky-relu", |T| {
            let (slope, zero) = (T::from_f64(self.slope), T::from_f64(0.0));
            let gradient = with_row_major::<T, _>(output, |y| {
                with_row_major::<T, _>(output_grad, |g| {
                    let mut gradient = g.to_vec();
                    let scale = |(value, &y): (&mut T, &T)| {
                        if y <= zero {
                            *value *= slope;
                        }
                    };
                    if worth_parallel(gradient.len()) {
                        gradient
                            .par_chunks_mut(CHUNK)
                            .zip(y.par_chunks(CHUNK))
                            .for_each(|(g, y)| g.iter_mut().zip(y).for_each(scale));
                    } else {
                        gradient.iter_mut().zip(y).for_each(scale);
                    }
                    Ok(gradient)
                })
            })?;
            Ok(Some(tensor_from(gradient, output.shape())?))
        })
    }
}

/// Leaky ReLU with slope `slope` > 0 for negative inputs.
///
/// On the CPU in `f32` or `f64` the kernel of this module; elsewhere (and for a slope ≤ 0,
/// whose output no longer tells the input's sign) Candle's `maximum(x, slope·x)`.
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// let x = Tensor::new(&[-2f32, 0.5, 3.], &Device::Cpu)?;
/// let y = kernels::leaky_relu::leaky_relu(&x, 0.2)?;
/// assert_eq!(y.to_vec1::<f32>()?, [-0.4, 0.5, 3.]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn leaky_relu(input: &Tensor, slope: f64) -> Result<Tensor> {
    if slope > 0.0 && super::is_supported(&[input]) {
        return input.apply_op1(LeakyReluOp { slope });
    }
    input.maximum(&input.affine(slope, 0.0)?)
}
