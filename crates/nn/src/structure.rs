//! What a layer is, as data: the view that tools rewriting a trained model need (pruning ranks
//! a Dense layer's rows, quantization converts a convolution's weights to int8, §8 模型小型化).
//!
//! [`Layer::structure`] answers it for every layer of this crate; a layer written elsewhere
//! says [`LayerStructure::Other`] and such tools refuse the model, naming the layer.

use crate::{BatchNorm, Conv2d, Dense, Dropout, MaxPool2d};

/// A layer's kind with access to its parameters and settings.
#[derive(Clone, Copy)]
pub enum LayerStructure<'a> {
    /// A fully connected layer.
    Dense(&'a Dense),
    /// A 2-D convolution.
    Conv2d(&'a Conv2d),
    /// 2-D max pooling.
    MaxPool2d(&'a MaxPool2d),
    /// Batch normalisation.
    BatchNorm(&'a BatchNorm),
    /// Dropout: the identity at inference.
    Dropout(&'a Dropout),
    /// Flattening everything but the batch dimension.
    Flatten,
    /// The identity (a stage that only carries an activation).
    Identity,
    /// A layer the tools do not know, by its kind (`Layer::kind`).
    Other(&'static str),
}

impl LayerStructure<'_> {
    /// The name of the kind, as in a model summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dense(_) => "Dense",
            Self::Conv2d(_) => "Conv2D",
            Self::MaxPool2d(_) => "MaxPooling2D",
            Self::BatchNorm(_) => "BatchNormalization",
            Self::Dropout(_) => "Dropout",
            Self::Flatten => "Flatten",
            Self::Identity => "Activation",
            Self::Other(kind) => kind,
        }
    }
}
