//! What a checkpoint of this app records beside the weights — the model's sizes and the whole
//! tokenizer (`Tokenizer::to_json`) — so that `generate` and `perplexity` need nothing but the
//! file.

use std::{collections::BTreeMap, path::Path};

use anyhow::{anyhow, bail, Context, Result};
use dl_data::Tokenizer;
use dl_nn::{Checkpoint, VarStore};
use dl_tensor::{DType, Device};

use crate::model::{ModelConfig, TextModel};

/// The value of the `app` metadata key in our checkpoints.
pub const APP: &str = "text-gen";

/// The architecture's name in the metadata.
const ARCHITECTURE: &str = "embedding-lstm-dense";

/// Everything needed to rebuild a trained model and read and write its text.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The model's sizes.
    pub config: ModelConfig,
    /// The tokenizer it was trained with.
    pub tokenizer: Tokenizer,
}

impl Recipe {
    /// The checkpoint metadata describing this recipe.
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        let config = self.config;
        Ok(BTreeMap::from([
            ("app".to_string(), APP.to_string()),
            ("model".to_string(), ARCHITECTURE.to_string()),
            ("vocab_size".to_string(), config.vocab_size.to_string()),
            ("embedding".to_string(), config.embedding.to_string()),
            ("hidden".to_string(), config.hidden.to_string()),
            ("layers".to_string(), config.layers.to_string()),
            ("dropout".to_string(), config.dropout.to_string()),
            (
                "tokenizer_kind".to_string(),
                self.tokenizer.kind().to_string(),
            ),
            ("tokenizer".to_string(), self.tokenizer.to_json()?),
        ]))
    }

    /// Reads the recipe back from a checkpoint's metadata.
    pub fn from_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Self> {
        if metadata.get("app").map(String::as_str) != Some(APP) {
            bail!(
                "{} is not a text-gen checkpoint (its metadata has no app = {APP}); pass a file written by `text-gen train`",
                path.display()
            );
        }
        let field = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| anyhow!("{}: the checkpoint metadata lacks '{key}'", path.display()))
        };
        let size = |key: &str| -> Result<usize> {
            field(key)?
                .parse()
                .with_context(|| format!("{}: bad '{key}' in the metadata", path.display()))
        };
        if field("model")? != ARCHITECTURE {
            bail!(
                "{}: unknown model '{}' in the metadata (expected {ARCHITECTURE})",
                path.display(),
                field("model")?
            );
        }
        let config = ModelConfig {
            vocab_size: size("vocab_size")?,
            embedding: size("embedding")?,
            hidden: size("hidden")?,
            layers: size("layers")?,
            dropout: field("dropout")?
                .parse()
                .with_context(|| format!("{}: bad 'dropout' in the metadata", path.display()))?,
        };
        let tokenizer = Tokenizer::from_json(field("tokenizer")?)
            .with_context(|| format!("{}: the stored tokenizer cannot be read", path.display()))?;
        if tokenizer.vocab_size() != config.vocab_size {
            bail!(
                "{}: the stored tokenizer has {} tokens but the model {}",
                path.display(),
                tokenizer.vocab_size(),
                config.vocab_size
            );
        }
        Ok(Self { config, tokenizer })
    }
}

/// A model rebuilt from a checkpoint.
pub struct LoadedModel {
    /// The network.
    pub model: TextModel,
    /// How it was built, with its tokenizer.
    pub recipe: Recipe,
    /// The checkpoint's whole metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Reads a checkpoint, rebuilds its model on `device` and loads the weights.
pub fn load_model(path: &Path, device: &Device) -> Result<LoadedModel> {
    let checkpoint = Checkpoint::load(path)?;
    let recipe = Recipe::from_metadata(path, &checkpoint.metadata)?;
    let store = VarStore::new(device, DType::F32, 0);
    let model = TextModel::new(&store, recipe.config)?;
    checkpoint.restore_into(path, &store)?;
    Ok(LoadedModel {
        model,
        recipe,
        metadata: checkpoint.metadata,
    })
}
