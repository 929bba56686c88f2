//! An ensemble in one file (course appendix, FAQ "how to improve a model": 集成): the checkpoints
//! of its members, byte for byte, in one safetensors file, so that `evaluate`, `predict` and
//! `serve` take an ensemble like any checkpoint and nothing about a member (its precision, its
//! recipe, its training metadata) is lost or converted.
//!
//! Layout: member k (from 1) is the 1-D `U8` tensor `member_k` holding that member's whole file
//! (a float, pruned, int8 or compact classifier checkpoint); the header's metadata holds
//! [`ENSEMBLE_KEY`] = `{"version": 1, "method": "mean", "members": ["file name", ...]}` and the
//! dataset. In Python, `safetensors.numpy.load_file(path)["member_1"].tobytes()` is the first
//! member's checkpoint, which `safetensors.torch.load` reads when it is a float one.

use std::{collections::BTreeMap, path::Path};

use dl_models::{ImageRecipe, ENSEMBLE_KEY};
use dl_nn::{EnsembleMethod, EnsembleModel, Layer};
use dl_tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{
    classifier_file::classifier_or_bundle_from_bytes, error::write_file, ClassifierFile,
    CompressError, Result,
};

/// The bundle format this version writes and reads.
const ENSEMBLE_VERSION: u32 = 1;
/// The most members a bundle may declare: far more than any useful ensemble, and a bound on
/// what a forged header can make the reader do.
const MAX_MEMBERS: usize = 256;

/// What the bundle's [`ENSEMBLE_KEY`] metadata entry records.
#[derive(Debug, Serialize, Deserialize)]
struct EnsembleHeader {
    version: u32,
    method: String,
    members: Vec<String>,
}

/// One member of an ensemble rebuilt from a bundle.
pub struct EnsembleMember {
    /// The file name the member had when it was bundled.
    pub name: String,
    /// Its architecture and dataset.
    pub recipe: ImageRecipe,
    /// `float` or `int8`.
    pub precision: &'static str,
    /// Its own checkpoint metadata (training settings, results).
    pub metadata: BTreeMap<String, String>,
}

/// An ensemble rebuilt from a bundle.
pub struct LoadedEnsemble {
    /// The members as one layer whose `forward` gives the log of the combined probabilities.
    pub model: EnsembleModel,
    /// What each member is, in the model's order.
    pub members: Vec<EnsembleMember>,
    /// The bundle's own metadata.
    pub metadata: BTreeMap<String, String>,
}

impl LoadedEnsemble {
    /// A line such as `mean of 5: cnn, cnn, cnn, cnn, cnn`.
    pub fn description(&self) -> String {
        let models: Vec<String> = self
            .members
            .iter()
            .map(|member| member.recipe.model.to_string())
            .collect();
        format!(
            "{} of {}: {}",
            self.model.method().name(),
            self.members.len(),
            models.join(", ")
        )
    }
}

/// Whether a checkpoint's metadata says it is an ensemble bundle.
pub fn is_ensemble(metadata: &BTreeMap<String, String>) -> bool {
    metadata.contains_key(ENSEMBLE_KEY)
}

