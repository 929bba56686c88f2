//! The generative adversarial network (course §2.3 生成对抗网络, "能够生成新的数据样本"):
//! a generator G turns noise z into images, a discriminator D scores images as real or fake,
//! and the two are trained against each other (Goodfellow et al., "Generative Adversarial
//! Nets", 2014).
//!
//! Two architectures for 28x28 grey images in [−1, 1]:
//! - [`GanModel::Dcgan`] (Radford et al. 2015), as `../shared/bench/pytorch_baseline.py`'s `gan`
//!   workload at width W:
//!   G = z → Dense(2W·7·7, no bias) → BatchNorm → ReLU → ConvTranspose2d(2W→W, 4, s2, p1, no
//!   bias) → BatchNorm → ReLU → ConvTranspose2d(W→1, 4, s2, p1) → tanh;
//!   D = Conv2d(1→W, 4, s2, p1) → LeakyReLU(0.2) → Conv2d(W→2W, 4, s2, p1, no bias) →
//!   BatchNorm → LeakyReLU(0.2) → Dense(2W·7·7→1), a logit.
//! - [`GanModel::Mlp`], the original fully connected GAN: G = z → Dense(8W) → LeakyReLU(0.2) →
//!   Dense(16W) → LeakyReLU(0.2) → Dense(784) → tanh; D = 784 → Dense(16W) → LeakyReLU(0.2) →
//!   Dense(8W) → LeakyReLU(0.2) → Dense(1).
//!
//! Conditional GANs (Mirza & Osindero 2014) also take the class: G reads z joined with a
//! learned embedding of the label, D reads the image joined with one (an extra image channel
//! for the DCGAN, extra inputs for the MLP), so that G can be asked for a given digit.
//!
//! Weights start as DCGAN prescribes: N(0, 0.02) for convolutions and dense layers, N(1, 0.02)
//! for batch-norm scales, zero biases. The variables live in one store, `generator.*` and
//! `discriminator.*`; the random generator of the noise is part of the model (and of its
//! checkpoints), so a resumed run draws the noise the uninterrupted run would have drawn.

use std::sync::Mutex;

use dl_nn::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, Dense, Embedding, Init, Layer, Mode, NnError, Path, VarStore,
};
use dl_tensor::{DType, SeededRng, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::IMAGE_SHAPE;

/// The variable-name prefix of the generator.
pub const GENERATOR_PREFIX: &str = "generator";
/// The variable-name prefix of the averaged generator.
pub const GENERATOR_EMA_PREFIX: &str = "generator_ema";
/// The weight of the past in the moving average of G's weights: ema ← d·ema + (1 − d)·w after
/// every step of G (an average over about 1/(1 − d) = 1,000 steps).
pub const EMA_DECAY: f64 = 0.999;
/// The variable-name prefix of the discriminator.
pub const DISCRIMINATOR_PREFIX: &str = "discriminator";
/// Classes of a conditional GAN (the ten digits or clothing kinds).
pub const GAN_CLASSES: usize = 10;
/// The size of the generator's label embedding in a conditional GAN.
const LABEL_EMBEDDING: usize = 10;
/// The largest width and latent size a recipe may ask for.
pub const MAX_GAN_WIDTH: usize = 1024;
/// The seed stream of the DCGAN initialisation (separate from the layers' own draws).
const INIT_STREAM: u64 = 0x6a11;
/// The seed stream of the noise generator.
const NOISE_STREAM: u64 = 0x6a12;

/// The GAN architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum GanModel {
    /// Deep convolutional GAN (Radford et al. 2015): transposed convolutions grow 7x7 maps to
    /// 28x28, with batch normalisation.
    Dcgan,
    /// The original fully connected GAN (Goodfellow et al. 2014).
    Mlp,
}

impl GanModel {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dcgan => "dcgan",
            Self::Mlp => "mlp",
        }
    }
}

impl std::fmt::Display for GanModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What is needed to rebuild a GAN: its architecture and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GanRecipe {
    /// The architecture.
    pub model: GanModel,
    /// W, the number of feature maps (DCGAN) or the unit scale (MLP).
    pub width: usize,
    /// The size of the noise vector z.
    pub latent_dim: usize,
    /// Whether G and D also read the class.
    pub conditional: bool,
    /// The images the GAN learned, as dl-data names the dataset (`mnist`, `fashion-mnist`).
    pub dataset: dl_data::ImageDataset,
    /// Whether the GAN keeps an exponential moving average of G's weights (`generator_ema.*`,
    /// decay [`EMA_DECAY`]), the copy that generates (Yazıcı et al., "The Unusual
    /// Effectiveness of Averaging in GAN Training", 2019).
    #[serde(default)]
    pub ema: bool,
}

