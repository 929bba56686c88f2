//! dl-autograd: backpropagation (course §3.2, "反向传播算法") as something you can look at.
//!
//! Candle computes gradients with `loss.backward()`; this crate makes the result readable and
//! safe to use in training:
//! - [`Gradients`] answers the gradient of each named variable, the global gradient norm, clips
//!   by value or by norm, and lists variables that received no gradient at all (Candle drops
//!   gradients silently through some fused ops, such as `softmax_last_dim`).
//! - [`check_gradients`] compares Candle's backward pass with central finite differences,
//!   the test every layer, activation and loss of dl-nn passes.
//!
//! ```
//! use dl_autograd::Gradients;
//! use dl_tensor::{Device, Tensor, Var};
//!
//! // loss = sum(w * x) with x = [1, 2, 3]: d loss / d w = x.
//! let weight = Var::new(&[0.5f32, -1.0, 2.0], &Device::Cpu)?;
//! let input = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu)?;
//! let loss = weight.as_tensor().mul(&input)?.sum_all()?;
//! let gradients = Gradients::compute(&loss, [("weight", &weight)])?;
//! assert_eq!(gradients.get("weight").unwrap().to_vec1::<f32>()?, vec![1.0, 2.0, 3.0]);
//! # Ok::<(), dl_autograd::AutogradError>(())
//! ```

mod check;
mod error;
mod gradients;

pub use check::{check_gradients, weighted_sum, GradientCheck, GradientCheckReport};
pub use error::{AutogradError, Result};
pub use gradients::Gradients;
