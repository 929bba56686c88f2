//! The contract every layer keeps: map an input tensor to an output tensor, in training or in
//! evaluation mode.

use dl_tensor::Tensor;

use crate::{Activation, Result};

/// Whether a forward pass trains the network or evaluates it. Dropout drops units and batch
/// normalisation uses batch statistics (and updates its running averages) only in `Train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Training: randomness and batch statistics on.
    Train,
    /// Evaluation and inference: deterministic.
    #[default]
    Eval,
}

/// A differentiable function with (optionally) trainable parameters.
pub trait Layer: Send + Sync {
    /// Computes the layer's output.
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor>;

    /// The layer's type as the summary shows it, e.g. `Dense` or `Conv2D`.
    fn kind(&self) -> &'static str;

    /// Computes `activation(forward(input))`, what `Sequential` runs for each stage. Layers
    /// that can fuse an activation into their own computation override it (`Conv2d` with ReLU
    /// on the CPU); the default applies the activation afterwards.
    fn forward_activated(
        &self,
        input: &Tensor,
        mode: Mode,
        activation: Activation,
    ) -> Result<Tensor> {
        activation.apply(&self.forward(input, mode)?)
    }
}