impl GanRecipe {
    /// Fails, with what to change, when a size is 0 or too large to be a real model.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let check = |name: &str, value: usize| {
            if value == 0 || value > MAX_GAN_WIDTH {
                Err(format!(
                    "{name} must be in 1..={MAX_GAN_WIDTH}, got {value}"
                ))
            } else {
                Ok(())
            }
        };
        check("width", self.width)?;
        check("latent_dim", self.latent_dim)
    }

    /// The shapes of the tensors whose size the recipe's width and latent size set (the
    /// largest ones): what a loader compares with a file before building the networks.
    pub fn key_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (w, z) = (self.width, self.latent_dim);
        let inputs = z + if self.conditional { LABEL_EMBEDDING } else { 0 };
        let extra = usize::from(self.conditional);
        let shapes = match self.model {
            GanModel::Dcgan => vec![
                ("generator.project.weight", vec![2 * w * 49, inputs]),
                ("generator.grow.weight", vec![2 * w, w, 4, 4]),
                ("discriminator.features.weight", vec![w, 1 + extra, 4, 4]),
                ("discriminator.classify.weight", vec![1, 2 * w * 49]),
            ],
            GanModel::Mlp => vec![
                ("generator.hidden.weight", vec![8 * w, inputs]),
                ("generator.to_image.weight", vec![784, 16 * w]),
                (
                    "discriminator.wide.weight",
                    vec![16 * w, 784 + extra * LABEL_EMBEDDING],
                ),
                ("discriminator.classify.weight", vec![1, 8 * w]),
            ],
        };
        shapes
            .into_iter()
            .map(|(name, shape)| (name.to_string(), shape))
            .collect()
    }

    /// Builds the GAN in `store` (whose seed draws the initial weights and the noise).
    pub fn build(&self, store: &VarStore) -> dl_nn::Result<Gan> {
        Gan::new(store, *self)
    }
}

/// The generator: noise (and a label) → images `(N, 1, 28, 28)` in [−1, 1].
pub struct Generator {
    recipe: GanRecipe,
    label_embedding: Option<Embedding>,
    layers: GeneratorLayers,
}

enum GeneratorLayers {
    Dcgan(Box<DcganGenerator>),
    Mlp {
        hidden: Dense,
        wide: Dense,
        to_image: Dense,
    },
}

/// The DCGAN generator's layers.
struct DcganGenerator {
    project: Dense,
    project_norm: BatchNorm,
    grow: ConvTranspose2d,
    grow_norm: BatchNorm,
    to_image: ConvTranspose2d,
}

/// The discriminator: images (and labels) → one logit each, `(N, 1)`.
pub struct Discriminator {
    label_embedding: Option<Embedding>,
    layers: DiscriminatorLayers,
}

enum DiscriminatorLayers {
    Dcgan {
        features: Conv2d,
        deeper: Conv2d,
        deeper_norm: BatchNorm,
        classify: Dense,
    },
    Mlp {
        wide: Dense,
        hidden: Dense,
        classify: Dense,
    },
}

const LEAKY: Activation = Activation::LeakyRelu(0.2);

fn grow_config() -> ConvTranspose2dConfig {
    ConvTranspose2dConfig::new(4).stride(2).padding(1)
}

fn shrink_config() -> Conv2dConfig {
    Conv2dConfig::new(4).stride(2).padding(1)
}

/// The labels as checked class ids, or an error when a conditional network gets none (or an
/// unconditional one gets some).
fn labels_for(
    what: &str,
    embedding: Option<&Embedding>,
    labels: Option<&Tensor>,
    mode: Mode,
) -> dl_nn::Result<Option<Tensor>> {
    match (embedding, labels) {
        (Some(embedding), Some(labels)) => Ok(Some(embedding.forward(labels, mode)?)),
        (None, None) => Ok(None),
        (Some(_), None) => Err(NnError::config(
            what,
            "this GAN is conditional: give a class label for every sample",
        )),
        (None, Some(_)) => Err(NnError::config(
            what,
            "this GAN is unconditional: it cannot be given class labels (train with --conditional)",
        )),
    }
}

