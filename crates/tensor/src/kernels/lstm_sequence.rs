//! A whole LSTM layer over a sequence (course §5.2) as one operation, forward and backward
//! through time: from the input parts of the gate pre-activations of every step,
//! a_t = W_ih x_t + b_ih + b_hh (computed outside in one matrix product over all steps), the
//! recurrent weights W_hh and the initial state (h₀, c₀), each step computes
//!
//! ```text
//! a = a_t + W_hh h_{t−1}          (one matrix product per step, into a reused buffer)
//! i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
//! c_t = f ⊙ c_{t−1} + i ⊙ g       h_t = o ⊙ tanh(c_t)
//! ```
//!
//! and backward through time goes from the last step to the first with the formulas of
//! [`super::lstm_cell`], carrying ∂L/∂h_{t−1} = ∂L/∂h_{t−1}(from the output) + W_hhᵀ ∂L/∂a_t and
//! ∂L/∂c_{t−1} = δc ⊙ f. The gradient of W_hh, Σ_t ∂L/∂a_tᵀ h_{t−1}, is one large matrix product
//! after the loop instead of one small one per step.
//!
//! Why: written with tensor operations, a step is a matrix product, a cell operation, and the
//! bookkeeping of several tensors, forward and backward, about 30 µs each whatever their size;
//! a 100-step sequence then costs milliseconds of overhead before any arithmetic. Here a step
//! allocates nothing. The sequences of a batch are independent, so the batch is split into one
//! block of rows per thread, and each thread runs the whole sequence for its rows without
//! waiting for the others.
//!
//! Layout: batch-first, `(batch, steps, 4H)` in and `(batch, steps, 2H)` out (h_t in the first
//! H columns, c_t in the last H), so that each thread's rows are one contiguous block.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::gate_math;
use super::gemm::{matmul_into, MatrixRef};
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// The activations saved per row and step for backward: i, f, g, o, tanh c_t.
const SAVED: usize = 5;

/// The sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: usize,
    steps: usize,
    hidden: usize,
}

impl Sizes {
    /// How many rows of the batch each thread takes: all of them on one thread, else an even
    /// share.
    fn rows_per_block(&self) -> usize {
        let threads = rayon::current_num_threads();
        if threads > 1 && worth_parallel(self.batch * self.steps * 4 * self.hidden) {
            self.batch.div_ceil(threads.min(self.batch)).max(1)
        } else {
            self.batch.max(1)
        }
    }
}

/// The custom op on (input parts (B, T, 4H), W_hh (4H, H), initial state h₀ | c₀ (B, 2H)).
struct LstmSequenceOp {
    sizes: Sizes,
    /// i, f, g, o, tanh c_t of every row and step, (B, T, 5H), saved by the forward pass.
    activations: OnceLock<CpuStorage>,
}

/// One block of rows, forward: (output rows, saved rows, input-part rows, initial rows).
type ForwardBlock<'a, T> = (((&'a mut [T], &'a mut [T]), &'a [T]), &'a [T]);

