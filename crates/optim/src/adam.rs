//! Adam and AdamW: gradient descent with per-element step sizes from running moment estimates.
//!
//! Course §3 "梯度下降" (gradient descent), refined: instead of one learning rate for every
//! weight, Adam divides a running mean of the gradient (first moment m) by the root of a
//! running mean of its square (second moment v), so each weight moves about η per step
//! whatever the scale of its gradient. Both moments start at 0 and are therefore biased towards
//! 0 early on; dividing by 1 − β^t corrects that. The rule is exactly `torch.optim.Adam` /
//! `torch.optim.AdamW` with `amsgrad = false`, `maximize = false`; for step t (counted per
//! variable), gradient g_t and weights θ:
//!
//! ```text
//! g ← g_t + λ θ                     (Adam: L2 weight decay λ, part of the gradient)
//! θ ← θ − η λ θ                     (AdamW: decoupled weight decay, before the update)
//! m ← β1 m + (1 − β1) g
//! v ← β2 v + (1 − β2) g²
//! m̂ = m / (1 − β1^t),   v̂ = v / (1 − β2^t)
//! θ ← θ − η m̂ / (√v̂ + ε)
//! ```
//!
//! The difference matters: Adam's L2 term is divided by √v̂ like the rest of the gradient, so
//! weights with large gradients are barely decayed; AdamW shrinks every weight by the same
//! factor 1 − ηλ (Loshchilov & Hutter, "Decoupled Weight Decay Regularization").
//!
//! On the CPU (in `f32` and `f64`) each variable's step is one in-place pass of
//! `dl_tensor::kernels::adam` over (θ, g, m, v), with the same arithmetic in the same order;
//! on a GPU, or with `DL_PLAIN_CANDLE=1`, it is written with tensor operations (below), which
//! make about ten temporaries per variable.

use std::collections::BTreeMap;

use dl_autograd::Gradients;
use dl_tensor::kernels::{
    self,
    adam::{adam_step, AdamMoments, AdamStep},
};
use dl_tensor::{Shape, Tensor};

use serde::{Deserialize, Serialize};

use crate::hyper_parameters::{current_learning_rate, setters, Range};
use crate::optimizer::{
    check_state_shape, on_variable_device, state_tensor_name, variables_to_update,
};
use crate::{HyperParameters, OptimError, Optimizer, OptimizerState, Result};

/// The state tensor holding the first moment m.
const EXP_AVG: &str = "exp_avg";
/// The state tensor holding the second moment v.
const EXP_AVG_SQ: &str = "exp_avg_sq";
/// The suffix of the per-variable step counter t in the state values.
const STEP: &str = "step";

/// Hyper-parameters of [`Adam`] and [`AdamW`], set builder-style:
/// `AdamConfig::default().learning_rate(3e-4)` for Adam, `AdamConfig::adamw()` for AdamW.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// The learning rate η > 0.
    pub learning_rate: f64,
    /// The decay β1 in [0, 1) of the first-moment (mean) estimate.
    pub beta1: f64,
    /// The decay β2 in [0, 1) of the second-moment (uncentered variance) estimate.
    pub beta2: f64,
    /// The ε > 0 added to √v̂ so that the division is safe.
    pub epsilon: f64,
    /// The weight decay λ >= 0: added to the gradient by [`Adam`], applied to the weights
    /// directly by [`AdamW`].
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    /// PyTorch's Adam defaults: η = 1e-3, β = (0.9, 0.999), ε = 1e-8, λ = 0.
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// PyTorch's AdamW defaults: those of Adam with weight decay λ = 1e-2.
    pub fn adamw() -> Self {
        Self {
            weight_decay: 1e-2,
            ..Self::default()
        }
    }

    /// Sets the moment decays β1 and β2.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }
}

setters!(AdamConfig {
    /// Sets the learning rate η.
    learning_rate: f64,
    /// Sets ε.
    epsilon: f64,
    /// Sets the weight decay λ.
    weight_decay: f64,
});

impl HyperParameters for AdamConfig {
    fn ranges(&self) -> Vec<(&'static str, f64, Range)> {
        vec![
            ("learning_rate", self.learning_rate, Range::Positive),
            ("beta1", self.beta1, Range::FractionBelowOne),
            ("beta2", self.beta2, Range::FractionBelowOne),
            ("epsilon", self.epsilon, Range::Positive),
            ("weight_decay", self.weight_decay, Range::NonNegative),
        ]
    }
}