impl Generator {
    fn new(path: &Path, recipe: GanRecipe) -> dl_nn::Result<Self> {
        let w = recipe.width;
        let label_embedding = recipe
            .conditional
            .then(|| Embedding::new(&path.sub("label_embedding"), GAN_CLASSES, LABEL_EMBEDDING))
            .transpose()?;
        let inputs = recipe.latent_dim
            + if recipe.conditional {
                LABEL_EMBEDDING
            } else {
                0
            };
        let norm = |name: &str, features| {
            BatchNorm::new(&path.sub(name), features, BatchNormConfig::default())
        };
        let layers = match recipe.model {
            GanModel::Dcgan => GeneratorLayers::Dcgan(Box::new(DcganGenerator {
                project: Dense::with_bias(&path.sub("project"), inputs, 2 * w * 49, false)?,
                project_norm: norm("project_norm", 2 * w)?,
                grow: ConvTranspose2d::new(&path.sub("grow"), 2 * w, w, grow_config(), false)?,
                grow_norm: norm("grow_norm", w)?,
                to_image: ConvTranspose2d::new(&path.sub("to_image"), w, 1, grow_config(), true)?,
            })),
            GanModel::Mlp => GeneratorLayers::Mlp {
                hidden: Dense::new(&path.sub("hidden"), inputs, 8 * w)?,
                wide: Dense::new(&path.sub("wide"), 8 * w, 16 * w)?,
                to_image: Dense::new(&path.sub("to_image"), 16 * w, 784)?,
            },
        };
        Ok(Self {
            recipe,
            label_embedding,
            layers,
        })
    }

    /// Images `(N, 1, 28, 28)` in [−1, 1] from noise `(N, latent_dim)` and, for a conditional
    /// GAN, class ids `(N)`.
    pub fn generate(
        &self,
        noise: &Tensor,
        labels: Option<&Tensor>,
        mode: Mode,
    ) -> dl_nn::Result<Tensor> {
        if noise.rank() != 2 || noise.dim(1)? != self.recipe.latent_dim {
            return Err(NnError::shape(
                GENERATOR_PREFIX,
                format!(
                    "expected noise (N, {}), got shape {:?}",
                    self.recipe.latent_dim,
                    noise.dims()
                ),
            ));
        }
        let input = match labels_for(
            GENERATOR_PREFIX,
            self.label_embedding.as_ref(),
            labels,
            mode,
        )? {
            Some(embedded) => Tensor::cat(&[noise, &embedded.to_dtype(noise.dtype())?], 1)?,
            None => noise.clone(),
        };
        let batch = input.dim(0)?;
        let w = self.recipe.width;
        let images = match &self.layers {
            GeneratorLayers::Dcgan(layers) => {
                let DcganGenerator {
                    project,
                    project_norm,
                    grow,
                    grow_norm,
                    to_image,
                } = layers.as_ref();
                let maps = project
                    .forward(&input, mode)?
                    .reshape((batch, 2 * w, 7, 7))?;
                let maps = project_norm.forward(&maps, mode)?.relu()?;
                let maps = grow_norm
                    .forward(&grow.forward(&maps, mode)?, mode)?
                    .relu()?;
                to_image.forward(&maps, mode)?.tanh()?
            }
            GeneratorLayers::Mlp {
                hidden,
                wide,
                to_image,
            } => {
                let hidden = LEAKY.apply(&hidden.forward(&input, mode)?)?;
                let wide = LEAKY.apply(&wide.forward(&hidden, mode)?)?;
                to_image
                    .forward(&wide, mode)?
                    .tanh()?
                    .reshape((batch, 1, 28, 28))?
            }
        };
        Ok(images)
    }
}

impl Discriminator {
    fn new(path: &Path, recipe: GanRecipe) -> dl_nn::Result<Self> {
        let w = recipe.width;
        let label_size = match recipe.model {
            GanModel::Dcgan => 28 * 28,
            GanModel::Mlp => LABEL_EMBEDDING,
        };
        let label_embedding = recipe
            .conditional
            .then(|| Embedding::new(&path.sub("label_embedding"), GAN_CLASSES, label_size))
            .transpose()?;
        let extra = usize::from(recipe.conditional);
        let layers = match recipe.model {
            GanModel::Dcgan => DiscriminatorLayers::Dcgan {
                features: Conv2d::new(&path.sub("features"), 1 + extra, w, shrink_config())?,
                deeper: Conv2d::with_bias(&path.sub("deeper"), w, 2 * w, shrink_config(), false)?,
                deeper_norm: BatchNorm::new(
                    &path.sub("deeper_norm"),
                    2 * w,
                    BatchNormConfig::default(),
                )?,
                classify: Dense::new(&path.sub("classify"), 2 * w * 49, 1)?,
            },
            GanModel::Mlp => DiscriminatorLayers::Mlp {
                wide: Dense::new(&path.sub("wide"), 784 + extra * LABEL_EMBEDDING, 16 * w)?,
                hidden: Dense::new(&path.sub("hidden"), 16 * w, 8 * w)?,
                classify: Dense::new(&path.sub("classify"), 8 * w, 1)?,
            },
        };
        Ok(Self {
            label_embedding,
            layers,
        })
    }

