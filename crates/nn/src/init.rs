//! Weight initialisation: where gradient descent starts.
//!
//! A network whose weights all start equal never breaks the symmetry between its neurons, and
//! one whose weights start too large or too small saturates or vanishes its signals. These are
//! the standard schemes; every draw comes from the seeded generator of the [`VarStore`], so the
//! same seed gives the same starting point bit for bit.
//!
//! [`VarStore`]: crate::VarStore

use dl_tensor::{DType, Device, SeededRng, Shape, Tensor};

use crate::Result;

/// How to fill a new parameter tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros (biases).
    Zeros,
    /// All ones (batch-norm scales).
    Ones,
    /// Every element equal to the value.
    Constant(f32),
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f32,
        /// Upper bound.
        high: f32,
    },
    /// Normal with the given mean and standard deviation.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Glorot (Xavier) uniform, Keras' default for Dense and Conv2D kernels:
    /// U(−a, a) with a = sqrt(6 / (fan_in + fan_out)), which keeps the variance of signals and
    /// of gradients about equal from layer to layer.
    GlorotUniform {
        /// Inputs feeding each output (in_features, or in_channels · kernel area).
        fan_in: usize,
        /// Outputs fed by each input (out_features, or out_channels · kernel area).
        fan_out: usize,
    },
    /// He (Kaiming) normal for ReLU layers: N(0, 2 / fan_in).
    HeNormal {
        /// Inputs feeding each output.
        fan_in: usize,
    },
    /// PyTorch's default for Linear, Conv and LSTM: U(−1/sqrt(fan_in), 1/sqrt(fan_in)).
    FanInUniform {
        /// Inputs feeding each output.
        fan_in: usize,
    },
}

impl Init {
    /// Draws a tensor of `shape` from this scheme.
    pub fn tensor(
        &self,
        shape: &Shape,
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        let tensor = match *self {
            Self::Zeros => Tensor::zeros(shape, DType::F32, device)?,
            Self::Ones => Tensor::ones(shape, DType::F32, device)?,
            Self::Constant(value) => Tensor::full(value, shape, device)?,
            Self::Uniform { low, high } => rng.uniform_tensor(shape, low, high, device)?,
            Self::Normal { mean, std } => rng.normal_tensor(shape, mean, std, device)?,
            Self::GlorotUniform { fan_in, fan_out } => {
                let limit = (6.0 / (fan_in + fan_out).max(1) as f32).sqrt();
                rng.uniform_tensor(shape, -limit, limit, device)?
            }
            Self::HeNormal { fan_in } => {
                let std = (2.0 / fan_in.max(1) as f32).sqrt();
                rng.normal_tensor(shape, 0.0, std, device)?
            }
            Self::FanInUniform { fan_in } => {
                let limit = 1.0 / (fan_in.max(1) as f32).sqrt();
                rng.uniform_tensor(shape, -limit, limit, device)?
            }
        };
        Ok(tensor.to_dtype(dtype)?)
    }
}
