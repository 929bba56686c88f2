//! A whole LSTM layer over a sequence (course §5.2) as one operation, forward and backward
//! through time. From the inputs x_t of every step, the weights W_ih, W_hh, the bias
//! b = b_ih + b_hh and the initial state (h₀, c₀):
//!
//! ```text
//! A = X W_ihᵀ + b                  (all steps of all sequences in one matrix product)
//! a = A_t + W_hh h_{t−1}            (one small product per step against W_hh packed once: packed_gemm)
//! i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
//! c_t = f ⊙ c_{t−1} + i ⊙ g         h_t = o ⊙ tanh(c_t)
//! ```
//!
//! Backward goes from the last step to the first with the formulas of `gate_math`, carrying
//! ∂L/∂h_{t−1} = (from the output) + W_hhᵀ ∂L/∂a_t and ∂L/∂c_{t−1} = δc ⊙ f. The gradients of
//! the weights, ∂L/∂W_hh = Σ_t ∂L/∂a_tᵀ h_{t−1}, ∂L/∂W_ih = ∂L/∂Aᵀ X and ∂L/∂b = Σ ∂L/∂A, and
//! that of the input, ∂L/∂X = ∂L/∂A W_ih, are each one large matrix product (or sum) after the
//! loop instead of one small one per step.
//!
//! Why one operation: written with tensor operations, a step is a matrix product, a cell
//! operation and the bookkeeping of several tensors, forward and backward, about 30 µs each
//! whatever their size. And Candle's backpropagation adds every gradient it passes on into a
//! freshly zeroed tensor of the same size, so each intermediate (B, T, 4H) tensor between the
//! input projection and the recurrence would cost two extra passes over megabytes. Here a step
//! allocates nothing and the pre-activations never become a tensor. The sequences of a batch
//! are independent, so the batch is split into one block of rows per thread, and each thread
//! runs the whole sequence for its rows without waiting for the others.
//!
//! The result is `(2, batch, steps, H)`: the hidden states h_t at index 0, the cell states c_t
//! at index 1, so that the hidden states are one contiguous `(batch, steps, H)` block.
//!
//! The first layer of a text model reads embeddings, x_t = E[token_t], and then
//! W_ih x_t = (W_ih Eᵀ)[:, token_t]: a column of one (4H, V) matrix. [`lstm_sequence_from_tokens`]
//! takes the token ids and W_ih Eᵀ and looks the columns up, so the input projection's product
//! (a third of the layer's arithmetic with 64-wide embeddings and H = 128), its two backward
//! products and the embedded input itself are never computed; its gradient is a sum of ∂L/∂A's
//! rows per token, and Candle's autograd carries it to W_ih and E through the small product
//! W_ih Eᵀ.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::bias::column_sums;
use super::gate_math;
use super::gemm::{matmul_into, MatrixRef};
use super::linear;
use super::packed_gemm::{matmul_packed_into, PackedMatrix};
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// The activations saved per row and step for backward: i, f, g, o, tanh c_t.
const SAVED: usize = 5;

/// The sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: usize,
    steps: usize,
    /// F: the length of each input vector, or the vocabulary V for token ids.
    features: usize,
    hidden: usize,
}

/// What the layer reads at every step.
#[derive(Clone, Copy)]
enum Input<'a, T> {
    /// Vectors x_t, (B·T, F) row-major.
    Features(&'a [T]),
    /// Token ids (B·T), each below F (the vocabulary).
    Tokens(&'a [u32]),
}

/// Where each row and step's input part A = W_ih x + b comes from.
enum Projected<'a, T> {
    /// Computed for every row and step by one matrix product, (B·T, 4H).
    Rows(Vec<T>),
    /// Looked up: row `token` of the table (V, 4H) of W_ih's columns plus b.
    Lookup { tokens: &'a [u32], table: Vec<T> },
}

impl<T> Projected<'_, T> {
    /// A of row and step `position` (= row·T + t), 4H values.
    fn row(&self, position: usize, width: usize) -> &[T] {
        let start = match self {
            Self::Rows(_) => position * width,
            Self::Lookup { tokens, .. } => tokens[position] as usize * width,
        };
        match self {
            Self::Rows(rows) => &rows[start..start + width],
            Self::Lookup { table, .. } => &table[start..start + width],
        }
    }
}

