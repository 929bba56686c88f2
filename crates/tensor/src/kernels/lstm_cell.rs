//! The gate arithmetic of one LSTM time step (course §5.2) as one operation: from the two
//! halves of the gate pre-activations, a = (W_ih x + b) + W_hh h, split in PyTorch's order
//! i, f, g, o, and the previous cell state c,
//!
//! ```text
//! i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')
//! ```
//!
//! and backward, from ∂L/∂h' and ∂L/∂c' (the gradient reaching c' from the next step too):
//!
//! ```text
//! δc = ∂L/∂c' + ∂L/∂h' ⊙ o ⊙ (1 − tanh²c')
//! ∂L/∂a_i = δc ⊙ g ⊙ i(1 − i)      ∂L/∂a_f = δc ⊙ c ⊙ f(1 − f)
//! ∂L/∂a_g = δc ⊙ i ⊙ (1 − g²)      ∂L/∂a_o = ∂L/∂h' ⊙ tanh c' ⊙ o(1 − o)
//! ∂L/∂c   = δc ⊙ f
//! ```
//!
//! Written with tensor operations a step is about a dozen small operations forward and as many
//! backward, each costing more in bookkeeping than in arithmetic at the sizes of a text model;
//! here it is one loop each way, and backward reuses the gate values the forward pass saved.
//! The matrix products stay outside (Candle's matmul).

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::gate_math;
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// One row of the forward pass: ((((h' | c', saved), input part), recurrent part), cell).
type RowIn<'a, T> = ((((&'a mut [T], &'a mut [T]), &'a [T]), &'a [T]), &'a [T]);

/// One row of the backward pass: ((((∂L/∂a, ∂L/∂c), saved), cell), ∂L/∂(h' | c')).
type RowGrad<'a, T> = ((((&'a mut [T], &'a mut [T]), &'a [T]), &'a [T]), &'a [T]);

/// Rows of the batch per rayon task.
fn rows_per_task(hidden: usize) -> usize {
    (8192 / hidden.max(1)).max(1)
}

/// The custom op on (input part (B, 4H), recurrent part (B, 4H), cell (B, H)); its result is
/// (B, 2H): h' in the first H columns, c' in the last H.
struct LstmCellOp {
    hidden: usize,
    /// What the backward pass needs, saved by the forward pass so that no exponential is
    /// computed twice: per row, i, f, g, o and tanh c' (5H values).
    activations: OnceLock<CpuStorage>,
}

/// The activations a row saves: i, f, g, o, tanh c'.
const SAVED: usize = 5;

impl LstmCellOp {
    /// (h' | c' per row, the saved activations).
    fn forward<T: Real>(
        &self,
        input_part: &[T],
        recurrent_part: &[T],
        cell: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let h = self.hidden;
        let mut output = vec![T::zero(); cell.len() * 2];
        let mut activations = vec![T::zero(); cell.len() * SAVED];
        let row = |((((output, saved), input_part), recurrent_part), cell): RowIn<'_, T>| {
            let gates: Vec<T> = input_part
                .iter()
                .zip(recurrent_part)
                .map(|(&a, &b)| a + b)
                .collect();
            let (new_hidden, new_cell) = output.split_at_mut(h);
            gate_math::forward_row(&gates, cell, new_hidden, new_cell, saved);
        };
        if worth_parallel(cell.len()) {
            output
                .par_chunks_mut(2 * h)
                .zip(activations.par_chunks_mut(SAVED * h))
                .zip(input_part.par_chunks(4 * h))
                .zip(recurrent_part.par_chunks(4 * h))
                .zip(cell.par_chunks(h))
                .with_min_len(rows_per_task(h))
                .for_each(row);
        } else {
            output
                .chunks_mut(2 * h)
                .zip(activations.chunks_mut(SAVED * h))
                .zip(input_part.chunks(4 * h))
                .zip(recurrent_part.chunks(4 * h))
                .zip(cell.chunks(h))
                .for_each(row);
        }
        (output, activations)
    }

    /// (∂L/∂a (B, 4H), ∂L/∂c (B, H)) from the saved activations.
    fn backward<T: Real>(
        &self,
        activations: &[T],
        cell: &[T],
        output_grad: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let h = self.hidden;
        let mut gates_grad = vec![T::zero(); cell.len() * 4];
        let mut cell_grad = vec![T::zero(); cell.len()];
        let row = |((((gates_grad, cell_grad), saved), cell), output_grad): RowGrad<'_, T>| {
            let (hidden_grad, new_cell_grad) = output_grad.split_at(h);
            gate_math::backward_row(
                saved,
                cell,
                hidden_grad,
                new_cell_grad,
                gates_grad,
                cell_grad,
            );
        };
        if worth_parallel(cell.len()) {
            gates_grad
                .par_chunks_mut(4 * h)
                .zip(cell_grad.par_chunks_mut(h))
                .zip(activations.par_chunks(SAVED * h))
                .zip(cell.par_chunks(h))
                .zip(output_grad.par_chunks(2 * h))
                .with_min_len(rows_per_task(h))
                .for_each(row);
        } else {
            gates_grad
                .chunks_mut(4 * h)
                .zip(cell_grad.chunks_mut(h))
                .zip(activations.chunks(SAVED * h))
                .zip(cell.chunks(h))
                .zip(output_grad.chunks(2 * h))
                .for_each(row);
        }
        (gates_grad, cell_grad)
    }
}

