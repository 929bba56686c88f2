//! The 2-D convolution layer (course §2.3 "卷积神经网络", used in §5.1): a small kernel slides over the image and
//! computes the same weighted sum at every position,
//!   y[o, i, j] = b[o] + Σ_c Σ_u Σ_v W[o, c, u, v] · x[c, i·s + u − p, j·s + v − p],
//! so one set of weights detects a pattern (an edge, a stroke) wherever it appears.
//!
//! On the CPU the layer runs `dl_tensor::kernels::conv2d` (im2col and matrix products, no input
//! gradient for a data input); elsewhere, or with `DL_PLAIN_CANDLE=1`, Candle's `conv2d`.

use dl_tensor::{kernels, Tensor, Var};

use crate::{Activation, Init, Layer, LayerStructure, Mode, NnError, Path, Result};

/// Shape settings of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Side of the square kernel (3 for a 3x3 kernel).
    pub kernel_size: usize,
    /// Step between neighbouring positions.
    pub stride: usize,
    /// Zeros added on each border (0 is Keras' `valid`; `kernel_size / 2` keeps the size).
    pub padding: usize,
}

impl Conv2dConfig {
    /// A `kernel_size` x `kernel_size` kernel, stride 1, no padding (Keras' default).
    pub fn new(kernel_size: usize) -> Self {
        Self {
            kernel_size,
            stride: 1,
            padding: 0,
        }
    }

    /// The same settings with another stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// The same settings with another padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// The output side for an input side: (size + 2·padding − kernel) / stride + 1, or `None`
    /// when the kernel does not fit.
    pub fn output_size(&self, size: usize) -> Option<usize> {
        let padded = size + 2 * self.padding;
        (padded >= self.kernel_size).then(|| (padded - self.kernel_size) / self.stride + 1)
    }
}

/// A 2-D convolution over `(N, C_in, H, W)` inputs: weight `(C_out, C_in, k, k)`, bias `(C_out)`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    name: String,
    weight: Var,
    bias: Option<Var>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// Creates `path.weight` (Glorot-uniform over fan-in C_in·k² and fan-out C_out·k², as
    /// Keras) and `path.bias` (zeros).
    pub fn new(
        path: &Path,
        in_channels: usize,
        out_channels: usize,
        config: Conv2dConfig,
    ) -> Result<Self> {
        Self::with_bias(path, in_channels, out_channels, config, true)
    }

    /// Like [`Conv2d::new`], choosing whether the layer has a bias (none before a batch
    /// normalisation, which would cancel it).
    pub fn with_bias(
        path: &Path,
        in_channels: usize,
        out_channels: usize,
        config: Conv2dConfig,
        bias: bool,
    ) -> Result<Self> {
        let what = || format!("conv2d layer '{}'", path.prefix());
        if in_channels == 0 || out_channels == 0 {
            return Err(NnError::config(what(), "channel counts must be positive"));
        }
        if config.kernel_size == 0 || config.stride == 0 {
            return Err(NnError::config(
                what(),
                "kernel_size and stride must be positive",
            ));
        }
        let area = config.kernel_size * config.kernel_size;
        let weight = path.var(
            "weight",
            (
                out_channels,
                in_channels,
                config.kernel_size,
                config.kernel_size,
            ),
            Init::GlorotUniform {
                fan_in: in_channels * area,
                fan_out: out_channels * area,
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

    /// The kernels, `(C_out, C_in, k, k)`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias, `(C_out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    /// The shape settings.
    pub fn config(&self) -> Conv2dConfig {
        self.config
    }

    /// Fails unless `input` is a batch of images with the layer's channels that the kernel
    /// fits.
    fn check_input(&self, input: &Tensor) -> Result<()> {
        let in_channels = self.weight.dims()[1];
        let fits = input.rank() == 4
            && input.dim(1)? == in_channels
            && self.config.output_size(input.dim(2)?).is_some()
            && self.config.output_size(input.dim(3)?).is_some();
        if !fits {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected images (N, {in_channels}, H, W) with H and W + 2·{} at least {}, got shape {:?}",
                    self.config.padding,
                    self.config.kernel_size,
                    input.dims()
                ),
            ));
        }
        Ok(())
    }
}

impl Layer for Conv2d {
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        self.check_input(input)?;
        let Conv2dConfig {
            kernel_size,
            stride,
            padding,
        } = self.config;
        let (weight, bias) = (
            self.weight.as_tensor(),
            self.bias.as_ref().map(Var::as_tensor),
        );
        if kernels::applies_to(&[input, weight]) {
            // The im2col kernel (bias included; no input gradient for a data input).
            return Ok(kernels::conv2d::conv2d(
                input, weight, bias, stride, padding,
            )?);
        }
        // The plain Candle path (GPU, other dtypes, or `DL_PLAIN_CANDLE=1`). Candle 0.11's conv2d backward takes the output padding of its transposed convolution,
        // (size + 2p − k) mod s, from the height alone, so backward fails with a shape mismatch
        // when the width's remainder differs. Then pad explicitly, leaving out the trailing rows
        // and columns no window reads, so that both remainders are 0 (same output).
        let remainder = |size: usize| (size + 2 * padding - kernel_size) % stride;
        let (height_remainder, width_remainder) =
            (remainder(input.dim(2)?), remainder(input.dim(3)?));
        let (input, padding) = if height_remainder == width_remainder {
            (input.clone(), padding)
        } else {
            let mut trimmed = input.clone();
            for (dimension, unread) in [(2, height_remainder), (3, width_remainder)] {
                let size = trimmed.dim(dimension)?;
                let kept = size.saturating_sub(unread.saturating_sub(padding));
                trimmed = trimmed.narrow(dimension, 0, kept)?.pad_with_zeros(
                    dimension,
                    padding,
                    padding.saturating_sub(unread),
                )?;
            }
            (trimmed, 0)
        };
        let output = input.conv2d(self.weight.as_tensor(), padding, stride, 1, 1)?;
        match bias {
            Some(bias) => Ok(output.broadcast_add(&bias.reshape((1, (), 1, 1))?)?),
            None => Ok(output),
        }
    }

    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::Conv2d(self)
    }

    /// With ReLU on the CPU, one fused operation (`dl_tensor::kernels::conv2d::conv2d_relu`);
    /// otherwise the convolution, then the activation.
    fn forward_activated(
        &self,
        input: &Tensor,
        mode: Mode,
        activation: Activation,
    ) -> Result<Tensor> {
        let (weight, bias) = (
            self.weight.as_tensor(),
            self.bias.as_ref().map(Var::as_tensor),
        );
        if activation == Activation::Relu && kernels::applies_to(&[input, weight]) {
            self.check_input(input)?;
            let Conv2dConfig {
                stride, padding, ..
            } = self.config;
            return Ok(kernels::conv2d::conv2d_relu(
                input, weight, bias, stride, padding,
            )?);
        }
        activation.apply(&self.forward(input, mode)?)
    }
}