/// How weight decay enters the update: the only difference between Adam and AdamW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightDecay {
    /// Adam: λ θ is added to the gradient (L2 regularisation).
    AddedToGradient,
    /// AdamW: θ ← θ (1 − η λ) before the moment update.
    Decoupled,
}

/// The moments and step counter of one variable.
#[derive(Debug, Clone)]
struct Moments {
    /// Steps taken for this variable, t.
    step: u64,
    /// m and v.
    buffers: MomentBuffers,
}

/// Where a variable's moments live.
#[derive(Debug, Clone)]
enum MomentBuffers {
    /// Tensors, for the tensor-operation path (a GPU, or `DL_PLAIN_CANDLE=1`) and as loaded
    /// from a saved state.
    Tensors {
        /// The first moment m.
        exp_avg: Tensor,
        /// The second moment v.
        exp_avg_sq: Tensor,
    },
    /// Plain CPU vectors, updated in place with the variable by the fused kernel.
    Fused {
        /// m and v.
        moments: AdamMoments,
        /// The variable's shape (for saving the moments as tensors).
        shape: Shape,
    },
}

impl MomentBuffers {
    /// m and v as tensors (copies, for the fused kernel's vectors).
    fn tensors(&self) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Tensors {
                exp_avg,
                exp_avg_sq,
            } => Ok((exp_avg.clone(), exp_avg_sq.clone())),
            Self::Fused { moments, shape } => Ok(moments.to_tensors(shape)?),
        }
    }

    /// The shape of the moments.
    fn dims(&self) -> &[usize] {
        match self {
            Self::Tensors { exp_avg, .. } => exp_avg.dims(),
            Self::Fused { shape, .. } => shape.dims(),
        }
    }
}

/// The algorithm shared by [`Adam`] and [`AdamW`].
#[derive(Debug, Clone)]
struct AdamCore {
    kind: &'static str,
    weight_decay_mode: WeightDecay,
    config: AdamConfig,
    steps: u64,
    moments: BTreeMap<String, Moments>,
}

