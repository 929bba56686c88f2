//! Checkpoints: a model's weights and what is needed to rebuild it, in one safetensors file.
//!
//! The file holds every variable of a [`VarStore`] under its PyTorch-style name (so it opens in
//! Python with `safetensors.torch.load_file` and lines up with a `state_dict`) and a metadata map
//! in the header (architecture, hyper-parameters, a vocabulary — anything an app needs to
//! rebuild the model before loading the weights). Writes go to a temporary file in the same
//! directory, which is flushed and then renamed over the target, so a crash or a full disk
//! never leaves a half-written checkpoint under the real name. Loading checks every name, shape
//! and type and names the offending tensor when something does not match.

use std::{collections::BTreeMap, fs, path::Path as FilePath};

use dl_tensor::{
    candle_core::safetensors::Load, encode_safetensors, write_atomically, DType, Device, Tensor,
};
use safetensors::SafeTensors;

use crate::{NnError, Result, VarStore};

/// The metadata key under which the safetensors convention records the tensor layout; "pt"
/// tells Python tools the names follow PyTorch.
const FORMAT_KEY: &str = "format";

/// A checkpoint read from disk: its tensors (on the CPU) and its metadata.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The header's metadata map.
    pub metadata: BTreeMap<String, String>,
}

fn checkpoint_error(path: &FilePath, problem: impl Into<String>) -> NnError {
    NnError::Checkpoint {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Saves named tensors and metadata to `path` (see the module documentation).
pub fn save_tensors(
    path: impl AsRef<FilePath>,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let mut header = metadata.clone();
    header
        .entry(FORMAT_KEY.to_string())
        .or_insert_with(|| "pt".to_string());
    let bytes = encode_safetensors(tensors, &header)
        .map_err(|error| checkpoint_error(path, format!("cannot encode: {error}")))?;
    write_atomically(path, &bytes)
        .map_err(|error| checkpoint_error(path, format!("cannot write: {error}")))
}

/// Saves every variable of `store` (parameters and buffers) with `metadata`.
///
/// ```
/// use std::collections::BTreeMap;
/// use dl_nn::{load_checkpoint, save_checkpoint, Dense, VarStore};
/// use dl_tensor::{DType, Device};
///
/// let directory = tempfile::tempdir()?;
/// let file = directory.path().join("model.safetensors");
/// let store = VarStore::new(&Device::Cpu, DType::F32, 1);
/// Dense::new(&store.root().sub("hidden"), 4, 2)?;
/// let metadata = BTreeMap::from([("architecture".to_string(), "dense-4-2".to_string())]);
/// save_checkpoint(&file, &store, &metadata)?;
///
/// let restored = VarStore::new(&Device::Cpu, DType::F32, 2); // other seed, other weights
/// Dense::new(&restored.root().sub("hidden"), 4, 2)?;
/// let read_back = load_checkpoint(&file, &restored)?;
/// assert_eq!(read_back["architecture"], "dense-4-2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_checkpoint(
    path: impl AsRef<FilePath>,
    store: &VarStore,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = store
        .parameters()
        .into_iter()
        .map(|parameter| (parameter.name, parameter.var.as_tensor().clone()))
        .collect();
    save_tensors(path, &tensors, metadata)
}

/// How many values of a floating-point `tensor` are NaN or infinite (`None` for none).
fn non_finite_values(tensor: &Tensor) -> Result<Option<usize>> {
    if !tensor.dtype().is_float() {
        return Ok(None);
    }
    let values: Vec<f64> = tensor
        .flatten_all()?
        .to_dtype(dl_tensor::DType::F64)?
        .to_vec1()?;
    let count = values.iter().filter(|value| !value.is_finite()).count();
    Ok((count > 0).then_some(count))
}

impl Checkpoint {
    /// Reads a checkpoint, checking that it is a complete safetensors file.
    pub fn load(path: impl AsRef<FilePath>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path)
            .map_err(|error| checkpoint_error(path, format!("cannot read: {error}")))?;
        Self::from_bytes(&bytes, path)
    }

    /// Reads a checkpoint from the bytes of a file (`path` names it in errors), checking that
    /// they are a complete safetensors file.
    pub fn from_bytes(bytes: &[u8], path: &FilePath) -> Result<Self> {
        let parsed = SafeTensors::deserialize(bytes).map_err(|error| {
            checkpoint_error(
                path,
                format!("not a valid safetensors file ({error}): it may be truncated or of another format"),
            )
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|error| checkpoint_error(path, format!("unreadable header: {error}")))?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut tensors = BTreeMap::new();
        for (name, view) in parsed.tensors() {
            let tensor = view.load(&Device::Cpu).map_err(|error| {
                checkpoint_error(path, format!("tensor '{name}' cannot be read: {error}"))
            })?;
            tensors.insert(name, tensor);
        }
        Ok(Self { tensors, metadata })
    }

    /// Copies the tensors into the variables of `store`. Every variable of the store must be
    /// present with the same shape and type (or stored in f16 or bf16 for an f32 model: a
    /// half-precision checkpoint, widened exactly), and the file must hold nothing else (a checkpoint
    /// of another model is refused, naming the first tensor that does not fit).
    pub fn restore_into(&self, path: &FilePath, store: &VarStore) -> Result<()> {
        let parameters = store.parameters();
        for parameter in &parameters {
            let tensor = self.tensors.get(&parameter.name).ok_or_else(|| {
                checkpoint_error(
                    path,
                    format!(
                        "tensor '{}' is missing: the checkpoint was saved from a different model",
                        parameter.name
                    ),
                )
            })?;
            if tensor.dims() != parameter.var.dims() {
                return Err(checkpoint_error(
                    path,
                    format!(
                        "tensor '{}' has shape {:?}, the model expects {:?}",
                        parameter.name,
                        tensor.dims(),
                        parameter.var.dims()
                    ),
                ));
            }
            let widened = matches!(tensor.dtype(), DType::F16 | DType::BF16)
                && parameter.var.dtype() == DType::F32;
            if tensor.dtype() != parameter.var.dtype() && !widened {
                return Err(checkpoint_error(
                    path,
                    format!(
                        "tensor '{}' is {:?}, the model expects {:?}",
                        parameter.name,
                        tensor.dtype(),
                        parameter.var.dtype()
                    ),
                ));
            }
            if let Some(count) = non_finite_values(tensor)? {
                return Err(checkpoint_error(
                    path,
                    format!(
                        "tensor '{}' holds {count} NaN or infinite value{}: the model diverged before it was saved, or the file is damaged; train it again (a lower learning rate or gradient clipping helps)",
                        parameter.name,
                        if count == 1 { "" } else { "s" }
                    ),
                ));
            }
        }
        if let Some(extra) = self
            .tensors
            .keys()
            .find(|name| !parameters.iter().any(|parameter| &&parameter.name == name))
        {
            return Err(checkpoint_error(
                path,
                format!("tensor '{extra}' does not belong to this model: the checkpoint was saved from a different model"),
            ));
        }
        for parameter in &parameters {
            let value = self.tensors[&parameter.name]
                .to_dtype(parameter.var.dtype())?
                .to_device(parameter.var.device())?;
            parameter.var.set(&value)?;
        }
        Ok(())
    }
}

/// Loads a checkpoint written by [`save_checkpoint`] into `store` and returns its metadata.
pub fn load_checkpoint(
    path: impl AsRef<FilePath>,
    store: &VarStore,
) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let checkpoint = Checkpoint::load(path)?;
    checkpoint.restore_into(path, store)?;
    Ok(checkpoint.metadata)
}
