//! A checkpoint's recipe: what must be known to rebuild its model before the weights can be
//! loaded, stored as one JSON metadata entry (`recipe`) beside the weights.
//!
//! ```text
//! app       = mnist-classifier
//! recipe    = {"task":"image-classifier","model":"course-cnn","dropout":0.0,"dataset":"mnist"}
//!
//! app       = text-gen
//! recipe    = {"task":"language-model","architecture":"embedding-lstm-dense",
//!              "config":{"vocab_size":65,"embedding":64,"hidden":256,"layers":1,"dropout":0.0},
//!              "tokenizer_kind":"char"}
//! tokenizer = the whole tokenizer (dl_data::Tokenizer::to_json)
//! ```
//!
//! Checkpoints written before the recipe entry existed (one text entry per field: `model`,
//! `dropout`, `dataset`; `vocab_size`, `embedding`, `hidden`, `layers`, `dropout`) still load.

use std::{collections::BTreeMap, path::Path};

use dl_data::{ImageDataset, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::{GanRecipe, ImageModel, ImageRecipe, ModelsError, Result, TextModelConfig, TextRecipe};

/// The metadata key of the recipe.
pub const RECIPE_KEY: &str = "recipe";
/// The metadata key naming the program that wrote the checkpoint.
pub const APP_KEY: &str = "app";
/// The metadata key of a language model's tokenizer.
pub const TOKENIZER_KEY: &str = "tokenizer";
/// The metadata key whose presence marks an ensemble bundle (`mnist-classifier ensemble --out`):
/// several classifiers in one file, read by `dl_compress::load_classifier`, not one model.
pub const ENSEMBLE_KEY: &str = "ensemble";
/// The program that trains image classifiers.
pub const IMAGE_CLASSIFIER_APP: &str = "mnist-classifier";
/// The program that trains language models.
pub const LANGUAGE_MODEL_APP: &str = "text-gen";
/// The program that trains GANs.
pub const GAN_APP: &str = "mnist-gan";
/// The language model's architecture name.
pub const LANGUAGE_MODEL_ARCHITECTURE: &str = "embedding-lstm-dense";

/// What a checkpoint holds, as its recipe says.
#[derive(Debug, Clone)]
pub enum Recipe {
    /// An MNIST-style classifier.
    ImageClassifier(ImageRecipe),
    /// A next-token language model with its tokenizer.
    LanguageModel(TextRecipe),
    /// A generative adversarial network (generator and discriminator).
    Gan(GanRecipe),
}

/// The `recipe` entry as stored: the tokenizer, being large, has an entry of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
enum RecipeEntry {
    ImageClassifier(ImageRecipe),
    LanguageModel {
        architecture: String,
        config: TextModelConfig,
        tokenizer_kind: String,
    },
    Gan(GanRecipe),
}

impl Recipe {
    /// The program that writes this kind of checkpoint.
    pub fn app(&self) -> &'static str {
        match self {
            Self::ImageClassifier(_) => IMAGE_CLASSIFIER_APP,
            Self::LanguageModel(_) => LANGUAGE_MODEL_APP,
            Self::Gan(_) => GAN_APP,
        }
    }

    /// What the kind is called in messages.
    fn description(&self) -> &'static str {
        match self {
            Self::ImageClassifier(_) => "an image classifier",
            Self::LanguageModel(_) => "a language model",
            Self::Gan(_) => "a GAN (generator and discriminator)",
        }
    }

    /// The checkpoint metadata describing this recipe: `app`, `recipe` and, for a language
    /// model, `tokenizer`.
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        let entry = match self {
            Self::ImageClassifier(recipe) => RecipeEntry::ImageClassifier(*recipe),
            Self::LanguageModel(recipe) => RecipeEntry::LanguageModel {
                architecture: LANGUAGE_MODEL_ARCHITECTURE.to_string(),
                config: recipe.config,
                tokenizer_kind: recipe.tokenizer.kind().to_string(),
            },
            Self::Gan(recipe) => RecipeEntry::Gan(*recipe),
        };
        let json = serde_json::to_string(&entry).map_err(|error| ModelsError::BadRecipe {
            path: "(new checkpoint)".into(),
            problem: format!("cannot encode the recipe: {error}"),
        })?;
        let mut metadata = BTreeMap::from([
            (APP_KEY.to_string(), self.app().to_string()),
            (RECIPE_KEY.to_string(), json),
        ]);
        if let Self::LanguageModel(recipe) = self {
            metadata.insert(TOKENIZER_KEY.to_string(), recipe.tokenizer.to_json()?);
        }
        Ok(metadata)
    }

    /// Reads the recipe of the checkpoint at `path` from its `metadata` (the `recipe` entry, or
    /// the entries of a checkpoint written before it).
    pub fn from_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Self> {
        let bad = |problem: String| ModelsError::BadRecipe {
            path: path.to_path_buf(),
            problem,
        };
        if metadata.contains_key(ENSEMBLE_KEY) {
            return Err(bad(
                "it is an ensemble bundle of several classifiers (written by `mnist-classifier \
                 ensemble --out`): evaluate, predict, serve and ensemble take it; commands that \
                 change or explain one model take one of its members' checkpoints"
                    .to_string(),
            ));
        }
        let entry = match metadata.get(RECIPE_KEY) {
            Some(json) => serde_json::from_str(json).map_err(|error| {
                bad(format!(
                    "the metadata entry '{RECIPE_KEY}' cannot be read: {error}"
                ))
            })?,
            None => legacy_entry(path, metadata)?,
        };
        match entry {
            RecipeEntry::ImageClassifier(recipe) => {
                if !(0.0..1.0).contains(&recipe.dropout) {
                    return Err(bad(format!(
                        "the recipe's dropout {} is not in [0, 1)",
                        recipe.dropout
                    )));
                }
                Ok(Self::ImageClassifier(recipe))
            }
            RecipeEntry::LanguageModel {
                architecture,
                config,
                ..
            } => {
                config.validate().map_err(|problem| {
                    bad(format!("the recipe's sizes cannot be built: {problem}"))
                })?;
                if architecture != LANGUAGE_MODEL_ARCHITECTURE {
                    return Err(bad(format!(
                        "unknown model '{architecture}' in the metadata (expected {LANGUAGE_MODEL_ARCHITECTURE})"
                    )));
                }
                let json = metadata.get(TOKENIZER_KEY).ok_or_else(|| {
                    bad(format!("the checkpoint metadata lacks '{TOKENIZER_KEY}'"))
                })?;
                let tokenizer = Tokenizer::from_json(json).map_err(|error| {
                    bad(format!("the stored tokenizer cannot be read: {error}"))
                })?;
                if tokenizer.vocab_size() != config.vocab_size {
                    return Err(bad(format!(
                        "the stored tokenizer has {} tokens but the model {}",
                        tokenizer.vocab_size(),
                        config.vocab_size
                    )));
                }
                Ok(Self::LanguageModel(TextRecipe { config, tokenizer }))
            }
            RecipeEntry::Gan(recipe) => {
                recipe.validate().map_err(|problem| {
                    bad(format!("the recipe's sizes cannot be built: {problem}"))
                })?;
                Ok(Self::Gan(recipe))
            }
        }
    }

    /// The recipe of a checkpoint that should have been written by `app`: a checkpoint of
    /// another kind, or one that is none of ours, is a [`ModelsError::WrongKind`] naming `app`.
    fn expecting(
        app: &'static str,
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let old_format_of_app = metadata.get(APP_KEY).map(String::as_str) == Some(app);
        if !metadata.contains_key(RECIPE_KEY)
            && !old_format_of_app
            && !metadata.contains_key(ENSEMBLE_KEY)
        {
            return Err(ModelsError::WrongKind {
                path: path.to_path_buf(),
                app,
                problem: format!("its metadata has no '{RECIPE_KEY}' entry nor {APP_KEY} = {app}"),
            });
        }
        Self::from_metadata(path, metadata)
    }

    /// The image classifier's recipe of the checkpoint at `path` (see [`Recipe::from_metadata`]);
    /// a checkpoint of another kind is an error naming what it holds.
    pub fn image_classifier(
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<ImageRecipe> {
        Self::expecting(IMAGE_CLASSIFIER_APP, path, metadata)?.into_image_classifier(path)
    }

    /// The language model's recipe of the checkpoint at `path` (see [`Recipe::from_metadata`]);
    /// a checkpoint of another kind is an error naming what it holds.
    pub fn language_model(path: &Path, metadata: &BTreeMap<String, String>) -> Result<TextRecipe> {
        Self::expecting(LANGUAGE_MODEL_APP, path, metadata)?.into_language_model(path)
    }

    /// The GAN's recipe of the checkpoint at `path` (see [`Recipe::from_metadata`]); a
    /// checkpoint of another kind is an error naming what it holds.
    pub fn gan(path: &Path, metadata: &BTreeMap<String, String>) -> Result<GanRecipe> {
        match Self::expecting(GAN_APP, path, metadata)? {
            Self::Gan(recipe) => Ok(recipe),
            other => Err(wrong_kind(path, GAN_APP, &other)),
        }
    }

    /// The image classifier's recipe, or an error naming what the checkpoint holds instead.
    pub fn into_image_classifier(self, path: &Path) -> Result<ImageRecipe> {
        match self {
            Self::ImageClassifier(recipe) => Ok(recipe),
            other => Err(wrong_kind(path, IMAGE_CLASSIFIER_APP, &other)),
        }
    }

    /// The language model's recipe, or an error naming what the checkpoint holds instead.
    pub fn into_language_model(self, path: &Path) -> Result<TextRecipe> {
        match self {
            Self::LanguageModel(recipe) => Ok(recipe),
            other => Err(wrong_kind(path, LANGUAGE_MODEL_APP, &other)),
        }
    }
}

