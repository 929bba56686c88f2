//! The artificial neuron (course §4.1 "神经元模型"): y = f(Σᵢ wᵢxᵢ + b).
//!
//! A neuron weighs its inputs, adds a bias and passes the sum through an activation f. On its
//! own, with a sigmoid, it is logistic regression: it can learn any linearly separable function
//! of its inputs, such as AND and OR (see `examples/neuron.rs`), but not XOR, which needs a
//! hidden layer (`examples/xor_mlp.rs` in dl-optim).

use dl_tensor::{Tensor, Var};

use crate::{Activation, Init, NnError, Path, Result};

/// One neuron with `inputs` weights, a bias and an activation.
#[derive(Debug, Clone)]
pub struct Neuron {
    name: String,
    weights: Var,
    bias: Var,
    activation: Activation,
}

impl Neuron {
    /// Creates `path.weight` (shape `(inputs)`, small uniform values) and `path.bias` (zero).
    ///
    /// ```
    /// use dl_nn::{Activation, Neuron, VarStore};
    /// use dl_tensor::{DType, Device, Tensor};
    ///
    /// let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    /// let neuron = Neuron::new(&store.root().sub("neuron"), 2, Activation::Sigmoid)?;
    /// let inputs = Tensor::new(&[[0f32, 1.0], [1.0, 1.0]], &Device::Cpu)?;
    /// assert_eq!(neuron.forward(&inputs)?.dims(), &[2]); // one output per example
    /// # Ok::<(), dl_nn::NnError>(())
    /// ```
    pub fn new(path: &Path, inputs: usize, activation: Activation) -> Result<Self> {
        if inputs == 0 {
            return Err(NnError::config("neuron", "needs at least one input"));
        }
        Ok(Self {
            name: path.prefix().to_string(),
            weights: path.var("weight", inputs, Init::FanInUniform { fan_in: inputs })?,
            bias: path.var("bias", (), Init::Zeros)?,
            activation,
        })
    }

    /// The weight vector w.
    pub fn weights(&self) -> &Var {
        &self.weights
    }

    /// The bias b.
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The weighted sum z = Σᵢ wᵢxᵢ + b for a batch `(N, inputs)`, before the activation.
    // ANCHOR: neuron
    pub fn weighted_sum(&self, inputs: &Tensor) -> Result<Tensor> {
        let expected = self.weights.dims()[0];
        if inputs.rank() != 2 || inputs.dim(1)? != expected {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected inputs of shape (N, {expected}), got {:?}",
                    inputs.dims()
                ),
            ));
        }
        let column = self.weights.as_tensor().unsqueeze(1)?;
        Ok(inputs
            .matmul(&column)?
            .squeeze(1)?
            .broadcast_add(self.bias.as_tensor())?)
    }

    /// y = f(z) for each example of a batch `(N, inputs)`; returns shape `(N)`.
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        self.activation.apply(&self.weighted_sum(inputs)?)
    }
    // ANCHOR_END: neuron
}
