//! The LSTM layer (course §5.2, the text model Embedding → LSTM → Dense): a recurrent layer that
//! reads a sequence one step at a time and carries two vectors from step to step, the hidden
//! state h (what the layer outputs) and the cell state c (its long-term memory).
//!
//! At each time step t, with input x and the previous states h and c, four gates are computed
//! from one matrix product each with the input and with the hidden state (PyTorch's gate order
//! i, f, g, o; σ is the logistic sigmoid, ⊙ the element-wise product):
//!
//! ```text
//! i  = σ(W_ii x + b_ii + W_hi h + b_hi)      input gate: how much of the candidate to write
//! f  = σ(W_if x + b_if + W_hf h + b_hf)      forget gate: how much of the old cell to keep
//! g  = tanh(W_ig x + b_ig + W_hg h + b_hg)   candidate values to write
//! o  = σ(W_io x + b_io + W_ho h + b_ho)      output gate: how much of the cell to show
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')
//! ```
//!
//! Why the cell state helps: in a plain RNN the state is pushed through a weight matrix and a
//! squashing nonlinearity at every step, so the gradient reaching step t − k is a product of k
//! Jacobians that shrinks (or explodes) exponentially. Along the cell state the only operation
//! from one step to the next is c' = f ⊙ c + (new terms): the derivative ∂c'/∂c is just the
//! diagonal matrix diag(f), with no weight matrix and no squashing. While the forget gate stays
//! near 1 the gradient flows back across many steps almost unchanged (the "constant error
//! carousel"), and the network learns through f when to keep and when to forget.
//!
//! The weights are stored like PyTorch's `nn.LSTM` (`weight_ih_l0` of shape (4H, input),
//! `weight_hh_l0` (4H, H), `bias_ih_l0` and `bias_hh_l0` (4H), the four gates' rows stacked in
//! the order i, f, g, o), so a checkpoint lines up with the PyTorch module. Layers stack: layer
//! k > 0 reads the hidden states of layer k − 1, with optional dropout between layers during
//! training.
//!
//! For speed, on the CPU (unless `DL_PLAIN_CANDLE=1`) each layer's whole sequence is one
//! operation, `dl_tensor::kernels::lstm_sequence`: the input part W_ih x + b_ih + b_hh of every
//! step in one matrix product, then the step loop and backpropagation through time without a
//! tensor per step. Elsewhere the input part is still one product over all steps and each step
//! is a few Candle operations. A single [`Lstm::step`] (generation) uses
//! `dl_tensor::kernels::lstm_cell` for its gate arithmetic.

use dl_tensor::{kernels, DType, Device, Tensor, Var};

use crate::{Dropout, Embedding, Init, Layer, Mode, NnError, Path, Result};

/// The sizes of an [`Lstm`]: built with [`LstmConfig::new`] and adjusted with the builder
/// methods.
///
/// ```
/// use dl_nn::LstmConfig;
///
/// let config = LstmConfig::new(32, 64).num_layers(2).dropout(0.2);
/// assert_eq!((config.input_size, config.hidden_size, config.num_layers), (32, 64, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LstmConfig {
    /// Length of each input vector (the embedding dimension in a text model).
    pub input_size: usize,
    /// Length of the hidden and cell state vectors, H.
    pub hidden_size: usize,
    /// How many LSTM layers are stacked.
    pub num_layers: usize,
    /// Probability of dropping each output of every layer but the last before the next layer
    /// reads it, in training mode only (as PyTorch's `nn.LSTM`); must be in `[0, 1)`.
    pub dropout: f32,
}

impl LstmConfig {
    /// One layer reading `input_size` features with `hidden_size` units, without dropout.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self {
            input_size,
            hidden_size,
            num_layers: 1,
            dropout: 0.0,
        }
    }

    /// Sets the number of stacked layers.
    pub fn num_layers(self, num_layers: usize) -> Self {
        Self { num_layers, ..self }
    }

    /// Sets the dropout probability between layers.
    pub fn dropout(self, dropout: f32) -> Self {
        Self { dropout, ..self }
    }
}

/// The hidden and cell states of every layer of an [`Lstm`], what it carries from one time step
/// (or one chunk of a sequence) to the next.
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden states h, `(num_layers, batch, hidden_size)`; the last layer's is the output.
    pub hidden: Tensor,
    /// Cell states c, `(num_layers, batch, hidden_size)`.
    pub cell: Tensor,
}