fn bad_file(path: &Path, problem: impl Into<String>) -> CompressError {
    CompressError::BadFile {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The tensor name of member `index` (from 0).
fn member_tensor(index: usize) -> String {
    format!("member_{}", index + 1)
}

/// Encodes an ensemble of `members` (each a file name and that checkpoint's bytes), combined by
/// `method`. Every member is read back first: each must be a classifier checkpoint (not itself a
/// bundle), and all of one dataset with the same classes.
pub fn encode_ensemble(members: &[(String, Vec<u8>)], method: EnsembleMethod) -> Result<Vec<u8>> {
    if members.len() < 2 {
        return Err(CompressError::BadSetting {
            setting: "ensemble members",
            problem: format!(
                "{} given; an ensemble bundles at least two checkpoints",
                members.len()
            ),
        });
    }
    if members.len() > MAX_MEMBERS {
        return Err(CompressError::BadSetting {
            setting: "ensemble members",
            problem: format!("{} given; at most {MAX_MEMBERS}", members.len()),
        });
    }
    let mut dataset = None;
    for (name, bytes) in members {
        let path = Path::new(name);
        let member = classifier_or_bundle_from_bytes(path, bytes, &Device::Cpu, false)?;
        let member_dataset = member.recipe().dataset;
        match dataset {
            None => dataset = Some(member_dataset),
            Some(first) if first != member_dataset => {
                return Err(bad_file(
                    path,
                    format!(
                        "was trained on {}, the first member on {}: an ensemble's members classify one dataset",
                        member_dataset.name(),
                        first.name()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let header = EnsembleHeader {
        version: ENSEMBLE_VERSION,
        method: method.name().to_string(),
        members: members.iter().map(|(name, _)| name.clone()).collect(),
    };
    let metadata = BTreeMap::from([
        (
            ENSEMBLE_KEY.to_string(),
            serde_json::to_string(&header).expect("the header serialises"),
        ),
        (
            "dataset".to_string(),
            dataset
                .map(|dataset| dataset.name())
                .unwrap_or_default()
                .to_string(),
        ),
    ]);
    let tensors = members
        .iter()
        .enumerate()
        .map(|(index, (_, bytes))| {
            Ok((
                member_tensor(index),
                Tensor::from_slice(bytes, bytes.len(), &Device::Cpu)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    dl_tensor::encode_safetensors(&tensors, &metadata).map_err(|problem| {
        CompressError::BadSetting {
            setting: "ensemble bundle",
            problem,
        }
    })
}

/// Writes the ensemble bundle of `members` (see [`encode_ensemble`]) to `path`, atomically.
pub fn save_ensemble(
    path: &Path,
    members: &[(String, Vec<u8>)],
    method: EnsembleMethod,
) -> Result<()> {
    write_file(path, &encode_ensemble(members, method)?)
}

/// Rebuilds the ensemble in `bytes` (read from `path`, whose header holds `metadata`): float
/// members on `device`, int8 ones on the CPU.
pub(crate) fn load_ensemble(
    path: &Path,
    bytes: &[u8],
    metadata: BTreeMap<String, String>,
    device: &Device,
) -> Result<LoadedEnsemble> {
    let header: EnsembleHeader =
        serde_json::from_str(&metadata[ENSEMBLE_KEY]).map_err(|error| {
            bad_file(
                path,
                format!("the '{ENSEMBLE_KEY}' metadata entry cannot be read: {error}"),
            )
        })?;
    if header.version != ENSEMBLE_VERSION {
        return Err(bad_file(
            path,
            format!(
                "ensemble bundle version {}; this program reads version {ENSEMBLE_VERSION}",
                header.version
            ),
        ));
    }
    let method: EnsembleMethod = header
        .method
        .parse()
        .map_err(|error: dl_nn::NnError| bad_file(path, error.to_string()))?;
    if !(2..=MAX_MEMBERS).contains(&header.members.len()) {
        return Err(bad_file(
            path,
            format!(
                "the bundle lists {} members; a bundle holds 2 to {MAX_MEMBERS}",
                header.members.len()
            ),
        ));
    }
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|error| {
        bad_file(
            path,
            format!("not a complete safetensors file ({error}): it may be truncated"),
        )
    })?;
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    let mut members = Vec::new();
    for (index, name) in header.members.iter().enumerate() {
        let tensor_name = member_tensor(index);
        let view = file.tensor(&tensor_name).map_err(|_| {
            bad_file(
                path,
                format!(
                    "lacks tensor '{tensor_name}', member {} ({name})",
                    index + 1
                ),
            )
        })?;
        if view.dtype() != safetensors::Dtype::U8 || view.shape().len() != 1 {
            return Err(bad_file(
                path,
                format!(
                    "tensor '{tensor_name}' is {:?} of shape {:?}; a member is a 1-D U8 tensor holding its checkpoint",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        let member_path = format!("{} (member {}, {name})", path.display(), index + 1);
        let member =
            classifier_or_bundle_from_bytes(Path::new(&member_path), view.data(), device, false)?;
        let precision = member.precision();
        let (layer, recipe, member_metadata): (Box<dyn Layer>, _, _) = match member {
            ClassifierFile::Float(loaded) => {
                (Box::new(loaded.model), loaded.recipe, loaded.metadata)
            }
            ClassifierFile::Int8(loaded) => {
                (Box::new(loaded.model), loaded.recipe, loaded.metadata)
            }
            ClassifierFile::Ensemble(_) => unreachable!("bundles inside a bundle are refused"),
        };
        if let Some(first) = members
            .first()
            .map(|first: &EnsembleMember| first.recipe.dataset)
        {
            if recipe.dataset != first {
                return Err(bad_file(
                    path,
                    format!(
                        "member {} ({name}) classifies {}, member 1 {}: the members must share one dataset",
                        index + 1,
                        recipe.dataset.name(),
                        first.name()
                    ),
                ));
            }
        }
        layers.push(layer);
        members.push(EnsembleMember {
            name: name.clone(),
            recipe,
            precision,
            metadata: member_metadata,
        });
    }
    Ok(LoadedEnsemble {
        model: EnsembleModel::new(layers, method)?,
        members,
        metadata,
    })
}
