//! The int8 checkpoint: a safetensors file any reader opens (`safetensors.torch.load_file`,
//! Candle), holding for each quantized layer `NAME.weight` (I8, the fp32 weight's shape),
//! `NAME.weight_scale` (F32, one per output channel), `NAME.bias` (F32) and
//! `NAME.input_quantization` (F32 [scale, zero point]), and in its metadata the model's recipe
//! (as any checkpoint) plus `quantization` (how it was made). A reader rebuilds the
//! architecture from the recipe and checks every tensor against it.

use std::{collections::BTreeMap, path::Path};

use dl_nn::Sequential;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::{quantized::layer_slots, CompressError, QuantizedLayer, QuantizedModel, Result};

/// The metadata key whose presence marks an int8 checkpoint (its value: how it was made, JSON).
pub const QUANTIZATION_KEY: &str = "quantization";
/// The metadata key of the file format.
const FORMAT_KEY: &str = "format";
/// The format this version writes.
pub const INT8_FORMAT: &str = "dl-compress int8 1";

/// Whether a checkpoint's metadata says it holds an int8 model.
pub fn is_int8(metadata: &BTreeMap<String, String>) -> bool {
    metadata.contains_key(QUANTIZATION_KEY)
}

fn bytes_of_f32(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// The tensors of `model` as (name, dtype, shape, bytes).
pub(crate) fn layer_tensors(model: &QuantizedModel) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let mut tensors = Vec::new();
    for layer in model.layers() {
        let name = &layer.name;
        tensors.push((
            format!("{name}.weight"),
            Dtype::I8,
            layer.weight_shape.clone(),
            layer.weights.iter().map(|&value| value as u8).collect(),
        ));
        tensors.push((
            format!("{name}.weight_scale"),
            Dtype::F32,
            vec![layer.weight_scales.len()],
            bytes_of_f32(&layer.weight_scales),
        ));
        tensors.push((
            format!("{name}.bias"),
            Dtype::F32,
            vec![layer.bias.len()],
            bytes_of_f32(&layer.bias),
        ));
        tensors.push((
            format!("{name}.input_quantization"),
            Dtype::F32,
            vec![2],
            bytes_of_f32(&[layer.input_scale, f32::from(layer.input_zero_point)]),
        ));
    }
    tensors
}

/// Encodes `model` with `metadata` (which should carry the recipe and [`QUANTIZATION_KEY`]).
pub fn encode_int8(model: &QuantizedModel, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let tensors = layer_tensors(model);
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| CompressError::BadSetting {
                    setting: "int8 file",
                    problem: format!("{name}: {error}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut header = metadata.clone();
    header.insert(FORMAT_KEY.into(), INT8_FORMAT.into());
    header
        .entry(QUANTIZATION_KEY.into())
        .or_insert_with(|| "{}".into());
    safetensors::serialize(views, Some(header.into_iter().collect())).map_err(|error| {
        CompressError::BadSetting {
            setting: "int8 file",
            problem: error.to_string(),
        }
    })
}

/// Writes `model` to `path` as an int8 checkpoint (to a temporary name, then renamed).
pub fn save_int8(
    path: &Path,
    model: &QuantizedModel,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    crate::error::write_file(path, &encode_int8(model, metadata)?)
}

/// Reads the metadata of a safetensors file's header without its tensors.
pub fn read_metadata(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|error| CompressError::BadFile {
            path: path.to_path_buf(),
            problem: format!("not a safetensors file: {error}"),
        })?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// A tensor of the file, checked for dtype and shape.
fn tensor<'a>(
    path: &Path,
    file: &'a SafeTensors<'a>,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<&'a [u8]> {
    let bad = |problem: String| CompressError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let view = file.tensor(name).map_err(|_| {
        bad(format!(
            "the tensor '{name}' is missing: is this an int8 checkpoint of this model?"
        ))
    })?;
    if view.dtype() != dtype || view.shape() != shape {
        return Err(bad(format!(
            "the tensor '{name}' is {:?} {:?}, expected {dtype:?} {shape:?}",
            view.dtype(),
            view.shape()
        )));
    }
    Ok(view.data())
}

/// A stored zero point (an f32) as the byte it must be, or `None`.
pub(crate) fn zero_point_byte(value: f32) -> Option<u8> {
    (value.fract() == 0.0 && (0.0..=255.0).contains(&value)).then_some(value as u8)
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect()
}

/// Decodes an int8 checkpoint's `bytes` (read from `path`) for the architecture `model`
/// (rebuilt from the file's recipe): every tensor is checked (present, dtype, shape, scales
/// finite and positive, zero point a byte, no −128 weight), and a bad one is an error naming it.
pub fn decode_int8(path: &Path, bytes: &[u8], model: &Sequential) -> Result<QuantizedModel> {
    let file = SafeTensors::deserialize(bytes).map_err(|error| CompressError::BadFile {
        path: path.to_path_buf(),
        problem: format!("not a safetensors file: {error}"),
    })?;
    let bad = |problem: String| CompressError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let mut layers = Vec::new();
    for slot in layer_slots(model).map_err(|error| bad(error.to_string()))? {
        let (name, weight_shape) = (slot.name, slot.weight_shape);
        let out_features = weight_shape[0];
        let weights: Vec<i8> = tensor(
            path,
            &file,
            &format!("{name}.weight"),
            Dtype::I8,
            &weight_shape,
        )?
        .iter()
        .map(|&byte| byte as i8)
        .collect();
        let scales = f32_values(tensor(
            path,
            &file,
            &format!("{name}.weight_scale"),
            Dtype::F32,
            &[out_features],
        )?);
        let bias = f32_values(tensor(
            path,
            &file,
            &format!("{name}.bias"),
            Dtype::F32,
            &[out_features],
        )?);
        let input = f32_values(tensor(
            path,
            &file,
            &format!("{name}.input_quantization"),
            Dtype::F32,
            &[2],
        )?);
        let zero_point = zero_point_byte(input[1]).ok_or_else(|| {
            bad(format!(
                "{name}.input_quantization: the zero point {} is not a byte",
                input[1]
            ))
        })?;
        let layer = QuantizedLayer::new(
            name,
            slot.kind,
            weight_shape,
            weights,
            scales,
            bias,
            input[0],
            zero_point,
        )
        .map_err(|error| bad(error.to_string()))?;
        layers.push(layer);
    }
    QuantizedModel::from_layers(model, layers).map_err(|error| bad(error.to_string()))
}

/// Reads an int8 checkpoint for the architecture `model`.
pub fn load_int8(path: &Path, model: &Sequential) -> Result<QuantizedModel> {
    let bytes = std::fs::read(path).map_err(|source| CompressError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_int8(path, &bytes, model)
}
