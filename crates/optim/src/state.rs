//! Optimizer state as data: what must be saved next to the weights so that training can stop
//! and resume exactly where it was.
//!
//! Gradient descent with momentum or adaptive steps (course §3) is not memoryless: a momentum
//! buffer, Adam's moment estimates and its step counter t (in the bias correction 1 − β^t) all
//! shape the next update. Resuming with fresh state would silently give different weights, so
//! [`OptimizerState`] holds every buffer (tensors) and every hyper-parameter and counter
//! (text values) and is stored as a safetensors file: tensors in the body, values in the
//! header's metadata map.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use dl_tensor::candle_core::safetensors::Load;
use dl_tensor::{Device, Tensor};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::{HyperParameters, OptimError, Result};

/// The metadata key marking a safetensors file as optimizer state (reserved: [`OptimizerState::save`]
/// writes it and [`OptimizerState::load`] removes it).
const FORMAT_KEY: &str = "format";
/// The value of [`FORMAT_KEY`] this version writes: hyper-parameters as one JSON entry.
const FORMAT: &str = "dl-optim optimizer state 2";
/// The first format, still read: one text entry per hyper-parameter.
const FORMAT_1: &str = "dl-optim optimizer state 1";

/// The complete state of an optimizer: per-variable buffers and text values.
///
/// Tensors are named `<variable>.<buffer>` (`hidden.weight.exp_avg`). Values always include
/// `kind` (`sgd`, `adam`, `adamw`, `rmsprop`), `steps` (how many times `step` ran) and `config`
/// (the hyper-parameters as JSON, see [`HyperParameters`]), plus per-variable counters; a
/// training loop may add its own values (the epoch, say) under other keys, which optimizers
/// ignore. Numbers are written with Rust's shortest round-trip formatting, so an `f64` reads
/// back bit for bit.
///
/// ```
/// use dl_optim::OptimizerState;
/// use dl_tensor::{Device, Tensor};
///
/// let directory = tempfile::tempdir()?;
/// let path = directory.path().join("optimizer.safetensors");
/// let mut state = OptimizerState::new("sgd");
/// state.set_value("learning_rate", 0.1);
/// state.tensors.insert("w.momentum_buffer".into(), Tensor::new(&[1f32, 2.0], &Device::Cpu)?);
/// state.save(&path)?;
///
/// let loaded = OptimizerState::load(&path)?;
/// assert_eq!(loaded.kind(), Some("sgd"));
/// assert_eq!(loaded.value::<f64>("learning_rate")?, 0.1);
/// assert_eq!(loaded.tensor("w.momentum_buffer")?.to_vec1::<f32>()?, vec![1.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct OptimizerState {
    /// Per-variable buffers, named `<variable>.<buffer>`.
    pub tensors: BTreeMap<String, Tensor>,
    /// Optimizer kind, step count, hyper-parameters and counters, as text.
    pub values: BTreeMap<String, String>,
}

impl OptimizerState {
    /// The key of the optimizer kind.
    pub const KIND_KEY: &'static str = "kind";
    /// The key of the number of steps taken.
    pub const STEPS_KEY: &'static str = "steps";
    /// The key of the hyper-parameters, as JSON.
    pub const CONFIG_KEY: &'static str = "config";

    /// An empty state of the given optimizer kind.
    pub fn new(kind: &str) -> Self {
        let mut state = Self::default();
        state.set_value(Self::KIND_KEY, kind);
        state
    }

    /// The state of an optimizer of `kind` that has taken `steps` steps with `config`, before
    /// its per-variable buffers are added.
    pub fn of<C: HyperParameters>(kind: &str, steps: u64, config: &C) -> Result<Self> {
        let mut state = Self::new(kind);
        state.set_value(Self::STEPS_KEY, steps);
        state.set_config(config)?;
        Ok(state)
    }

    /// The optimizer kind recorded in the state, if any.
    pub fn kind(&self) -> Option<&str> {
        self.values.get(Self::KIND_KEY).map(String::as_str)
    }

