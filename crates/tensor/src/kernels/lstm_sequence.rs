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
//! that of the input, ∂L/∂X = ∂L/∂A W_ih, are each one large matrix product (or sum) over a
//! thread's rows after its loop, instead of one small one per step; the threads' shares are
//! added at the end.
//!
//! Why one operation: written with tensor operations, a step is a matrix product, a cell
//! operation and the bookkeeping of several tensors, forward and backward, about 30 µs each
//! whatever their size. And Candle's backpropagation adds every gradient it passes on into a
//! freshly zeroed tensor of the same size, so each intermediate (B, T, 4H) tensor between the
//! input projection and the recurrence would cost two extra passes over megabytes. Here a step
//! allocates nothing and the pre-activations never become a tensor. The sequences of a batch
//! are independent, so the batch is split into one block of rows per thread, and each thread
//! runs the whole sequence for its rows, forward and backward, without waiting for the others.
//!
//! The op's result holds only what a caller reads: the hidden states h_t of every step, one
//! contiguous `(batch·steps, H)` block, followed by the last cell state c_T `(batch, H)`. The
//! other cell states stay inside the op with the activations backward needs. That matters for
//! the same reason as above: the gradient Candle hands back has the size of the result, and
//! taking the hidden states out of a result twice as large (with every cell state) cost a
//! zeroed tensor, a concatenation and an addition of that size at every training step.
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

use super::gate_math;
use super::gemm::{matmul_into, MatrixRef};
use super::linear;
use super::packed_gemm::{matmul_packed_into, PackedMatrix};
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// The values saved per row and step for backward: i, f, g, o, tanh c_t, then c_t.
const SAVED: usize = 6;

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
        match self {
            Self::Rows(rows) => &rows[position * width..(position + 1) * width],
            Self::Lookup { tokens, table } => {
                let start = tokens[position] as usize * width;
                &table[start..start + width]
            }
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

/// What the forward pass keeps for backward: how many rows of the batch each block had, and
/// for each block the saved values of its rows and steps, (rows, T, 6H).
struct Saved {
    rows_per_block: usize,
    blocks: Vec<CpuStorage>,
}

/// The custom op on (x (B, T, F) or token ids (B, T), [W_ih | W_hh | b] (4H, F + H + 1),
/// h₀ | c₀ (B, 2H)); its result is h_t of every row and step followed by c_T of every row,
/// (B·T + B, H).
struct LstmSequenceOp {
    sizes: Sizes,
    saved: OnceLock<Saved>,
}

/// What the forward pass read and wrote, for the backward pass.
#[derive(Clone, Copy)]
struct Recorded<'a, T> {
    input: Input<'a, T>,
    packed: &'a [T],
    initial: &'a [T],
    /// The op's result: h_t of every row and step, then c_T of every row.
    output: &'a [T],
    rows_per_block: usize,
    /// The saved values of each block.
    saved: &'a [&'a [T]],
}

