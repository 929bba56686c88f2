//! The fully connected layer (Keras `Dense`, PyTorch `Linear`): many neurons side by side,
//! y = x Wᵀ + b.
//!
//! Each of the `out_features` rows of W is one neuron's weight vector, so a Dense layer is the
//! course's neuron y = f(Σ wᵢxᵢ + b) computed for a whole layer and a whole batch in one matrix
//! product. The activation f is applied by the model around it (see `Sequential`).

use dl_tensor::{kernels, Tensor, Var};

use crate::{Init, Layer, LayerStructure, Mode, NnError, Path, Result};

/// A fully connected layer: weight `(out_features, in_features)`, bias `(out_features)`.
#[derive(Debug, Clone)]
pub struct Dense {
    name: String,
    weight: Var,
    bias: Option<Var>,
}

impl Dense {
    /// Creates `path.weight` (Glorot-uniform, as Keras) and `path.bias` (zeros).
    ///
    /// ```
    /// use dl_nn::{Dense, Layer, Mode, VarStore};
    /// use dl_tensor::{DType, Device, Tensor};
    ///
    /// let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    /// let hidden = Dense::new(&store.root().sub("hidden"), 3, 2)?;
    /// let output = hidden.forward(&Tensor::ones((5, 3), DType::F32, &Device::Cpu)?, Mode::Eval)?;
    /// assert_eq!(output.dims(), &[5, 2]);
    /// # Ok::<(), dl_nn::NnError>(())
    /// ```
    pub fn new(path: &Path, in_features: usize, out_features: usize) -> Result<Self> {
        Self::with_bias(path, in_features, out_features, true)
    }

    /// Like [`Dense::new`], choosing whether the layer has a bias.
    pub fn with_bias(
        path: &Path,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(NnError::config(
                format!("dense layer '{}'", path.prefix()),
                format!("in_features ({in_features}) and out_features ({out_features}) must be positive"),
            ));
        }
        let weight = path.var(
            "weight",
            (out_features, in_features),
            Init::GlorotUniform {
                fan_in: in_features,
                fan_out: out_features,
            },
        )?;
        let bias = if bias {
            Some(path.var("bias", out_features, Init::Zeros)?)
        } else {
            None
        };
        Ok(Self {
            name: path.prefix().to_string(),
            weight,
            bias,
        })
    }

    /// Wraps existing variables (weight `(out, in)`, optional bias `(out)`).
    pub fn from_vars(name: &str, weight: Var, bias: Option<Var>) -> Self {
        Self {
            name: name.to_string(),
            weight,
            bias,
        }
    }

    /// The weight matrix W, `(out_features, in_features)`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias b, if any.
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    /// Number of inputs each neuron reads.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Number of neurons.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Layer for Dense {
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        let dims = input.dims();
        if dims.is_empty() || dims[dims.len() - 1] != self.in_features() {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected an input whose last dimension is {} features, got shape {:?}",
                    self.in_features(),
                    dims
                ),
            ));
        }
        let leading = &dims[..dims.len() - 1];
        let rows: usize = leading.iter().product();
        let flat = input.reshape((rows, self.in_features()))?;
        let weight = self.weight.as_tensor();
        // ANCHOR: dense-product
        let output = match &self.bias {
            // Product and bias in one operation (dl_tensor::kernels::linear).
            Some(bias) if kernels::applies_to(&[&flat, weight, bias.as_tensor()]) => {
                kernels::linear::linear(&flat, weight, bias.as_tensor())?
            }
            Some(bias) => flat.matmul(&weight.t()?)?.broadcast_add(bias.as_tensor())?,
            None => flat.matmul(&weight.t()?)?,
        };
        // ANCHOR_END: dense-product
        let mut shape = leading.to_vec();
        shape.push(self.out_features());
        Ok(output.reshape(shape)?)
    }

    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::Dense(self)
    }
}
