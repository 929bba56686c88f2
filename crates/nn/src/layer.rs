//! The contract every layer keeps: map an input tensor to an output tensor, in training or in
//! evaluation mode.

use dl_tensor::Tensor;

use crate::{Activation, LayerStructure, NnError, Result};

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
// ANCHOR: layer-trait
pub trait Layer: Send + Sync {
    /// Computes the layer's output.
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor>;

    /// The layer's type as the summary shows it, e.g. `Dense` or `Conv2D`.
    fn kind(&self) -> &'static str;
    // ANCHOR_END: layer-trait

    /// What the layer is, with access to its parameters: what pruning and quantization read.
    /// The default says [`LayerStructure::Other`].
    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::Other(self.kind())
    }

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

    /// The states of the random generators the layer draws from in training (dropout masks), in
    /// a fixed order: what a checkpoint carries so that a resumed run draws the masks the
    /// uninterrupted run would have drawn. Layers that draw nothing have none.
    fn random_states(&self) -> Vec<[u64; 4]> {
        Vec::new()
    }

    /// Continues from states that [`Layer::random_states`] returned: `states` must hold exactly
    /// as many as it returns, else an error naming the layer.
    fn set_random_states(&self, states: &[[u64; 4]]) -> Result<()> {
        expect_random_states(self.kind(), states, 0)
    }
}

/// An error unless `states` holds `expected` generator states, for [`Layer::set_random_states`].
pub(crate) fn expect_random_states(
    layer: &str,
    states: &[[u64; 4]],
    expected: usize,
) -> Result<()> {
    if states.len() == expected {
        Ok(())
    } else {
        Err(NnError::config(
            layer,
            format!(
                "expected {expected} random generator state(s), got {}: the checkpoint is from another model",
                states.len()
            ),
        ))
    }
}
