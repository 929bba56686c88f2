//! Max pooling (course §2.3 and §5.1, the CNN): keep the largest activation of each `k x k` window. It halves
//! the resolution (for k = 2), keeps the strongest response of each feature, and makes the
//! network tolerant to small shifts. Gradients flow only to the maximum of each window.
//!
//! On the CPU the layer runs `dl_tensor::kernels::max_pool2d`, which records each window's
//! winner in the forward pass and sends the gradient there; elsewhere, or with
//! `DL_PLAIN_CANDLE=1`, it is built from Candle operations (see `forward`).

use dl_tensor::{kernels, Tensor};

use crate::{Layer, LayerStructure, Mode, NnError, Result};

/// Max pooling over `(N, C, H, W)` with a square window.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    kernel_size: usize,
    stride: usize,
}

impl MaxPool2d {
    /// A `kernel_size` window moved by `kernel_size` (non-overlapping, as Keras' default).
    pub fn new(kernel_size: usize) -> Result<Self> {
        Self::with_stride(kernel_size, kernel_size)
    }

    /// A window of `kernel_size` moved by `stride`.
    pub fn with_stride(kernel_size: usize, stride: usize) -> Result<Self> {
        if kernel_size == 0 || stride == 0 {
            return Err(NnError::config(
                "max pooling",
                format!("kernel_size ({kernel_size}) and stride ({stride}) must be positive"),
            ));
        }
        Ok(Self {
            kernel_size,
            stride,
        })
    }

    /// The window side.
    pub fn kernel_size(&self) -> usize {
        self.kernel_size
    }

    /// The step between windows.
    pub fn stride(&self) -> usize {
        self.stride
    }
}

impl Layer for MaxPool2d {
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        if input.rank() != 4 || input.dim(2)? < self.kernel_size || input.dim(3)? < self.kernel_size
        {
            return Err(NnError::shape(
                "max_pooling2d",
                format!(
                    "expected feature maps (N, C, H, W) with H, W >= {}, got shape {:?}",
                    self.kernel_size,
                    input.dims()
                ),
            ));
        }
        if kernels::applies_to(&[input]) {
            // The kernel that remembers each window's winner (first maximum on ties, as
            // PyTorch).
            return Ok(kernels::max_pool2d::max_pool2d(
                input,
                self.kernel_size,
                self.stride,
            )?);
        }
        // The plain Candle path (GPU, other dtypes, or `DL_PLAIN_CANDLE=1`).
        // Candle 0.11's own max_pool2d has a wrong backward pass (it multiplies the gradient by
        // the share of maxima in the window, 1/4 for a 2x2 window, instead of dividing by their
        // number) and none at all when kernel_size != stride. So the pooling is built from ops
        // whose gradients are right; either way the gradient flows to each window's maximum
        // (tied maxima each get all of it below, a share of it in the overlapping case).
        let (batch, channels, height, width) = input.dims4()?;
        let (kernel, stride) = (self.kernel_size, self.stride);
        if kernel == stride {
            // Non-overlapping windows: crop to whole windows, give each window its own two
            // axes, and take the maximum over them.
            let (rows, columns) = (height / kernel, width / kernel);
            return Ok(input
                .narrow(2, 0, rows * kernel)?
                .narrow(3, 0, columns * kernel)?
                .reshape((batch, channels, rows, kernel, columns, kernel))?
                .max(5)?
                .max(3)?);
        }
        // Overlapping (or gapped) windows: the elements at offset (u, v) of every window form a
        // strided grid (picked with index_select); the pooled map is the elementwise maximum of
        // the k² grids.
        let grid = |size: usize, offset: usize| {
            let count = (size - kernel) / stride + 1;
            let indices: Vec<u32> = (0..count)
                .map(|index| (index * stride + offset) as u32)
                .collect();
            Tensor::from_vec(indices, count, input.device())
        };
        let mut pooled: Option<Tensor> = None;
        for row_offset in 0..kernel {
            let rows = input.index_select(&grid(height, row_offset)?, 2)?;
            for column_offset in 0..kernel {
                let candidates = rows.index_select(&grid(width, column_offset)?, 3)?;
                pooled = Some(match pooled {
                    Some(largest) => largest.maximum(&candidates)?,
                    None => candidates,
                });
            }
        }
        Ok(pooled.expect("kernel_size is positive"))
    }

    fn kind(&self) -> &'static str {
        "MaxPooling2D"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::MaxPool2d(self)
    }
}