    /// One logit per image, `(N, 1)`: > 0 means "real". Images are `(N, 1, 28, 28)` in
    /// [−1, 1]; a conditional GAN also takes class ids `(N)`.
    pub fn score(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        mode: Mode,
    ) -> dl_nn::Result<Tensor> {
        let batch = images.dim(0)?;
        if images.dims()[1..] != IMAGE_SHAPE {
            return Err(NnError::shape(
                DISCRIMINATOR_PREFIX,
                format!(
                    "expected images (N, 1, 28, 28), got shape {:?}",
                    images.dims()
                ),
            ));
        }
        let embedded = labels_for(
            DISCRIMINATOR_PREFIX,
            self.label_embedding.as_ref(),
            labels,
            mode,
        )?
        .map(|embedded| embedded.to_dtype(images.dtype()))
        .transpose()?;
        let logits = match &self.layers {
            DiscriminatorLayers::Dcgan {
                features,
                deeper,
                deeper_norm,
                classify,
            } => {
                let input = match embedded {
                    Some(plane) => Tensor::cat(&[images, &plane.reshape((batch, 1, 28, 28))?], 1)?,
                    None => images.clone(),
                };
                let maps = LEAKY.apply(&features.forward(&input, mode)?)?;
                let maps = deeper_norm.forward(&deeper.forward(&maps, mode)?, mode)?;
                classify.forward(&LEAKY.apply(&maps)?.flatten_from(1)?, mode)?
            }
            DiscriminatorLayers::Mlp {
                wide,
                hidden,
                classify,
            } => {
                let flat = images.flatten_from(1)?;
                let input = match embedded {
                    Some(embedded) => Tensor::cat(&[&flat, &embedded], 1)?,
                    None => flat,
                };
                let wide = LEAKY.apply(&wide.forward(&input, mode)?)?;
                classify.forward(&LEAKY.apply(&hidden.forward(&wide, mode)?)?, mode)?
            }
        };
        Ok(logits)
    }
}

/// A generator and its discriminator in one store, with the generator of their noise.
pub struct Gan {
    recipe: GanRecipe,
    store: VarStore,
    generator: Generator,
    averaged: Option<Averaged>,
    discriminator: Discriminator,
    noise: Mutex<SeededRng>,
}

impl Gan {
    /// Builds both networks under `generator.` and `discriminator.` in `store`, initialised
    /// as DCGAN prescribes from the store's seed.
    pub fn new(store: &VarStore, recipe: GanRecipe) -> dl_nn::Result<Self> {
        recipe
            .validate()
            .map_err(|message| NnError::config("GAN recipe", message))?;
        let root = store.root();
        let generator = Generator::new(&root.sub(GENERATOR_PREFIX), recipe)?;
        let discriminator = Discriminator::new(&root.sub(DISCRIMINATOR_PREFIX), recipe)?;
        let mut init = store.fork_rng(INIT_STREAM);
        for (name, variable) in store.trainable_variables() {
            let leaf = name.rsplit('.').next().unwrap_or_default();
            let is_norm = name.contains("_norm.");
            let scheme = match (leaf, is_norm) {
                ("weight", true) => Init::Normal {
                    mean: 1.0,
                    std: 0.02,
                },
                ("weight", false) => Init::Normal {
                    mean: 0.0,
                    std: 0.02,
                },
                _ => continue,
            };
            if name.contains("label_embedding") {
                continue;
            }
            set(&variable, scheme, &mut init)?;
        }
        let averaged = recipe
            .ema
            .then(|| Averaged::new(store, recipe))
            .transpose()?;
        Ok(Self {
            recipe,
            store: store.clone(),
            generator,
            averaged,
            discriminator,
            noise: Mutex::new(store.fork_rng(NOISE_STREAM)),
        })
    }

    /// The generator that draws samples: the moving average of G's weights when the recipe
    /// keeps one, else G itself.
    pub fn sampler(&self) -> &Generator {
        self.averaged
            .as_ref()
            .map_or(&self.generator, |averaged| &averaged.generator)
    }

    /// Moves the average of G's weights one step towards G (after each update of G); nothing
    /// without one.
    pub fn update_average(&self) -> dl_nn::Result<()> {
        match &self.averaged {
            Some(averaged) => averaged.update(),
            None => Ok(()),
        }
    }

    /// The recipe it was built from.
    pub fn recipe(&self) -> &GanRecipe {
        &self.recipe
    }

