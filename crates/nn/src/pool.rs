//! Max pooling (course §2.3 and §5.1, the CNN): keep the largest activation of each `k x k` window. It halves
//! the resolution (for k = 2), keeps the strongest response of each feature, and makes the
//! network tolerant to small shifts. Gradients flow only to the maximum of each window.

use dl_tensor::Tensor;

use crate::{Layer, Mode, NnError, Result};

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
        Ok(input.max_pool2d_with_stride(self.kernel_size, self.stride)?)
    }

    fn kind(&self) -> &'static str {
        "MaxPooling2D"
    }
}
