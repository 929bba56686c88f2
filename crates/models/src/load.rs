//! Checkpoint → ready model: read the file, rebuild the architecture its recipe names, load the
//! weights (every name, shape and type checked), and hand back the model with its recipe and
//! metadata. `evaluate`, `predict`, `generate`, the bench, an ensemble or a GAN's scorer need
//! nothing but the file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use dl_nn::{Checkpoint, Sequential, VarStore};
use dl_tensor::{DType, Device};

use crate::{Gan, GanRecipe, ImageRecipe, ModelsError, Recipe, Result, TextModel, TextRecipe};

/// A model rebuilt from a checkpoint.
pub struct Loaded<M, R> {
    /// The network, with the checkpoint's weights.
    pub model: M,
    /// How it was built.
    pub recipe: R,
    /// The checkpoint's whole metadata (training settings, results, run state).
    pub metadata: BTreeMap<String, String>,
}

/// An image classifier rebuilt from its checkpoint.
pub type LoadedImageClassifier = Loaded<Sequential, ImageRecipe>;
/// A language model rebuilt from its checkpoint, with its tokenizer.
pub type LoadedLanguageModel = Loaded<TextModel, TextRecipe>;
/// A GAN rebuilt from its checkpoint.
pub type LoadedGan = Loaded<Gan, GanRecipe>;

/// Any model of the zoo, rebuilt from its checkpoint.
pub enum LoadedModel {
    /// An image classifier.
    ImageClassifier(LoadedImageClassifier),
    /// A language model (boxed: its tokenizer makes it much larger than a classifier).
    LanguageModel(Box<LoadedLanguageModel>),
    /// A GAN (boxed: its two networks' layers make it much larger than a classifier).
    Gan(Box<LoadedGan>),
}

/// Reads the checkpoint at `path` and rebuilds whatever model it holds on `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    from_checkpoint(path, Checkpoint::load(path)?, device)
}

/// Rebuilds whatever model `checkpoint` (read from `path`) holds, on `device`.
pub fn from_checkpoint(
    path: &Path,
    checkpoint: Checkpoint,
    device: &Device,
) -> Result<LoadedModel> {
    Ok(match Recipe::from_metadata(path, &checkpoint.metadata)? {
        Recipe::ImageClassifier(recipe) => LoadedModel::ImageClassifier(restore_image_classifier(
            path, checkpoint, recipe, device,
        )?),
        Recipe::LanguageModel(recipe) => LoadedModel::LanguageModel(Box::new(
            restore_language_model(path, checkpoint, recipe, device)?,
        )),
        Recipe::Gan(recipe) => {
            check_shapes(path, &checkpoint, &recipe.key_shapes())?;
            LoadedModel::Gan(Box::new(restore_gan(path, checkpoint, recipe, device)?))
        }
    })
}

/// Reads an image classifier's checkpoint and rebuilds it on `device`; a checkpoint of another
/// kind is an error that says so.
pub fn load_image_classifier(path: &Path, device: &Device) -> Result<LoadedImageClassifier> {
    let checkpoint = Checkpoint::load(path)?;
    let recipe = Recipe::image_classifier(path, &checkpoint.metadata)?;
    restore_image_classifier(path, checkpoint, recipe, device)
}

/// Reads a language model's checkpoint and rebuilds it on `device`; a checkpoint of another
/// kind is an error that says so.
pub fn load_language_model(path: &Path, device: &Device) -> Result<LoadedLanguageModel> {
    let checkpoint = Checkpoint::load(path)?;
    let recipe = language_model_recipe(path, &checkpoint)?;
    restore_language_model(path, checkpoint, recipe, device)
}

/// Reads a GAN's checkpoint (as `mnist-gan train` writes it) and rebuilds both networks on
/// `device`; a checkpoint of another kind is an error that says so.
pub fn load_gan(path: &Path, device: &Device) -> Result<LoadedGan> {
    let checkpoint = Checkpoint::load(path)?;
    let recipe = gan_recipe(path, &checkpoint)?;
    restore_gan(path, checkpoint, recipe, device)
}

