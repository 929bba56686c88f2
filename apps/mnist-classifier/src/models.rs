//! The models the classifier can train, from the simplest to the strongest, as the course and
//! tch-rs' MNIST tutorial order them: logistic regression → a multi-layer perceptron → the
//! course's CNN (§5.1) → LeNet-5 → a deeper CNN with batch normalisation and dropout.

use std::{fmt, str::FromStr};

use anyhow::{bail, Result};
use dl_nn::{Activation, Conv2dConfig, Sequential, VarStore};

/// The shape of one MNIST image: one channel of 28 x 28 pixels.
pub const IMAGE_SHAPE: [usize; 3] = [1, 28, 28];

/// Which network to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    /// Logistic regression: one Dense layer from 784 pixels to 10 classes (~92%).
    Logreg,
    /// A multi-layer perceptron, 784 → 512 → 256 → 10 with ReLU and dropout (~98%).
    Mlp,
    /// The course's CNN: Conv2d(32, 3x3, relu) → MaxPool(2) → Flatten → Dense(128, relu) →
    /// Dense(10, softmax) (~98.5–99%).
    CourseCnn,
    /// LeNet-5 (LeCun et al. 1998) with ReLU: two 5x5 convolutions with pooling, then 120 → 84 → 10.
    Lenet5,
    /// Two convolution blocks with batch normalisation and dropout (~99.4% with augmentation).
    Cnn,
}

impl ModelKind {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Logreg => "logreg",
            Self::Mlp => "mlp",
            Self::CourseCnn => "course-cnn",
            Self::Lenet5 => "lenet5",
            Self::Cnn => "cnn",
        }
    }

    /// The dropout rate used when `--dropout` is not given.
    pub fn default_dropout(self) -> f32 {
        match self {
            Self::Logreg | Self::CourseCnn | Self::Lenet5 => 0.0,
            Self::Mlp => 0.2,
            Self::Cnn => 0.25,
        }
    }

    /// Builds the network's layers and variables in `store`.
    pub fn build(self, store: &VarStore, dropout: f32) -> Result<Sequential> {
        let builder = Sequential::builder(&store.root(), &IMAGE_SHAPE);
        let model = match self {
            Self::Logreg => builder.flatten()?.dense(10, Activation::Softmax)?.build(),
            Self::Mlp => builder
                .flatten()?
                .dense(512, Activation::Relu)?
                .dropout(dropout)?
                .dense(256, Activation::Relu)?
                .dropout(dropout)?
                .dense(10, Activation::Softmax)?
                .build(),
            Self::CourseCnn => {
                let with_dropout = builder
                    .conv2d(32, 3, Activation::Relu)?
                    .max_pool2d(2)?
                    .flatten()?;
                let with_dropout = if dropout > 0.0 {
                    with_dropout.dropout(dropout)?
                } else {
                    with_dropout
                };
                with_dropout
                    .dense(128, Activation::Relu)?
                    .dense(10, Activation::Softmax)?
                    .build()
            }
            Self::Lenet5 => builder
                .conv2d_with(6, Conv2dConfig::new(5).padding(2), Activation::Relu)?
                .max_pool2d(2)?
                .conv2d(16, 5, Activation::Relu)?
                .max_pool2d(2)?
                .flatten()?
                .dense(120, Activation::Relu)?
                .dense(84, Activation::Relu)?
                .dense(10, Activation::Softmax)?
                .build(),
            Self::Cnn => builder
                .conv2d_with(32, Conv2dConfig::new(3).padding(1), Activation::Identity)?
                .batch_norm()?
                .activation(Activation::Relu)?
                .max_pool2d(2)?
                .conv2d_with(64, Conv2dConfig::new(3).padding(1), Activation::Identity)?
                .batch_norm()?
                .activation(Activation::Relu)?
                .max_pool2d(2)?
                .dropout(dropout)?
                .flatten()?
                .dense(128, Activation::Relu)?
                .dropout((2.0 * dropout).min(0.5))?
                .dense(10, Activation::Softmax)?
                .build(),
        };
        Ok(model)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        for kind in [
            Self::Logreg,
            Self::Mlp,
            Self::CourseCnn,
            Self::Lenet5,
            Self::Cnn,
        ] {
            if kind.name() == text {
                return Ok(kind);
            }
        }
        bail!("unknown model '{text}': use logreg, mlp, course-cnn, lenet5 or cnn")
    }
}
