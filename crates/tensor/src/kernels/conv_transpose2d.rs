//! Transposed 2-D convolution (course §2.3, the generator of a GAN; Dumoulin & Visin, "A guide
//! to convolution arithmetic for deep learning", 2016), as the adjoint of the im2col
//! convolution of [`super::conv2d`].
//!
//! A convolution with stride s maps an `H_out x W_out` image to an `H x W` one; its transpose
//! maps back, spreading each input value over a k x k window of the output, so that a
//! generator grows 7x7 feature maps to 14x14 and 28x28:
//!
//! ```text
//! y[o, s·i + u − p, s·j + v − p] += x[c, i, j] · W[c, o, u, v]        (kept where inside)
//! H_out = (H − 1)·s − 2p + k + output_padding
//! ```
//!
//! In matrix form this is the convolution's input gradient: with `col = Wᵀ·x` (one row per
//! tap, one column per input position), `y = col2im(col) + b`. Its backward uses the
//! convolution's other two halves, with the roles of input and output exchanged:
//!
//! ```text
//! ∂L/∂x = conv2d(∂L/∂y, W)              (the convolution's forward pass, no bias)
//! ∂L/∂W = x · im2col(∂L/∂y)ᵀ            (the convolution's weight gradient)
//! ∂L/∂b = Σ_(n, i, j) ∂L/∂y
//! ```
//!
//! Candle's `conv_transpose2d` loops over every output element and tap on the CPU; this one is
//! one matrix product per image (see `cargo xtask bench kernels`).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};

use super::conv2d::{bias_or_zeros, sum_of, Geometry};
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, Real};

/// The custom op: arguments (input, weight, bias), result the transposed convolution plus bias.
/// `geometry` is the convolution it is the transpose of (its input is our output).
struct ConvTranspose2dOp {
    geometry: Geometry,
}

impl ConvTranspose2dOp {
    /// y = col2im(Wᵀ·x) + b.
    fn forward<T: Real>(&self, input: &[T], weight: &[T], bias: &[T]) -> Vec<T> {
        let g = self.geometry;
        let mut output = g.input_gradient(weight, input);
        let plane = g.height * g.width;
        for (index, channel) in output.chunks_exact_mut(plane).enumerate() {
            let b = bias[index % g.in_channels];
            if b != T::zero() {
                channel.iter_mut().for_each(|value| *value += b);
            }
        }
        output
    }

    /// ∂L/∂b: the output gradient summed over the batch and the positions of each channel.
    fn bias_gradient<T: Real>(&self, grad: &[T]) -> Vec<T> {
        let g = self.geometry;
        let plane = g.height * g.width;
        let mut sums = vec![T::zero(); g.in_channels];
        for (index, channel) in grad.chunks_exact(plane).enumerate() {
            sums[index % g.in_channels] += sum_of(channel);
        }
        sums
    }
}

