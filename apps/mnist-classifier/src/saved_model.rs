//! What a checkpoint of this app records beside the weights, and how a model is rebuilt from
//! it: `evaluate` and `predict` need nothing but the file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use dl_nn::{Checkpoint, Sequential, VarStore};
use dl_tensor::{DType, Device};

use crate::{cli::DatasetChoice, models::ModelKind};

/// The value of the `app` metadata key in our checkpoints.
pub const APP: &str = "mnist-classifier";

/// Everything needed to rebuild a trained model's architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// The architecture.
    pub model: ModelKind,
    /// Its dropout rate.
    pub dropout: f32,
    /// The dataset it was trained on (for class names and evaluation).
    pub dataset: DatasetChoice,
}

impl Recipe {
    /// The checkpoint metadata describing this recipe.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app".to_string(), APP.to_string()),
            ("model".to_string(), self.model.name().to_string()),
            ("dropout".to_string(), self.dropout.to_string()),
            (
                "dataset".to_string(),
                self.dataset.dataset().key().to_string(),
            ),
        ])
    }

    /// Reads the recipe back from a checkpoint's metadata.
    pub fn from_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Self> {
        if metadata.get("app").map(String::as_str) != Some(APP) {
            bail!(
                "{} is not a mnist-classifier checkpoint (its metadata has no app = {APP}); pass a file written by `mnist-classifier train`",
                path.display()
            );
        }
        let field = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| anyhow!("{}: the checkpoint metadata lacks '{key}'", path.display()))
        };
        let model: ModelKind = field("model")?.parse()?;
        let dropout: f32 = field("dropout")?
            .parse()
            .with_context(|| format!("{}: bad dropout in the metadata", path.display()))?;
        let dataset = match field("dataset")?.as_str() {
            "mnist" => DatasetChoice::Mnist,
            "fashion-mnist" => DatasetChoice::FashionMnist,
            other => bail!(
                "{}: unknown dataset '{other}' in the metadata",
                path.display()
            ),
        };
        Ok(Self {
            model,
            dropout,
            dataset,
        })
    }
}

/// A model rebuilt from a checkpoint.
pub struct LoadedModel {
    /// The network.
    pub model: Sequential,
    /// How it was built.
    pub recipe: Recipe,
    /// The checkpoint's whole metadata.
    pub metadata: BTreeMap<String, String>,
}

/// The local file behind a checkpoint argument: the path itself, or for
/// `hub:OWNER/REPO/FILE.safetensors` the file downloaded once from the Hugging Face Hub into the
/// data directory's cache (then read offline).
pub fn local_checkpoint(argument: &Path, data_dir: Option<&Path>) -> Result<PathBuf> {
    let text = argument.to_string_lossy();
    if !dl_data::is_hub_spec(&text) {
        return Ok(argument.to_path_buf());
    }
    let cache = dl_data::hub_cache_dir(&dl_data::resolve_data_dir(data_dir));
    Ok(dl_data::hub_file(&text, &cache)?)
}

/// Reads a checkpoint, rebuilds its model on `device` and loads the weights.
pub fn load_model(
    argument: &Path,
    data_dir: Option<&Path>,
    device: &Device,
) -> Result<LoadedModel> {
    let local = local_checkpoint(argument, data_dir)?;
    let path = local.as_path();
    let checkpoint = Checkpoint::load(path)?;
    let recipe = Recipe::from_metadata(path, &checkpoint.metadata)?;
    let store = VarStore::new(device, DType::F32, 0);
    let model = recipe.model.build(&store, recipe.dropout)?;
    checkpoint.restore_into(path, &store)?;
    Ok(LoadedModel {
        model,
        recipe,
        metadata: checkpoint.metadata,
    })
}
