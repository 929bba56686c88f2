//! Activation functions (course §4.2 "激活函数"): the non-linearity f in y = f(Σ wᵢxᵢ + b).
//!
//! Without f a stack of layers collapses into one linear map; with it, a network can bend its
//! decision boundary (XOR needs this). Each variant documents its formula and derivative;
//! [`Activation::derivative`] computes the derivative in closed form, and
//! `tests/activations.rs` checks both the closed form and Candle's backward pass against
//! finite differences.

use std::{fmt, str::FromStr};

use dl_tensor::{kernels, Tensor, D};

use crate::{NnError, Result};

/// The activation applied after a neuron's weighted sum.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// f(x) = x; f'(x) = 1. The output of a regression layer, or logits.
    #[default]
    Identity,
    /// σ(x) = 1 / (1 + e^(−x)); σ'(x) = σ(x)(1 − σ(x)). Squashes to (0, 1); saturates, so
    /// gradients vanish for large |x| (at most 1/4).
    Sigmoid,
    /// ReLU(x) = max(0, x); derivative 1 for x > 0, else 0. The default for hidden layers:
    /// cheap and non-saturating for positive inputs.
    Relu,
    /// tanh(x) = (e^x − e^(−x)) / (e^x + e^(−x)); tanh'(x) = 1 − tanh²(x). Zero-centred,
    /// squashes to (−1, 1).
    Tanh,
    /// LeakyReLU(x) = x for x > 0, αx otherwise; derivative 1 or α. Keeps a small gradient
    /// for negative inputs so units cannot die.
    LeakyRelu(f32),
    /// GELU(x) ≈ 0.5x(1 + tanh(u)), u = sqrt(2/π)(x + 0.044715x³) (the tanh approximation);
    /// GELU'(x) = 0.5(1 + tanh u) + 0.5x(1 − tanh² u)·sqrt(2/π)(1 + 3·0.044715x²).
    Gelu,
    /// softmax(x)ᵢ = e^(xᵢ) / Σⱼ e^(xⱼ) over the last dimension: turns scores into
    /// probabilities. Its derivative is a Jacobian, ∂sᵢ/∂xⱼ = sᵢ(δᵢⱼ − sⱼ), not elementwise.
    Softmax,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

impl Activation {
    /// Applies the activation elementwise (softmax: over the last dimension).
    // ANCHOR: activation-apply
    pub fn apply(&self, input: &Tensor) -> Result<Tensor> {
        let output = match *self {
            Self::Identity => input.clone(),
            Self::Sigmoid => candle_nn::ops::sigmoid(input)?,
            Self::Relu => input.relu()?,
            Self::Tanh => input.tanh()?,
            Self::LeakyRelu(slope) if kernels::enabled() => {
                kernels::leaky_relu::leaky_relu(input, f64::from(slope))?
            }
            Self::LeakyRelu(slope) => input.maximum(&input.affine(f64::from(slope), 0.0)?)?,
            Self::Gelu => input.gelu()?,
            Self::Softmax => softmax(input)?,
        };
        Ok(output)
    }
    // ANCHOR_END: activation-apply