impl AdamCore {
    fn new(kind: &'static str, weight_decay_mode: WeightDecay, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            kind,
            weight_decay_mode,
            config,
            steps: 0,
            moments: BTreeMap::new(),
        })
    }

    fn step(&mut self, gradients: &Gradients) -> Result<()> {
        current_learning_rate(self.config.learning_rate)?;
        let updates = variables_to_update(gradients)?;
        for update in &updates {
            if let Some(moments) = self.moments.get(update.name) {
                if let MomentBuffers::Tensors {
                    exp_avg,
                    exp_avg_sq,
                } = &moments.buffers
                {
                    check_state_shape(update, EXP_AVG, exp_avg)?;
                    check_state_shape(update, EXP_AVG_SQ, exp_avg_sq)?;
                } else if moments.buffers.dims() != update.variable.dims() {
                    return Err(OptimError::StateShapeMismatch {
                        tensor: state_tensor_name(update.name, EXP_AVG),
                        expected: update.variable.dims().to_vec(),
                        found: moments.buffers.dims().to_vec(),
                    });
                }
            }
        }
        let AdamConfig {
            learning_rate,
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } = self.config;
        for update in updates {
            let previous = self.moments.remove(update.name);
            let step = previous.as_ref().map_or(1, |moments| moments.step + 1);
            let parameter = update.variable.as_tensor();
            if kernels::applies_to(&[parameter, &update.gradient]) {
                // One in-place pass over (θ, g, m, v): the same arithmetic as below.
                let mut moments = match previous.map(|moments| moments.buffers) {
                    Some(MomentBuffers::Fused { moments, .. })
                        if moments.dtype() == parameter.dtype() =>
                    {
                        moments
                    }
                    Some(buffers) => {
                        let (exp_avg, exp_avg_sq) = buffers.tensors()?;
                        AdamMoments::from_tensors(&exp_avg, &exp_avg_sq, parameter.dtype())?
                    }
                    None => AdamMoments::zeros(parameter.dtype(), parameter.elem_count())?,
                };
                adam_step(
                    parameter,
                    &update.gradient,
                    &mut moments,
                    &AdamStep {
                        learning_rate,
                        beta1,
                        beta2,
                        epsilon,
                        weight_decay,
                        decoupled_weight_decay: self.weight_decay_mode == WeightDecay::Decoupled,
                        step,
                    },
                )?;
                self.moments.insert(
                    update.name.to_string(),
                    Moments {
                        step,
                        buffers: MomentBuffers::Fused {
                            moments,
                            shape: parameter.shape().clone(),
                        },
                    },
                );
                continue;
            }
            let mut value = update.value();
            let mut gradient = update.gradient.clone();
            if weight_decay != 0.0 {
                match self.weight_decay_mode {
                    WeightDecay::AddedToGradient => {
                        gradient = value.affine(weight_decay, 0.0)?.add(&gradient)?;
                    }
                    WeightDecay::Decoupled => {
                        value = value.affine(1.0 - learning_rate * weight_decay, 0.0)?;
                    }
                }
            }
            // Both moments start at zero, so the first step is m = (1 − β1) g, v = (1 − β2) g².
            let squared = gradient.sqr()?.affine(1.0 - beta2, 0.0)?;
            let scaled = gradient.affine(1.0 - beta1, 0.0)?;
            let (exp_avg, exp_avg_sq) = match previous {
                None => (scaled, squared),
                Some(previous) => {
                    let (exp_avg, exp_avg_sq) = previous.buffers.tensors()?;
                    (
                        on_variable_device(&exp_avg, update.variable)?
                            .affine(beta1, 0.0)?
                            .add(&scaled)?,
                        on_variable_device(&exp_avg_sq, update.variable)?
                            .affine(beta2, 0.0)?
                            .add(&squared)?,
                    )
                }
            };
            let bias_correction1 = 1.0 - powi(beta1, step);
            let bias_correction2 = 1.0 - powi(beta2, step);
            let step_size = learning_rate / bias_correction1;
            if step_size != 0.0 {
                // √v̂ + ε = √v / √(1 − β2^t) + ε, in one affine.
                let denominator = exp_avg_sq
                    .sqrt()?
                    .affine(1.0 / bias_correction2.sqrt(), epsilon)?;
                let change = exp_avg.div(&denominator)?.affine(step_size, 0.0)?;
                update.variable.set(&value.sub(&change)?)?;
            }
            self.moments.insert(
                update.name.to_string(),
                Moments {
                    step,
                    buffers: MomentBuffers::Tensors {
                        exp_avg,
                        exp_avg_sq,
                    },
                },
            );
        }
        self.steps += 1;
        Ok(())
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut state = OptimizerState::of(self.kind, self.steps, &self.config)?;
        for (name, moments) in &self.moments {
            state.set_value(state_tensor_name(name, STEP), moments.step);
            let (exp_avg, exp_avg_sq) = moments.buffers.tensors()?;
            state.insert_buffers(
                name,
                [(EXP_AVG, Some(&exp_avg)), (EXP_AVG_SQ, Some(&exp_avg_sq))],
            );
        }
        Ok(state)
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        state.expect_kind(self.kind)?;
        let config: AdamConfig = state.config()?;
        let steps = state.value(OptimizerState::STEPS_KEY)?;
        let mut moments = BTreeMap::new();
        for (name, mut buffers) in state.buffers_by_variable(self.kind, &[EXP_AVG, EXP_AVG_SQ])? {
            let exp_avg = OptimizerState::required_buffer(&mut buffers, &name, EXP_AVG)?;
            let exp_avg_sq = OptimizerState::required_buffer(&mut buffers, &name, EXP_AVG_SQ)?;
            if exp_avg.dims() != exp_avg_sq.dims() {
                return Err(OptimError::StateShapeMismatch {
                    tensor: state_tensor_name(&name, EXP_AVG_SQ),
                    expected: exp_avg.dims().to_vec(),
                    found: exp_avg_sq.dims().to_vec(),
                });
            }
            let step: u64 = state.value(&state_tensor_name(&name, STEP))?;
            if step == 0 {
                return Err(OptimError::BadStateValue {
                    key: state_tensor_name(&name, STEP),
                    value: step.to_string(),
                    expected: "a step count >= 1",
                });
            }
            moments.insert(
                name,
                Moments {
                    step,
                    buffers: MomentBuffers::Tensors {
                        exp_avg,
                        exp_avg_sq,
                    },
                },
            );
        }
        self.config = config;
        self.steps = steps;
        self.moments = moments;
        Ok(())
    }
}

/// β^t for a step count t (saturating: β^t is 0 long before t exceeds `i32::MAX`).
fn powi(base: f64, exponent: u64) -> f64 {
    base.powi(i32::try_from(exponent).unwrap_or(i32::MAX))
}

