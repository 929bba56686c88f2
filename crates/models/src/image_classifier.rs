//! The MNIST model zoo (course §5.1, 图像分类), from the simplest to the strongest, as the course
//! and tch-rs' MNIST tutorial order them: logistic regression → a multi-layer perceptron → the
//! course's CNN → LeNet-5 (LeCun et al. 1998) → a deeper CNN with batch normalisation
//! (Ioffe & Szegedy 2015) and dropout (Srivastava et al. 2014).
//!
//! [`ImageModel`] names an architecture and builds it; [`ImageRecipe`] is everything a
//! checkpoint needs to rebuild a trained classifier (architecture, dropout, dataset).

use std::{fmt, str::FromStr};

use dl_data::ImageDataset;
use dl_nn::{Activation, Conv2dConfig, Sequential, VarStore};
use serde::{Deserialize, Serialize};

use crate::{ModelsError, Result};

/// The shape of one MNIST image: one channel of 28 x 28 pixels.
pub const IMAGE_SHAPE: [usize; 3] = [1, 28, 28];

/// Which network to build. Serialised (and named on command lines) as [`ImageModel::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ImageModel {
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

impl ImageModel {
    /// Every architecture, simplest first.
    pub const ALL: [Self; 5] = [
        Self::Logreg,
        Self::Mlp,
        Self::CourseCnn,
        Self::Lenet5,
        Self::Cnn,
    ];

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

impl fmt::Display for ImageModel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for ImageModel {
    type Err = ModelsError;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| ModelsError::UnknownModel {
                name: text.to_string(),
                known: "logreg, mlp, course-cnn, lenet5 or cnn",
            })
    }
}

/// Everything needed to rebuild a trained classifier's architecture: the metadata entry
/// `recipe` of its checkpoint, as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageRecipe {
    /// The architecture.
    pub model: ImageModel,
    /// Its dropout rate.
    pub dropout: f32,
    /// The dataset it was trained on (for class names and evaluation).
    pub dataset: ImageDataset,
}

impl ImageRecipe {
    /// The recipe of `model` with its default dropout, for `dataset`.
    pub fn new(model: ImageModel, dataset: ImageDataset) -> Self {
        Self {
            model,
            dropout: model.default_dropout(),
            dataset,
        }
    }

    /// Builds the network, with fresh weights drawn from `store`'s seed.
    pub fn build(&self, store: &VarStore) -> Result<Sequential> {
        self.model.build(store, self.dropout)
    }
}
