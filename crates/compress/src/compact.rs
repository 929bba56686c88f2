//! The compact file: a pruned int8 model in as few bytes as possible (Han et al. 2016, "Deep
//! Compression": pruning, quantization, then coding of what is left).
//!
//! Each int8 weight tensor is stored the cheaper of two ways:
//! - **bitmask**: one bit per weight (1 = non-zero), then the non-zero values;
//! - **gaps**: for each non-zero weight, the number of zeros before it since the previous one
//!   (one byte; a run of more than 255 zeros is bridged by a (255, 0) entry), then its value —
//!   Deep Compression's relative indexing with 8-bit gaps.
//!
//! Scales, biases and input quantizations follow as f32. Everything after the 8-byte preamble
//! is one zstd frame, which squeezes the skewed distributions of small gaps and small values.
//!
//! ```text
//! "DLCOMPCT"                         preamble (8 bytes)
//! zstd( header length (u32 LE) · header (JSON) · sections )
//! header = {"version":1,"metadata":{…},"layers":[{"name","shape","encoding","bytes"…}]}
//! ```

use std::{collections::BTreeMap, io::Read, path::Path};

use dl_nn::Sequential;
use serde::{Deserialize, Serialize};

use crate::{
    int8_file::zero_point_byte, quantized::layer_slots, CompressError, QuantizedLayer,
    QuantizedModel, Result,
};

/// The first bytes of every compact file.
pub const COMPACT_MAGIC: &[u8; 8] = b"DLCOMPCT";
/// The format version this code writes and reads.
const VERSION: u32 = 1;
/// zstd's level: the files are small, so the slowest, tightest level costs little.
const ZSTD_LEVEL: i32 = 19;
/// The largest decompressed body a reader accepts (a bomb guard): 1 GiB.
const MAX_BODY: u64 = 1 << 30;

/// How one weight tensor is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightEncoding {
    /// A bit per weight, then the non-zero values.
    Bitmask,
    /// (zeros before, value) byte pairs.
    Gaps,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerEntry {
    name: String,
    shape: Vec<usize>,
    encoding: WeightEncoding,
    /// Bytes of the coded weights in the body.
    weight_bytes: usize,
    /// The number of entries (non-zero values, or gap pairs).
    entries: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    version: u32,
    metadata: BTreeMap<String, String>,
    layers: Vec<LayerEntry>,
}

/// Bitmask coding: (mask bytes, values).
fn bitmask(weights: &[i8]) -> Vec<u8> {
    let mut mask = vec![0u8; weights.len().div_ceil(8)];
    let mut values = Vec::new();
    for (index, &weight) in weights.iter().enumerate() {
        if weight != 0 {
            mask[index / 8] |= 1 << (index % 8);
            values.push(weight as u8);
        }
    }
    mask.extend(values);
    mask
}

/// Gap coding: pairs (zeros skipped, value), with (255, 0) bridging long runs.
fn gaps(weights: &[i8]) -> (Vec<u8>, usize) {
    let mut coded = Vec::new();
    let mut zeros = 0usize;
    for &weight in weights {
        if weight == 0 {
            zeros += 1;
            continue;
        }
        while zeros > 255 {
            coded.extend([255, 0]);
            zeros -= 256;
        }
        coded.extend([zeros as u8, weight as u8]);
        zeros = 0;
    }
    let entries = coded.len() / 2;
    (coded, entries)
}

/// The coded weights of `layer`: whichever coding is smaller.
fn code_weights(weights: &[i8]) -> (WeightEncoding, Vec<u8>, usize) {
    let mask = bitmask(weights);
    let (gap_bytes, entries) = gaps(weights);
    if gap_bytes.len() < mask.len() {
        (WeightEncoding::Gaps, gap_bytes, entries)
    } else {
        let nonzero = weights.iter().filter(|weight| **weight != 0).count();
        (WeightEncoding::Bitmask, mask, nonzero)
    }
}

fn push_f32(body: &mut Vec<u8>, values: &[f32]) {
    for value in values {
        body.extend(value.to_le_bytes());
    }
}

/// Encodes `model` with `metadata` (the recipe and the quantization description, as an int8
/// checkpoint carries them).
pub fn encode_compact(
    model: &QuantizedModel,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut sections = Vec::new();
    let mut layers = Vec::new();
    for layer in model.layers() {
        let (encoding, coded, entries) = code_weights(&layer.weights);
        layers.push(LayerEntry {
            name: layer.name.clone(),
            shape: layer.weight_shape.clone(),
            encoding,
            weight_bytes: coded.len(),
            entries,
        });
        sections.extend(coded);
        push_f32(&mut sections, &layer.weight_scales);
        push_f32(&mut sections, &layer.bias);
        push_f32(
            &mut sections,
            &[layer.input_scale, f32::from(layer.input_zero_point)],
        );
    }
    let header = serde_json::to_vec(&Header {
        version: VERSION,
        metadata: metadata.clone(),
        layers,
    })
    .map_err(|error| CompressError::BadSetting {
        setting: "compact file",
        problem: error.to_string(),
    })?;
    let mut body = (header.len() as u32).to_le_bytes().to_vec();
    body.extend(header);
    body.extend(sections);
    let compressed =
        zstd::bulk::compress(&body, ZSTD_LEVEL).map_err(|error| CompressError::BadSetting {
            setting: "compact file",
            problem: format!("zstd: {error}"),
        })?;
    let mut file = COMPACT_MAGIC.to_vec();
    file.extend(compressed);
    Ok(file)
}

/// Writes `model` to `path` in the compact format (to a temporary name, then renamed).
pub fn save_compact(
    path: &Path,
    model: &QuantizedModel,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    crate::error::write_file(path, &encode_compact(model, metadata)?)
}