impl Sizes {
    /// Columns of the packed parameters [W_ih | W_hh | b]: F + H + 1.
    fn packed_columns(&self) -> usize {
        self.features + self.hidden + 1
    }

    /// W_ih (4H, F) and W_hh (4H, H) as views of the packed parameters.
    fn weights<'a, T>(&self, packed: &'a [T]) -> (MatrixRef<'a, T>, MatrixRef<'a, T>) {
        let (f, h, stride) = (self.features, self.hidden, self.packed_columns());
        (
            MatrixRef::strided(packed, 4 * h, f, stride),
            MatrixRef::strided(&packed[f..], 4 * h, h, stride),
        )
    }

    /// Rows of all sequences and steps, B·T.
    fn positions(&self) -> usize {
        self.batch * self.steps
    }

    /// How many rows of the batch each thread takes: all of them on one thread, else an even
    /// share.
    fn rows_per_block(&self) -> usize {
        let threads = rayon::current_num_threads();
        if threads > 1 && worth_parallel(self.positions() * 4 * self.hidden) {
            self.batch.div_ceil(threads.min(self.batch)).max(1)
        } else {
            self.batch.max(1)
        }
    }
}

/// The custom op on (x (B, T, F), [W_ih | W_hh | b] (4H, F + H + 1), h₀ | c₀ (B, 2H)).
struct LstmSequenceOp {
    sizes: Sizes,
    /// i, f, g, o, tanh c_t of every row and step, (B, T, 5H), saved by the forward pass.
    activations: OnceLock<CpuStorage>,
}

/// One block of rows, forward: (block index, (((h rows, c rows), saved rows), initial rows)).
type ForwardBlock<'a, T> = (usize, (((&'a mut [T], &'a mut [T]), &'a mut [T]), &'a [T]));

/// What the forward pass read and wrote, for the backward pass.
#[derive(Clone, Copy)]
struct Recorded<'a, T> {
    input: Input<'a, T>,
    packed: &'a [T],
    initial: &'a [T],
    /// The op's result: h_t then c_t of every row and step.
    states: &'a [T],
    /// The activations saved per row and step.
    saved: &'a [T],
}