    /// Fails unless the state was produced by an optimizer of kind `expected`.
    pub fn expect_kind(&self, expected: &'static str) -> Result<()> {
        match self.kind() {
            Some(kind) if kind == expected => Ok(()),
            Some(kind) => Err(OptimError::WrongOptimizerKind {
                expected,
                found: kind.to_string(),
            }),
            None => Err(OptimError::MissingStateValue {
                key: Self::KIND_KEY.to_string(),
            }),
        }
    }

    /// Stores `value` as text under `key`; a key that names one of the stored hyper-parameters
    /// (see [`OptimizerState::set_config`]) changes that hyper-parameter.
    pub fn set_value(&mut self, key: impl Into<String>, value: impl Display) {
        let (key, text) = (key.into(), value.to_string());
        if let Some(mut config) = self.config_fields() {
            if let Some(field) = config.get_mut(&key) {
                *field = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                self.store_config_fields(config);
                return;
            }
        }
        self.values.insert(key, text);
    }

    /// Removes the value under `key` (a hyper-parameter or any other value).
    pub fn remove_value(&mut self, key: &str) {
        if let Some(mut config) = self.config_fields() {
            if config.remove(key).is_some() {
                self.store_config_fields(config);
                return;
            }
        }
        self.values.remove(key);
    }

    /// Reads the value under `key` as a `T` (`f64`, `u64`, `bool`, ...): a value of its own, or
    /// one of the stored hyper-parameters.
    pub fn value<T: FromStr>(&self, key: &str) -> Result<T> {
        if !self.values.contains_key(key) {
            if let Some(field) = self
                .config_fields()
                .and_then(|mut config| config.remove(key))
            {
                let text = match field {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                return text.parse().map_err(|_| OptimError::BadStateValue {
                    key: key.to_string(),
                    value: text,
                    expected: std::any::type_name::<T>(),
                });
            }
        }
        parse_value(&self.values, key)
    }

    /// Stores the hyper-parameters `config` as JSON under [`OptimizerState::CONFIG_KEY`].
    pub fn set_config<C: HyperParameters>(&mut self, config: &C) -> Result<()> {
        let json = serde_json::to_string(config).map_err(|error| OptimError::BadStateValue {
            key: Self::CONFIG_KEY.to_string(),
            value: error.to_string(),
            expected: "hyper-parameters that encode as JSON",
        })?;
        self.values.insert(Self::CONFIG_KEY.to_string(), json);
        Ok(())
    }

    /// The hyper-parameters, checked with [`HyperParameters::validate_saved`]: from the JSON
    /// entry, or, in a state of the first format, from one text entry per hyper-parameter. A
    /// missing or unreadable one is an error naming it.
    pub fn config<C: HyperParameters>(&self) -> Result<C> {
        let template = serde_json::to_value(C::default()).unwrap_or_default();
        let stored = self.config_fields();
        let mut fields = serde_json::Map::new();
        for (name, example) in template.as_object().into_iter().flatten() {
            let field = match &stored {
                Some(config) => config.get(name).cloned(),
                // The first format: numbers and booleans as Rust wrote them, which JSON reads.
                None => self.values.get(name).map(|text| {
                    serde_json::from_str(text)
                        .unwrap_or_else(|_| serde_json::Value::String(text.clone()))
                }),
            };
            let field = field.ok_or_else(|| OptimError::MissingStateValue { key: name.clone() })?;
            let same_kind = (example.is_number() && field.is_number())
                || (example.is_boolean() && field.is_boolean());
            if !same_kind {
                return Err(OptimError::BadStateValue {
                    key: name.clone(),
                    value: field.to_string(),
                    expected: if example.is_boolean() {
                        "true or false"
                    } else {
                        "a number"
                    },
                });
            }
            fields.insert(name.clone(), field);
        }
        let config: C =
            serde_json::from_value(serde_json::Value::Object(fields)).map_err(|error| {
                OptimError::BadStateValue {
                    key: Self::CONFIG_KEY.to_string(),
                    value: error.to_string(),
                    expected: std::any::type_name::<C>(),
                }
            })?;
        config.validate_saved()?;
        Ok(config)
    }

    /// The fields of the JSON hyper-parameters entry, if there is a readable one.
    fn config_fields(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_str(self.values.get(Self::CONFIG_KEY)?) {
            Ok(serde_json::Value::Object(fields)) => Some(fields),
            _ => None,
        }
    }

    fn store_config_fields(&mut self, fields: serde_json::Map<String, serde_json::Value>) {
        self.values.insert(
            Self::CONFIG_KEY.to_string(),
            serde_json::Value::Object(fields).to_string(),
        );
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| OptimError::MissingStateTensor {
                tensor: name.to_string(),
            })
    }

