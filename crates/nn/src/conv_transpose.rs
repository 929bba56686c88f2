//! The transposed convolution layer (course §2.3 生成对抗网络: how a generator grows an image;
//! Radford et al., "Unsupervised Representation Learning with Deep Convolutional Generative
//! Adversarial Networks", 2015): each input value is spread over a k x k window of the output,
//!   y[o, s·i + u − p, s·j + v − p] += W[c, o, u, v] · x[c, i, j],   plus b[o],
//! so a stride of 2 doubles the image's sides (7x7 → 14x14 → 28x28 in the MNIST DCGAN).
//!
//! It is the adjoint of [`Conv2d`](crate::Conv2d) with the same settings: the gradient a
//! convolution sends back to its input is a transposed convolution of its output gradient.
//! On the CPU the layer runs `dl_tensor::kernels::conv_transpose2d`; elsewhere, or with
//! `DL_PLAIN_CANDLE=1`, Candle's `conv_transpose2d`.

use dl_tensor::{kernels, Tensor, Var};

use crate::{Init, Layer, Mode, NnError, Path, Result};

/// Shape settings of a transposed convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Side of the square kernel.
    pub kernel_size: usize,
    /// Step between the windows of neighbouring input values (the growth factor).
    pub stride: usize,
    /// Rows and columns cut from each border of the output.
    pub padding: usize,
    /// Extra rows and columns added at the bottom and right (less than the stride), to reach
    /// an output size a stride cannot otherwise give.
    pub output_padding: usize,
}

impl ConvTranspose2dConfig {
    /// A `kernel_size` x `kernel_size` kernel, stride 1, no padding.
    pub fn new(kernel_size: usize) -> Self {
        Self {
            kernel_size,
            stride: 1,
            padding: 0,
            output_padding: 0,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Sets the output padding.
    pub fn output_padding(mut self, output_padding: usize) -> Self {
        self.output_padding = output_padding;
        self
    }

    /// The output side for an input side: (size − 1)·s − 2p + k + output_padding, `None` when
    /// the padding removes everything.
    ///
    /// ```
    /// use dl_nn::ConvTranspose2dConfig;
    ///
    /// // The DCGAN generator's 4x4, stride 2, padding 1: 7 → 14 → 28.
    /// let grow = ConvTranspose2dConfig::new(4).stride(2).padding(1);
    /// assert_eq!(grow.output_size(7), Some(14));
    /// assert_eq!(grow.output_size(14), Some(28));
    /// ```
    pub fn output_size(&self, size: usize) -> Option<usize> {
        let full = (size.checked_sub(1)? * self.stride)
            .checked_add(self.kernel_size + self.output_padding)?;
        full.checked_sub(2 * self.padding).filter(|&out| out > 0)
    }
}

/// A transposed convolution over `(N, C_in, H, W)` inputs: weight `(C_in, C_out, k, k)` (as
/// PyTorch's `ConvTranspose2d`), optional bias `(C_out)`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    name: String,
    weight: Var,
    bias: Option<Var>,
    config: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// Creates `path.weight` and, when `bias`, `path.bias` (zeros). The weights start as
    /// PyTorch's do, U(−1/√f, 1/√f) with f = C_out·k² (PyTorch reads the fan-in from the
    /// weight's second dimension); a DCGAN overwrites them with N(0, 0.02).
    pub fn new(
        path: &Path,
        in_channels: usize,
        out_channels: usize,
        config: ConvTranspose2dConfig,
        bias: bool,
    ) -> Result<Self> {
        let what = || format!("conv_transpose2d layer '{}'", path.prefix());
        if in_channels == 0 || out_channels == 0 {
            return Err(NnError::config(what(), "channel counts must be positive"));
        }
        if config.kernel_size == 0 || config.stride == 0 || config.output_padding >= config.stride {
            return Err(NnError::config(
                what(),
                format!(
                    "needs kernel_size > 0, stride > 0 and output_padding < stride, got {config:?}"
                ),
            ));
        }
        let area = config.kernel_size * config.kernel_size;
        let weight = path.var(
            "weight",
            (
                in_channels,
                out_channels,
                config.kernel_size,
                config.kernel_size,
            ),
            Init::FanInUniform {
                fan_in: out_channels * area,
            },
        )?;
        let bias = if bias {
            Some(path.var("bias", out_channels, Init::Zeros)?)
        } else {
            None
        };
        Ok(Self {
            name: path.prefix().to_string(),
            weight,
            bias,
            config,
        })
    }

    /// The kernels, `(C_in, C_out, k, k)`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias, `(C_out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    /// The shape settings.
    pub fn config(&self) -> ConvTranspose2dConfig {
        self.config
    }
}

impl Layer for ConvTranspose2d {
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        let in_channels = self.weight.dims()[0];
        let fits = input.rank() == 4
            && input.dim(1)? == in_channels
            && self.config.output_size(input.dim(2)?).is_some()
            && self.config.output_size(input.dim(3)?).is_some();
        if !fits {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected feature maps (N, {in_channels}, H, W) that padding {} leaves an output of, got shape {:?}",
                    self.config.padding,
                    input.dims()
                ),
            ));
        }
        let ConvTranspose2dConfig {
            stride,
            padding,
            output_padding,
            ..
        } = self.config;
        Ok(kernels::conv_transpose2d::conv_transpose2d(
            input,
            self.weight.as_tensor(),
            self.bias.as_ref().map(Var::as_tensor),
            stride,
            padding,
            output_padding,
        )?)
    }

    fn kind(&self) -> &'static str {
        "Conv2DTranspose"
    }
}
