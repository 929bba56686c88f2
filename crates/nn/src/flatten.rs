//! Flatten: turns the feature maps of a convolutional block, `(N, C, H, W)`, into the feature
//! vectors a Dense layer reads, `(N, C·H·W)`. It has no parameters; it only changes the view.

use dl_tensor::Tensor;

use crate::{Layer, LayerStructure, Mode, NnError, Result};

/// Keeps the batch dimension and merges all others.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;

impl Layer for Flatten {
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        if input.rank() < 2 {
            return Err(NnError::shape(
                "flatten",
                format!("expected a batch (N, ...), got shape {:?}", input.dims()),
            ));
        }
        Ok(input.flatten_from(1)?)
    }

    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::Flatten
    }
}