    /// Adds the buffers of `variable` that exist (`Some`), as `<variable>.<buffer>` tensors:
    /// how every optimizer saves its per-variable state.
    pub(crate) fn insert_buffers<'t>(
        &mut self,
        variable: &str,
        buffers: impl IntoIterator<Item = (&'static str, Option<&'t Tensor>)>,
    ) {
        for (buffer, tensor) in buffers {
            if let Some(tensor) = tensor {
                self.tensors.insert(
                    crate::optimizer::state_tensor_name(variable, buffer),
                    tensor.clone(),
                );
            }
        }
    }

    /// Takes the buffer `buffer` of `variable` out of its group (see `buffers_by_variable`); a
    /// missing one is an error naming the tensor.
    pub(crate) fn required_buffer(
        buffers: &mut BTreeMap<&'static str, Tensor>,
        variable: &str,
        buffer: &str,
    ) -> Result<Tensor> {
        buffers
            .remove(buffer)
            .ok_or_else(|| OptimError::MissingStateTensor {
                tensor: crate::optimizer::state_tensor_name(variable, buffer),
            })
    }

    /// The tensors grouped by variable: `w.exp_avg` becomes `w → {exp_avg → tensor}`. A tensor
    /// whose buffer is not in `buffers` (or whose name has no `.`) is an error.
    pub(crate) fn buffers_by_variable(
        &self,
        kind: &'static str,
        buffers: &[&'static str],
    ) -> Result<BTreeMap<String, BTreeMap<&'static str, Tensor>>> {
        let mut grouped: BTreeMap<String, BTreeMap<&'static str, Tensor>> = BTreeMap::new();
        for (name, tensor) in &self.tensors {
            let known = name.rsplit_once('.').and_then(|(variable, buffer)| {
                let buffer = buffers.iter().find(|known| **known == buffer)?;
                Some((variable, *buffer))
            });
            let Some((variable, buffer)) = known else {
                return Err(OptimError::UnexpectedStateTensor {
                    tensor: name.clone(),
                    kind,
                });
            };
            grouped
                .entry(variable.to_string())
                .or_default()
                .insert(buffer, tensor.clone());
        }
        Ok(grouped)
    }

    /// Writes the state to `path` as safetensors: tensors (copied to the CPU) in the body,
    /// values in the header's metadata, with a `format` entry marking the file as optimizer
    /// state.
    ///
    /// The bytes go to a temporary file in the same directory, which is flushed to disk and
    /// then renamed over `path`: a crash leaves either the old file or the new one, never a
    /// half-written file, and the temporary file is removed if writing fails.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|error| OptimError::StateFile {
            path: path.to_path_buf(),
            problem: format!("cannot encode it as safetensors: {error}"),
        })?;
        dl_tensor::write_atomically(path, &bytes).map_err(|error| OptimError::StateFile {
            path: path.to_path_buf(),
            problem: format!("cannot write it: {error}"),
        })
    }

    /// The bytes [`OptimizerState::save`] writes: safetensors with the values in the header.
    pub fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        let tensors: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|(name, tensor)| (name.clone(), tensor.clone()))
            .collect();
        let mut metadata = self.values.clone();
        metadata.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
        dl_tensor::encode_safetensors(&tensors, &metadata)
    }

    /// Reads a file written by [`OptimizerState::save`], with tensors on the CPU.
    ///
    /// A missing file, a file that is not safetensors, a truncated file, a safetensors file
    /// that is not optimizer state (model weights, say) and non-floating-point tensors are
    /// errors naming the file and the problem.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file_error = |problem: String| OptimError::StateFile {
            path: path.to_path_buf(),
            problem,
        };
        let bytes =
            fs::read(path).map_err(|error| file_error(format!("cannot read it: {error}")))?;
        Self::from_bytes(&bytes, path)
    }

    /// Reads optimizer state from the bytes of a file written by [`OptimizerState::save`]
    /// (`path` names it in errors); see [`OptimizerState::load`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let file_error = |problem: String| OptimError::StateFile {
            path: path.to_path_buf(),
            problem,
        };
        let Some(length_prefix) = bytes.first_chunk::<8>() else {
            return Err(file_error(format!(
                "truncated or not a safetensors file: it has {} bytes, fewer than the 8-byte header length that starts a safetensors file",
                bytes.len()
            )));
        };
        let header_length = u64::from_le_bytes(*length_prefix);
        let available = bytes.len() as u64 - 8;
        if header_length > available {
            return Err(file_error(format!(
                "truncated or not a safetensors file: its first 8 bytes announce a {header_length}-byte header, but only {available} bytes follow"
            )));
        }
        let (_, metadata) =
            SafeTensors::read_metadata(bytes).map_err(|error| file_error(describe(&error)))?;
        let mut values: BTreeMap<String, String> = metadata
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        match values.remove(FORMAT_KEY) {
            Some(format) if format == FORMAT || format == FORMAT_1 => {}
            Some(format) => {
                return Err(file_error(format!(
                    "its format is '{format}', but this version reads '{FORMAT}'"
                )))
            }
            None => {
                return Err(file_error(format!(
                    "it is a safetensors file but not optimizer state: its metadata has no '{FORMAT_KEY}' entry (model weights?)"
                )))
            }
        }
        let file = SafeTensors::deserialize(bytes).map_err(|error| file_error(describe(&error)))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            if !matches!(
                view.dtype(),
                Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64
            ) {
                return Err(file_error(format!(
                    "tensor '{name}' has dtype {:?}, but optimizer state is floating point",
                    view.dtype()
                )));
            }
            let tensor = view
                .load(&Device::Cpu)
                .map_err(|error| file_error(format!("cannot read tensor '{name}': {error}")))?;
            tensors.insert(name, tensor);
        }
        Ok(Self { tensors, values })
    }
}

/// Reads `values[key]` as a `T`; a missing key or unreadable text is an error naming the key.
pub(crate) fn parse_value<T: FromStr>(values: &BTreeMap<String, String>, key: &str) -> Result<T> {
    let text = values
        .get(key)
        .ok_or_else(|| OptimError::MissingStateValue {
            key: key.to_string(),
        })?;
    text.parse().map_err(|_| OptimError::BadStateValue {
        key: key.to_string(),
        value: text.clone(),
        expected: std::any::type_name::<T>(),
    })
}

/// Explains a safetensors decoding error to someone holding the file.
fn describe(error: &SafeTensorError) -> String {
    match error {
        SafeTensorError::InvalidHeader(_)
        | SafeTensorError::InvalidHeaderDeserialization(_)
        | SafeTensorError::JsonError(_) => {
            format!("not a safetensors file: its header is not valid safetensors JSON ({error})")
        }
        SafeTensorError::HeaderTooLarge
        | SafeTensorError::HeaderTooSmall
        | SafeTensorError::InvalidHeaderLength => {
            format!("truncated or not a safetensors file ({error})")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "truncated or corrupted: the tensor data is not as long as its header says".to_string()
        }
        _ => format!("not a valid safetensors file ({error})"),
    }
}
