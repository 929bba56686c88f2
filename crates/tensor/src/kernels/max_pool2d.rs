//! Max pooling (course §2.3, §5.1) that remembers each window's winner: forward writes the
//! largest value of every k x k window and the position it came from; backward sends each
//! output's gradient to that position and nowhere else,
//!
//! ```text
//! y[i, j] = max_(u,v) x[i·s + u, j·s + v],   ∂L/∂x[w(i, j)] += ∂L/∂y[i, j]
//! ```
//!
//! with w(i, j) the first maximal position of the window (as PyTorch; a tie sends the whole
//! gradient to the first maximum, in row-major order). Overlapping windows (stride < k) add
//! their gradients where they share a winner. This also replaces Candle 0.11's `max_pool2d`,
//! whose backward is wrong (see `dl-nn`'s `pool.rs`).

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// The sizes of one pooling: feature maps, their side, window and stride.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    kernel_size: usize,
    stride: usize,
    out_height: usize,
    out_width: usize,
}

impl Geometry {
    /// The pooled maps and, for each output, the index of its winner within its input map.
    fn forward<T: Real>(&self, input: &[T]) -> (Vec<T>, Vec<u32>) {
        let (plane, out_plane) = (self.height * self.width, self.out_height * self.out_width);
        let planes = self.batch * self.channels;
        let mut output = vec![T::zero(); planes * out_plane];
        let mut winners = vec![0u32; planes * out_plane];
        let pool_plane = |((output, winners), input): ((&mut [T], &mut [u32]), &[T])| {
            if self.kernel_size == 2 && self.stride == 2 {
                self.pool_plane_2x2(input, output, winners);
            } else {
                self.pool_plane(input, output, winners);
            }
        };
        if worth_parallel(input.len()) {
            output
                .par_chunks_mut(out_plane)
                .zip(winners.par_chunks_mut(out_plane))
                .zip(input.par_chunks(plane))
                // About 16k outputs per task: enough work to pay for the task.
                .with_min_len((16_384 / out_plane.max(1)).max(1))
                .for_each(pool_plane);
        } else {
            output
                .chunks_mut(out_plane)
                .zip(winners.chunks_mut(out_plane))
                .zip(input.chunks(plane))
                .for_each(pool_plane);
        }
        (output, winners)
    }

    /// Pools one map `(H, W)` into `output` `(OH, OW)`, any window and stride.
    fn pool_plane<T: Real>(&self, input: &[T], output: &mut [T], winners: &mut [u32]) {
        let (width, kernel, stride) = (self.width, self.kernel_size, self.stride);
        let rows = output
            .chunks_exact_mut(self.out_width)
            .zip(winners.chunks_exact_mut(self.out_width));
        for (i, (output, winners)) in rows.enumerate() {
            for (j, (output, winner)) in output.iter_mut().zip(winners.iter_mut()).enumerate() {
                let top_left = i * stride * width + j * stride;
                let (mut best, mut best_index) = (input[top_left], top_left);
                for u in 0..kernel {
                    let row = top_left + u * width;
                    for (v, &value) in input[row..row + kernel].iter().enumerate() {
                        if value > best {
                            (best, best_index) = (value, row + v);
                        }
                    }
                }
                *output = best;
                *winner = best_index as u32;
            }
        }
    }

    /// [`Geometry::pool_plane`] for the common 2x2 window with stride 2: two input rows at a
    /// time, two columns at a time, no bounds checks in the loop.
    fn pool_plane_2x2<T: Real>(&self, input: &[T], output: &mut [T], winners: &mut [u32]) {
        let width = self.width;
        let rows = output
            .chunks_exact_mut(self.out_width)
            .zip(winners.chunks_exact_mut(self.out_width))
            .zip(input.chunks_exact(2 * width));
        for (i, ((output, winners), pair)) in rows.enumerate() {
            let (top, bottom) = pair.split_at(width);
            let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
            for (j, ((output, winner), (top, bottom))) in output
                .iter_mut()
                .zip(winners.iter_mut())
                .zip(windows)
                .enumerate()
            {
                let top_left = 2 * i * width + 2 * j;
                let (mut best, mut best_index) = (top[0], top_left);
                if top[1] > best {
                    (best, best_index) = (top[1], top_left + 1);
                }
                if bottom[0] > best {
                    (best, best_index) = (bottom[0], top_left + width);
                }
                if bottom[1] > best {
                    (best, best_index) = (bottom[1], top_left + width + 1);
                }
                *output = best;
                *winner = best_index as u32;
            }
        }
    }

