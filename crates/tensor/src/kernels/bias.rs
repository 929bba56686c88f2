//! Adding a bias to every row, y = x + b (the "+ b" of a neuron, course §1, in every Dense
//! layer and in an LSTM's input projection), with a backward pass that sums the gradient's rows
//! in one sweep: ∂L/∂x = ∂L/∂y and ∂L/∂b = Σ_rows ∂L/∂y.
//!
//! Candle's `broadcast_add` gets ∂L/∂b from `sum_keepdim` over the leading dimensions, a
//! reduction that its CPU backend walks element by element through the strides when the
//! reduced dimension is not the last one: 10% of a character LSTM's training step, for the bias
//! gradients of a (3200, 512) and a (3200, 65) product. Here each row of the gradient is added
//! to a running total of the columns, a loop the compiler vectorises; totals are kept per block
//! of rows and then added in `f64`, so long batches lose no precision.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// Rows added in the element type before the block's total joins the `f64` sum.
const ROWS_PER_BLOCK: usize = 64;

/// The custom op on (x (…, C), b (C)).
struct AddBiasOp {
    columns: usize,
}

/// Σ over the rows of `values` (rows of `columns`), per column.
pub(crate) fn column_sums<T: Real>(values: &[T], columns: usize) -> Vec<T> {
    let block_sums = |block: &[T]| -> Vec<f64> {
        let mut sums = vec![T::zero(); columns];
        for row in block.chunks_exact(columns) {
            for (sum, &value) in sums.iter_mut().zip(row) {
                *sum += value;
            }
        }
        sums.into_iter().map(|sum| sum.to_f64()).collect()
    };
    let add = |mut total: Vec<f64>, part: Vec<f64>| {
        for (total, part) in total.iter_mut().zip(part) {
            *total += part;
        }
        total
    };
    let block = ROWS_PER_BLOCK * columns;
    let total = if worth_parallel(values.len()) {
        values
            .par_chunks(block)
            .map(block_sums)
            .reduce(|| vec![0.0; columns], add)
    } else {
        values
            .chunks(block)
            .map(block_sums)
            .fold(vec![0.0; columns], add)
    };
    total.into_iter().map(T::from_f64).collect()
}

impl CustomOp2 for AddBiasOp {
    fn name(&self) -> &'static str {
        "dl-add-bias"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch_real!(input.dtype(), "dl-add-bias", |T| {
            let bias = row_major::<T>(bias, bias_layout)?;
            let mut output = row_major::<T>(input, input_layout)?.into_owned();
            let add_row = |row: &mut [T]| {
                for (value, &b) in row.iter_mut().zip(bias.iter()) {
                    *value += b;
                }
            };
            if worth_parallel(output.len()) {
                output.par_chunks_mut(self.columns).for_each(add_row);
            } else {
                output.chunks_mut(self.columns).for_each(add_row);
            }
            Ok((
                T::to_cpu_storage_owned(output),
                input_layout.shape().clone(),
            ))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        bias: &Tensor,
        _output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let bias_grad = if bias.track_op() {
            dispatch_real!(output_grad.dtype(), "dl-add-bias", |T| {
                let sums =
                    with_row_major::<T, _>(output_grad, |g| Ok(column_sums(g, self.columns)))?;
                Ok(Some(tensor_from(sums, self.columns)?))
            })?
        } else {
            None
        };
        Ok((input.track_op().then(|| output_grad.clone()), bias_grad))
    }
}

/// `input + bias` with `bias` `(C)` added to every row of `input` `(…, C)`.
///
/// On the CPU in `f32` or `f64` the kernel of this module; elsewhere Candle's `broadcast_add`.
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// let input = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &Device::Cpu)?;
/// let bias = Tensor::new(&[10f32, 20.], &Device::Cpu)?;
/// let output = kernels::bias::add_bias(&input, &bias)?;
/// assert_eq!(output.to_vec2::<f32>()?, [[11., 22.], [13., 24.], [15., 26.]]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn add_bias(input: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let columns = bias.dims1()?;
    if input.dims().last() != Some(&columns) {
        candle_core::bail!(
            "add_bias: a bias of {columns} values needs an input whose last dimension is {columns}, got shape {:?}",
            input.dims()
        );
    }
    if columns > 0 && super::is_supported(&[input, bias]) {
        return input.apply_op2(bias, AddBiasOp { columns });
    }
    input.broadcast_add(bias)
}