/// One block of rows, backward: ((((((∂L/∂A, ∂L/∂(h₀|c₀)), saved), c), initial), ∂L/∂h), ∂L/∂c).
type BackwardBlock<'a, T> = (
    (
        ((((&'a mut [T], &'a mut [T]), &'a [T]), &'a [T]), &'a [T]),
        &'a [T],
    ),
    &'a [T],
);

impl LstmSequenceOp {
    /// A = X W_ihᵀ + b for every row and step, or the lookup table W_ihᵀ + b for token ids.
    fn project<'a, T: Real>(&self, input: Input<'a, T>, packed: &[T]) -> Projected<'a, T> {
        let sizes = self.sizes;
        let h = sizes.hidden;
        let (weight_ih, _) = sizes.weights(packed);
        let bias: Vec<T> = (0..4 * h)
            .map(|gate| packed[gate * sizes.packed_columns() + sizes.features + h])
            .collect();
        match input {
            Input::Features(input) => Projected::Rows(linear::forward_rows(
                MatrixRef::row_major(input, sizes.positions(), sizes.features),
                weight_ih,
                &bias,
            )),
            Input::Tokens(tokens) => {
                let mut table = Vec::with_capacity(sizes.features * 4 * h);
                for token in 0..sizes.features {
                    table
                        .extend((0..4 * h).map(|gate| {
                            packed[gate * sizes.packed_columns() + token] + bias[gate]
                        }));
                }
                Projected::Lookup { tokens, table }
            }
        }
    }

    /// (h_t of every row and step followed by c_t of every row and step, the saved
    /// activations).
    fn forward<T: Real>(
        &self,
        input: Input<'_, T>,
        packed: &[T],
        initial: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let sizes = self.sizes;
        let (steps, h) = (sizes.steps, sizes.hidden);
        let projected = self.project(input, packed);
        // W_hhᵀ (H, 4H), packed once for the products of all steps.
        let (_, weight_hh) = sizes.weights(packed);
        let weight_t = PackedMatrix::new(weight_hh.t());

        let mut states = vec![T::zero(); 2 * sizes.positions() * h];
        let mut saved = vec![T::zero(); sizes.positions() * SAVED * h];
        let rows_per_block = sizes.rows_per_block();
        let block = |(index, (((hidden, cell), saved), initial)): ForwardBlock<'_, T>| {
            let rows = initial.len() / (2 * h);
            let first_row = index * rows_per_block;
            let mut gates = vec![T::zero(); rows * 4 * h];
            for t in 0..steps {
                for (row, gate_row) in gates.chunks_exact_mut(4 * h).enumerate() {
                    gate_row.copy_from_slice(projected.row((first_row + row) * steps + t, 4 * h));
                }
                // h_{t−1} of every row: the initial state, or the previous step's outputs.
                let previous_hidden = if t == 0 {
                    MatrixRef::strided(initial, rows, h, 2 * h)
                } else {
                    MatrixRef::strided(&hidden[(t - 1) * h..], rows, h, steps * h)
                };
                matmul_packed_into(&mut gates, previous_hidden, &weight_t, true);
                for (row, gate_row) in gates.chunks_exact(4 * h).enumerate() {
                    let position = row * steps + t;
                    let (before, current) = cell.split_at_mut(position * h);
                    let previous_cell = if t == 0 {
                        &initial[row * 2 * h + h..(row + 1) * 2 * h]
                    } else {
                        &before[(position - 1) * h..]
                    };
                    gate_math::forward_row(
                        gate_row,
                        previous_cell,
                        &mut hidden[position * h..(position + 1) * h],
                        &mut current[..h],
                        &mut saved[position * SAVED * h..(position + 1) * SAVED * h],
                    );
                }
            }
        };
        let rows = rows_per_block;
        let (hidden, cell) = states.split_at_mut(sizes.positions() * h);
        if rows < sizes.batch {
            hidden
                .par_chunks_mut(rows * steps * h)
                .zip(cell.par_chunks_mut(rows * steps * h))
                .zip(saved.par_chunks_mut(rows * steps * SAVED * h))
                .zip(initial.par_chunks(rows * 2 * h))
                .enumerate()
                .for_each(block);
        } else {
            block((0, (((hidden, cell), &mut saved), initial)));
        }
        (states, saved)
    }

    /// (∂L/∂x (B, T, F), ∂L/∂[W_ih | W_hh | b] (4H, F + H + 1), ∂L/∂(h₀ | c₀) (B, 2H)); the
    /// input's gradient only when `input_grad` is true.
    fn backward<T: Real>(
        &self,
        forward: Recorded<'_, T>,
        states_grad: &[T],
        input_grad: bool,
    ) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
        let Recorded {
            input,
            packed,
            initial,
            states,
            saved,
        } = forward;
        let sizes = self.sizes;
        let (steps, h) = (sizes.steps, sizes.hidden);
        let (weight_ih, weight_hh) = sizes.weights(packed);
        let (hidden, cell) = states.split_at(sizes.positions() * h);
        let (hidden_grad, cell_grad) = states_grad.split_at(sizes.positions() * h);
        // W_hh (4H, H), packed once for the products of all steps.
        let weight_hh_packed = PackedMatrix::new(weight_hh);
        let mut gates_grad = vec![T::zero(); sizes.positions() * 4 * h];
        let mut initial_grad = vec![T::zero(); sizes.batch * 2 * h];
        let block = |(
            (((((gates_grad, initial_grad), saved), cell), initial), from_hidden),
            from_cell,
        ): BackwardBlock<'_, T>| {
            let rows = initial.len() / (2 * h);
            // ∂L/∂h_t and ∂L/∂c_t arriving from step t + 1, per row.
            let mut hidden_carry = vec![T::zero(); rows * h];
            let mut cell_carry = vec![T::zero(); rows * h];
            let mut hidden_total = vec![T::zero(); h];
            let mut cell_total = vec![T::zero(); h];
            for t in (0..steps).rev() {
                for row in 0..rows {
                    let position = row * steps + t;
                    let here = position * h..(position + 1) * h;
                    let carried = row * h..(row + 1) * h;
                    let previous_cell = if t > 0 {
                        &cell[(position - 1) * h..position * h]
                    } else {
                        &initial[row * 2 * h + h..(row + 1) * 2 * h]
                    };
                    // What reaches h_t and c_t: from the output at t and from step t + 1.
                    for (total, (&output, &carry)) in hidden_total.iter_mut().zip(
                        from_hidden[here.clone()]
                            .iter()
                            .zip(&hidden_carry[carried.clone()]),
                    ) {
                        *total = output + carry;
                    }
                    for (total, (&output, &carry)) in cell_total
                        .iter_mut()
                        .zip(from_cell[here].iter().zip(&cell_carry[carried.clone()]))
                    {
                        *total = output + carry;
                    }
                    gate_math::backward_row(
                        &saved[position * SAVED * h..(position + 1) * SAVED * h],
                        previous_cell,
                        &hidden_total,
                        &cell_total,
                        &mut gates_grad[position * 4 * h..(position + 1) * 4 * h],
                        &mut cell_carry[carried],
                    );
                }
                // ∂L/∂h_{t−1} from the recurrence: ∂L/∂a_t (rows, 4H) · W_hh (4H, H).
                matmul_packed_into(
                    &mut hidden_carry,
                    MatrixRef::strided(&gates_grad[t * 4 * h..], rows, 4 * h, steps * 4 * h),
                    &weight_hh_packed,
                    false,
                );
            }
            for (row, out) in initial_grad.chunks_exact_mut(2 * h).enumerate() {
                out[..h].copy_from_slice(&hidden_carry[row * h..(row + 1) * h]);
                out[h..].copy_from_slice(&cell_carry[row * h..(row + 1) * h]);
            }
        };
        let rows = sizes.rows_per_block();
        if rows < sizes.batch {
            gates_grad
                .par_chunks_mut(rows * steps * 4 * h)
                .zip(initial_grad.par_chunks_mut(rows * 2 * h))
                .zip(saved.par_chunks(rows * steps * SAVED * h))
                .zip(cell.par_chunks(rows * steps * h))
                .zip(initial.par_chunks(rows * 2 * h))
                .zip(hidden_grad.par_chunks(rows * steps * h))
                .zip(cell_grad.par_chunks(rows * steps * h))
                .for_each(block);
        } else {
            block((
                (
                    (
                        (((&mut gates_grad, &mut initial_grad), saved), cell),
                        initial,
                    ),
                    hidden_grad,
                ),
                cell_grad,
            ));
        }

        let threads = rayon::current_num_threads();
        let (input_grad, weight_ih_grad, bias_grad) = match input {
            // ∂L/∂W_ih = ∂L/∂Aᵀ X, ∂L/∂b = Σ ∂L/∂A and ∂L/∂X = ∂L/∂A W_ih: the input
            // projection's backward pass, that of a linear layer.
            Input::Features(input) => linear::backward_rows(
                MatrixRef::row_major(input, sizes.positions(), sizes.features),
                weight_ih,
                &gates_grad,
                input_grad,
            ),
            // Column v of W_ih was added to A at every position reading token v: its gradient
            // is the sum of those positions' ∂L/∂A. Token ids have no gradient.
            Input::Tokens(tokens) => {
                let mut table_grad = vec![T::zero(); sizes.features * 4 * h];
                for (&token, row) in tokens.iter().zip(gates_grad.chunks_exact(4 * h)) {
                    let start = token as usize * 4 * h;
                    for (sum, &value) in table_grad[start..start + 4 * h].iter_mut().zip(row) {
                        *sum += value;
                    }
                }
                let mut weight_ih_grad = vec![T::zero(); 4 * h * sizes.features];
                for (token, row) in table_grad.chunks_exact(4 * h).enumerate() {
                    for (gate, &value) in row.iter().enumerate() {
                        weight_ih_grad[gate * sizes.features + token] = value;
                    }
                }
                (None, weight_ih_grad, column_sums(&gates_grad, 4 * h))
            }
        };
        let all_gates_grad = MatrixRef::row_major(&gates_grad, sizes.positions(), 4 * h);
        // ∂L/∂W_hh = Σ ∂L/∂a_tᵀ h_{t−1}: (4H, B·T) · (B·T, H), with h_{t−1} gathered per row.
        let mut previous_hidden = vec![T::zero(); sizes.positions() * h];
        for (position, out) in previous_hidden.chunks_exact_mut(h).enumerate() {
            let (row, t) = (position / steps, position % steps);
            out.copy_from_slice(if t > 0 {
                &hidden[(position - 1) * h..position * h]
            } else {
                &initial[row * 2 * h..row * 2 * h + h]
            });
        }
        let mut weight_hh_grad = vec![T::zero(); 4 * h * h];
        matmul_into(
            &mut weight_hh_grad,
            all_gates_grad.t(),
            MatrixRef::row_major(&previous_hidden, sizes.positions(), h),
            false,
            threads,
        );
        let mut packed_grad = Vec::with_capacity(4 * h * sizes.packed_columns());
        for gate in 0..4 * h {
            packed_grad
                .extend_from_slice(&weight_ih_grad[gate * sizes.features..][..sizes.features]);
            packed_grad.extend_from_slice(&weight_hh_grad[gate * h..][..h]);
            packed_grad.push(bias_grad[gate]);
        }
        (input_grad, packed_grad, initial_grad)
    }
}

