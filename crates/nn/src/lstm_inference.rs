//! Generating text one token at a time (course §5.2) with plain Rust on the CPU.
//!
//! Generation feeds the model one token, reads one distribution, samples, and feeds the sample
//! back: a batch of one, one step at a time. For such tiny products every tensor operation's
//! fixed cost (allocation, dispatch, threads) outweighs its arithmetic, so [`Lstm::step`] spends
//! most of its time outside the maths. [`LstmInference`] and [`DenseInference`] copy the weights
//! of a trained [`Lstm`] and [`Dense`] into plain `Vec<f32>`s once and compute the same
//! equations (see `lstm.rs`) with matrix-vector products over contiguous rows, reusing their
//! buffers: no allocation per step. They infer only (no gradients) and always run on the CPU.

use dl_tensor::{DType, Device, Var};

use crate::{Dense, Lstm, NnError, Result};

/// The weights of one layer, row-major as PyTorch stores them.
#[derive(Debug, Clone)]
struct InferenceLayer {
    /// `(4H, input)`.
    weight_ih: Vec<f32>,
    /// `(4H, H)`.
    weight_hh: Vec<f32>,
    /// `b_ih + b_hh`, `(4H)`.
    bias: Vec<f32>,
    /// Length of the layer's input vectors.
    input_size: usize,
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
    hidden_size: usize,
    layers: Vec<InferenceLayer>,
    /// h of every layer.
    hidden: Vec<Vec<f32>>,
    /// c of every layer.
    cell: Vec<Vec<f32>>,
    /// Scratch for the 4H gate pre-activations.
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

/// `output[r] = bias[r] + Σ_c matrix[r, c] · vector[c]` for a row-major `matrix` with
/// `vector.len()` columns; `output` holds the rows.
fn multiply_add(matrix: &[f32], vector: &[f32], bias: &[f32], output: &mut [f32]) {
    let columns = vector.len();
    for ((out, row), offset) in output
        .iter_mut()
        .zip(matrix.chunks_exact(columns))
        .zip(bias)
    {
        *out = offset + dot(row, vector);
    }
}

/// Adds `Σ_c matrix[r, c] · vector[c]` to `output[r]`.
fn accumulate(matrix: &[f32], vector: &[f32], output: &mut [f32]) {
    let columns = vector.len();
    for (out, row) in output.iter_mut().zip(matrix.chunks_exact(columns)) {
        *out += dot(row, vector);
    }
}

/// A dot product with sixteen independent partial sums, which the compiler turns into vector
/// instructions (one running sum would force a strict left-to-right order).
fn dot(first: &[f32], second: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut partial = [0f32; LANES];
    let first_chunks = first.chunks_exact(LANES);
    let second_chunks = second.chunks_exact(LANES);
    let tail: f32 = first_chunks
        .remainder()
        .iter()
        .zip(second_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in first_chunks.zip(second_chunks) {
        for lane in 0..LANES {
            partial[lane] += a[lane] * b[lane];
        }
    }
    partial.iter().sum::<f32>() + tail
}

fn sigmoid(value: f32) -> f32 {
    1.0 / (1.0 + (-value).exp())
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
                weight_ih: host_values(weight_ih)?,
                weight_hh: host_values(weight_hh)?,
                bias,
                input_size: weight_ih.dims()[1],
            });
        }
        let zeros = vec![vec![0f32; config.hidden_size]; config.num_layers];
        Ok(Self {
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
        self.layers[0].input_size
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
        if input.len() != self.input_size() {
            return Err(NnError::shape(
                "LstmInference",
                format!(
                    "expected an input of {} values, got {}",
                    self.input_size(),
                    input.len()
                ),
            ));
        }
        let size = self.hidden_size;
        for index in 0..self.layers.len() {
            let layer = &self.layers[index];
            let gates = &mut self.gates;
            // Gates = W_ih x + (b_ih + b_hh) + W_hh h, in PyTorch's order i, f, g, o.
            if index == 0 {
                multiply_add(&layer.weight_ih, input, &layer.bias, gates);
            } else {
                multiply_add(
                    &layer.weight_ih,
                    &self.hidden[index - 1],
                    &layer.bias,
                    gates,
                );
            }
            accumulate(&layer.weight_hh, &self.hidden[index], gates);
            let (hidden, cell) = (&mut self.hidden[index], &mut self.cell[index]);
            for unit in 0..size {
                let input_gate = sigmoid(gates[unit]);
                let forget_gate = sigmoid(gates[size + unit]);
                let candidate = gates[2 * size + unit].tanh();
                let output_gate = sigmoid(gates[3 * size + unit]);
                cell[unit] = forget_gate * cell[unit] + input_gate * candidate;
                hidden[unit] = output_gate * cell[unit].tanh();
            }
        }
        Ok(&self.hidden[self.layers.len() - 1])
    }
}

/// A trained [`Dense`] layer for single vectors on the CPU: y = W x + b.
#[derive(Debug, Clone)]
pub struct DenseInference {
    weight: Vec<f32>,
    bias: Vec<f32>,
    in_features: usize,
}

impl DenseInference {
    /// Copies the weights of `dense` (a missing bias counts as zeros).
    pub fn new(dense: &Dense) -> Result<Self> {
        let bias = match dense.bias() {
            Some(bias) => host_values(bias)?,
            None => vec![0f32; dense.out_features()],
        };
        Ok(Self {
            weight: host_values(dense.weight())?,
            bias,
            in_features: dense.in_features(),
        })
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.bias.len()
    }

    /// Writes W x + b into `output` (length [`DenseInference::out_features`]).
    pub fn forward(&self, input: &[f32], output: &mut [f32]) -> Result<()> {
        if input.len() != self.in_features || output.len() != self.out_features() {
            return Err(NnError::shape(
                "DenseInference",
                format!(
                    "expected {} inputs and room for {} outputs, got {} and {}",
                    self.in_features,
                    self.out_features(),
                    input.len(),
                    output.len()
                ),
            ));
        }
        multiply_add(&self.weight, input, &self.bias, output);
        Ok(())
    }
}