/// One block of rows, backward: ((((∂L/∂a rows, ∂L/∂(h₀|c₀) rows), saved), outputs), initial),
/// and the output gradient rows.
type BackwardBlock<'a, T> = (
    ((((&'a mut [T], &'a mut [T]), &'a [T]), &'a [T]), &'a [T]),
    &'a [T],
);

impl LstmSequenceOp {
    /// (h_t | c_t for every row and step, the saved activations).
    fn forward<T: Real>(
        &self,
        input_parts: &[T],
        weight_hh: &[T],
        initial: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let Sizes {
            batch,
            steps,
            hidden: h,
        } = self.sizes;
        // W_hhᵀ (H, 4H), row-major, so that each step's product reads its rows in order.
        let mut weight_t = vec![T::zero(); weight_hh.len()];
        for (row, values) in weight_hh.chunks_exact(h).enumerate() {
            for (column, &value) in values.iter().enumerate() {
                weight_t[column * 4 * h + row] = value;
            }
        }
        let weight_t = MatrixRef::row_major(&weight_t, h, 4 * h);
        let mut output = vec![T::zero(); batch * steps * 2 * h];
        let mut saved = vec![T::zero(); batch * steps * SAVED * h];
        let block = |(((output, saved), input_parts), initial): ForwardBlock<'_, T>| {
            let rows = initial.len() / (2 * h);
            let mut gates = vec![T::zero(); rows * 4 * h];
            for t in 0..steps {
                for (row, gate_row) in gates.chunks_exact_mut(4 * h).enumerate() {
                    let start = (row * steps + t) * 4 * h;
                    gate_row.copy_from_slice(&input_parts[start..start + 4 * h]);
                }
                // h_{t−1} of every row: the initial state, or the previous step's outputs.
                let previous_hidden = if t == 0 {
                    MatrixRef::strided(initial, rows, h, 2 * h)
                } else {
                    MatrixRef::strided(&output[(t - 1) * 2 * h..], rows, h, steps * 2 * h)
                };
                matmul_into(&mut gates, previous_hidden, weight_t, true, 1);
                for (row, gate_row) in gates.chunks_exact(4 * h).enumerate() {
                    let position = row * steps + t;
                    let (before, current) = output.split_at_mut(position * 2 * h);
                    let previous_cell = if t == 0 {
                        &initial[row * 2 * h + h..(row + 1) * 2 * h]
                    } else {
                        &before[(position - 1) * 2 * h + h..]
                    };
                    let (new_hidden, new_cell) = current[..2 * h].split_at_mut(h);
                    gate_math::forward_row(
                        gate_row,
                        previous_cell,
                        new_hidden,
                        new_cell,
                        &mut saved[position * SAVED * h..(position + 1) * SAVED * h],
                    );
                }
            }
        };
        let rows = self.sizes.rows_per_block();
        if rows < batch {
            output
                .par_chunks_mut(rows * steps * 2 * h)
                .zip(saved.par_chunks_mut(rows * steps * SAVED * h))
                .zip(input_parts.par_chunks(rows * steps * 4 * h))
                .zip(initial.par_chunks(rows * 2 * h))
                .for_each(block);
        } else {
            block((((&mut output, &mut saved), input_parts), initial));
        }
        (output, saved)
    }

    /// (∂L/∂input parts (B, T, 4H), ∂L/∂W_hh (4H, H), ∂L/∂(h₀ | c₀) (B, 2H)).
    fn backward<T: Real>(
        &self,
        saved: &[T],
        output: &[T],
        weight_hh: &[T],
        initial: &[T],
        output_grad: &[T],
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        let Sizes {
            batch,
            steps,
            hidden: h,
        } = self.sizes;
        let weight = MatrixRef::row_major(weight_hh, 4 * h, h);
        let mut gates_grad = vec![T::zero(); batch * steps * 4 * h];
        let mut initial_grad = vec![T::zero(); batch * 2 * h];
        let block = |(((((gates_grad, initial_grad), saved), output), initial), output_grad): BackwardBlock<'_, T>| {
            let rows = initial.len() / (2 * h);
            // ∂L/∂h_t and ∂L/∂c_t arriving from step t + 1.
            let mut hidden_carry = vec![T::zero(); rows * h];
            let mut cell_carry = vec![T::zero(); rows * h];
            let mut hidden_grad = vec![T::zero(); h];
            let mut new_cell_grad = vec![T::zero(); h];
            for t in (0..steps).rev() {
                for row in 0..rows {
                    let position = row * steps + t;
                    let from_output = &output_grad[position * 2 * h..(position + 1) * 2 * h];
                    let previous_cell = if t > 0 {
                        &output[(position - 1) * 2 * h + h..position * 2 * h]
                    } else {
                        &initial[row * 2 * h + h..(row + 1) * 2 * h]
                    };
                    // What reaches h_t and c_t: from the output at t and from step t + 1.
                    let carried = row * h..(row + 1) * h;
                    for (total, (&output, &carried)) in hidden_grad
                        .iter_mut()
                        .zip(from_output[..h].iter().zip(&hidden_carry[carried.clone()]))
                    {
                        *total = output + carried;
                    }
                    for (total, (&output, &carried)) in new_cell_grad
                        .iter_mut()
                        .zip(from_output[h..].iter().zip(&cell_carry[carried.clone()]))
                    {
                        *total = output + carried;
                    }
                    gate_math::backward_row(
                        &saved[position * SAVED * h..(position + 1) * SAVED * h],
                        previous_cell,
                        &hidden_grad,
                        &new_cell_grad,
                        &mut gates_grad[position * 4 * h..(position + 1) * 4 * h],
                        &mut cell_carry[carried],
                    );
                }
                // ∂L/∂h_{t−1} from the recurrence: ∂L/∂a_t (rows, 4H) · W_hh (4H, H).
                matmul_into(
                    &mut hidden_carry,
                    MatrixRef::strided(&gates_grad[t * 4 * h..], rows, 4 * h, steps * 4 * h),
                    weight,
                    false,
                    1,
                );
            }
            for (row, out) in initial_grad.chunks_exact_mut(2 * h).enumerate() {
                out[..h].copy_from_slice(&hidden_carry[row * h..(row + 1) * h]);
                out[h..].copy_from_slice(&cell_carry[row * h..(row + 1) * h]);
            }
        };
        let rows = self.sizes.rows_per_block();
        if rows < batch {
            gates_grad
                .par_chunks_mut(rows * steps * 4 * h)
                .zip(initial_grad.par_chunks_mut(rows * 2 * h))
                .zip(saved.par_chunks(rows * steps * SAVED * h))
                .zip(output.par_chunks(rows * steps * 2 * h))
                .zip(initial.par_chunks(rows * 2 * h))
                .zip(output_grad.par_chunks(rows * steps * 2 * h))
                .for_each(block);
        } else {
            block((
                (
                    (((&mut gates_grad, &mut initial_grad), saved), output),
                    initial,
                ),
                output_grad,
            ));
        }
        // ∂L/∂W_hh = Σ over rows and steps of ∂L/∂a_tᵀ h_{t−1}: (4H, B·T) · (B·T, H).
        let mut previous_hidden = vec![T::zero(); batch * steps * h];
        for (position, out) in previous_hidden.chunks_exact_mut(h).enumerate() {
            let (row, t) = (position / steps, position % steps);
            out.copy_from_slice(if t > 0 {
                &output[(position - 1) * 2 * h..(position - 1) * 2 * h + h]
            } else {
                &initial[row * 2 * h..row * 2 * h + h]
            });
        }
        let mut weight_grad = vec![T::zero(); 4 * h * h];
        matmul_into(
            &mut weight_grad,
            MatrixRef::row_major(&gates_grad, batch * steps, 4 * h).t(),
            MatrixRef::row_major(&previous_hidden, batch * steps, h),
            false,
            rayon::current_num_threads(),
        );
        (gates_grad, weight_grad, initial_grad)
    }
}