impl LstmState {
    /// The all-zero state, which [`Lstm::forward_sequence`] starts from when given none.
    pub fn zeros(
        num_layers: usize,
        batch: usize,
        hidden_size: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let zeros = Tensor::zeros((num_layers, batch, hidden_size), dtype, device)?;
        Ok(Self {
            hidden: zeros.clone(),
            cell: zeros,
        })
    }

    /// The same values cut off from the computation graph, for truncated backpropagation
    /// through time: a long sequence is processed in chunks, each starting from the detached
    /// final state of the previous one, so gradients stop at the chunk boundary.
    pub fn detach(&self) -> Self {
        Self {
            hidden: self.hidden.detach(),
            cell: self.cell.detach(),
        }
    }

    /// The hidden state of the last layer, `(batch, hidden_size)`: the summary of the sequence
    /// a classifier head reads.
    pub fn last_hidden(&self) -> Result<Tensor> {
        let layers = self.hidden.dim(0)?;
        Ok(self.hidden.get(layers.saturating_sub(1))?)
    }
}

/// The four parameters of one layer.
#[derive(Debug, Clone)]
struct LayerWeights {
    weight_ih: Var,
    weight_hh: Var,
    bias_ih: Var,
    bias_hh: Var,
}

/// A stack of LSTM layers over batch-first sequences, with PyTorch's parameter names and
/// initialisation.
///
/// ```
/// use dl_nn::{Lstm, LstmConfig, Mode, VarStore};
/// use dl_tensor::{DType, Device, Tensor};
///
/// let store = VarStore::new(&Device::Cpu, DType::F32, 0);
/// let lstm = Lstm::new(&store.root().sub("lstm"), LstmConfig::new(8, 16).num_layers(2))?;
/// // A batch of 4 sequences of 10 steps of 8 features.
/// let input = Tensor::zeros((4, 10, 8), DType::F32, &Device::Cpu)?;
/// let (outputs, state) = lstm.forward_sequence(&input, None, Mode::Eval)?;
/// assert_eq!(outputs.dims(), &[4, 10, 16]);
/// assert_eq!(state.hidden.dims(), &[2, 4, 16]);
/// assert_eq!(store.names()[..4], ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"]);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
#[derive(Debug)]
pub struct Lstm {
    name: String,
    config: LstmConfig,
    layers: Vec<LayerWeights>,
    dropout: Dropout,
    dtype: DType,
}

impl Lstm {
    /// Creates `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}` and `bias_hh_l{k}` under
    /// `path` for every layer k, all drawn from U(−1/√H, 1/√H) as PyTorch does.
    ///
    /// Fails when a size is zero or the dropout probability is outside `[0, 1)`.
    pub fn new(path: &Path, config: LstmConfig) -> Result<Self> {
        let what = || format!("LSTM '{}'", path.prefix());
        if config.input_size == 0 || config.hidden_size == 0 || config.num_layers == 0 {
            return Err(NnError::config(
                what(),
                format!(
                    "input_size ({}), hidden_size ({}) and num_layers ({}) must be positive",
                    config.input_size, config.hidden_size, config.num_layers
                ),
            ));
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(NnError::config(
                what(),
                format!("dropout must be in [0, 1), got {}", config.dropout),
            ));
        }
        let hidden = config.hidden_size;
        let init = Init::FanInUniform { fan_in: hidden };
        let mut layers = Vec::with_capacity(config.num_layers);
        for layer in 0..config.num_layers {
            let input_size = if layer == 0 {
                config.input_size
            } else {
                hidden
            };
            layers.push(LayerWeights {
                weight_ih: path.var(
                    &format!("weight_ih_l{layer}"),
                    (4 * hidden, input_size),
                    init,
                )?,
                weight_hh: path.var(&format!("weight_hh_l{layer}"), (4 * hidden, hidden), init)?,
                bias_ih: path.var(&format!("bias_ih_l{layer}"), 4 * hidden, init)?,
                bias_hh: path.var(&format!("bias_hh_l{layer}"), 4 * hidden, init)?,
            });
        }
        // The generator is forked even without dropout, so that the weights of layers created
        // after this one do not depend on the dropout setting.
        let dropout = Dropout::new(config.dropout, path.fork_rng())?;
        Ok(Self {
            name: path.prefix().to_string(),
            config,
            layers,
            dropout,
            dtype: path.dtype(),
        })
    }