/// Adam (Kingma & Ba, 2015) as `torch.optim.Adam`: weight decay is L2 regularisation added to
/// the gradient. See the [module documentation](self) for the update rule.
///
/// ```
/// use dl_autograd::Gradients;
/// use dl_optim::{Adam, AdamConfig, Optimizer};
/// use dl_tensor::{Device, Tensor, Var};
///
/// // First step: m̂ = g and v̂ = g², so every weight moves by η·g/(|g| + ε) ≈ η·sign(g),
/// // whatever the gradient's size (ε matters only for tiny gradients: 0.001/(0.001 + 1e-8)
/// // is 0.99999).
/// let weight = Var::new(&[1.0f64, 1.0], &Device::Cpu)?;
/// let direction = Tensor::new(&[1000.0f64, -0.001], &Device::Cpu)?;
/// let mut optimizer = Adam::new(AdamConfig::default().learning_rate(0.1))?;
/// let loss = weight.as_tensor().mul(&direction)?.sum_all()?;
/// optimizer.step(&Gradients::compute(&loss, [("weight", &weight)])?)?;
/// let after: Vec<f64> = weight.as_tensor().to_vec1()?;
/// assert!((after[0] - 0.9).abs() < 1e-5 && (after[1] - 1.1).abs() < 1e-5);
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    core: AdamCore,
}

impl Adam {
    /// An Adam optimizer, after checking `config` (see [`AdamConfig::validate`]).
    pub fn new(config: AdamConfig) -> Result<Self> {
        Ok(Self {
            core: AdamCore::new("adam", WeightDecay::AddedToGradient, config)?,
        })
    }

    /// The hyper-parameters in use.
    pub fn config(&self) -> &AdamConfig {
        &self.core.config
    }

    /// How many times [`Optimizer::step`] has run.
    pub fn steps(&self) -> u64 {
        self.core.steps
    }
}

/// AdamW (Loshchilov & Hutter, 2019) as `torch.optim.AdamW`: weight decay shrinks the weights,
/// θ ← θ (1 − η λ), separately from the Adam update. See the [module documentation](self).
///
/// ```
/// use dl_autograd::Gradients;
/// use dl_optim::{AdamConfig, AdamW, Optimizer};
/// use dl_tensor::{Device, Tensor, Var};
///
/// // With a zero gradient, m = v = 0 and the Adam part does nothing: only the decay acts,
/// // θ ← θ (1 − ηλ) = 2 · (1 − 0.1 · 0.5) = 1.9.
/// let weight = Var::new(&[2.0f64], &Device::Cpu)?;
/// let mut optimizer = AdamW::new(AdamConfig::adamw().learning_rate(0.1).weight_decay(0.5))?;
/// let loss = weight.as_tensor().mul(&Tensor::new(&[0.0f64], &Device::Cpu)?)?.sum_all()?;
/// optimizer.step(&Gradients::compute(&loss, [("weight", &weight)])?)?;
/// assert!((weight.as_tensor().to_vec1::<f64>()?[0] - 1.9).abs() < 1e-12);
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AdamW {
    core: AdamCore,
}

impl AdamW {
    /// An AdamW optimizer, after checking `config` (see [`AdamConfig::validate`]); start from
    /// [`AdamConfig::adamw`] for PyTorch's defaults.
    pub fn new(config: AdamConfig) -> Result<Self> {
        Ok(Self {
            core: AdamCore::new("adamw", WeightDecay::Decoupled, config)?,
        })
    }

    /// The hyper-parameters in use.
    pub fn config(&self) -> &AdamConfig {
        &self.core.config
    }

    /// How many times [`Optimizer::step`] has run.
    pub fn steps(&self) -> u64 {
        self.core.steps
    }
}

/// Implements [`Optimizer`] for a wrapper of [`AdamCore`].
macro_rules! delegate_to_core {
    ($optimizer:ty) => {
        impl Optimizer for $optimizer {
            fn step(&mut self, gradients: &Gradients) -> Result<()> {
                self.core.step(gradients)
            }

            fn learning_rate(&self) -> f64 {
                self.core.config.learning_rate
            }

            fn set_learning_rate(&mut self, learning_rate: f64) {
                self.core.config.learning_rate = learning_rate;
            }

            fn state(&self) -> Result<OptimizerState> {
                self.core.state()
            }

            fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
                self.core.load_state(state)
            }
        }
    };
}

delegate_to_core!(Adam);
delegate_to_core!(AdamW);
