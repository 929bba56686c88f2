//! Checkpoint → ready classifier, whatever its precision: an fp32 (or pruned, or
//! half-precision) checkpoint through `dl_models`, an int8 one through [`decode_int8`], a
//! compact one through [`decode_compact`]. The
//! file says what it is, so `evaluate` and `predict` need no flag.

use std::{collections::BTreeMap, path::Path};

use dl_models::{load_image_classifier, ImageRecipe, LoadedImageClassifier, Recipe};
use dl_nn::{Layer, VarStore};
use dl_tensor::{DType, Device};

use crate::{
    compact_metadata, decode_compact, decode_int8, is_compact, is_int8, read_metadata,
    QuantizedModel, Result,
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
}

impl ClassifierFile {
    /// The model, as a layer whose `forward` gives logits.
    pub fn layer(&self) -> &dyn Layer {
        match self {
            Self::Float(loaded) => &loaded.model,
            Self::Int8(loaded) => &loaded.model,
        }
    }

    /// The architecture and dataset.
    pub fn recipe(&self) -> &ImageRecipe {
        match self {
            Self::Float(loaded) => &loaded.recipe,
            Self::Int8(loaded) => &loaded.recipe,
        }
    }

    /// The file's metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        match self {
            Self::Float(loaded) => &loaded.metadata,
            Self::Int8(loaded) => &loaded.metadata,
        }
    }

    /// `int8` or `float`, for messages.
    pub fn precision(&self) -> &'static str {
        match self {
            Self::Float(_) => "float",
            Self::Int8(_) => "int8",
        }
    }
}

/// Reads the classifier checkpoint at `path`: int8 models run on the CPU, float ones on
/// `device`.
pub fn load_classifier(path: &Path, device: &Device) -> Result<ClassifierFile> {
    // A file that cannot be read, or is not safetensors, gets dl-models' own messages.
    let float = || -> Result<ClassifierFile> {
        Ok(ClassifierFile::Float(load_image_classifier(path, device)?))
    };
    let Ok(bytes) = std::fs::read(path) else {
        return float();
    };
    match int8_classifier_from_bytes(path, &bytes)? {
        Some(loaded) => Ok(ClassifierFile::Int8(loaded)),
        None => float(),
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