    /// The configuration the layer was built with.
    pub fn config(&self) -> LstmConfig {
        self.config
    }

    /// The parameters of layer `layer` < `num_layers`: `weight_ih`, `weight_hh`, `bias_ih`,
    /// `bias_hh` (for [`crate::LstmInference`], which copies them).
    pub(crate) fn layer_variables(&self, layer: usize) -> [&Var; 4] {
        let weights = &self.layers[layer];
        [
            &weights.weight_ih,
            &weights.weight_hh,
            &weights.bias_ih,
            &weights.bias_hh,
        ]
    }

    /// The all-zero state for a batch of `batch` sequences, in the parameters' type and device.
    pub fn zero_state(&self, batch: usize) -> Result<LstmState> {
        LstmState::zeros(
            self.config.num_layers,
            batch,
            self.config.hidden_size,
            self.dtype,
            self.layers[0].weight_ih.device(),
        )
    }

    /// Runs a whole sequence in one call, batch-first: `input` of shape
    /// `(batch, seq_len, input_size)` gives the last layer's hidden state at every step,
    /// `(batch, seq_len, hidden_size)`, and the final state of every layer.
    ///
    /// `initial` is the state to start from (zeros when `None`); passing the returned state back
    /// continues the sequence. In [`Mode::Train`] the outputs of every layer but the last go
    /// through dropout before the next layer reads them.
    pub fn forward_sequence(
        &self,
        input: &Tensor,
        initial: Option<&LstmState>,
        mode: Mode,
    ) -> Result<(Tensor, LstmState)> {
        let dims = input.dims();
        if dims.len() != 3 || dims[2] != self.config.input_size {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected an input of shape (batch, seq_len, {}), got {:?}",
                    self.config.input_size, dims
                ),
            ));
        }
        let (batch, seq_len) = (dims[0], dims[1]);
        if batch == 0 || seq_len == 0 {
            return Err(NnError::shape(
                &self.name,
                format!("expected at least one sequence of at least one step, got shape {dims:?}"),
            ));
        }
        self.check_dtype(input, "input")?;
        let state = self.initial_state(initial, batch)?;
        if kernels::applies_to(&[input, self.layers[0].weight_hh.as_tensor()]) {
            return self.forward_sequence_fused(LayerInput::Vectors(input.clone()), &state, mode);
        }

        // Time-major inside: (seq_len, batch, features), so that each step reads a contiguous
        // block of the projected inputs.
        let mut layer_input = input.transpose(0, 1)?.contiguous()?;
        let mut final_hidden = Vec::with_capacity(self.layers.len());
        let mut final_cell = Vec::with_capacity(self.layers.len());
        for (index, weights) in self.layers.iter().enumerate() {
            if index > 0 {
                layer_input = self.dropout.forward(&layer_input, mode)?;
            }
            let features = layer_input.dim(2)?;
            let projected =
                input_projection(weights, &layer_input.reshape((seq_len * batch, features))?)?
                    .reshape((seq_len, batch, 4 * self.config.hidden_size))?;
            let weight_hh_t = weights.weight_hh.as_tensor().t()?;
            let mut hidden = state.hidden.get(index)?;
            let mut cell = state.cell.get(index)?;
            let mut outputs = Vec::with_capacity(seq_len);
            for projected_step in split_steps(&projected)? {
                (hidden, cell) = self.cell_step(&projected_step, &weight_hh_t, &hidden, &cell)?;
                outputs.push(hidden.clone());
            }
            layer_input = Tensor::stack(&outputs, 0)?;
            final_hidden.push(hidden);
            final_cell.push(cell);
        }
        let outputs = layer_input.transpose(0, 1)?.contiguous()?;
        Ok((
            outputs,
            LstmState {
                hidden: Tensor::stack(&final_hidden, 0)?,
                cell: Tensor::stack(&final_cell, 0)?,
            },
        ))
    }

    /// An [`Embedding`] followed by this LSTM, in one call: token ids `(batch, seq_len)` give
    /// what `forward_sequence(&embedding.forward(ids)?, initial, mode)` gives (up to rounding),
    /// the course's text model up to its Dense head.
    ///
    /// Faster on the CPU: the first layer's input part W_ih x_t with x_t = E[token_t] is column
    /// `token_t` of the small matrix W_ih Eᵀ (4H, vocabulary), so the layer looks columns up
    /// (`dl_tensor::kernels::lstm_sequence::lstm_sequence_from_tokens`) instead of multiplying
    /// every embedded step by W_ih, forward and backward. Gradients reach E and W_ih as they
    /// would through the two layers. Ids outside the vocabulary, or an embedding whose vectors
    /// are not `input_size` long, are errors.
    ///
    /// ```
    /// use dl_nn::{Embedding, Layer, Lstm, LstmConfig, Mode, VarStore};
    /// use dl_tensor::{DType, Device, Tensor};
    ///
    /// let store = VarStore::new(&Device::Cpu, DType::F64, 0);
    /// let embedding = Embedding::new(&store.root().sub("embedding"), 10, 4)?;
    /// let lstm = Lstm::new(&store.root().sub("lstm"), LstmConfig::new(4, 8))?;
    /// let ids = Tensor::new(&[[1u32, 7, 3], [9, 0, 0]], &Device::Cpu)?;
    /// let (outputs, _) = lstm.forward_embedded(&embedding, &ids, None, Mode::Train)?;
    /// let embedded = embedding.forward(&ids, Mode::Train)?;
    /// let (expected, _) = lstm.forward_sequence(&embedded, None, Mode::Train)?;
    /// let gap = (outputs - expected)?.abs()?.max_all()?.to_scalar::<f64>()?;
    /// assert!(gap < 1e-12);
    /// # Ok::<(), dl_nn::NnError>(())
    /// ```
    pub fn forward_embedded(
        &self,
        embedding: &Embedding,
        ids: &Tensor,
        initial: Option<&LstmState>,
        mode: Mode,
    ) -> Result<(Tensor, LstmState)> {
        if embedding.embedding_dim() != self.config.input_size {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected an embedding of {} values per token (the input size), got {}",
                    self.config.input_size,
                    embedding.embedding_dim()
                ),
            ));
        }
        let table = embedding.weight().as_tensor();
        let weight_hh = self.layers[0].weight_hh.as_tensor();
        if ids.rank() != 2 || !kernels::applies_to(&[table, weight_hh]) {
            return self.forward_sequence(&embedding.forward(ids, mode)?, initial, mode);
        }
        let (batch, seq_len) = ids.dims2()?;
        if batch == 0 || seq_len == 0 {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected at least one sequence of at least one step, got ids of shape {:?}",
                    ids.dims()
                ),
            ));
        }
        let ids = embedding.checked_ids(ids)?.contiguous()?;
        let state = self.initial_state(initial, batch)?;
        self.forward_sequence_fused(LayerInput::Tokens { ids, table }, &state, mode)
    }

    /// [`Lstm::forward_sequence`] with each layer's whole sequence in one operation,
    /// `dl_tensor::kernels::lstm_sequence` (CPU, `f32` or `f64`), batch-first throughout.
    fn forward_sequence_fused(
        &self,
        input: LayerInput<'_>,
        state: &LstmState,
        mode: Mode,
    ) -> Result<(Tensor, LstmState)> {
        let mut layer_input = input;
        let mut final_hidden = Vec::with_capacity(self.layers.len());
        let mut final_cell = Vec::with_capacity(self.layers.len());
        for (index, weights) in self.layers.iter().enumerate() {
            let bias = weights
                .bias_ih
                .as_tensor()
                .add(weights.bias_hh.as_tensor())?;
            let initial = Tensor::cat(&[state.hidden.get(index)?, state.cell.get(index)?], 1)?;
            let (weight_ih, weight_hh) =
                (weights.weight_ih.as_tensor(), weights.weight_hh.as_tensor());
            let output = match layer_input {
                LayerInput::Vectors(vectors) => {
                    let vectors = if index > 0 {
                        self.dropout.forward(&vectors, mode)?
                    } else {
                        vectors
                    };
                    kernels::lstm_sequence::lstm_sequence(
                        &vectors, weight_ih, weight_hh, &bias, &initial,
                    )?
                }
                LayerInput::Tokens { ids, table } => {
                    kernels::lstm_sequence::lstm_sequence_from_tokens(
                        &ids,
                        &weight_ih.matmul(&table.t()?)?,
                        weight_hh,
                        &bias,
                        &initial,
                    )?
                }
            };
            final_hidden.push(output.final_hidden);
            final_cell.push(output.final_cell);
            layer_input = LayerInput::Vectors(output.hidden);
        }
        let LayerInput::Vectors(outputs) = layer_input else {
            unreachable!("every layer outputs vectors and there is at least one layer");
        };
        Ok((
            outputs,
            LstmState {
                hidden: Tensor::stack(&final_hidden, 0)?,
                cell: Tensor::stack(&final_cell, 0)?,
            },
        ))
    }

    /// Advances every layer by one time step, for generating a sequence token by token:
    /// `input` of shape `(batch, input_size)` gives the last layer's new hidden state
    /// `(batch, hidden_size)` and the new state of every layer.
    ///
    /// Dropout is never applied here (generation is evaluation), so running `step` over a
    /// sequence gives the outputs of [`Lstm::forward_sequence`] in [`Mode::Eval`].
    pub fn step(&self, input: &Tensor, state: &LstmState) -> Result<(Tensor, LstmState)> {
        let dims = input.dims();
        if dims.len() != 2 || dims[1] != self.config.input_size || dims[0] == 0 {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected a step input of shape (batch, {}) with batch > 0, got {:?}",
                    self.config.input_size, dims
                ),
            ));
        }
        self.check_dtype(input, "input")?;
        let state = self.initial_state(Some(state), dims[0])?;
        let mut layer_input = input.clone();
        let mut new_hidden = Vec::with_capacity(self.layers.len());
        let mut new_cell = Vec::with_capacity(self.layers.len());
        for (index, weights) in self.layers.iter().enumerate() {
            let projected = input_projection(weights, &layer_input)?;
            let weight_hh_t = weights.weight_hh.as_tensor().t()?;
            let (hidden, cell) = self.cell_step(
                &projected,
                &weight_hh_t,
                &state.hidden.get(index)?,
                &state.cell.get(index)?,
            )?;
            layer_input = hidden.clone();
            new_hidden.push(hidden);
            new_cell.push(cell);
        }
        Ok((
            layer_input,
            LstmState {
                hidden: Tensor::stack(&new_hidden, 0)?,
                cell: Tensor::stack(&new_cell, 0)?,
            },
        ))
    }

    /// One cell update from the projected input `W_ih x + b_ih + b_hh` `(batch, 4H)`:
    /// returns (h', c').
    fn cell_step(
        &self,
        projected: &Tensor,
        weight_hh_t: &Tensor,
        hidden: &Tensor,
        cell: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        cell_update(projected, &hidden.matmul(weight_hh_t)?, cell)
    }

    /// The state to start from, checked against the layer and the batch size.
    fn initial_state(&self, initial: Option<&LstmState>, batch: usize) -> Result<LstmState> {
        let Some(state) = initial else {
            return self.zero_state(batch);
        };
        let expected = [self.config.num_layers, batch, self.config.hidden_size];
        for (what, tensor) in [("hidden", &state.hidden), ("cell", &state.cell)] {
            if tensor.dims() != expected {
                return Err(NnError::shape(
                    &self.name,
                    format!(
                        "expected a {what} state of shape (num_layers, batch, hidden_size) = {:?}, got {:?}",
                        expected,
                        tensor.dims()
                    ),
                ));
            }
            self.check_dtype(tensor, &format!("{what} state"))?;
        }
        Ok(state.clone())
    }

    fn check_dtype(&self, tensor: &Tensor, what: &str) -> Result<()> {
        if tensor.dtype() == self.dtype {
            Ok(())
        } else {
            Err(NnError::shape(
                &self.name,
                format!(
                    "expected {what} values of type {:?} (the parameters' type), got {:?}",
                    self.dtype,
                    tensor.dtype()
                ),
            ))
        }
    }
}

