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

    /// The filters or units of each hidden Conv2D and Dense layer, in order (the output
    /// layer's 10 classes excluded): what structured pruning narrows.
    pub fn default_widths(self) -> &'static [usize] {
        match self {
            Self::Logreg => &[],
            Self::Mlp => &[512, 256],
            Self::CourseCnn => &[32, 128],
            Self::Lenet5 => &[6, 16, 120, 84],
            Self::Cnn => &[32, 64, 128],
        }
    }

    /// Builds the network's layers and variables in `store`.
    pub fn build(self, store: &VarStore, dropout: f32) -> Result<Sequential> {
        self.build_with_widths(store, dropout, self.default_widths())
    }

    /// Builds the network with `widths` filters or units in its hidden layers instead of the
    /// defaults (see [`ImageModel::default_widths`]): a structurally pruned model, or a wider
    /// one (`train --widths`, up to [`MAX_WIDTH_FACTOR`] times each default, so that a forged
    /// checkpoint cannot ask for an absurd allocation).
    pub fn build_with_widths(
        self,
        store: &VarStore,
        dropout: f32,
        widths: &[usize],
    ) -> Result<Sequential> {
        let defaults = self.default_widths();
        let within_cap = widths
            .iter()
            .zip(defaults)
            .all(|(width, default)| *width <= MAX_WIDTH_FACTOR * default);
        if widths.len() != defaults.len() || widths.contains(&0) || !within_cap {
            return Err(ModelsError::BadWidths {
                model: self.name(),
                widths: widths.to_vec(),
                expected: defaults.len(),
                defaults,
            });
        }
        let w = |index: usize| widths[index];
        let builder = Sequential::builder(&store.root(), &IMAGE_SHAPE);
        let model = match self {
            Self::Logreg => builder.flatten()?.dense(10, Activation::Softmax)?.build(),
            Self::Mlp => builder
                .flatten()?
                .dense(w(0), Activation::Relu)?
                .dropout(dropout)?
                .dense(w(1), Activation::Relu)?
                .dropout(dropout)?
                .dense(10, Activation::Softmax)?
                .build(),
            // ANCHOR: course-cnn
            Self::CourseCnn => {
                let with_dropout = builder
                    .conv2d(w(0), 3, Activation::Relu)?
                    .max_pool2d(2)?
                    .flatten()?;
                let with_dropout = if dropout > 0.0 {
                    with_dropout.dropout(dropout)?
                } else {
                    with_dropout
                };
                with_dropout
                    .dense(w(1), Activation::Relu)?
                    .dense(10, Activation::Softmax)?
                    .build()
            }
            // ANCHOR_END: course-cnn
            Self::Lenet5 => builder
                .conv2d_with(w(0), Conv2dConfig::new(5).padding(2), Activation::Relu)?
                .max_pool2d(2)?
                .conv2d(w(1), 5, Activation::Relu)?
                .max_pool2d(2)?
                .flatten()?
                .dense(w(2), Activation::Relu)?
                .dense(w(3), Activation::Relu)?
                .dense(10, Activation::Softmax)?
                .build(),
            Self::Cnn => builder
                .conv2d_with(w(0), Conv2dConfig::new(3).padding(1), Activation::Identity)?
                .batch_norm()?
                .activation(Activation::Relu)?
                .max_pool2d(2)?
                .conv2d_with(w(1), Conv2dConfig::new(3).padding(1), Activation::Identity)?
                .batch_norm()?
                .activation(Activation::Relu)?
                .max_pool2d(2)?
                .dropout(dropout)?
                .flatten()?
                .dense(w(2), Activation::Relu)?
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
    /// Narrower hidden layers than the architecture's defaults, after structured pruning
    /// (absent for a model of the default widths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<LayerWidths>,
}

/// The most hidden layers a zoo model has (LeNet-5's four).
const MAX_HIDDEN_LAYERS: usize = 4;

/// How many times its default width a hidden layer may be.
pub const MAX_WIDTH_FACTOR: usize = 8;

/// The filters or units of each hidden layer of a structurally pruned model, in order; stored
/// in the recipe as a JSON list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<usize>", try_from = "Vec<usize>")]
pub struct LayerWidths {
    values: [usize; MAX_HIDDEN_LAYERS],
    count: usize,
}

impl LayerWidths {
    /// The widths `values`; more than four layers is an error.
    pub fn new(values: &[usize]) -> std::result::Result<Self, String> {
        if values.len() > MAX_HIDDEN_LAYERS {
            return Err(format!(
                "{} widths given; the zoo's models have at most {MAX_HIDDEN_LAYERS} hidden layers",
                values.len()
            ));
        }
        let mut stored = [0; MAX_HIDDEN_LAYERS];
        stored[..values.len()].copy_from_slice(values);
        Ok(Self {
            values: stored,
            count: values.len(),
        })
    }

    /// The widths.
    pub fn as_slice(&self) -> &[usize] {
        &self.values[..self.count]
    }
}

impl From<LayerWidths> for Vec<usize> {
    fn from(widths: LayerWidths) -> Self {
        widths.as_slice().to_vec()
    }
}

impl TryFrom<Vec<usize>> for LayerWidths {
    type Error = String;

    fn try_from(values: Vec<usize>) -> std::result::Result<Self, String> {
        Self::new(&values)
    }
}

impl ImageRecipe {
    /// The recipe of `model` with its default dropout, for `dataset`.
    pub fn new(model: ImageModel, dataset: ImageDataset) -> Self {
        Self {
            model,
            dropout: model.default_dropout(),
            dataset,
            widths: None,
        }
    }

    /// Builds the network, with fresh weights drawn from `store`'s seed.
    pub fn build(&self, store: &VarStore) -> Result<Sequential> {
        match &self.widths {
            Some(widths) => self
                .model
                .build_with_widths(store, self.dropout, widths.as_slice()),
            None => self.model.build(store, self.dropout),
        }
    }
}
