//! Batch normalisation: normalise each channel over the batch, then rescale,
//!   y = γ · (x − μ_B) / sqrt(σ²_B + ε) + β,
//! which keeps every layer's inputs on a stable scale so that deeper networks train faster and
//! tolerate larger learning rates. In training μ_B and σ²_B are the batch's statistics and
//! running averages are updated, r ← (1 − m)·r + m·batch (PyTorch's momentum convention,
//! unbiased variance for the running value); in evaluation the running averages are used, so a
//! prediction does not depend on the rest of its batch.

use dl_tensor::{kernels, DType, Tensor, Var};

use crate::{Init, Layer, LayerStructure, Mode, NnError, Path, Result};

/// Settings of batch normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// ε, added to the variance before the square root.
    pub epsilon: f64,
    /// m, the weight of the current batch in the running averages.
    pub momentum: f64,
}

impl Default for BatchNormConfig {
    /// PyTorch's defaults: ε = 1e-5, m = 0.1.
    fn default() -> Self {
        Self {
            epsilon: 1e-5,
            momentum: 0.1,
        }
    }
}

/// Batch normalisation over `(N, C)` features or `(N, C, H, W)` feature maps.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    name: String,
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    batches_tracked: Var,
    config: BatchNormConfig,
}

impl BatchNorm {
    /// Creates `path.weight` (γ = 1), `path.bias` (β = 0) and the buffers
    /// `path.running_mean`, `path.running_var` and `path.num_batches_tracked`, named as in
    /// PyTorch's `BatchNorm2d`.
    pub fn new(path: &Path, features: usize, config: BatchNormConfig) -> Result<Self> {
        if features == 0 || config.epsilon <= 0.0 || !(0.0..=1.0).contains(&config.momentum) {
            return Err(NnError::config(
                format!("batch norm '{}'", path.prefix()),
                format!(
                    "needs features > 0 (got {features}), epsilon > 0 (got {}) and momentum in [0, 1] (got {})",
                    config.epsilon, config.momentum
                ),
            ));
        }
        let device = path.device();
        Ok(Self {
            name: path.prefix().to_string(),
            weight: path.var("weight", features, Init::Ones)?,
            bias: path.var("bias", features, Init::Zeros)?,
            running_mean: path.buffer(
                "running_mean",
                Tensor::zeros(features, path.dtype(), device)?,
            )?,
            running_var: path
                .buffer("running_var", Tensor::ones(features, path.dtype(), device)?)?,
            batches_tracked: path.buffer(
                "num_batches_tracked",
                Tensor::zeros((), DType::I64, device)?,
            )?,
            config,
        })
    }

    /// γ, the learned scale of each channel.
    pub fn scale(&self) -> &Var {
        &self.weight
    }

    /// β, the learned shift of each channel.
    pub fn shift(&self) -> &Var {
        &self.bias
    }

    /// ε and the momentum.
    pub fn config(&self) -> BatchNormConfig {
        self.config
    }

    /// The per-channel (a, c) with which evaluation computes y = a · x + c:
    /// a = γ / sqrt(σ² + ε), c = β − μ · a, from the running averages. What folds the
    /// normalisation into the layer before it (w ← a · w, b ← a · b + c) for inference.
    pub fn inference_affine(&self) -> Result<(Tensor, Tensor)> {
        let scale = self.weight.as_tensor().div(
            &self
                .running_var
                .as_tensor()
                .affine(1.0, self.config.epsilon)?
                .sqrt()?,
        )?;
        let shift = self
            .bias
            .as_tensor()
            .sub(&self.running_mean.as_tensor().mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// The running mean of each channel.
    pub fn running_mean(&self) -> &Var {
        &self.running_mean
    }

    /// The running (unbiased) variance of each channel.
    pub fn running_var(&self) -> &Var {
        &self.running_var
    }

    fn features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// r ← (1 − m)·r + m·batch for the running mean and variance (the batch's variance made
    /// unbiased, × count/(count − 1), as PyTorch does), and one more batch tracked.
    fn update_running_statistics(
        &self,
        batch_mean: &Tensor,
        batch_variance: &Tensor,
        count: usize,
    ) -> Result<()> {
        let momentum = self.config.momentum;
        let unbiased = batch_variance.affine(count as f64 / (count as f64 - 1.0), 0.0)?;
        let new_mean = self
            .running_mean
            .as_tensor()
            .affine(1.0 - momentum, 0.0)?
            .add(&batch_mean.affine(momentum, 0.0)?)?;
        let new_var = self
            .running_var
            .as_tensor()
            .affine(1.0 - momentum, 0.0)?
            .add(&unbiased.affine(momentum, 0.0)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)?;
        let tracked = self.batches_tracked.as_tensor().affine(1.0, 1.0)?;
        self.batches_tracked.set(&tracked)?;
        Ok(())
    }
}

impl Layer for BatchNorm {
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor> {
        let features = self.features();
        let rank = input.rank();
        if !(rank == 2 || rank == 4) || input.dim(1)? != features {
            return Err(NnError::shape(
                &self.name,
                format!(
                    "expected (N, {features}) or (N, {features}, H, W), got shape {:?}",
                    input.dims()
                ),
            ));
        }
        let reduced: Vec<usize> = if rank == 2 { vec![0] } else { vec![0, 2, 3] };
        let broadcast_shape: Vec<usize> = if rank == 2 {
            vec![1, features]
        } else {
            vec![1, features, 1, 1]
        };
        let (mean, variance) = match mode {
            Mode::Train => {
                let count = input.elem_count() / features;
                if count < 2 {
                    return Err(NnError::shape(
                        &self.name,
                        "training needs more than one value per channel to estimate a variance (use a batch of at least 2)",
                    ));
                }
                let weight = self.weight.as_tensor();
                let bias = self.bias.as_tensor();
                if kernels::applies_to(&[input, weight, bias]) {
                    // One pass each way (dl_tensor::kernels::batch_norm) instead of Candle's
                    // strided reductions over (N, H, W).
                    let (output, batch) = kernels::batch_norm::batch_norm_train(
                        input,
                        weight,
                        bias,
                        self.config.epsilon,
                    )?;
                    self.update_running_statistics(&batch.mean, &batch.variance, count)?;
                    return Ok(output);
                }
                let mean = input.mean_keepdim(reduced.as_slice())?;
                let centred = input.broadcast_sub(&mean)?;
                let variance = centred.sqr()?.mean_keepdim(reduced.as_slice())?;
                self.update_running_statistics(
                    &mean.detach().flatten_all()?,
                    &variance.detach().flatten_all()?,
                    count,
                )?;
                (mean, variance)
            }
            Mode::Eval => (
                self.running_mean
                    .as_tensor()
                    .reshape(broadcast_shape.as_slice())?,
                self.running_var
                    .as_tensor()
                    .reshape(broadcast_shape.as_slice())?,
            ),
        };
        let normalised = input
            .broadcast_sub(&mean)?
            .broadcast_div(&variance.affine(1.0, self.config.epsilon)?.sqrt()?)?;
        let scale = self
            .weight
            .as_tensor()
            .reshape(broadcast_shape.as_slice())?;
        let shift = self.bias.as_tensor().reshape(broadcast_shape.as_slice())?;
        Ok(normalised.broadcast_mul(&scale)?.broadcast_add(&shift)?)
    }

    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::BatchNorm(self)
    }
}