impl CustomOp3 for LstmCellOp {
    fn name(&self) -> &'static str {
        "dl-lstm-cell"
    }

    fn cpu_fwd(
        &self,
        input_part: &CpuStorage,
        input_layout: &Layout,
        recurrent_part: &CpuStorage,
        recurrent_layout: &Layout,
        cell: &CpuStorage,
        cell_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let batch = cell_layout.shape().elem_count() / self.hidden.max(1);
        dispatch_real!(input_part.dtype(), "dl-lstm-cell", |T| {
            let (output, activations) = self.forward::<T>(
                &row_major(input_part, input_layout)?,
                &row_major(recurrent_part, recurrent_layout)?,
                &row_major(cell, cell_layout)?,
            );
            // Set once: Candle runs the forward pass of an op exactly once.
            let _ = self.activations.set(T::to_cpu_storage_owned(activations));
            Ok((
                T::to_cpu_storage_owned(output),
                Shape::from((batch, 2 * self.hidden)),
            ))
        })
    }

    fn bwd(
        &self,
        input_part: &Tensor,
        recurrent_part: &Tensor,
        cell: &Tensor,
        _output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(activations) = self.activations.get() else {
            candle_core::bail!("dl-lstm-cell: backward before forward");
        };
        dispatch_real!(input_part.dtype(), "dl-lstm-cell", |T| {
            let activations = T::cpu_storage_as_slice(activations)?;
            let (gates_grad, cell_grad) = with_row_major::<T, _>(cell, |c| {
                with_row_major::<T, _>(output_grad, |dy| Ok(self.backward(activations, c, dy)))
            })?;
            let gates_grad = tensor_from(gates_grad, input_part.shape())?;
            let recurrent_grad = recurrent_part.track_op().then(|| gates_grad.clone());
            Ok((
                input_part.track_op().then_some(gates_grad),
                recurrent_grad,
                cell.track_op()
                    .then(|| tensor_from(cell_grad, cell.shape()))
                    .transpose()?,
            ))
        })
    }
}

/// One LSTM step's gates: from the input part `(W_ih x + b_ih + b_hh)` and the recurrent part
/// `W_hh h` of the pre-activations, both `(batch, 4·hidden)` with the gates in PyTorch's order
/// i, f, g, o, and the previous cell state `(batch, hidden)`, returns (h', c'), both
/// `(batch, hidden)`.
///
/// On the CPU in `f32` or `f64` the one-loop kernel of this module; elsewhere the same formulas
/// in Candle operations.
///
/// ```
/// use dl_tensor::{kernels, DType, Device, Tensor};
///
/// // All pre-activations 0: i = f = o = 1/2, g = 0, so c' = c/2 and h' = tanh(c')/2.
/// let zeros = Tensor::zeros((1, 4), DType::F64, &Device::Cpu)?;
/// let cell = Tensor::new(&[[2.0f64]], &Device::Cpu)?;
/// let (hidden, cell) = kernels::lstm_cell::lstm_cell(&zeros, &zeros, &cell)?;
/// assert_eq!(cell.to_vec2::<f64>()?, [[1.0]]);
/// assert!((hidden.to_vec2::<f64>()?[0][0] - 1f64.tanh() / 2.0).abs() < 1e-15);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn lstm_cell(
    input_part: &Tensor,
    recurrent_part: &Tensor,
    cell: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (batch, hidden) = cell.dims2()?;
    for (what, tensor) in [
        ("input part", input_part),
        ("recurrent part", recurrent_part),
    ] {
        if tensor.dims() != [batch, 4 * hidden] {
            candle_core::bail!(
                "lstm_cell: the {what} must be (batch, 4·hidden) = ({batch}, {}), got {:?}",
                4 * hidden,
                tensor.dims()
            );
        }
    }
    if super::is_supported(&[input_part, recurrent_part, cell]) {
        let op = LstmCellOp {
            hidden,
            activations: OnceLock::new(),
        };
        let both = input_part.apply_op3(recurrent_part, cell, op)?;
        return Ok((both.narrow(1, 0, hidden)?, both.narrow(1, hidden, hidden)?));
    }
    let gates = input_part.add(recurrent_part)?;
    let sigmoid = |x: &Tensor| -> Result<Tensor> { x.neg()?.exp()?.affine(1.0, 1.0)?.recip() };
    let input_gate = sigmoid(&gates.narrow(1, 0, hidden)?)?;
    let forget_gate = sigmoid(&gates.narrow(1, hidden, hidden)?)?;
    let candidate = gates.narrow(1, 2 * hidden, hidden)?.tanh()?;
    let output_gate = sigmoid(&gates.narrow(1, 3 * hidden, hidden)?)?;
    let new_cell = forget_gate.mul(cell)?.add(&input_gate.mul(&candidate)?)?;
    let new_hidden = output_gate.mul(&new_cell.tanh()?)?;
    Ok((new_hidden, new_cell))
}