    /// The derivative f'(x) in closed form, elementwise. Softmax has no elementwise derivative
    /// (see its documentation) and returns an error.
    pub fn derivative(&self, input: &Tensor) -> Result<Tensor> {
        let derivative = match *self {
            Self::Identity => input.ones_like()?,
            Self::Sigmoid => {
                let sigma = candle_nn::ops::sigmoid(input)?;
                sigma.mul(&sigma.affine(-1.0, 1.0)?)?
            }
            Self::Relu => input.gt(0.0)?.to_dtype(input.dtype())?,
            Self::Tanh => input.tanh()?.sqr()?.affine(-1.0, 1.0)?,
            Self::LeakyRelu(slope) => {
                let positive = input.gt(0.0)?.to_dtype(input.dtype())?;
                positive.affine(1.0 - f64::from(slope), f64::from(slope))?
            }
            Self::Gelu => {
                let cubic = input.powf(3.0)?.affine(GELU_CUBIC, 0.0)?;
                let inner = input.add(&cubic)?.affine(SQRT_2_OVER_PI, 0.0)?;
                let tanh_inner = inner.tanh()?;
                let inner_slope = input.sqr()?.affine(3.0 * GELU_CUBIC * SQRT_2_OVER_PI, SQRT_2_OVER_PI)?;
                let first = tanh_inner.affine(0.5, 0.5)?;
                let second = input
                    .mul(&tanh_inner.sqr()?.affine(-0.5, 0.5)?)?
                    .mul(&inner_slope)?;
                first.add(&second)?
            }
            Self::Softmax => {
                return Err(NnError::config(
                    "softmax derivative",
                    "the derivative of softmax is the Jacobian s_i(δ_ij − s_j), not elementwise; use backward",
                ))
            }
        };
        Ok(derivative)
    }
}

/// Numerically stable softmax over the last dimension: subtracting the row maximum first keeps
/// e^x from overflowing and does not change the result. Built from ordinary ops so that its
/// gradient flows (Candle's fused `softmax_last_dim` has no backward).
pub fn softmax(input: &Tensor) -> Result<Tensor> {
    let maximum = input.max_keepdim(D::Minus1)?.detach();
    let exponentials = input.broadcast_sub(&maximum)?.exp()?;
    Ok(exponentials.broadcast_div(&exponentials.sum_keepdim(D::Minus1)?)?)
}

/// Log-softmax over the last dimension, log sᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m) with m the row
/// maximum: the stable way to get log-probabilities for cross-entropy.
pub fn log_softmax(input: &Tensor) -> Result<Tensor> {
    let maximum = input.max_keepdim(D::Minus1)?.detach();
    let shifted = input.broadcast_sub(&maximum)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

impl fmt::Display for Activation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity => write!(formatter, "identity"),
            Self::Sigmoid => write!(formatter, "sigmoid"),
            Self::Relu => write!(formatter, "relu"),
            Self::Tanh => write!(formatter, "tanh"),
            Self::LeakyRelu(slope) => write!(formatter, "leaky_relu:{slope}"),
            Self::Gelu => write!(formatter, "gelu"),
            Self::Softmax => write!(formatter, "softmax"),
        }
    }
}

impl FromStr for Activation {
    type Err = NnError;

    /// Parses the names printed by `Display`: `identity` (or `linear`), `sigmoid`, `relu`,
    /// `tanh`, `leaky_relu` (slope 0.01) or `leaky_relu:0.2`, `gelu`, `softmax`.
    fn from_str(text: &str) -> Result<Self> {
        let lower = text.trim().to_ascii_lowercase();
        let (name, argument) = match lower.split_once(':') {
            Some((name, argument)) => (name, Some(argument)),
            None => (lower.as_str(), None),
        };
        let activation = match (name, argument) {
            ("identity" | "linear" | "none", None) => Self::Identity,
            ("sigmoid", None) => Self::Sigmoid,
            ("relu", None) => Self::Relu,
            ("tanh", None) => Self::Tanh,
            ("leaky_relu" | "leakyrelu", None) => Self::LeakyRelu(0.01),
            ("leaky_relu" | "leakyrelu", Some(slope)) => {
                Self::LeakyRelu(slope.parse().map_err(|_| {
                    NnError::config("activation", format!("bad leaky_relu slope '{slope}'"))
                })?)
            }
            ("gelu", None) => Self::Gelu,
            ("softmax", None) => Self::Softmax,
            _ => {
                return Err(NnError::config(
                    "activation",
                    format!("unknown activation '{text}': use identity, sigmoid, relu, tanh, leaky_relu[:slope], gelu or softmax"),
                ))
            }
        };
        Ok(activation)
    }
}