/// The GAN's recipe of the checkpoint at `path`, its sizes checked against the stored tensors
/// before anything is allocated (see [`language_model_recipe`]).
pub fn gan_recipe(path: &Path, checkpoint: &Checkpoint) -> Result<GanRecipe> {
    let recipe = Recipe::gan(path, &checkpoint.metadata)?;
    check_shapes(path, checkpoint, &recipe.key_shapes())?;
    Ok(recipe)
}

fn restore_gan(
    path: &Path,
    checkpoint: Checkpoint,
    recipe: GanRecipe,
    device: &Device,
) -> Result<LoadedGan> {
    let build = |recipe: &GanRecipe, store: &VarStore| Ok(recipe.build(store)?);
    restore(path, checkpoint, recipe, build, device)
}

/// Fails unless every `(name, shape)` is a tensor of that shape in `checkpoint`.
fn check_shapes(
    path: &Path,
    checkpoint: &Checkpoint,
    shapes: &[(String, Vec<usize>)],
) -> Result<()> {
    for (name, shape) in shapes {
        let stored = checkpoint
            .tensors
            .get(name)
            .map(|tensor| tensor.dims().to_vec());
        if stored.as_deref() != Some(shape.as_slice()) {
            return Err(ModelsError::BadRecipe {
                path: path.to_path_buf(),
                problem: match stored {
                    Some(stored) => format!("the recipe says tensor '{name}' has shape {shape:?}, the file holds {stored:?}: the metadata does not describe these weights"),
                    None => format!("the recipe needs tensor '{name}', which the file lacks: the metadata does not describe these weights"),
                },
            });
        }
    }
    Ok(())
}

/// The language model's recipe of the checkpoint at `path`, its sizes checked against the
/// stored tensors: the sizes come from the file, and a model of the sizes it claims is never
/// allocated unless its weights are there (a small file claiming a hidden size of 10⁸ is
/// refused). What `train --resume` and every loader use.
pub fn language_model_recipe(path: &Path, checkpoint: &Checkpoint) -> Result<TextRecipe> {
    let recipe = Recipe::language_model(path, &checkpoint.metadata)?;
    check_shapes(path, checkpoint, &recipe.config.parameter_shapes())?;
    Ok(recipe)
}

/// Builds `recipe`'s network on `device` and loads the checkpoint's weights into it.
fn restore<M, R>(
    path: &Path,
    checkpoint: Checkpoint,
    recipe: R,
    build: impl FnOnce(&R, &VarStore) -> Result<M>,
    device: &Device,
) -> Result<Loaded<M, R>> {
    let store = VarStore::new(device, DType::F32, 0);
    let model = build(&recipe, &store)?;
    checkpoint.restore_into(path, &store)?;
    Ok(Loaded {
        model,
        recipe,
        metadata: checkpoint.metadata,
    })
}

fn restore_image_classifier(
    path: &Path,
    checkpoint: Checkpoint,
    recipe: ImageRecipe,
    device: &Device,
) -> Result<LoadedImageClassifier> {
    restore(path, checkpoint, recipe, ImageRecipe::build, device)
}

fn restore_language_model(
    path: &Path,
    checkpoint: Checkpoint,
    recipe: TextRecipe,
    device: &Device,
) -> Result<LoadedLanguageModel> {
    let build = |recipe: &TextRecipe, store: &VarStore| Ok(recipe.build(store)?);
    restore(path, checkpoint, recipe, build, device)
}

/// The local file behind a checkpoint argument: the path itself, or for
/// `hub:OWNER/REPO/FILE.safetensors` the file downloaded once from the Hugging Face Hub into the
/// data directory's cache (then read offline).
pub fn checkpoint_file(argument: &Path, data_dir: Option<&Path>) -> Result<PathBuf> {
    let text = argument.to_string_lossy();
    if !dl_data::is_hub_spec(&text) {
        return Ok(argument.to_path_buf());
    }
    let cache = dl_data::hub_cache_dir(&dl_data::resolve_data_dir(data_dir));
    Ok(dl_data::hub_file(&text, &cache)?)
}
