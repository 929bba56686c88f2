//! Where a network's weights live: a named, ordered set of variables and the seeded generator
//! that initialises them.
//!
//! Names follow PyTorch's `state_dict` conventions (`conv.weight`, `hidden.bias`,
//! `lstm.weight_ih_l0`), so a checkpoint written from a store opens in Python's `safetensors`
//! and lines up with the equivalent PyTorch module. Besides trainable parameters a store holds
//! buffers: state that is saved but not trained, such as batch-norm running statistics.

use std::sync::{Arc, Mutex, MutexGuard};

use dl_tensor::{DType, Device, SeededRng, Shape, Tensor, Var};

use crate::{Init, NnError, Result};

/// One registered variable.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// Full dotted name, e.g. `hidden.weight`.
    pub name: String,
    /// The variable itself (shared: updating it updates the layer that uses it).
    pub var: Var,
    /// Whether optimizers update it (false for buffers such as running statistics).
    pub trainable: bool,
}

#[derive(Debug)]
struct StoreState {
    parameters: Vec<Parameter>,
    rng: SeededRng,
}

/// The variables of one model, in registration order, plus the generator that initialises them.
///
/// Cloning a store is cheap and shares the variables.
///
/// ```
/// use dl_nn::{Init, VarStore};
/// use dl_tensor::{DType, Device};
///
/// let store = VarStore::new(&Device::Cpu, DType::F32, 42);
/// let weight = store.root().sub("hidden").var("weight", (4, 3), Init::GlorotUniform { fan_in: 3, fan_out: 4 })?;
/// assert_eq!(weight.dims(), &[4, 3]);
/// assert_eq!(store.names(), vec!["hidden.weight".to_string()]);
/// assert_eq!(store.parameter_count(), 12);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct VarStore {
    state: Arc<Mutex<StoreState>>,
    device: Device,
    dtype: DType,
}

impl VarStore {
    /// An empty store whose variables will live on `device` with floating-point type `dtype`,
    /// initialised from a generator seeded with `seed`.
    pub fn new(device: &Device, dtype: DType, seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(StoreState {
                parameters: Vec::new(),
                rng: SeededRng::new(seed),
            })),
            device: device.clone(),
            dtype,
        }
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The device the variables live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The floating-point type of the variables.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The path with no prefix, from which layers are built.
    pub fn root(&self) -> Path {
        Path {
            store: self.clone(),
            prefix: String::new(),
        }
    }

    /// Every registered variable (parameters and buffers), in registration order.
    pub fn parameters(&self) -> Vec<Parameter> {
        self.lock().parameters.clone()
    }

    /// The trainable variables with their names: what an optimizer updates.
    pub fn trainable_variables(&self) -> Vec<(String, Var)> {
        self.lock()
            .parameters
            .iter()
            .filter(|parameter| parameter.trainable)
            .map(|parameter| (parameter.name.clone(), parameter.var.clone()))
            .collect()
    }

    /// All names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .parameters
            .iter()
            .map(|parameter| parameter.name.clone())
            .collect()
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock()
            .parameters
            .iter()
            .find(|parameter| parameter.name == name)
            .map(|parameter| parameter.var.clone())
    }

    /// The number of trainable scalars (what Keras' summary calls "Trainable params").
    pub fn parameter_count(&self) -> usize {
        self.lock()
            .parameters
            .iter()
            .filter(|parameter| parameter.trainable)
            .map(|parameter| parameter.var.elem_count())
            .sum()
    }

    /// A new generator for one random purpose (dropout masks, say), drawn from the store's own,
    /// so that it too is fixed by the store's seed.
    pub fn fork_rng(&self, stream: u64) -> SeededRng {
        self.lock().rng.fork(stream)
    }

    /// A copy of every variable's current value, to return to later (early stopping keeps the
    /// best weights this way).
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.lock()
            .parameters
            .iter()
            .map(|parameter| Ok((parameter.name.clone(), parameter.var.as_tensor().copy()?)))
            .collect()
    }

    /// Puts back the values of a [`VarStore::snapshot`]. Every variable must be present with
    /// the same shape.
    pub fn restore(&self, snapshot: &[(String, Tensor)]) -> Result<()> {
        let state = self.lock();
        for parameter in &state.parameters {
            let (_, value) = snapshot
                .iter()
                .find(|(name, _)| name == &parameter.name)
                .ok_or_else(|| {
                    NnError::config(
                        "snapshot",
                        format!("it has no value for '{}'", parameter.name),
                    )
                })?;
            if value.dims() != parameter.var.dims() {
                return Err(NnError::config(
                    "snapshot",
                    format!(
                        "'{}' has shape {:?}, the model expects {:?}",
                        parameter.name,
                        value.dims(),
                        parameter.var.dims()
                    ),
                ));
            }
            parameter.var.set(value)?;
        }
        Ok(())
    }

    fn register(&self, name: String, tensor: Tensor, trainable: bool) -> Result<Var> {
        let mut state = self.lock();
        if state
            .parameters
            .iter()
            .any(|parameter| parameter.name == name)
        {
            return Err(NnError::DuplicateParameter(name));
        }
        let var = Var::from_tensor(&tensor)?;
        state.parameters.push(Parameter {
            name,
            var: var.clone(),
            trainable,
        });
        Ok(var)
    }
}

/// A position in the store's name hierarchy (`encoder.lstm`), from which a layer creates its
/// variables.
#[derive(Debug, Clone)]
pub struct Path {
    store: VarStore,
    prefix: String,
}

impl Path {
    /// The path one level down, e.g. `root().sub("conv")` names variables `conv.*`.
    pub fn sub(&self, name: &str) -> Path {
        Path {
            store: self.store.clone(),
            prefix: self.name_of(name),
        }
    }

    /// The full name a variable called `leaf` gets at this path.
    pub fn name_of(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    /// This path's own name (empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store this path belongs to.
    pub fn store(&self) -> &VarStore {
        &self.store
    }

    /// The device of the store.
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    /// The floating-point type of the store.
    pub fn dtype(&self) -> DType {
        self.store.dtype()
    }

    /// Creates a trainable variable called `leaf`, initialised by `init`.
    pub fn var<S: Into<Shape>>(&self, leaf: &str, shape: S, init: Init) -> Result<Var> {
        let shape = shape.into();
        let tensor = {
            let mut state = self.store.lock();
            init.tensor(&shape, self.dtype(), self.device(), &mut state.rng)?
        };
        self.store.register(self.name_of(leaf), tensor, true)
    }

    /// Creates a buffer: saved in checkpoints, never touched by optimizers.
    pub fn buffer(&self, leaf: &str, value: Tensor) -> Result<Var> {
        self.store.register(self.name_of(leaf), value, false)
    }

    /// A generator for this path's random needs (dropout), fixed by the store's seed.
    pub fn fork_rng(&self) -> SeededRng {
        let stream = self
            .prefix
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
            });
        self.store.fork_rng(stream)
    }
}