    /// ∂L/∂x: each output gradient added at its winner.
    fn backward<T: Real>(&self, winners: &[u32], grad: &[T]) -> Vec<T> {
        let (plane, out_plane) = (self.height * self.width, self.out_height * self.out_width);
        let mut input_grad = vec![T::zero(); self.batch * self.channels * plane];
        let scatter = |(input_grad, (winners, grad)): (&mut [T], (&[u32], &[T]))| {
            for (&winner, &value) in winners.iter().zip(grad) {
                input_grad[winner as usize] += value;
            }
        };
        if worth_parallel(input_grad.len()) {
            input_grad
                .par_chunks_mut(plane)
                .zip(
                    winners
                        .par_chunks(out_plane)
                        .zip(grad.par_chunks(out_plane)),
                )
                .with_min_len((16_384 / out_plane.max(1)).max(1))
                .for_each(scatter);
        } else {
            input_grad
                .chunks_mut(plane)
                .zip(winners.chunks(out_plane).zip(grad.chunks(out_plane)))
                .for_each(scatter);
        }
        input_grad
    }
}

/// The custom op; `winners` is filled by the forward pass for the backward pass.
struct MaxPool2dOp {
    geometry: Geometry,
    winners: OnceLock<Vec<u32>>,
}

impl CustomOp1 for MaxPool2dOp {
    fn name(&self) -> &'static str {
        "dl-max-pool2d"
    }

    fn cpu_fwd(&self, input: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let shape = Shape::from((g.batch, g.channels, g.out_height, g.out_width));
        dispatch_real!(input.dtype(), "dl-max-pool2d", |T| {
            let (output, winners) = g.forward::<T>(&row_major(input, layout)?);
            // Set once: Candle runs the forward pass of an op exactly once.
            let _ = self.winners.set(winners);
            Ok((T::to_cpu_storage_owned(output), shape))
        })
    }

    fn bwd(
        &self,
        input: &Tensor,
        _output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<Option<Tensor>> {
        let g = self.geometry;
        dispatch_real!(input.dtype(), "dl-max-pool2d", |T| {
            let recomputed;
            let winners = match self.winners.get() {
                Some(winners) => winners,
                None => {
                    recomputed = with_row_major::<T, _>(input, |x| Ok(g.forward(x).1))?;
                    &recomputed
                }
            };
            let input_grad =
                with_row_major::<T, _>(output_grad, |grad| Ok(g.backward(winners, grad)))?;
            Ok(Some(tensor_from(input_grad, input.shape())?))
        })
    }
}

/// Max pooling of `input` `(N, C, H, W)` with a `kernel_size` x `kernel_size` window moved by
/// `stride` (no padding; trailing rows and columns that fill no window are ignored): the output
/// is `(N, C, (H − k)/s + 1, (W − k)/s + 1)`.
///
/// On the CPU in `f32` or `f64` the kernel of this module; elsewhere Candle's `max_pool2d`
/// (whose backward is wrong in Candle 0.11: use it for inference only).
///
/// ```
/// use dl_tensor::{kernels, Device, Tensor};
///
/// let maps = Tensor::new(&[[[[1f32, 5., 2.], [3., 4., 0.], [9., 9., 9.]]]], &Device::Cpu)?;
/// let pooled = kernels::max_pool2d::max_pool2d(&maps, 2, 2)?; // one 2x2 window fits
/// assert_eq!(pooled.flatten_all()?.to_vec1::<f32>()?, [5.]);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn max_pool2d(input: &Tensor, kernel_size: usize, stride: usize) -> Result<Tensor> {
    let (batch, channels, height, width) = input.dims4()?;
    if kernel_size == 0 || stride == 0 || height < kernel_size || width < kernel_size {
        candle_core::bail!(
            "max_pool2d: a {kernel_size}x{kernel_size} window with stride {stride} does not fit {height}x{width} maps"
        );
    }
    if !super::is_supported(&[input]) {
        return input.max_pool2d_with_stride(kernel_size, stride);
    }
    let geometry = Geometry {
        batch,
        channels,
        height,
        width,
        kernel_size,
        stride,
        out_height: (height - kernel_size) / stride + 1,
        out_width: (width - kernel_size) / stride + 1,
    };
    input.apply_op1(MaxPool2dOp {
        geometry,
        winners: OnceLock::new(),
    })
}