impl CustomOp3 for LstmSequenceOp {
    fn name(&self) -> &'static str {
        "dl-lstm-sequence"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        packed: &CpuStorage,
        packed_layout: &Layout,
        initial: &CpuStorage,
        initial_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Sizes {
            batch,
            steps,
            hidden,
            ..
        } = self.sizes;
        dispatch_real!(packed.dtype(), "dl-lstm-sequence", |T| {
            let packed = row_major::<T>(packed, packed_layout)?;
            let initial = row_major::<T>(initial, initial_layout)?;
            let (states, saved) = if input.dtype() == DType::U32 {
                let tokens = row_major::<u32>(input, input_layout)?;
                self.check_tokens(&tokens)?;
                self.forward::<T>(Input::Tokens(&tokens), &packed, &initial)
            } else {
                let features = row_major::<T>(input, input_layout)?;
                self.forward::<T>(Input::Features(&features), &packed, &initial)
            };
            // Set once: Candle runs the forward pass of an op exactly once.
            let _ = self.activations.set(T::to_cpu_storage_owned(saved));
            Ok((
                T::to_cpu_storage_owned(states),
                Shape::from((2, batch, steps, hidden)),
            ))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        packed: &Tensor,
        initial: &Tensor,
        states: &Tensor,
        states_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.activations.get() else {
            candle_core::bail!("dl-lstm-sequence: backward before forward");
        };
        dispatch_real!(packed.dtype(), "dl-lstm-sequence", |T| {
            let saved = T::cpu_storage_as_slice(saved)?;
            let run = |input_read: Input<'_, T>| {
                with_row_major::<T, _>(packed, |packed| {
                    with_row_major::<T, _>(initial, |initial| {
                        with_row_major::<T, _>(states, |states| {
                            with_row_major::<T, _>(states_grad, |grad| {
                                let forward = Recorded {
                                    input: input_read,
                                    packed,
                                    initial,
                                    states,
                                    saved,
                                };
                                Ok(self.backward(forward, grad, input.track_op()))
                            })
                        })
                    })
                })
            };
            let (input_grad, packed_grad, initial_grad) = if input.dtype() == DType::U32 {
                with_row_major::<u32, _>(input, |tokens| run(Input::Tokens(tokens)))?
            } else {
                with_row_major::<T, _>(input, |features| run(Input::Features(features)))?
            };
            Ok((
                input_grad
                    .map(|grad| tensor_from(grad, input.shape()))
                    .transpose()?,
                packed
                    .track_op()
                    .then(|| tensor_from(packed_grad, packed.shape()))
                    .transpose()?,
                initial
                    .track_op()
                    .then(|| tensor_from(initial_grad, initial.shape()))
                    .transpose()?,
            ))
        })
    }
}