impl CustomOp3 for ConvTranspose2dOp {
    fn name(&self) -> &'static str {
        "dl-conv-transpose2d"
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
        let g = self.geometry;
        let shape = Shape::from((g.batch, g.in_channels, g.height, g.width));
        dispatch_real!(input.dtype(), "dl-conv-transpose2d", |T| {
            let output = self.forward::<T>(
                &row_major(input, input_layout)?,
                &row_major(weight, weight_layout)?,
                &row_major(bias, bias_layout)?,
            );
            Ok((T::to_cpu_storage_owned(output), shape))
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
        let g = self.geometry;
        dispatch_real!(input.dtype(), "dl-conv-transpose2d", |T| {
            with_row_major::<T, _>(output_grad, |grad| {
                // Both gradients read im2col(∂L/∂y): gathered once when both are needed.
                let (need_input, need_weight) = (input.track_op(), weight.track_op());
                let mut columns = Vec::new();
                let input_grad = if need_input {
                    let values = with_row_major::<T, _>(weight, |w| {
                        let no_bias = vec![T::from_f64(0.0); g.out_channels];
                        let (values, kept) = g.forward_keeping(grad, w, &no_bias, need_weight);
                        columns = kept;
                        Ok(values)
                    })?;
                    Some(tensor_from(values, input.shape())?)
                } else {
                    None
                };
                let weight_grad = if need_weight {
                    let kept = (!columns.is_empty()).then_some(columns.as_slice());
                    let values = with_row_major::<T, _>(input, |x| {
                        Ok(g.weight_and_bias_gradients_from(grad, x, kept).0)
                    })?;
                    Some(tensor_from(values, weight.shape())?)
                } else {
                    None
                };
                let bias_grad = bias
                    .track_op()
                    .then(|| tensor_from(self.bias_gradient(grad), bias.shape()))
                    .transpose()?;
                Ok((input_grad, weight_grad, bias_grad))
            })
        })
    }
}

/// The transposed convolution of `input` `(N, C_in, H, W)` with `weight` `(C_in, C_out, k, k)`
/// (PyTorch's `ConvTranspose2d` layout) plus `bias` `(C_out)` (none when `None`): the output is
/// `(N, C_out, (H − 1)·s − 2p + k + output_padding, …)`, with `output_padding < stride`.
///
/// On the CPU in `f32` or `f64` this is the kernel of this module; elsewhere (or with
/// `DL_PLAIN_CANDLE=1`) Candle's `conv_transpose2d` followed by the bias.
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// // Stride 2 spreads each pixel over its own 2x2 block: [[1, 2]] becomes [[1, 1, 2, 2], …].
/// let image = Tensor::new(&[[[[1f32, 2.]]]], &Device::Cpu)?;
/// let kernel = Tensor::ones((1, 1, 2, 2), dl_tensor::DType::F32, &Device::Cpu)?;
/// let grown = kernels::conv_transpose2d::conv_transpose2d(&image, &kernel, None, 2, 0, 0)?;
/// assert_eq!(grown.dims(), [1, 1, 2, 4]);
/// assert_eq!(grown.flatten_all()?.to_vec1::<f32>()?, [1., 1., 2., 2., 1., 1., 2., 2.]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn conv_transpose2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let (batch, in_channels, height, width) = input.dims4()?;
    let (weight_channels, out_channels, kernel_height, kernel_width) = weight.dims4()?;
    if weight_channels != in_channels {
        candle_core::bail!(
            "conv_transpose2d: input has {in_channels} channels but the kernels read {weight_channels}"
        );
    }
    if stride == 0 || output_padding >= stride {
        candle_core::bail!(
            "conv_transpose2d: needs stride > 0 and output_padding < stride, got stride {stride} and output_padding {output_padding}"
        );
    }
    let out_size = |size: usize, kernel: usize| {
        ((size.max(1) - 1) * stride + kernel + output_padding).checked_sub(2 * padding)
    };
    let (Some(out_height), Some(out_width)) = (
        out_size(height, kernel_height),
        out_size(width, kernel_width),
    ) else {
        candle_core::bail!(
            "conv_transpose2d: padding {padding} removes the whole {kernel_height}x{kernel_width} output of a {height}x{width} image"
        );
    };
    if height == 0 || width == 0 || kernel_height == 0 || kernel_width == 0 || out_height == 0 {
        candle_core::bail!("conv_transpose2d: empty image or kernel");
    }
    let bias = &bias_or_zeros("conv_transpose2d", bias, out_channels, input)?;
    if !super::applies_to(&[input, weight, bias]) {
        return input
            .conv_transpose2d(weight, padding, output_padding, stride, 1)?
            .broadcast_add(&bias.reshape((1, (), 1, 1))?);
    }
    // The convolution this is the transpose of: from our output back to our input.
    let geometry = Geometry {
        batch,
        in_channels: out_channels,
        height: out_height,
        width: out_width,
        out_channels: in_channels,
        kernel_height,
        kernel_width,
        stride,
        padding,
        out_height: height,
        out_width: width,
    };
    input.apply_op3(weight, bias, ConvTranspose2dOp { geometry })
}
