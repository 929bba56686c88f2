//! 2-D convolution (course §2.3) as im2col and matrix products, with the backward pass computed
//! only for the operands that need it.
//!
//! For one image, gather every k x k input window into a column of a matrix ("im2col"):
//! `col` has one row per kernel tap (c, u, v) and one column per output position (i, j),
//!
//! ```text
//! col[(c, u, v), (i, j)] = x[c, i·s + u − p, j·s + v − p]      (0 outside the image)
//! ```
//!
//! so that the convolution of all `C_out` kernels is one matrix product, y = W·col + b, with W
//! the weights flattened to `(C_out, C_in·k·k)`. Backward, with g = ∂L/∂y of the image:
//!
//! ```text
//! ∂L/∂W += g · colᵀ        (summed over the batch)
//! ∂L/∂b += Σ_(i,j) g
//! ∂L/∂col = Wᵀ · g,  then ∂L/∂x = col2im(∂L/∂col) (each tap's value added back to its pixel)
//! ```
//!
//! The input gradient is the expensive, often useless part: a network's first convolution reads
//! data, which needs no gradient. Candle computes it anyway; here it is computed only when the
//! input tracks gradients. Images are processed in parallel (rayon), one matrix product each.
//! [`conv2d_relu`] applies the ReLU that follows a convolution in the same operation.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::gemm::{matmul_into, MatrixRef};
use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, Real};

/// The sizes of one convolution: batch, channels, image and kernel sides, stride and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) in_channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) out_channels: usize,
    pub(super) kernel_height: usize,
    pub(super) kernel_width: usize,
    pub(super) stride: usize,
    pub(super) padding: usize,
    pub(super) out_height: usize,
    pub(super) out_width: usize,
}

impl Geometry {
    /// Output positions per image, OH·OW.
    fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Kernel taps per output value, C_in·kh·kw.
    fn taps(&self) -> usize {
        self.in_channels * self.kernel_height * self.kernel_width
    }

