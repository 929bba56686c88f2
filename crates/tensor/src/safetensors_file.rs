//! Safetensors files as this project writes them: a canonical header (the same tensors and
//! metadata always give the same bytes) and an atomic write (a temporary file in the same
//! directory, flushed, then renamed), so a crash or a full disk never leaves a half-written file
//! under the real name. Checkpoints (dl-nn) and optimizer states (dl-optim) are both written
//! through here.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{Device, Tensor};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so the
/// target is either the old file or the complete new one, never a partial write. The temporary
/// file is created fresh (never reusing an existing one) and removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
        .collect::<std::result::Result<Vec<_>, candle_core::Error>>()
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