/// What a layer of [`Lstm::forward_sequence_fused`] reads.
enum LayerInput<'a> {
    /// Vectors `(batch, seq_len, features)`: the input, or the previous layer's hidden states.
    Vectors(Tensor),
    /// Token ids `(batch, seq_len)` (`u32`, checked) and the embedding table they index.
    Tokens { ids: Tensor, table: &'a Tensor },
}

/// The slices `tensor[0]`, `tensor[1]`, ... along the first dimension, taken by halving.
///
/// Candle's backward of a slice (`narrow`) pads the slice's gradient with zeros back to the full
/// tensor, so taking the `T` time steps of a `(T, batch, 4H)` tensor one by one would cost
/// `T` full-size gradients in backpropagation, O(T²); halving the tensor recursively costs one
/// full size per level, O(T log T), for the same (exactly equal) gradient.
fn split_steps(tensor: &Tensor) -> Result<Vec<Tensor>> {
    fn halve(tensor: &Tensor, steps: &mut Vec<Tensor>) -> Result<()> {
        let length = tensor.dim(0)?;
        if length == 1 {
            steps.push(tensor.squeeze(0)?);
            return Ok(());
        }
        let half = length / 2;
        halve(&tensor.narrow(0, 0, half)?, steps)?;
        halve(&tensor.narrow(0, half, length - half)?, steps)
    }
    let mut steps = Vec::with_capacity(tensor.dim(0)?);
    halve(tensor, &mut steps)?;
    Ok(steps)
}