    /// Input values per image, C_in·H·W.
    fn image_size(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// A 1x1 kernel with stride 1 and no padding: `col` is the image itself.
    fn is_pointwise(&self) -> bool {
        self.kernel_height == 1 && self.kernel_width == 1 && self.stride == 1 && self.padding == 0
    }

    /// The output indices `lo..hi` (along a side of `out` positions) whose input index
    /// `o·s + tap − p` falls inside `0..size`.
    fn valid_range(&self, tap: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let lo = if p > tap { (p - tap).div_ceil(s) } else { 0 };
        let hi = if size + p > tap {
            ((size - 1 + p - tap) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(out), hi.max(lo.min(out)))
    }

    /// Fills `col` (`taps` x `positions`, row-major) from one image `(C_in, H, W)`.
    fn im2col<T: Real>(&self, image: &[T], col: &mut [T]) {
        let (ow, positions) = (self.out_width, self.positions());
        let mut rows = col.chunks_exact_mut(positions);
        for channel in image.chunks_exact(self.height * self.width) {
            for u in 0..self.kernel_height {
                let (i_lo, i_hi) = self.valid_range(u, self.height, self.out_height);
                for v in 0..self.kernel_width {
                    let (j_lo, j_hi) = self.valid_range(v, self.width, ow);
                    let row = rows.next().expect("taps rows");
                    row[..i_lo * ow].fill(T::zero());
                    row[i_hi * ow..].fill(T::zero());
                    for i in i_lo..i_hi {
                        let source = &channel[(i * self.stride + u - self.padding) * self.width..]
                            [..self.width];
                        let target = &mut row[i * ow..(i + 1) * ow];
                        target[..j_lo].fill(T::zero());
                        target[j_hi..].fill(T::zero());
                        if self.stride == 1 {
                            let start = j_lo + v - self.padding;
                            target[j_lo..j_hi].copy_from_slice(&source[start..start + j_hi - j_lo]);
                        } else if j_hi > j_lo {
                            let start = j_lo * self.stride + v - self.padding;
                            for (value, &pixel) in target[j_lo..j_hi]
                                .iter_mut()
                                .zip(source[start..].iter().step_by(self.stride))
                            {
                                *value = pixel;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds `col` (`taps` x `positions`) back onto one image gradient `(C_in, H, W)`: the
    /// transpose of [`Geometry::im2col`].
    fn col2im<T: Real>(&self, col: &[T], image: &mut [T]) {
        let ow = self.out_width;
        let mut rows = col.chunks_exact(self.positions());
        for channel in image.chunks_exact_mut(self.height * self.width) {
            for u in 0..self.kernel_height {
                let (i_lo, i_hi) = self.valid_range(u, self.height, self.out_height);
                for v in 0..self.kernel_width {
                    let (j_lo, j_hi) = self.valid_range(v, self.width, ow);
                    let row = rows.next().expect("taps rows");
                    for i in i_lo..i_hi {
                        let target = &mut channel
                            [(i * self.stride + u - self.padding) * self.width..][..self.width];
                        let source = &row[i * ow..(i + 1) * ow];
                        if self.stride == 1 {
                            let start = j_lo + v - self.padding;
                            for (pixel, value) in target[start..start + j_hi - j_lo]
                                .iter_mut()
                                .zip(&source[j_lo..j_hi])
                            {
                                *pixel += *value;
                            }
                        } else if j_hi > j_lo {
                            let start = j_lo * self.stride + v - self.padding;
                            for (pixel, value) in target[start..]
                                .iter_mut()
                                .step_by(self.stride)
                                .zip(&source[j_lo..j_hi])
                            {
                                *pixel += *value;
                            }
                        }
                    }
                }
            }
        }
    }

    /// y = W·col + b for every image of `input`, and, when `keep_columns`, every image's `col`
    /// one after the other (what the weight gradient reads again; empty otherwise, or for a
    /// pointwise kernel, whose `col` is the image).
    pub(super) fn forward_keeping<T: Real>(
        &self,
        input: &[T],
        weight: &[T],
        bias: &[T],
        keep_columns: bool,
    ) -> (Vec<T>, Vec<T>) {
        let (positions, taps) = (self.positions(), self.taps());
        let weight = MatrixRef::row_major(weight, self.out_channels, taps);
        let mut output = vec![T::zero(); self.batch * self.out_channels * positions];
        let col_size = if self.is_pointwise() {
            0
        } else {
            taps * positions
        };
        let one_image = |image: usize, output: &mut [T], col: &mut [T], threads: usize| {
            let image = &input[image * self.image_size()..][..self.image_size()];
            for (row, &b) in output.chunks_exact_mut(positions).zip(bias) {
                row.fill(b);
            }
            let col = if self.is_pointwise() {
                image
            } else {
                self.im2col(image, col);
                col
            };
            let col = MatrixRef::row_major(col, taps, positions);
            matmul_into(output, weight, col, true, threads);
        };
        if !keep_columns || col_size == 0 {
            for_each_image(
                &mut output,
                self.out_channels * positions,
                col_size,
                one_image,
            );
            return (output, Vec::new());
        }
        let mut columns = vec![T::zero(); self.batch * col_size];
        let chunk = self.out_channels * positions;
        let threads = rayon::current_num_threads();
        if threads > 1 && self.batch >= threads {
            output
                .par_chunks_mut(chunk)
                .zip(columns.par_chunks_mut(col_size))
                .enumerate()
                .for_each(|(image, (output, col))| one_image(image, output, col, 1));
        } else {
            for (image, (output, col)) in output
                .chunks_mut(chunk)
                .zip(columns.chunks_mut(col_size))
                .enumerate()
            {
                one_image(image, output, col, threads);
            }
        }
        (output, columns)
    }

    /// ∂L/∂W and ∂L/∂b, summed over the batch; each thread sums a contiguous share of the
    /// images and the shares are added at the end.
    /// Each image's `col` is read from `columns` when given (as [`Geometry::forward_keeping`]
    /// kept them) instead of gathered again.
    pub(super) fn weight_and_bias_gradients_from<T: Real>(
        &self,
        input: &[T],
        grad: &[T],
        columns: Option<&[T]>,
    ) -> (Vec<T>, Vec<T>) {
        let (positions, taps) = (self.positions(), self.taps());
        let weight_size = self.out_channels * taps;
        let shares = rayon::current_num_threads().clamp(1, self.batch.max(1));
        let share_length = self.batch.div_ceil(shares);
        let share = |share: usize| {
            let mut weight_grad = vec![T::zero(); weight_size];
            let mut bias_grad = vec![T::zero(); self.out_channels];
            let mut col = vec![
                T::zero();
                if self.is_pointwise() || columns.is_some() {
                    0
                } else {
                    taps * positions
                }
            ];
            let first = share * share_length;
            let threads = if shares == 1 {
                rayon::current_num_threads()
            } else {
                1
            };
            for image in first..(first + share_length).min(self.batch) {
                let image_input = &input[image * self.image_size()..][..self.image_size()];
                let image_grad =
                    &grad[image * self.out_channels * positions..][..self.out_channels * positions];
                let col = if self.is_pointwise() {
                    image_input
                } else if let Some(columns) = columns {
                    &columns[image * taps * positions..][..taps * positions]
                } else {
                    self.im2col(image_input, &mut col);
                    &col
                };
                matmul_into(
                    &mut weight_grad,
                    MatrixRef::row_major(image_grad, self.out_channels, positions),
                    MatrixRef::row_major(col, taps, positions).t(),
                    true,
                    threads,
                );
                for (sum, row) in bias_grad.iter_mut().zip(image_grad.chunks_exact(positions)) {
                    *sum += sum_of(row);
                }
            }
            (weight_grad, bias_grad)
        };
        let add = |(mut w1, mut b1): (Vec<T>, Vec<T>), (w2, b2): (Vec<T>, Vec<T>)| {
            w1.iter_mut().zip(w2).for_each(|(a, b)| *a += b);
            b1.iter_mut().zip(b2).for_each(|(a, b)| *a += b);
            (w1, b1)
        };
        if shares == 1 {
            share(0)
        } else {
            (0..shares)
                .into_par_iter()
                .map(share)
                .collect::<Vec<_>>()
                .into_iter()
                .reduce(add)
                .expect("at least one share")
        }
    }

    /// ∂L/∂x = col2im(Wᵀ·g) for every image.
    pub(super) fn input_gradient<T: Real>(&self, weight: &[T], grad: &[T]) -> Vec<T> {
        let (positions, taps) = (self.positions(), self.taps());
        let weight_t = MatrixRef::row_major(weight, self.out_channels, taps).t();
        let mut input_grad = vec![T::zero(); self.batch * self.image_size()];
        let one_image = |image: usize, input_grad: &mut [T], col: &mut [T], threads: usize| {
            let image_grad =
                &grad[image * self.out_channels * positions..][..self.out_channels * positions];
            let image_grad = MatrixRef::row_major(image_grad, self.out_channels, positions);
            if self.is_pointwise() {
                matmul_into(input_grad, weight_t, image_grad, false, threads);
            } else {
                matmul_into(col, weight_t, image_grad, false, threads);
                self.col2im(col, input_grad);
            }
        };
        let col_size = if self.is_pointwise() {
            0
        } else {
            taps * positions
        };
        for_each_image(&mut input_grad, self.image_size(), col_size, one_image);
        input_grad
    }
}

/// Runs `work(image, chunk, scratch, gemm_threads)` for every `chunk_size` chunk of `output`,
/// one image per rayon task with a scratch buffer of `scratch_size` per thread, or one after
/// the other (letting the matrix product use the threads) when there are fewer images than
/// threads.
fn for_each_image<T: Real>(
    output: &mut [T],
    chunk_size: usize,
    scratch_size: usize,
    work: impl Fn(usize, &mut [T], &mut [T], usize) + Sync,
) {
    if chunk_size == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let images = output.len() / chunk_size;
    if threads > 1 && images >= threads {
        output.par_chunks_mut(chunk_size).enumerate().for_each_init(
            || vec![T::zero(); scratch_size],
            |scratch, (image, chunk)| work(image, chunk, scratch, 1),
        );
    } else {
        let mut scratch = vec![T::zero(); scratch_size];
        for (image, chunk) in output.chunks_mut(chunk_size).enumerate() {
            work(image, chunk, &mut scratch, threads);
        }
    }
}

/// Σ values, in eight interleaved partial sums: independent additions the compiler can put in
/// one vector register, instead of one long chain of dependent ones.
pub(super) fn sum_of<T: Real>(values: &[T]) -> T {
    let mut partial = [T::zero(); 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (sum, &value) in partial.iter_mut().zip(chunk) {
            *sum += value;
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(T::zero(), |total, &value| total + value);
    partial.iter().fold(tail, |total, &value| total + value)
}

/// y ← max(0, y).
fn relu_in_place<T: Real>(values: &mut [T]) {
    for value in values {
        *value = Real::max(*value, T::zero());
    }
}

/// ∂L/∂y ⊙ [y > 0], from the gradient and the output y of a ReLU.
fn relu_gradient<T: Real>(grad: &[T], output: &[T]) -> Vec<T> {
    grad.iter()
        .zip(output)
        .map(|(&grad, &y)| if y > T::zero() { grad } else { T::zero() })
        .collect()
}

/// The custom op: arguments (input, weight, bias), result the convolution plus bias, through
/// a ReLU when `relu`.
struct Conv2dOp {
    geometry: Geometry,
    relu: bool,
    /// Whether the forward pass keeps every image's `col` for the weight gradient (when the
    /// weights track gradients): one gather per image instead of two.
    keep_columns: bool,
    columns: std::sync::Mutex<Option<CpuStorage>>,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "dl-conv2d"
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
        let shape = Shape::from((g.batch, g.out_channels, g.out_height, g.out_width));
        dispatch_real!(input.dtype(), "dl-conv2d", |T| {
            let (mut output, columns) = g.forward_keeping::<T>(
                &row_major(input, input_layout)?,
                &row_major(weight, weight_layout)?,
                &row_major(bias, bias_layout)?,
                self.keep_columns,
            );
            if !columns.is_empty() {
                *self.columns.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(T::to_cpu_storage_owned(columns));
            }
            if self.relu {
                relu_in_place(&mut output);
            }
            Ok((T::to_cpu_storage_owned(output), shape))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry;
        let (need_input, need_weight, need_bias) =
            (input.track_op(), weight.track_op(), bias.track_op());
        dispatch_real!(input.dtype(), "dl-conv2d", |T| {
            // Through a ReLU, the gradient passes where the output is positive:
            // ∂L/∂(W·col + b) = ∂L/∂y ⊙ [y > 0].
            let masked;
            let output_grad = if self.relu {
                let values = with_row_major::<T, _>(output_grad, |grad| {
                    with_row_major::<T, _>(output, |y| Ok(relu_gradient(grad, y)))
                })?;
                masked = tensor_from(values, output.shape())?;
                &masked
            } else {
                output_grad
            };
            with_row_major::<T, _>(output_grad, |grad| {
                let input_grad = if need_input {
                    let values = with_row_major::<T, _>(weight, |w| Ok(g.input_gradient(w, grad)))?;
                    Some(tensor_from(values, input.shape())?)
                } else {
                    None
                };
                let (weight_grad, bias_grad) = if need_weight || need_bias {
                    let mut kept = self
                        .columns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    let columns = kept.as_mut().and_then(T::storage_mut).map(|c| &*c);
                    let (w, b) = with_row_major::<T, _>(input, |x| {
                        Ok(g.weight_and_bias_gradients_from(x, grad, columns))
                    })?;
                    (
                        need_weight
                            .then(|| tensor_from(w, weight.shape()))
                            .transpose()?,
                        need_bias
                            .then(|| tensor_from(b, bias.shape()))
                            .transpose()?,
                    )
                } else {
                    (None, None)
                };
                Ok((input_grad, weight_grad, bias_grad))
            })
        })
    }
}

/// `bias`, checked to be `(channels)`, or zeros of that shape (in `like`'s type and device).
pub(super) fn bias_or_zeros(
    what: &str,
    bias: Option<&Tensor>,
    channels: usize,
    like: &Tensor,
) -> Result<Tensor> {
    let Some(bias) = bias else {
        return Tensor::zeros(channels, like.dtype(), like.device());
    };
    if bias.dims() != [channels] {
        candle_core::bail!(
            "{what}: the bias must have shape ({channels}), got {:?}",
            bias.dims()
        );
    }
    Ok(bias.clone())
}

/// The convolution of `input` `(N, C_in, H, W)` with `weight` `(C_out, C_in, kh, kw)` plus
/// `bias` `(C_out)` (none when `None`), with `stride` and zero `padding` on every border: the
/// output is `(N, C_out, (H + 2p − kh)/s + 1, (W + 2p − kw)/s + 1)`.
///
/// On the CPU in `f32` or `f64` this is the im2col kernel of this module (gradients for every
/// operand that tracks them, the input's only when it does); elsewhere it is Candle's
/// `conv2d` followed by the bias.
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// // A 2x2 kernel of ones sums each 2x2 window: [[1, 2], [3, 4]] sums to 10.
/// let image = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
/// let kernel = Tensor::ones((1, 1, 2, 2), dl_tensor::DType::F32, &Device::Cpu)?;
/// let bias = Tensor::new(&[0.5f32], &Device::Cpu)?;
/// let sum = kernels::conv2d::conv2d(&image, &kernel, Some(&bias), 1, 0)?;
/// assert_eq!(sum.flatten_all()?.to_vec1::<f32>()?, [10.5]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    convolve(input, weight, bias, stride, padding, false)
}

/// [`conv2d`] followed by a ReLU, max(0, ·), in one operation: the layer the course's CNN
/// starts with. Fusing saves the ReLU's own pass forward and its four backward (comparison,
/// conversion, product and the gradient's accumulation), each over the whole output.
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// // Kernels +1 and −1 on [[1, 2], [3, 4]]: sums 10 and −10, the second cut to 0.
/// let image = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
/// let kernels = Tensor::new(&[[[[1f32, 1.], [1., 1.]]], [[[-1., -1.], [-1., -1.]]]], &Device::Cpu)?;
/// let features = kernels::conv2d::conv2d_relu(&image, &kernels, None, 1, 0)?;
/// assert_eq!(features.flatten_all()?.to_vec1::<f32>()?, [10., 0.]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn conv2d_relu(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    convolve(input, weight, bias, stride, padding, true)
}

/// [`conv2d`], then a ReLU when `relu`.
fn convolve(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    let (batch, in_channels, height, width) = input.dims4()?;
    let (out_channels, weight_channels, kernel_height, kernel_width) = weight.dims4()?;
    if weight_channels != in_channels {
        candle_core::bail!(
            "conv2d: input has {in_channels} channels but the kernels read {weight_channels}"
        );
    }
    if stride == 0 {
        candle_core::bail!("conv2d: the stride must be positive");
    }
    let fits = |size: usize, kernel: usize| size + 2 * padding >= kernel && kernel > 0;
    if !fits(height, kernel_height) || !fits(width, kernel_width) {
        candle_core::bail!(
            "conv2d: a {kernel_height}x{kernel_width} kernel does not fit a {height}x{width} image padded by {padding}"
        );
    }
    let bias = bias_or_zeros("conv2d", bias, out_channels, input)?;
    let bias = &bias;
    if !super::is_supported(&[input, weight, bias]) {
        let output = input
            .conv2d(weight, padding, stride, 1, 1)?
            .broadcast_add(&bias.reshape((1, (), 1, 1))?)?;
        return if relu { output.relu() } else { Ok(output) };
    }
    let geometry = Geometry {
        batch,
        in_channels,
        height,
        width,
        out_channels,
        kernel_height,
        kernel_width,
        stride,
        padding,
        out_height: (height + 2 * padding - kernel_height) / stride + 1,
        out_width: (width + 2 * padding - kernel_width) / stride + 1,
    };
    let op = Conv2dOp {
        geometry,
        relu,
        keep_columns: weight.track_op(),
        columns: std::sync::Mutex::new(None),
    };
    input.apply_op3(weight, bias, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(size: usize, kernel: usize, stride: usize, padding: usize) -> Geometry {
        let out = (size + 2 * padding - kernel) / stride + 1;
        Geometry {
            batch: 1,
            in_channels: 1,
            height: size,
            width: size,
            out_channels: 1,
            kernel_height: kernel,
            kernel_width: kernel,
            stride,
            padding,
            out_height: out,
            out_width: out,
        }
    }

    #[test]
    fn im2col_reads_the_padded_window_of_each_position() {
        // A 3x3 image 1..9 padded by 1, a 3x3 kernel, stride 2: outputs at (0,0), (0,1),
        // (1,0), (1,1) centred on pixels (0,0), (0,2), (2,0), (2,2). The centre tap (1,1) reads
        // those pixels: 1, 3, 7, 9; the top-left tap reads (−1,−1) (padding), (−1,1), (1,−1),
        // (1,1): 0, 0, 0, 5.
        let g = geometry(3, 3, 2, 1);
        let image: Vec<f32> = (1..=9).map(|value| value as f32).collect();
        let mut col = vec![f32::NAN; 9 * 4];
        g.im2col(&image, &mut col);
        assert_eq!(&col[4 * 4..5 * 4], [1., 3., 7., 9.]);
        assert_eq!(&col[0..4], [0., 0., 0., 5.]);
        // col2im is its transpose: adding a col of ones counts how many windows read each
        // pixel (a corner one window, an edge middle two, the centre all four).
        let mut counts = vec![0f32; 9];
        g.col2im(&[1f32; 36], &mut counts);
        assert_eq!(counts, [1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    }

    #[test]
    fn the_valid_range_excludes_padding_and_the_far_border() {
        // Side 5, kernel 3, stride 2, padding 1: outputs 0..3 read input o·2 + tap − 1.
        let g = geometry(5, 3, 2, 1);
        assert_eq!(g.valid_range(0, 5, 3), (1, 3)); // o = 0 reads −1
        assert_eq!(g.valid_range(1, 5, 3), (0, 3));
        assert_eq!(g.valid_range(2, 5, 3), (0, 2)); // o = 2 reads 5
    }
}