impl LstmSequenceOp {
    /// An error naming the first token id that is not below the vocabulary size.
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let vocabulary = self.sizes.features;
        match tokens.iter().find(|&&token| token as usize >= vocabulary) {
            Some(token) => candle_core::bail!(
                "lstm_sequence_from_tokens: token id {token} is outside the vocabulary of \
                 {vocabulary} (the columns of W_ih Eᵀ)"
            ),
            None => Ok(()),
        }
    }
}

/// Runs an LSTM layer over whole sequences, batch-first: `input` `(batch, steps, F)`, the
/// weights `weight_ih` `(4H, F)` and `weight_hh` `(4H, H)` and the bias `bias` `(4H)` (gates
/// in PyTorch's order i, f, g, o; pass b_ih + b_hh), and the initial state `initial`
/// `(batch, 2H)` (h₀ in the first H columns, c₀ in the last). Returns `(2, batch, steps, H)`:
/// the hidden states h_t at index 0, the cell states c_t at index 1. Backpropagates to every
/// argument.
///
/// The tensors must be on the CPU, all `f32` or all `f64` (see [`super::is_supported`]).
///
/// ```
/// use dl_tensor::{kernels, DType, Device, Tensor};
///
/// // All weights 0: i = f = o = 1/2 and g = 0 at every step, so the cell halves each time.
/// let input = Tensor::zeros((1, 3, 2), DType::F64, &Device::Cpu)?;
/// let weight_ih = Tensor::zeros((4, 2), DType::F64, &Device::Cpu)?;
/// let weight_hh = Tensor::zeros((4, 1), DType::F64, &Device::Cpu)?;
/// let bias = Tensor::zeros(4, DType::F64, &Device::Cpu)?;
/// let initial = Tensor::new(&[[0.0f64, 8.0]], &Device::Cpu)?;
/// let states = kernels::lstm_sequence::lstm_sequence(&input, &weight_ih, &weight_hh, &bias, &initial)?;
/// let cells = states.get(1)?.flatten_all()?.to_vec1::<f64>()?;
/// assert_eq!(cells, [4.0, 2.0, 1.0]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn lstm_sequence(
    input: &Tensor,
    weight_ih: &Tensor,
    weight_hh: &Tensor,
    bias: &Tensor,
    initial: &Tensor,
) -> Result<Tensor> {
    let (batch, steps, features) = input.dims3()?;
    if !super::is_supported(&[input, weight_ih, weight_hh, bias, initial]) {
        candle_core::bail!("lstm_sequence: expected CPU tensors, all f32 or all f64");
    }
    run(
        input,
        (batch, steps, features),
        [weight_ih, weight_hh, bias, initial],
        "input (batch, steps, F), W_ih (4H, F)",
    )
}