fn wrong_kind(path: &Path, app: &'static str, found: &Recipe) -> ModelsError {
    ModelsError::WrongKind {
        path: path.to_path_buf(),
        app,
        problem: format!("it holds {}", found.description()),
    }
}

/// The recipe of a checkpoint written before the `recipe` entry: one text entry per field.
fn legacy_entry(path: &Path, metadata: &BTreeMap<String, String>) -> Result<RecipeEntry> {
    let field = |key: &str| {
        metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| ModelsError::BadRecipe {
                path: path.to_path_buf(),
                problem: format!("the checkpoint metadata lacks '{key}'"),
            })
    };
    let number = |key: &str| -> Result<f32> {
        field(key)?.parse().map_err(|_| ModelsError::BadRecipe {
            path: path.to_path_buf(),
            problem: format!("bad '{key}' in the metadata"),
        })
    };
    let size = |key: &str| -> Result<usize> {
        field(key)?.parse().map_err(|_| ModelsError::BadRecipe {
            path: path.to_path_buf(),
            problem: format!("bad '{key}' in the metadata"),
        })
    };
    match metadata.get(APP_KEY).map(String::as_str) {
        Some(IMAGE_CLASSIFIER_APP) => {
            let model: ImageModel = field("model")?.parse()?;
            let dataset = match field("dataset")? {
                "mnist" => ImageDataset::Mnist,
                "fashion-mnist" => ImageDataset::FashionMnist,
                other => {
                    return Err(ModelsError::BadRecipe {
                        path: path.to_path_buf(),
                        problem: format!("unknown dataset '{other}' in the metadata"),
                    })
                }
            };
            Ok(RecipeEntry::ImageClassifier(ImageRecipe {
                model,
                dropout: number("dropout")?,
                dataset,
                widths: None,
            }))
        }
        Some(LANGUAGE_MODEL_APP) => Ok(RecipeEntry::LanguageModel {
            architecture: field("model")?.to_string(),
            config: TextModelConfig {
                vocab_size: size("vocab_size")?,
                embedding: size("embedding")?,
                hidden: size("hidden")?,
                layers: size("layers")?,
                dropout: number("dropout")?,
            },
            tokenizer_kind: field("tokenizer_kind").unwrap_or("?").to_string(),
        }),
        other => Err(ModelsError::BadRecipe {
            path: path.to_path_buf(),
            problem: match other {
                Some(app) => format!(
                    "not a model of this project: its metadata names the program '{app}' and has no '{RECIPE_KEY}' entry"
                ),
                None => format!(
                    "not a model of this project: its metadata has no '{RECIPE_KEY}' entry (nor the '{APP_KEY}' of an older checkpoint)"
                ),
            },
        }),
    }
}
