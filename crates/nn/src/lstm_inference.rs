//! Generating text one token at a time (course §5.2) with plain Rust on the CPU.
//!
//! Generation feeds the model one token, reads one distribution, samples, and feeds the sample
//! back: a batch of one, one step at a time. For such tiny products every tensor operation's
//! fixed cost (allocation, dispatch, threads) weighs as much as its arithmetic.
//! [`LstmInference`] and [`DenseInference`] copy the weights of a trained [`Lstm`] and [`Dense`]
//! once into plain `Vec<f32>`s laid out for matrix-vector products, and compute the equations of
//! `lstm.rs` in place, with no allocation per step:
//!
//! - each weight matrix is a [`MatVecMatrix`] (dl-tensor's kernels): blocks of 64 rows, each
//!   block column after column, so a product streams through memory once and keeps 64 running
//!   sums in vector registers;
//! - σ and tanh are dl-tensor's [`fast_math`](dl_tensor::kernels::fast_math) ones, computed from one exponential
//!   e^x = 2ⁿ · e^r (a polynomial for e^r, within 2 units in the last place), which, unlike the C
//!   library's, the compiler applies to eight values at once — the same functions the training
//!   kernels use.
//!
//! The same code is compiled for any x86-64 (SSE2) and for AVX2, chosen at run time. Neither uses
//! fused multiply-adds, so both do the same operations in the same order: results are identical
//! bit for bit whichever runs. They infer only (no gradients) and always run on the CPU.

use dl_tensor::kernels::fast_math::{sigmoid, tanh};
use dl_tensor::kernels::matvec::MatVecMatrix;
use dl_tensor::{DType, Device, Var};

use crate::{Dense, Lstm, NnError, Result};

/// The weights of one layer.
#[derive(Debug, Clone)]
struct InferenceLayer {
    /// W_ih, `(4H, input)`.
    weight_ih: MatVecMatrix,
    /// W_hh, `(4H, H)`.
    weight_hh: MatVecMatrix,
    /// `b_ih + b_hh`, `(4H)`.
    bias: Vec<f32>,
}

/// A trained [`Lstm`] for one sequence at a time on the CPU, with its state inside.
///
/// ```
/// use dl_nn::{Lstm, LstmConfig, LstmInference, VarStore};
/// use dl_tensor::{DType, Device, Tensor};
///
/// let store = VarStore::new(&Device::Cpu, DType::F32, 0);
/// let lstm = Lstm::new(&store.root().sub("lstm"), LstmConfig::new(3, 4).num_layers(2))?;
/// let mut fast = LstmInference::new(&lstm)?;
/// let input = [0.5f32, -1.0, 0.25];
/// let hidden = fast.step(&input)?.to_vec();
///
/// let (expected, _) = lstm.step(&Tensor::new(&[input], &Device::Cpu)?, &lstm.zero_state(1)?)?;
/// for (fast, slow) in hidden.iter().zip(expected.squeeze(0)?.to_vec1::<f32>()?) {
///     assert!((fast - slow).abs() < 1e-6);
/// }
/// # Ok::<(), dl_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LstmInference {
    input_size: usize,
    hidden_size: usize,
    layers: Vec<InferenceLayer>,
    /// h of every layer.
    hidden: Vec<Vec<f32>>,
    /// c of every layer.
    cell: Vec<Vec<f32>>,
    /// Scratch for the 4H gates.
    gates: Vec<f32>,
}