/// The first LSTM layer of Embedding → LSTM over token ids, batch-first: `tokens` `(batch,
/// steps)` of type `u32`, `weight_ih_tokens` = W_ih Eᵀ `(4H, V)` with E the `(V, embedding)`
/// table, then as [`lstm_sequence`]. Gives what [`lstm_sequence`] gives on the embedded tokens
/// (up to rounding), looking up one column of W_ih Eᵀ per token instead of multiplying; see the
/// module documentation. Backpropagates to every argument but the token ids. A token id of V
/// or more is an error naming it.
///
/// ```
/// use dl_tensor::{kernels, DType, Device, Tensor};
///
/// let device = Device::Cpu;
/// let embeddings = Tensor::new(&[[1f64, 0.], [0., 2.], [-1., 1.]], &device)?; // V = 3
/// let weight_ih = Tensor::new(&[[0.5f64, -0.5], [1., 0.], [0., 1.], [0.25, 0.25]], &device)?;
/// let weight_hh = Tensor::new(&[[0.1f64], [0.2], [0.3], [0.4]], &device)?; // H = 1
/// let bias = Tensor::zeros(4, DType::F64, &device)?;
/// let initial = Tensor::zeros((1, 2), DType::F64, &device)?;
/// let tokens = Tensor::new(&[[2u32, 0, 1]], &device)?;
///
/// let from_tokens = kernels::lstm_sequence::lstm_sequence_from_tokens(
///     &tokens, &weight_ih.matmul(&embeddings.t()?)?, &weight_hh, &bias, &initial,
/// )?;
/// let embedded = embeddings.embedding(&tokens.flatten_all()?)?.unsqueeze(0)?;
/// let from_vectors =
///     kernels::lstm_sequence::lstm_sequence(&embedded, &weight_ih, &weight_hh, &bias, &initial)?;
/// let gap = (from_tokens - from_vectors)?.abs()?.max_all()?.to_scalar::<f64>()?;
/// assert!(gap < 1e-12);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn lstm_sequence_from_tokens(
    tokens: &Tensor,
    weight_ih_tokens: &Tensor,
    weight_hh: &Tensor,
    bias: &Tensor,
    initial: &Tensor,
) -> Result<Tensor> {
    let (batch, steps) = tokens.dims2()?;
    let vocabulary = weight_ih_tokens.dim(1).unwrap_or(0);
    if tokens.dtype() != DType::U32 || !tokens.device().is_cpu() {
        candle_core::bail!(
            "lstm_sequence_from_tokens: expected u32 token ids on the CPU, got {:?} on {:?}",
            tokens.dtype(),
            tokens.device().location()
        );
    }
    if !super::is_supported(&[weight_ih_tokens, weight_hh, bias, initial]) {
        candle_core::bail!("lstm_sequence_from_tokens: expected CPU tensors, all f32 or all f64");
    }
    run(
        tokens,
        (batch, steps, vocabulary),
        [weight_ih_tokens, weight_hh, bias, initial],
        "token ids (batch, steps), W_ih Eᵀ (4H, V)",
    )
}