/// `x W_ihᵀ + b_ih + b_hh` for the rows of `x` `(rows, input_size)`: the part of every gate that
/// does not depend on the previous state, `(rows, 4H)`.
fn input_projection(weights: &LayerWeights, input: &Tensor) -> Result<Tensor> {
    let bias = weights
        .bias_ih
        .as_tensor()
        .add(weights.bias_hh.as_tensor())?;
    let product = input.matmul(&weights.weight_ih.as_tensor().t()?)?;
    if kernels::enabled() {
        Ok(kernels::bias::add_bias(&product, &bias)?)
    } else {
        Ok(product.broadcast_add(&bias)?)
    }
}

impl Layer for Lstm {
    /// The outputs of [`Lstm::forward_sequence`] from the zero state: `(batch, seq_len, input_size)`
    /// → `(batch, seq_len, hidden_size)`.
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.forward_sequence(input, None, mode)?.0)
    }

    fn kind(&self) -> &'static str {
        "LSTM"
    }

    /// The generator of the dropout between layers.
    fn random_states(&self) -> Vec<[u64; 4]> {
        self.dropout.random_states()
    }

    fn set_random_states(&self, states: &[[u64; 4]]) -> Result<()> {
        self.dropout.set_random_states(states)
    }
}
/// The cell update of one LSTM step from its pre-activations, split as `projected`
/// (W_ih x + b_ih + b_hh) and `recurrent` (W_hh h), both `(batch, 4H)`, and the cell `c`
/// `(batch, H)`: returns (h', c'). On the CPU one kernel each way
/// (`dl_tensor::kernels::lstm_cell`); elsewhere, or with the kernels off, Candle's operations.
pub fn cell_update(
    projected: &Tensor,
    recurrent: &Tensor,
    cell: &Tensor,
) -> Result<(Tensor, Tensor)> {
    if kernels::applies_to(&[projected, recurrent, cell]) {
        // The gate arithmetic in one operation each way (dl_tensor::kernels::lstm_cell).
        return Ok(kernels::lstm_cell::lstm_cell(projected, recurrent, cell)?);
    }
    let size = cell.dim(1)?;
    let gates = projected.add(recurrent)?;
    // One sigmoid over all four blocks (the g block's is unused): fewer, larger operations.
    let sigmoids = candle_nn::ops::sigmoid(&gates)?;
    let input_gate = sigmoids.narrow(1, 0, size)?;
    let forget_gate = sigmoids.narrow(1, size, size)?;
    let candidate = gates.narrow(1, 2 * size, size)?.tanh()?;
    let output_gate = sigmoids.narrow(1, 3 * size, size)?;
    let new_cell = forget_gate.mul(cell)?.add(&input_gate.mul(&candidate)?)?;
    let new_hidden = output_gate.mul(&new_cell.tanh()?)?;
    Ok((new_hidden, new_cell))
}