/// A variable's values as a flat `Vec<f32>` on the host.
fn host_values(var: &Var) -> Result<Vec<f32>> {
    Ok(var
        .as_tensor()
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// A variable of shape `(rows, columns)`, packed.
fn packed(var: &Var) -> Result<MatVecMatrix> {
    let (rows, columns) = var.as_tensor().dims2()?;
    Ok(MatVecMatrix::new(&host_values(var)?, rows, columns))
}

impl LstmInference {
    /// Copies the weights of `lstm` (from any device and float type) and starts from the zero
    /// state.
    pub fn new(lstm: &Lstm) -> Result<Self> {
        let config = lstm.config();
        let mut layers = Vec::with_capacity(config.num_layers);
        for layer in 0..config.num_layers {
            let [weight_ih, weight_hh, bias_ih, bias_hh] = lstm.layer_variables(layer);
            let bias = host_values(bias_ih)?
                .iter()
                .zip(host_values(bias_hh)?)
                .map(|(input_bias, hidden_bias)| input_bias + hidden_bias)
                .collect();
            layers.push(InferenceLayer {
                weight_ih: packed(weight_ih)?,
                weight_hh: packed(weight_hh)?,
                bias,
            });
        }
        let zeros = vec![vec![0f32; config.hidden_size]; config.num_layers];
        Ok(Self {
            input_size: config.input_size,
            hidden_size: config.hidden_size,
            layers,
            hidden: zeros.clone(),
            cell: zeros,
            gates: vec![0f32; 4 * config.hidden_size],
        })
    }

    /// Length of the hidden state (and of [`LstmInference::step`]'s output).
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Length of the input vectors.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Back to the all-zero state, to start a new sequence.
    pub fn reset(&mut self) {
        for state in self.hidden.iter_mut().chain(self.cell.iter_mut()) {
            state.fill(0.0);
        }
    }

    /// The hidden state h of every layer (the last layer's is the output).
    pub fn hidden(&self) -> &[Vec<f32>] {
        &self.hidden
    }

    /// The cell state c of every layer.
    pub fn cell(&self) -> &[Vec<f32>] {
        &self.cell
    }

    /// Advances every layer by one step with `input` (length [`LstmInference::input_size`]) and
    /// returns the last layer's new hidden state, as [`Lstm::step`] with a batch of one.
    pub fn step(&mut self, input: &[f32]) -> Result<&[f32]> {
        if input.len() != self.input_size {
            return Err(NnError::shape(
                "LstmInference",
                format!(
                    "expected an input of {} values, got {}",
                    self.input_size,
                    input.len()
                ),
            ));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.advance_avx2(input) };
            return Ok(&self.hidden[self.layers.len() - 1]);
        }
        self.advance(input);
        Ok(&self.hidden[self.layers.len() - 1])
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn advance_avx2(&mut self, input: &[f32]) {
        self.advance(input);
    }

    /// One step of every layer (see the equations in `lstm.rs`).
    #[inline(always)]
    fn advance(&mut self, input: &[f32]) {
        let size = self.hidden_size;
        for index in 0..self.layers.len() {
            let layer = &self.layers[index];
            // Gates = W_ih x + (b_ih + b_hh) + W_hh h, in PyTorch's order i, f, g, o.
            let layer_input = if index == 0 {
                input
            } else {
                &self.hidden[index - 1]
            };
            layer
                .weight_ih
                .multiply_add(layer_input, Some(&layer.bias), &mut self.gates);
            layer
                .weight_hh
                .multiply_add(&self.hidden[index], None, &mut self.gates);
            let (input_gates, rest) = self.gates.split_at(size);
            let (forget_gates, rest) = rest.split_at(size);
            let (candidates, output_gates) = rest.split_at(size);
            let units = self.hidden[index]
                .iter_mut()
                .zip(self.cell[index].iter_mut())
                .zip(input_gates.iter().zip(forget_gates))
                .zip(candidates.iter().zip(output_gates));
            for (((hidden, cell), (&input_gate, &forget_gate)), (&candidate, &output_gate)) in units
            {
                *cell = sigmoid(forget_gate) * *cell + sigmoid(input_gate) * tanh(candidate);
                *hidden = sigmoid(output_gate) * tanh(*cell);
            }
        }
    }
}

/// A trained [`Dense`] layer for single vectors on the CPU: y = W x + b.
#[derive(Debug, Clone)]
pub struct DenseInference {
    weight: MatVecMatrix,
    bias: Vec<f32>,
}

impl DenseInference {
    /// Copies the weights of `dense` (a missing bias counts as zeros).
    pub fn new(dense: &Dense) -> Result<Self> {
        let bias = match dense.bias() {
            Some(bias) => host_values(bias)?,
            None => vec![0f32; dense.out_features()],
        };
        Ok(Self {
            weight: packed(dense.weight())?,
            bias,
        })
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.bias.len()
    }

    /// Writes W x + b into `output` (length [`DenseInference::out_features`]).
    pub fn forward(&self, input: &[f32], output: &mut [f32]) -> Result<()> {
        if input.len() != self.weight.columns() || output.len() != self.out_features() {
            return Err(NnError::shape(
                "DenseInference",
                format!(
                    "expected {} inputs and room for {} outputs, got {} and {}",
                    self.weight.columns(),
                    self.out_features(),
                    input.len(),
                    output.len()
                ),
            ));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.forward_avx2(input, output) };
            return Ok(());
        }
        self.weight.multiply_add(input, Some(&self.bias), output);
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn forward_avx2(&self, input: &[f32], output: &mut [f32]) {
        self.weight.multiply_add(input, Some(&self.bias), output);
    }
}
