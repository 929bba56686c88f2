//! Checkpoint → ready classifier, whatever its precision: an fp32 (or pruned, or
//! half-precision) checkpoint through `dl_models`, an int8 one through [`decode_int8`], a
//! compact one through [`decode_compact`], an ensemble bundle through
//! [`crate::save_ensemble`]'s reader. The file says what it is, so `evaluate` and `predict` need
//! no flag.

use std::{collections::BTreeMap, path::Path};

use dl_models::{
    from_checkpoint, load_image_classifier, ImageRecipe, LoadedImageClassifier, LoadedModel, Recipe,
};
use dl_nn::{Checkpoint, Layer, VarStore};
use dl_tensor::{DType, Device};

use crate::{
    compact_metadata, decode_compact, decode_int8,
    ensemble_file::{is_ensemble, load_ensemble},
    is_compact, is_int8, read_metadata, CompressError, LoadedEnsemble, QuantizedModel, Result,
};

/// An int8 classifier rebuilt from its checkpoint.
pub struct LoadedInt8Classifier {
    /// The model.
    pub model: QuantizedModel,
    /// Its architecture, from the file's recipe.
    pub recipe: ImageRecipe,
    /// The file's metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A classifier of any precision.
pub enum ClassifierFile {
    /// Float weights (f32, or f16/bf16 widened on loading), pruned or not.
    Float(LoadedImageClassifier),
    /// Int8 weights (from an int8 or a compact file) run on the integer kernels.
    Int8(LoadedInt8Classifier),
    /// Several classifiers combined (an ensemble bundle; boxed: it holds a list of models).
    Ensemble(Box<LoadedEnsemble>),
}

impl ClassifierFile {
    /// The model, as a layer whose `forward` gives logits.
    pub fn layer(&self) -> &dyn Layer {
        match self {
            Self::Float(loaded) => &loaded.model,
            Self::Int8(loaded) => &loaded.model,
            Self::Ensemble(loaded) => &loaded.model,
        }
    }

    /// The architecture and dataset (an ensemble's: its first member's, whose dataset every
    /// member shares).
    pub fn recipe(&self) -> &ImageRecipe {
        match self {
            Self::Float(loaded) => &loaded.recipe,
            Self::Int8(loaded) => &loaded.recipe,
            Self::Ensemble(loaded) => &loaded.members[0].recipe,
        }
    }

    /// The file's metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        match self {
            Self::Float(loaded) => &loaded.metadata,
            Self::Int8(loaded) => &loaded.metadata,
            Self::Ensemble(loaded) => &loaded.metadata,
        }
    }

    /// `int8` or `float`, for messages; an ensemble's members' precision when they share one,
    /// else `mixed`.
    pub fn precision(&self) -> &'static str {
        match self {
            Self::Float(_) => "float",
            Self::Int8(_) => "int8",
            Self::Ensemble(loaded) => {
                let first = loaded.members[0].precision;
                if loaded
                    .members
                    .iter()
                    .all(|member| member.precision == first)
                {
                    first
                } else {
                    "mixed"
                }
            }
        }
    }

    /// What the model is, for messages: its architecture (`cnn`), or for an ensemble its method
    /// and members (`mean of 3: cnn, cnn, lenet5`).
    pub fn description(&self) -> String {
        match self {
            Self::Ensemble(loaded) => format!("ensemble, {}", loaded.description()),
            other => other.recipe().model.to_string(),
        }
    }
}

/// Reads the classifier checkpoint at `path`: int8 models run on the CPU, float ones on
/// `device`.
pub fn load_classifier(path: &Path, device: &Device) -> Result<ClassifierFile> {
    // A file that cannot be read gets dl-models' own message.
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(ClassifierFile::Float(load_image_classifier(path, device)?));
    };
    classifier_from_bytes(path, &bytes, device)
}

/// The classifier in `bytes`, the contents of the file at `path` (named in errors), of any
/// precision: what [`load_classifier`] reads once it has the file's bytes.
pub fn classifier_from_bytes(path: &Path, bytes: &[u8], device: &Device) -> Result<ClassifierFile> {
    classifier_or_bundle_from_bytes(path, bytes, device, true)
}

/// The classifier in `bytes` (the file at `path`, named in errors), of any precision; an
/// ensemble bundle only when `bundles_allowed` (a bundle's members are never bundles).
pub(crate) fn classifier_or_bundle_from_bytes(
    path: &Path,
    bytes: &[u8],
    device: &Device,
    bundles_allowed: bool,
) -> Result<ClassifierFile> {
    if let Some(loaded) = int8_classifier_from_bytes(path, bytes)? {
        return Ok(ClassifierFile::Int8(loaded));
    }
    // A bundle is recognised from its header alone, before its members' bytes are copied.
    if let Some(metadata) = read_metadata(path, bytes).ok().filter(is_ensemble) {
        if !bundles_allowed {
            return Err(CompressError::BadFile {
                path: path.to_path_buf(),
                problem: "is itself an ensemble bundle; bundle its members' checkpoints instead"
                    .into(),
            });
        }
        return Ok(ClassifierFile::Ensemble(Box::new(load_ensemble(
            path, bytes, metadata, device,
        )?)));
    }
    // Not safetensors at all: dl-models says so in its words.
    let checkpoint = Checkpoint::from_bytes(bytes, path)?;
    // the image-classifier check gives the "not a mnist-classifier checkpoint" message
    Recipe::image_classifier(path, &checkpoint.metadata)?;
    match from_checkpoint(path, checkpoint, device)? {
        LoadedModel::ImageClassifier(loaded) => Ok(ClassifierFile::Float(loaded)),
        _ => Err(CompressError::BadFile {
            path: path.to_path_buf(),
            problem: "holds no image classifier".into(),
        }),
    }
}

/// The int8 classifier in `bytes` (read from `path`) when they hold an int8 checkpoint or a
/// compact file, `None` for anything else (a float checkpoint, or bytes that are no model).
/// The architecture comes from the file's recipe; every tensor is checked against it.
pub fn int8_classifier_from_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<Option<LoadedInt8Classifier>> {
    if is_compact(bytes) {
        let metadata = compact_metadata(path, bytes)?;
        let recipe = Recipe::image_classifier(path, &metadata)?;
        let architecture = recipe.build(&VarStore::new(&Device::Cpu, DType::F32, 0))?;
        let (model, metadata) = decode_compact(path, bytes, &architecture)?;
        return Ok(Some(LoadedInt8Classifier {
            model,
            recipe,
            metadata,
        }));
    }
    match read_metadata(path, bytes) {
        Ok(metadata) if is_int8(&metadata) => load_int8_classifier(path, bytes, metadata).map(Some),
        _ => Ok(None),
    }
}

/// The int8 classifier in `bytes`, read from `path`, whose header holds `metadata`.
fn load_int8_classifier(
    path: &Path,
    bytes: &[u8],
    metadata: BTreeMap<String, String>,
) -> Result<LoadedInt8Classifier> {
    let recipe = Recipe::image_classifier(path, &metadata)?;
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let architecture = recipe.build(&store)?;
    let model = decode_int8(path, bytes, &architecture)?;
    Ok(LoadedInt8Classifier {
        model,
        recipe,
        metadata,
    })
}
