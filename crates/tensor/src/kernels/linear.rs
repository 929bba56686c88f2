//! A fully connected layer's product and bias as one operation (course §1: every neuron of a
//! layer computes w·x + b; a Dense layer does it for the whole batch at once):
//!
//! ```text
//! forward:   Y = X Wᵀ + b                     X (rows, in), W (out, in), b (out)
//! backward:  ∂L/∂X = ∂L/∂Y W    ∂L/∂W = ∂L/∂Yᵀ X    ∂L/∂b = Σ_rows ∂L/∂Y
//! ```
//!
//! Written as `x.matmul(&w.t())` + `broadcast_add(b)`, Candle's backward computes ∂L/∂Wᵀ as a
//! (in, out) product, hands it through the transpose as a strided view, and then adds that view
//! into a freshly zeroed (out, in) tensor element by element through its strides: for the course
//! CNN's 5408 → 128 layer that is two extra passes over 2.8 MB per step, a quarter of its
//! training time at batch 32. Here ∂L/∂W comes out of one matrix product already in W's layout.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};

use super::bias::column_sums;
use super::gemm::{matmul_into, MatrixRef};
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, Real};

/// The custom op on (X (rows, in), W (out, in), b (out)).
struct LinearOp {
    rows: usize,
    inputs: usize,
    outputs: usize,
}

/// Y = X Wᵀ + b for `input` X (rows, in) and `weight` W (out, in), row-major (rows, out): every
/// row starts as b and the product is added in place. Also the input projection of
/// `lstm_sequence`, whose W is a view into its packed parameters.
pub(crate) fn forward_rows<T: Real>(
    input: MatrixRef<'_, T>,
    weight: MatrixRef<'_, T>,
    bias: &[T],
) -> Vec<T> {
    let mut output = Vec::with_capacity(input.rows() * weight.rows());
    for _ in 0..input.rows() {
        output.extend_from_slice(bias);
    }
    matmul_into(
        &mut output,
        input,
        weight.t(),
        true,
        rayon::current_num_threads(),
    );
    output
}

/// The backward pass of [`forward_rows`] from ∂L/∂Y (rows, out), row-major: (∂L/∂X (rows, in)
/// when `input_grad`, ∂L/∂W (out, in), ∂L/∂b (out)).
pub(crate) fn backward_rows<T: Real>(
    input: MatrixRef<'_, T>,
    weight: MatrixRef<'_, T>,
    output_grad: &[T],
    input_grad: bool,
) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
    let threads = rayon::current_num_threads();
    let (outputs, inputs) = (weight.rows(), weight.columns());
    let grad = MatrixRef::row_major(output_grad, input.rows(), outputs);
    let mut weight_grad = vec![T::zero(); outputs * inputs];
    matmul_into(&mut weight_grad, grad.t(), input, false, threads);
    let input_grad = input_grad.then(|| {
        let mut input_grad = vec![T::zero(); input.rows() * inputs];
        matmul_into(&mut input_grad, grad, weight, false, threads);
        input_grad
    });
    (input_grad, weight_grad, column_sums(output_grad, outputs))
}

impl LinearOp {
    fn input<'a, T>(&self, input: &'a [T]) -> MatrixRef<'a, T> {
        MatrixRef::row_major(input, self.rows, self.inputs)
    }

    fn weight<'a, T>(&self, weight: &'a [T]) -> MatrixRef<'a, T> {
        MatrixRef::row_major(weight, self.outputs, self.inputs)
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "dl-linear"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch_real!(input.dtype(), "dl-linear", |T| {
            let output = forward_rows::<T>(
                self.input(&row_major(input, input_layout)?),
                self.weight(&row_major(weight, weight_layout)?),
                &row_major(bias, bias_layout)?,
            );
            Ok((
                T::to_cpu_storage_owned(output),
                Shape::from((self.rows, self.outputs)),
            ))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        dispatch_real!(input.dtype(), "dl-linear", |T| {
            let (input_grad, weight_grad, bias_grad) = with_row_major::<T, _>(input, |x| {
                with_row_major::<T, _>(weight, |w| {
                    with_row_major::<T, _>(output_grad, |g| {
                        Ok(backward_rows(
                            self.input(x),
                            self.weight(w),
                            g,
                            input.track_op(),
                        ))
                    })
                })
            })?;
            Ok((
                input_grad
                    .map(|grad| tensor_from(grad, input.shape()))
                    .transpose()?,
                weight
                    .track_op()
                    .then(|| tensor_from(weight_grad, weight.shape()))
                    .transpose()?,
                bias.track_op()
                    .then(|| tensor_from(bias_grad, bias.shape()))
                    .transpose()?,
            ))
        })
    }
}

/// `input · weightᵀ + bias` for `input` `(rows, in)`, `weight` `(out, in)` and `bias` `(out)`:
/// `(rows, out)`, PyTorch's `F.linear`.
///
/// The tensors must be on the CPU, all `f32` or all `f64` (see [`super::is_supported`]).
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// let input = Tensor::new(&[[1f32, 2.]], &Device::Cpu)?;
/// let weight = Tensor::new(&[[1f32, 0.], [1., 1.], [0., -1.]], &Device::Cpu)?;
/// let bias = Tensor::new(&[0.5f32, 0., 10.], &Device::Cpu)?;
/// let output = kernels::linear::linear(&input, &weight, &bias)?;
/// assert_eq!(output.to_vec2::<f32>()?, [[1.5, 3., 8.]]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn linear(input: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (rows, inputs) = input.dims2()?;
    let (outputs, weight_inputs) = weight.dims2()?;
    if weight_inputs != inputs || bias.dims() != [outputs] {
        candle_core::bail!(
            "linear: an input of shape {:?} needs a weight (out, {inputs}) and a bias (out), got {:?} and {:?}",
            input.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    if !super::is_supported(&[input, weight, bias]) {
        candle_core::bail!("linear: expected CPU tensors, all f32 or all f64");
    }
    if rows == 0 || inputs == 0 || outputs == 0 {
        return input.matmul(&weight.t()?)?.broadcast_add(bias);
    }
    input.apply_op3(
        weight,
        bias,
        LinearOp {
            rows,
            inputs,
            outputs,
        },
    )
}