/// Whether `bytes` start like a compact file.
pub fn is_compact(bytes: &[u8]) -> bool {
    bytes.starts_with(COMPACT_MAGIC)
}

/// A reader over the decompressed body that names what it was reading when it runs out.
struct Body<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(count)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| CompressError::BadFile {
                path: self.path.to_path_buf(),
                problem: format!("the file ends inside {what}: it is truncated or damaged"),
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn f32s(&mut self, count: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = self.take(count.saturating_mul(4), what)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect())
    }
}

/// Decodes coded weights into `count` int8 values.
fn decode_weights(
    entry: &LayerEntry,
    coded: &[u8],
    count: usize,
) -> std::result::Result<Vec<i8>, String> {
    let mut weights = vec![0i8; count];
    match entry.encoding {
        WeightEncoding::Bitmask => {
            let mask_bytes = count.div_ceil(8);
            if coded.len() < mask_bytes {
                return Err("the bitmask is shorter than the weight".into());
            }
            let (mask, values) = coded.split_at(mask_bytes);
            let mut values = values.iter();
            for (index, weight) in weights.iter_mut().enumerate() {
                if mask[index / 8] & (1 << (index % 8)) != 0 {
                    *weight = *values.next().ok_or("fewer values than the bitmask marks")? as i8;
                }
            }
            if values.next().is_some() {
                return Err("more values than the bitmask marks".into());
            }
        }
        WeightEncoding::Gaps => {
            if !coded.len().is_multiple_of(2) {
                return Err("the gap coding has an odd number of bytes".into());
            }
            let mut position = 0usize;
            for pair in coded.chunks_exact(2) {
                position += usize::from(pair[0]);
                if position >= count {
                    return Err(format!("a gap leads past the weight's {count} values"));
                }
                weights[position] = pair[1] as i8;
                position += 1;
            }
        }
    }
    Ok(weights)
}

/// Decodes a compact file's `bytes` (read from `path`) for the architecture `model`, checking
/// every part; returns the model and the file's metadata.
pub fn decode_compact(
    path: &Path,
    bytes: &[u8],
    model: &Sequential,
) -> Result<(QuantizedModel, BTreeMap<String, String>)> {
    let (header, body) = read_header(path, bytes)?;
    let bad = |problem: String| CompressError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let mut reader = Body {
        path,
        bytes: &body,
        at: 4 + u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize,
    };
    let mut entries = header.layers.iter();
    let mut layers = Vec::new();
    for slot in layer_slots(model).map_err(|error| bad(error.to_string()))? {
        let (name, expected_shape) = (slot.name, slot.weight_shape);
        let entry = entries.next().ok_or_else(|| {
            bad(format!(
                "layer '{name}' is missing: the file holds another model"
            ))
        })?;
        if entry.name != name || entry.shape != expected_shape {
            return Err(bad(format!(
                "expected layer '{name}' of shape {expected_shape:?}, found '{}' of shape {:?}",
                entry.name, entry.shape
            )));
        }
        let count: usize = expected_shape.iter().product();
        let out_features = expected_shape[0];
        let coded = reader.take(entry.weight_bytes, &format!("the weights of '{name}'"))?;
        let weights = decode_weights(entry, coded, count)
            .map_err(|problem| bad(format!("{name}: {problem}")))?;
        let scales = reader.f32s(out_features, &format!("the scales of '{name}'"))?;
        let bias = reader.f32s(out_features, &format!("the bias of '{name}'"))?;
        let input = reader.f32s(2, &format!("the input quantization of '{name}'"))?;
        let zero_point = zero_point_byte(input[1])
            .ok_or_else(|| bad(format!("{name}: the zero point {} is not a byte", input[1])))?;
        let layer = QuantizedLayer::new(
            name,
            slot.kind,
            expected_shape,
            weights,
            scales,
            bias,
            input[0],
            zero_point,
        )
        .map_err(|error| bad(error.to_string()))?;
        layers.push(layer);
    }
    if let Some(extra) = entries.next() {
        return Err(bad(format!(
            "layer '{}' does not belong to this model",
            extra.name
        )));
    }
    if reader.at != body.len() {
        return Err(bad(format!(
            "{} bytes follow the last layer",
            body.len() - reader.at
        )));
    }
    let model =
        QuantizedModel::from_layers(model, layers).map_err(|error| bad(error.to_string()))?;
    Ok((model, header.metadata))
}

/// Decompresses a compact file and reads its header (and returns the body with it).
fn read_header(path: &Path, bytes: &[u8]) -> Result<(Header, Vec<u8>)> {
    let bad = |problem: String| CompressError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    if !is_compact(bytes) {
        return Err(bad(
            "not a compact model file (it does not start with DLCOMPCT)".into(),
        ));
    }
    let mut body = Vec::new();
    zstd::stream::read::Decoder::new(&bytes[COMPACT_MAGIC.len()..])
        .map_err(|error| bad(format!("cannot decompress: {error}")))?
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|error| bad(format!("cannot decompress: {error}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(bad("the decompressed file exceeds 1 GiB".into()));
    }
    if body.len() < 4 {
        return Err(bad("the file ends before its header".into()));
    }
    let length = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let header_bytes = body
        .get(4..4usize.saturating_add(length))
        .ok_or_else(|| bad("the file ends inside its header".into()))?;
    let header: Header = serde_json::from_slice(header_bytes)
        .map_err(|error| bad(format!("the header cannot be read: {error}")))?;
    if header.version != VERSION {
        return Err(bad(format!(
            "format version {} (this program reads version {VERSION})",
            header.version
        )));
    }
    Ok((header, body))
}

/// The metadata of a compact file, without decoding its layers.
pub fn compact_metadata(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    Ok(read_header(path, bytes)?.0.metadata)
}