    /// The store holding both networks.
    pub fn store(&self) -> &VarStore {
        &self.store
    }

    /// The generator being trained (see [`Gan::sampler`] for the one that draws samples).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The discriminator.
    pub fn discriminator(&self) -> &Discriminator {
        &self.discriminator
    }

    /// The trainable variables of one network (`prefix` = [`GENERATOR_PREFIX`] or
    /// [`DISCRIMINATOR_PREFIX`]), for its optimizer.
    pub fn variables(&self, prefix: &str) -> Vec<(String, Var)> {
        let prefix = format!("{prefix}.");
        self.store
            .trainable_variables()
            .into_iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .collect()
    }

    /// `batch` noise vectors z ~ N(0, I), from the model's own generator.
    pub fn noise(&self, batch: usize) -> dl_nn::Result<Tensor> {
        let mut rng = self
            .noise
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(rng
            .normal_tensor(
                (batch, self.recipe.latent_dim),
                0.0,
                1.0,
                self.store.device(),
            )?
            .to_dtype(self.store.dtype())?)
    }

    /// `batch` class ids drawn uniformly, from the same generator as the noise.
    pub fn random_labels(&self, batch: usize) -> dl_nn::Result<Tensor> {
        let mut rng = self
            .noise
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let labels: Vec<u32> = (0..batch).map(|_| rng.below(GAN_CLASSES) as u32).collect();
        Ok(Tensor::from_vec(labels, batch, self.store.device())?)
    }
}

/// The moving average of G: its own networks' variables, and the pairs (G's variable, its
/// average) it follows — parameters averaged, batch-norm statistics copied.
struct Averaged {
    generator: Generator,
    averaged: Vec<(Var, Var)>,
    copied: Vec<(Var, Var)>,
}

impl Averaged {
    fn new(store: &VarStore, recipe: GanRecipe) -> dl_nn::Result<Self> {
        let generator = Generator::new(&store.root().sub(GENERATOR_EMA_PREFIX), recipe)?;
        let trainable: std::collections::HashSet<String> = store
            .trainable_variables()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let prefix = format!("{GENERATOR_PREFIX}.");
        let (mut averaged, mut copied) = (Vec::new(), Vec::new());
        for name in store.names() {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let (Some(source), Some(average)) = (
                store.get(&name),
                store.get(&format!("{GENERATOR_EMA_PREFIX}.{rest}")),
            ) else {
                continue;
            };
            average.set(source.as_tensor())?;
            if trainable.contains(&name) {
                averaged.push((source, average));
            } else {
                copied.push((source, average));
            }
        }
        Ok(Self {
            generator,
            averaged,
            copied,
        })
    }

    fn update(&self) -> dl_nn::Result<()> {
        for (source, average) in &self.averaged {
            let next =
                ((average.as_tensor() * EMA_DECAY)? + (source.as_tensor() * (1.0 - EMA_DECAY))?)?;
            average.set(&next)?;
        }
        for (source, average) in &self.copied {
            average.set(source.as_tensor())?;
        }
        Ok(())
    }
}

/// Overwrites `variable` with a draw from `scheme`.
fn set(variable: &Var, scheme: Init, rng: &mut SeededRng) -> dl_nn::Result<()> {
    let value = scheme.tensor(variable.shape(), variable.dtype(), variable.device(), rng)?;
    variable.set(&value)?;
    Ok(())
}

impl Layer for Gan {
    /// The generator in the given mode on noise `input` (unconditional GANs only; use
    /// [`Generator::generate`] to give labels).
    fn forward(&self, input: &Tensor, mode: Mode) -> dl_nn::Result<Tensor> {
        self.generator.generate(input, None, mode)
    }

    fn kind(&self) -> &'static str {
        "GAN"
    }

    /// The noise generator's state: a resumed run continues the same noise.
    fn random_states(&self) -> Vec<[u64; 4]> {
        let rng = self
            .noise
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        vec![rng.state()]
    }

    fn set_random_states(&self, states: &[[u64; 4]]) -> dl_nn::Result<()> {
        if states.len() != 1 {
            return Err(NnError::config(
                "GAN",
                format!(
                    "expected 1 random generator state (the noise's), got {}: the checkpoint is from another model",
                    states.len()
                ),
            ));
        }
        *self
            .noise
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = SeededRng::from_state(states[0]);
        Ok(())
    }
}

/// Images in [−1, 1] as bytes 0..=255 (white digits on black, like MNIST), rounded.
pub fn images_to_bytes(images: &Tensor) -> dl_nn::Result<Vec<u8>> {
    let values = images
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(values
        .into_iter()
        .map(|value| ((value.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8)
        .collect())
}
