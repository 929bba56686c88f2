//! Checkpoints: a model's weights and what is needed to rebuild it, in one safetensors file.
//!
//! The file holds every variable of a [`VarStore`] under its PyTorch-style name (so it opens in
//! Python with `safetensors.torch.load_file` and lines up with a `state_dict`) and a metadata map
//! in the header (architecture, hyper-parameters, a vocabulary — anything an app needs to
//! rebuild the model before loading the weights). Writes go to a temporary file in the same
//! directory, which is flushed and then renamed over the target, so a crash or a full disk
//! never leaves a half-written checkpoint under the real name. Loading checks every name, shape
//! and type and names the offending tensor when something does not match.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::Write,
    path::{Path as FilePath, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use dl_tensor::{candle_core::safetensors::Load, Device, Tensor};
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

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so the
/// target is either the old file or the complete new one, never a partial write. The temporary
/// file is created fresh (never reusing an existing one) and removed if anything fails.
pub fn write_atomically(path: &FilePath, bytes: &[u8]) -> std::io::Result<()> {
    static TEMPORARY_FILES: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&directory)?;
    let temporary = directory.join(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMPORARY_FILES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let result = written.and_then(|()| fs::rename(&temporary, path));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Encodes tensors and metadata in the safetensors format with a canonical header: the JSON
/// keys are sorted, so the same tensors and metadata always give the same bytes (the
/// `safetensors` crate writes its metadata map in hash order, which differs from run to run).
pub fn encode_safetensors(
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let on_host = tensors
        .iter()
        .map(|(name, tensor)| Ok((name.clone(), tensor.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<std::result::Result<Vec<_>, dl_tensor::candle_core::Error>>()
        .map_err(|error| error.to_string())?;
    let header: HashMap<String, String> = metadata.clone().into_iter().collect();
    let encoded = safetensors::serialize(
        on_host.iter().map(|(name, tensor)| (name, tensor)),
        Some(header),
    )
    .map_err(|error| error.to_string())?;
    let header_length =
        u64::from_le_bytes(encoded[..8].try_into().map_err(|_| "short encoding")?) as usize;
    let header_json: serde_json::Value = serde_json::from_slice(&encoded[8..8 + header_length])
        .map_err(|error| error.to_string())?;
    let mut canonical = serde_json::to_vec(&header_json).map_err(|error| error.to_string())?;
    canonical.resize(canonical.len().div_ceil(8) * 8, b' ');
    let mut bytes = Vec::with_capacity(8 + canonical.len() + encoded.len() - 8 - header_length);
    bytes.extend_from_slice(&(canonical.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&canonical);
    bytes.extend_from_slice(&encoded[8 + header_length..]);
    Ok(bytes)
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

impl Checkpoint {
    /// Reads a checkpoint, checking that it is a complete safetensors file.
    pub fn load(path: impl AsRef<FilePath>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path)
            .map_err(|error| checkpoint_error(path, format!("cannot read: {error}")))?;
        let parsed = SafeTensors::deserialize(&bytes).map_err(|error| {
            checkpoint_error(
                path,
                format!("not a valid safetensors file ({error}): it may be truncated or of another format"),
            )
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
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
    /// present with the same shape and type, and the file must hold nothing else (a checkpoint
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
            if tensor.dtype() != parameter.var.dtype() {
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
            let value = self.tensors[&parameter.name].to_device(parameter.var.device())?;
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