impl CustomOp3 for LstmSequenceOp {
    fn name(&self) -> &'static str {
        "dl-lstm-sequence"
    }

    fn cpu_fwd(
        &self,
        input_parts: &CpuStorage,
        input_layout: &Layout,
        weight_hh: &CpuStorage,
        weight_layout: &Layout,
        initial: &CpuStorage,
        initial_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Sizes {
            batch,
            steps,
            hidden,
        } = self.sizes;
        dispatch_real!(input_parts.dtype(), "dl-lstm-sequence", |T| {
            let (output, saved) = self.forward::<T>(
                &row_major(input_parts, input_layout)?,
                &row_major(weight_hh, weight_layout)?,
                &row_major(initial, initial_layout)?,
            );
            // Set once: Candle runs the forward pass of an op exactly once.
            let _ = self.activations.set(T::to_cpu_storage_owned(saved));
            Ok((
                T::to_cpu_storage_owned(output),
                Shape::from((batch, steps, 2 * hidden)),
            ))
        })
    }

    fn bwd(
        &self,
        input_parts: &Tensor,
        weight_hh: &Tensor,
        initial: &Tensor,
        output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.activations.get() else {
            candle_core::bail!("dl-lstm-sequence: backward before forward");
        };
        dispatch_real!(input_parts.dtype(), "dl-lstm-sequence", |T| {
            let saved = T::cpu_storage_as_slice(saved)?;
            let (gates_grad, weight_grad, initial_grad) = with_row_major::<T, _>(output, |out| {
                with_row_major::<T, _>(weight_hh, |weight| {
                    with_row_major::<T, _>(initial, |initial| {
                        with_row_major::<T, _>(output_grad, |grad| {
                            Ok(self.backward(saved, out, weight, initial, grad))
                        })
                    })
                })
            })?;
            Ok((
                input_parts
                    .track_op()
                    .then(|| tensor_from(gates_grad, input_parts.shape()))
                    .transpose()?,
                weight_hh
                    .track_op()
                    .then(|| tensor_from(weight_grad, weight_hh.shape()))
                    .transpose()?,
                initial
                    .track_op()
                    .then(|| tensor_from(initial_grad, initial.shape()))
                    .transpose()?,
            ))
        })
    }
}