/// Runs `work(index, item)` for every block, on rayon's threads when there is more than one.
fn for_each_block<I: Send, R: Send>(items: Vec<I>, work: impl Fn(usize, I) -> R + Sync) -> Vec<R> {
    if items.len() > 1 {
        items
            .into_par_iter()
            .enumerate()
            .map(|(index, item)| work(index, item))
            .collect()
    } else {
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| work(index, item))
            .collect()
    }
}

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

    /// The op's result (h_t of every row and step, then c_T of every row), the saved values of
    /// each block, and the rows per block.
    fn forward<T: Real>(
        &self,
        input: Input<'_, T>,
        packed: &[T],
        initial: &[T],
    ) -> (Vec<T>, Vec<Vec<T>>, usize) {
        let sizes = self.sizes;
        let (steps, h) = (sizes.steps, sizes.hidden);
        let projected = self.project(input, packed);
        // W_hhᵀ (H, 4H), packed once for the products of all steps.
        let (_, weight_hh) = sizes.weights(packed);
        let weight_t = PackedMatrix::new(weight_hh.t());
        let rows_per_block = sizes.rows_per_block();

        let mut output = vec![T::zero(); (sizes.positions() + sizes.batch) * h];
        let (hidden, final_cell) = output.split_at_mut(sizes.positions() * h);
        let blocks: Vec<_> = hidden
            .chunks_mut(rows_per_block * steps * h)
            .zip(final_cell.chunks_mut(rows_per_block * h))
            .zip(initial.chunks(rows_per_block * 2 * h))
            .collect();
        let saved = for_each_block(blocks, |index, ((hidden, final_cell), initial)| {
            let rows = initial.len() / (2 * h);
            let first_row = index * rows_per_block;
            let mut saved = vec![T::zero(); rows * steps * SAVED * h];
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
                    let (before, current) = saved.split_at_mut(position * SAVED * h);
                    let previous_cell = if t == 0 {
                        &initial[row * 2 * h + h..(row + 1) * 2 * h]
                    } else {
                        &before[(position - 1) * SAVED * h + 5 * h..]
                    };
                    let (activations, cell) = current[..SAVED * h].split_at_mut(5 * h);
                    gate_math::forward_row(
                        gate_row,
                        previous_cell,
                        &mut hidden[position * h..(position + 1) * h],
                        cell,
                        activations,
                    );
                }
            }
            for (row, out) in final_cell.chunks_exact_mut(h).enumerate() {
                let last = (row * steps + steps - 1) * SAVED * h + 5 * h;
                out.copy_from_slice(&saved[last..last + h]);
            }
            saved
        });
        (output, saved, rows_per_block)
    }

    /// (∂L/∂x (B, T, F), ∂L/∂[W_ih | W_hh | b] (4H, F + H + 1), ∂L/∂(h₀ | c₀) (B, 2H)) from
    /// the gradient of the result; the input's gradient only for vectors and when `input_grad`.
    fn backward<T: Real>(
        &self,
        forward: Recorded<'_, T>,
        output_grad: &[T],
        input_grad: bool,
    ) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
        let Recorded {
            input,
            packed,
            initial,
            output,
            rows_per_block,
            saved,
        } = forward;
        let sizes = self.sizes;
        let (steps, h, features) = (sizes.steps, sizes.hidden, sizes.features);
        let (weight_ih, weight_hh) = sizes.weights(packed);
        // W_hh (4H, H), packed once for the products of all steps.
        let weight_hh_packed = PackedMatrix::new(weight_hh);
        let hidden = &output[..sizes.positions() * h];
        let (hidden_grad, final_cell_grad) = output_grad.split_at(sizes.positions() * h);

        let mut initial_grad = vec![T::zero(); sizes.batch * 2 * h];
        let mut input_grad = (input_grad && matches!(input, Input::Features(_)))
            .then(|| vec![T::zero(); sizes.positions() * features]);
        let input_grad_blocks: Vec<Option<&mut [T]>> = match input_grad.as_mut() {
            Some(values) => values
                .chunks_mut(rows_per_block * steps * features)
                .map(Some)
                .collect(),
            None => saved.iter().map(|_| None).collect(),
        };
        let blocks: Vec<_> = initial_grad
            .chunks_mut(rows_per_block * 2 * h)
            .zip(input_grad_blocks)
            .collect();
        let shares = for_each_block(blocks, |index, (initial_grad, input_grad)| {
            let rows = initial_grad.len() / (2 * h);
            let first_row = index * rows_per_block;
            let positions = first_row * steps..(first_row + rows) * steps;
            let saved = saved[index];
            let initial = &initial[first_row * 2 * h..(first_row + rows) * 2 * h];
            let from_hidden = &hidden_grad[positions.start * h..positions.end * h];
            let mut gates_grad = vec![T::zero(); rows * steps * 4 * h];
            // ∂L/∂h_t and ∂L/∂c_t arriving from step t + 1 (from the result, for c_T).
            let mut hidden_carry = vec![T::zero(); rows * h];
            let mut cell_carry = final_cell_grad[first_row * h..(first_row + rows) * h].to_vec();
            let mut hidden_total = vec![T::zero(); h];
            let mut cell_total = vec![T::zero(); h];
            for t in (0..steps).rev() {
                for row in 0..rows {
                    let position = row * steps + t;
                    let carried = row * h..(row + 1) * h;
                    let previous_cell = if t > 0 {
                        &saved[(position - 1) * SAVED * h + 5 * h..position * SAVED * h]
                    } else {
                        &initial[row * 2 * h + h..(row + 1) * 2 * h]
                    };
                    // What reaches h_t: from the output at t and from step t + 1.
                    for (total, (&output, &carry)) in hidden_total.iter_mut().zip(
                        from_hidden[position * h..(position + 1) * h]
                            .iter()
                            .zip(&hidden_carry[carried.clone()]),
                    ) {
                        *total = output + carry;
                    }
                    cell_total.copy_from_slice(&cell_carry[carried.clone()]);
                    gate_math::backward_row(
                        &saved[position * SAVED * h..position * SAVED * h + 5 * h],
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
            let previous_hidden = previous_hidden_rows(
                &hidden[positions.start * h..positions.end * h],
                initial,
                (rows, steps, h),
            );
            self.parameter_share(
                input,
                positions,
                &gates_grad,
                &previous_hidden,
                (weight_ih, input_grad),
            )
        });
        let mut shares = shares.into_iter();
        let mut packed_grad = shares.next().unwrap_or_default();
        for share in shares {
            for (total, value) in packed_grad.iter_mut().zip(share) {
                *total += value;
            }
        }
        (input_grad, packed_grad, initial_grad)
    }

    /// One block's share of ∂L/∂[W_ih | W_hh | b] (4H, F + H + 1) from its ∂L/∂A (rows·T, 4H)
    /// and h_{t−1} (rows·T, H), for the rows and steps `positions`; also its rows of ∂L/∂x when
    /// `input_grad` is given (vectors only).
    fn parameter_share<T: Real>(
        &self,
        input: Input<'_, T>,
        positions: std::ops::Range<usize>,
        gates_grad: &[T],
        previous_hidden: &[T],
        (weight_ih, input_grad): (MatrixRef<'_, T>, Option<&mut [T]>),
    ) -> Vec<T> {
        let sizes = self.sizes;
        let (h, features, columns) = (sizes.hidden, sizes.features, sizes.packed_columns());
        let count = positions.len();
        let grad = MatrixRef::row_major(gates_grad, count, 4 * h);
        // ∂L/∂W_ih, (4H, F).
        let weight_ih_grad = match input {
            // ∂L/∂W_ih = ∂L/∂Aᵀ X and ∂L/∂X = ∂L/∂A W_ih, as in a linear layer.
            Input::Features(x) => {
                let x = MatrixRef::row_major(
                    &x[positions.start * features..positions.end * features],
                    count,
                    features,
                );
                let mut weight_ih_grad = vec![T::zero(); 4 * h * features];
                matmul_into(&mut weight_ih_grad, grad.t(), x, false, 1);
                if let Some(input_grad) = input_grad {
                    matmul_into(input_grad, grad, weight_ih, false, 1);
                }
                weight_ih_grad
            }
            // Column v of W_ih was added to A at every position reading token v: its gradient
            // is the sum of those positions' ∂L/∂A, summed per token first (rows of 4H).
            Input::Tokens(tokens) => {
                let mut table_grad = vec![T::zero(); features * 4 * h];
                for (&token, row) in tokens[positions].iter().zip(gates_grad.chunks_exact(4 * h)) {
                    let start = token as usize * 4 * h;
                    for (sum, &value) in table_grad[start..start + 4 * h].iter_mut().zip(row) {
                        *sum += value;
                    }
                }
                let mut weight_ih_grad = vec![T::zero(); 4 * h * features];
                for (token, row) in table_grad.chunks_exact(4 * h).enumerate() {
                    for (gate, &value) in row.iter().enumerate() {
                        weight_ih_grad[gate * features + token] = value;
                    }
                }
                weight_ih_grad
            }
        };
        // ∂L/∂W_hh = Σ ∂L/∂a_tᵀ h_{t−1}, (4H, H).
        let mut weight_hh_grad = vec![T::zero(); 4 * h * h];
        matmul_into(
            &mut weight_hh_grad,
            grad.t(),
            MatrixRef::row_major(previous_hidden, count, h),
            false,
            1,
        );
        // ∂L/∂b = Σ ∂L/∂A.
        let mut bias_grad = vec![T::zero(); 4 * h];
        for row in gates_grad.chunks_exact(4 * h) {
            for (sum, &value) in bias_grad.iter_mut().zip(row) {
                *sum += value;
            }
        }
        let mut share = Vec::with_capacity(4 * h * columns);
        for gate in 0..4 * h {
            share.extend_from_slice(&weight_ih_grad[gate * features..][..features]);
            share.extend_from_slice(&weight_hh_grad[gate * h..][..h]);
            share.push(bias_grad[gate]);
        }
        share
    }
}

/// h_{t−1} for every row and step of a block, (rows·T, H): the block's hidden states shifted by
/// one step, with h₀ (the first H of each row of `initial`) at t = 0.
fn previous_hidden_rows<T: Real>(
    hidden: &[T],
    initial: &[T],
    (rows, steps, h): (usize, usize, usize),
) -> Vec<T> {
    let mut previous = Vec::with_capacity(rows * steps * h);
    for row in 0..rows {
        previous.extend_from_slice(&initial[row * 2 * h..row * 2 * h + h]);
        previous.extend_from_slice(&hidden[row * steps * h..((row + 1) * steps - 1) * h]);
    }
    previous
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
        let Sizes { batch, hidden, .. } = self.sizes;
        dispatch_real!(packed.dtype(), "dl-lstm-sequence", |T| {
            let packed = row_major::<T>(packed, packed_layout)?;
            let initial = row_major::<T>(initial, initial_layout)?;
            let (output, saved, rows_per_block) = if input.dtype() == DType::U32 {
                let tokens = row_major::<u32>(input, input_layout)?;
                self.check_tokens(&tokens)?;
                self.forward::<T>(Input::Tokens(&tokens), &packed, &initial)
            } else {
                let features = row_major::<T>(input, input_layout)?;
                self.forward::<T>(Input::Features(&features), &packed, &initial)
            };
            // Set once: Candle runs the forward pass of an op exactly once.
            let _ = self.saved.set(Saved {
                rows_per_block,
                blocks: saved.into_iter().map(T::to_cpu_storage_owned).collect(),
            });
            Ok((
                T::to_cpu_storage_owned(output),
                Shape::from((self.sizes.positions() + batch, hidden)),
            ))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        packed: &Tensor,
        initial: &Tensor,
        output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.get() else {
            candle_core::bail!("dl-lstm-sequence: backward before forward");
        };
        dispatch_real!(packed.dtype(), "dl-lstm-sequence", |T| {
            let blocks = saved
                .blocks
                .iter()
                .map(T::cpu_storage_as_slice)
                .collect::<Result<Vec<_>>>()?;
            let run = |input_read: Input<'_, T>| {
                with_row_major::<T, _>(packed, |packed| {
                    with_row_major::<T, _>(initial, |initial| {
                        with_row_major::<T, _>(output, |output| {
                            with_row_major::<T, _>(output_grad, |grad| {
                                let forward = Recorded {
                                    input: input_read,
                                    packed,
                                    initial,
                                    output,
                                    rows_per_block: saved.rows_per_block,
                                    saved: &blocks,
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

/// What an LSTM layer gives for a batch of sequences.
#[derive(Debug, Clone)]
pub struct LstmSequenceOutput {
    /// The hidden state h_t of every sequence and step, `(batch, steps, H)`: the layer's output.
    pub hidden: Tensor,
    /// The last step's hidden state h_T, `(batch, H)`.
    pub final_hidden: Tensor,
    /// The last step's cell state c_T, `(batch, H)`.
    pub final_cell: Tensor,
}

/// Runs an LSTM layer over whole sequences, batch-first: `input` `(batch, steps, F)`, the
/// weights `weight_ih` `(4H, F)` and `weight_hh` `(4H, H)` and the bias `bias` `(4H)` (gates
/// in PyTorch's order i, f, g, o; pass b_ih + b_hh), and the initial state `initial`
/// `(batch, 2H)` (h₀ in the first H columns, c₀ in the last). Returns every hidden state and
/// the final state. Backpropagates to every argument.
///
/// The tensors must be on the CPU, all `f32` or all `f64` (see [`super::is_supported`]).
///
/// ```
/// use dl_tensor::{kernels, DType, Device, Tensor};
///
/// // All weights 0: i = f = o = 1/2 and g = 0 at every step, so the cell halves each time
/// // (8 → 4 → 2 → 1) and h_t = tanh(c_t) / 2.
/// let input = Tensor::zeros((1, 3, 2), DType::F64, &Device::Cpu)?;
/// let weight_ih = Tensor::zeros((4, 2), DType::F64, &Device::Cpu)?;
/// let weight_hh = Tensor::zeros((4, 1), DType::F64, &Device::Cpu)?;
/// let bias = Tensor::zeros(4, DType::F64, &Device::Cpu)?;
/// let initial = Tensor::new(&[[0.0f64, 8.0]], &Device::Cpu)?;
/// let output = kernels::lstm_sequence::lstm_sequence(&input, &weight_ih, &weight_hh, &bias, &initial)?;
/// assert_eq!(output.final_cell.flatten_all()?.to_vec1::<f64>()?, [1.0]);
/// let hidden = output.hidden.flatten_all()?.to_vec1::<f64>()?;
/// assert_eq!(hidden, [4f64.tanh() / 2.0, 2f64.tanh() / 2.0, 1f64.tanh() / 2.0]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn lstm_sequence(
    input: &Tensor,
    weight_ih: &Tensor,
    weight_hh: &Tensor,
    bias: &Tensor,
    initial: &Tensor,
) -> Result<LstmSequenceOutput> {
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
/// let gap = (from_tokens.hidden - from_vectors.hidden)?.abs()?.max_all()?.to_scalar::<f64>()?;
/// assert!(gap < 1e-12);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn lstm_sequence_from_tokens(
    tokens: &Tensor,
    weight_ih_tokens: &Tensor,
    weight_hh: &Tensor,
    bias: &Tensor,
    initial: &Tensor,
) -> Result<LstmSequenceOutput> {
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
) -> Result<LstmSequenceOutput> {
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
        saved: OnceLock::new(),
    };
    let positions = batch * steps;
    let result = input.apply_op3(&packed, initial, op)?;
    let hidden_states = result
        .narrow(0, 0, positions)?
        .reshape((batch, steps, hidden))?;
    Ok(LstmSequenceOutput {
        final_hidden: hidden_states.narrow(1, steps - 1, 1)?.squeeze(1)?,
        final_cell: result.narrow(0, positions, batch)?,
        hidden: hidden_states,
    })
}
