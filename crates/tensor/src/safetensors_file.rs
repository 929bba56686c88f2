//! Safetensors files as this project writes them: a canonical header, so the same tensors and
//! metadata always give the same bytes. Checkpoints (dl-nn) and optimizer states (dl-optim) are
//! both encoded here and written with [`write_atomically`](crate::write_atomically).

use std::collections::{BTreeMap, HashMap};

/// The header key the safetensors format reserves for the metadata map.
const METADATA_KEY: &str = "__metadata__";

use crate::{Device, Tensor};

/// Encodes tensors and metadata in the safetensors format with a canonical header: the JSON
/// keys are sorted, so the same tensors and metadata always give the same bytes (the
/// `safetensors` crate writes its metadata map in hash order, which differs from run to run).
pub fn encode_safetensors(
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    // The header maps each tensor's name to its entry, and `__metadata__` to the metadata: a
    // tensor of that name would be read back as the metadata (found by fuzzing).
    if let Some((name, _)) = tensors.iter().find(|(name, _)| name == METADATA_KEY) {
        return Err(format!(
            "a tensor cannot be called '{name}': the safetensors format keeps that name for the metadata"
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_named_like_the_metadata_is_refused() {
        let tensor = Tensor::new(&[1f32, 0.0], &Device::Cpu).unwrap();
        let error = encode_safetensors(&[("__metadata__".to_string(), tensor)], &BTreeMap::new())
            .unwrap_err();
        assert!(error.contains("'__metadata__'"), "{error}");
    }
}