/// Checks the shapes shared by both entry points and applies the op; `expected` names the
/// caller's input and W_ih in the error.
fn run(
    input: &Tensor,
    (batch, steps, features): (usize, usize, usize),
    [weight_ih, weight_hh, bias, initial]: [&Tensor; 4],
    expected: &str,
) -> Result<Tensor> {
    let hidden = weight_hh.dim(1).unwrap_or(0);
    let shapes_match = weight_ih.dims() == [4 * hidden, features]
        && weight_hh.dims() == [4 * hidden, hidden]
        && bias.dims() == [4 * hidden]
        && initial.dims() == [batch, 2 * hidden];
    if !shapes_match {
        candle_core::bail!(
            "lstm_sequence: expected {expected}, W_hh (4H, H), bias (4H) and initial state \
             (batch, 2H), got {:?}, {:?}, {:?}, {:?} and {:?}",
            input.dims(),
            weight_ih.dims(),
            weight_hh.dims(),
            bias.dims(),
            initial.dims()
        );
    }
    if batch == 0 || steps == 0 || features == 0 || hidden == 0 {
        candle_core::bail!(
            "lstm_sequence: needs at least one sequence, step, input column and hidden unit, got \
             input {:?}, W_ih {:?} and W_hh {:?}",
            input.dims(),
            weight_ih.dims(),
            weight_hh.dims()
        );
    }
    // The three parameters travel as one small tensor, [W_ih | W_hh | b] (4H, F + H + 1):
    // Candle's custom operations take at most three arguments.
    let packed = Tensor::cat(&[weight_ih, weight_hh, &bias.unsqueeze(1)?], 1)?;
    let op = LstmSequenceOp {
        sizes: Sizes {
            batch,
            steps,
            features,
            hidden,
        },
        activations: OnceLock::new(),
    };
    input.apply_op3(&packed, initial, op)
}