/// Runs an LSTM layer over whole sequences: from the input parts of the gate pre-activations
/// `input_parts` `(batch, steps, 4·hidden)` (W_ih x_t + b_ih + b_hh, gates in PyTorch's order
/// i, f, g, o), the recurrent weights `weight_hh` `(4·hidden, hidden)` and the initial state
/// `initial` `(batch, 2·hidden)` (h₀ in the first `hidden` columns, c₀ in the last), returns
/// `(batch, steps, 2·hidden)`: h_t in the first `hidden` columns of step t, c_t in the last.
/// Backpropagates to all three.
///
/// The tensors must be on the CPU, all `f32` or all `f64` (see [`super::is_supported`]).
///
/// ```
/// use dl_tensor::{kernels, DType, Device, Tensor};
///
/// // All pre-activations 0: i = f = o = 1/2, g = 0, so the cell halves at every step.
/// let input_parts = Tensor::zeros((1, 3, 4), DType::F64, &Device::Cpu)?;
/// let weight_hh = Tensor::zeros((4, 1), DType::F64, &Device::Cpu)?;
/// let initial = Tensor::new(&[[0.0f64, 8.0]], &Device::Cpu)?;
/// let states = kernels::lstm_sequence::lstm_sequence(&input_parts, &weight_hh, &initial)?;
/// let cells = states.narrow(2, 1, 1)?.flatten_all()?.to_vec1::<f64>()?;
/// assert_eq!(cells, [4.0, 2.0, 1.0]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn lstm_sequence(input_parts: &Tensor, weight_hh: &Tensor, initial: &Tensor) -> Result<Tensor> {
    let (batch, steps, gates) = input_parts.dims3()?;
    let hidden = gates / 4;
    if gates % 4 != 0
        || weight_hh.dims() != [gates, hidden]
        || initial.dims() != [batch, 2 * hidden]
    {
        candle_core::bail!(
            "lstm_sequence: expected input parts (batch, steps, 4·hidden), W_hh (4·hidden, hidden) \
             and an initial state (batch, 2·hidden), got {:?}, {:?} and {:?}",
            input_parts.dims(),
            weight_hh.dims(),
            initial.dims()
        );
    }
    if batch == 0 || steps == 0 || hidden == 0 {
        candle_core::bail!("lstm_sequence: needs at least one sequence, step and hidden unit, got input parts {:?}", input_parts.dims());
    }
    if !super::is_supported(&[input_parts, weight_hh, initial]) {
        candle_core::bail!("lstm_sequence: expected CPU tensors, all f32 or all f64");
    }
    let op = LstmSequenceOp {
        sizes: Sizes {
            batch,
            steps,
            hidden,
        },
        activations: OnceLock::new(),
    };
    input_parts.apply_op3(weight_hh, initial, op)
}
