//! Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.
//!
//! Course §3 "梯度下降" (gradient descent): w ← w − η ∂L/∂w, computed on a mini-batch (the
//! "stochastic" part). Momentum lets the step remember the previous direction, which damps
//! oscillation across a narrow valley and speeds travel along it. The rule is exactly
//! `torch.optim.SGD` (with `maximize = false`); for step t, gradient g_t and weights θ:
//!
//! ```text
//! g ← g_t + λ θ                              (weight decay λ, if λ ≠ 0)
//! b ← g                                      (first step, if μ ≠ 0)
//! b ← μ b + (1 − τ) g                        (later steps: momentum μ, dampening τ)
//! g ← g + μ b   (Nesterov)   or   g ← b      (plain momentum)
//! θ ← θ − η g
//! ```
//!
//! With μ = 0 and λ = 0 this is plain gradient descent, θ ← θ − η g.

use std::collections::BTreeMap;

use dl_autograd::Gradients;
use dl_tensor::Tensor;

use serde::{Deserialize, Serialize};

use crate::hyper_parameters::{current_learning_rate, setters, Range};
use crate::optimizer::{check_state_shape, on_variable_device, variables_to_update};
use crate::{HyperParameters, OptimError, Optimizer, OptimizerState, Result};

/// The name of SGD in saved state.
const KIND: &str = "sgd";
/// The state tensor of each variable: its momentum buffer b.
const MOMENTUM_BUFFER: &str = "momentum_buffer";

/// Hyper-parameters of [`Sgd`], set builder-style:
/// `SgdConfig::new(0.1).momentum(0.9).nesterov(true)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// The learning rate η > 0.
    pub learning_rate: f64,
    /// The momentum μ in [0, 1); 0 (the default) turns momentum off.
    pub momentum: f64,
    /// The dampening τ in [0, 1]: later gradients enter the buffer scaled by (1 − τ).
    pub dampening: f64,
    /// Nesterov momentum, g ← g + μ b (needs μ > 0 and τ = 0).
    pub nesterov: bool,
    /// The L2 weight decay λ >= 0, added to the gradient as λ θ.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    /// PyTorch's defaults: η = 0.001, no momentum, no dampening, no weight decay.
    fn default() -> Self {
        Self::new(1e-3)
    }
}

impl SgdConfig {
    /// Plain gradient descent with learning rate η.
    pub fn new(learning_rate: f64) -> Self {
        Self {
            learning_rate,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

setters!(SgdConfig {
    /// Sets the learning rate η.
    learning_rate: f64,
    /// Sets the momentum μ.
    momentum: f64,
    /// Sets the dampening τ.
    dampening: f64,
    /// Turns Nesterov momentum on or off.
    nesterov: bool,
    /// Sets the weight decay λ.
    weight_decay: f64,
});

impl HyperParameters for SgdConfig {
    fn ranges(&self) -> Vec<(&'static str, f64, Range)> {
        vec![
            ("learning_rate", self.learning_rate, Range::Positive),
            ("momentum", self.momentum, Range::FractionBelowOne),
            ("dampening", self.dampening, Range::Fraction),
            ("weight_decay", self.weight_decay, Range::NonNegative),
        ]
    }

    /// Nesterov momentum needs μ > 0 and τ = 0.
    fn check_combinations(&self) -> Result<()> {
        if self.nesterov && !(self.momentum > 0.0 && self.dampening == 0.0) {
            return Err(OptimError::BadHyperParameter {
                name: "nesterov",
                value: "true".into(),
                allowed: format!(
                    "false unless momentum > 0 and dampening = 0 (momentum is {}, dampening {})",
                    self.momentum, self.dampening
                ),
            });
        }
        Ok(())
    }
}

/// Stochastic gradient descent with optional (Nesterov) momentum and weight decay, as
/// `torch.optim.SGD`; see the [module documentation](self) for the update rule.
///
/// ```
/// use dl_autograd::Gradients;
/// use dl_optim::{Optimizer, Sgd, SgdConfig};
/// use dl_tensor::{Device, Tensor, Var};
///
/// // loss = Σ w·g with g = [1, -2] has gradient g. With η = 0.1 and μ = 0.5:
/// // step 1: b = g = [1, -2],               w = [0, 0] − 0.1 b = [-0.1, 0.2]
/// // step 2: b = 0.5 b + g = [1.5, -3],     w = [-0.1, 0.2] − 0.1 b = [-0.25, 0.5]
/// let weight = Var::new(&[0.0f64, 0.0], &Device::Cpu)?;
/// let direction = Tensor::new(&[1.0f64, -2.0], &Device::Cpu)?;
/// let mut optimizer = Sgd::new(SgdConfig::new(0.1).momentum(0.5))?;
/// for _ in 0..2 {
///     let loss = weight.as_tensor().mul(&direction)?.sum_all()?;
///     optimizer.step(&Gradients::compute(&loss, [("weight", &weight)])?)?;
/// }
/// let after: Vec<f64> = weight.as_tensor().to_vec1()?;
/// assert!((after[0] + 0.25).abs() < 1e-12 && (after[1] - 0.5).abs() < 1e-12);
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    steps: u64,
    momentum_buffers: BTreeMap<String, Tensor>,
}

impl Sgd {
    /// An SGD optimizer, after checking `config` (see [`SgdConfig::validate`]).
    pub fn new(config: SgdConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            steps: 0,
            momentum_buffers: BTreeMap::new(),
        })
    }

    /// The hyper-parameters in use.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// How many times [`Optimizer::step`] has run.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, gradients: &Gradients) -> Result<()> {
        current_learning_rate(self.config.learning_rate)?;
        let updates = variables_to_update(gradients)?;
        for update in &updates {
            if let Some(buffer) = self.momentum_buffers.get(update.name) {
                check_state_shape(update, MOMENTUM_BUFFER, buffer)?;
            }
        }
        let SgdConfig {
            learning_rate,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } = self.config;
        for update in updates {
            let value = update.value();
            let mut gradient = update.gradient.clone();
            if weight_decay != 0.0 {
                gradient = value.affine(weight_decay, 0.0)?.add(&gradient)?;
            }
            if momentum != 0.0 {
                let buffer = match self.momentum_buffers.get(update.name) {
                    None => gradient.clone(),
                    Some(previous) => {
                        let decayed =
                            on_variable_device(previous, update.variable)?.affine(momentum, 0.0)?;
                        if dampening == 0.0 {
                            decayed.add(&gradient)?
                        } else {
                            decayed.add(&gradient.affine(1.0 - dampening, 0.0)?)?
                        }
                    }
                };
                gradient = if nesterov {
                    buffer.affine(momentum, 0.0)?.add(&gradient)?
                } else {
                    buffer.clone()
                };
                self.momentum_buffers
                    .insert(update.name.to_string(), buffer);
            }
            if learning_rate != 0.0 {
                let updated = value.sub(&gradient.affine(learning_rate, 0.0)?)?;
                update.variable.set(&updated)?;
            }
        }
        self.steps += 1;
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) {
        self.config.learning_rate = learning_rate;
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut state = OptimizerState::of(KIND, self.steps, &self.config)?;
        for (name, buffer) in &self.momentum_buffers {
            state.insert_buffers(name, [(MOMENTUM_BUFFER, Some(buffer))]);
        }
        Ok(state)
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        state.expect_kind(KIND)?;
        let config: SgdConfig = state.config()?;
        let steps = state.value(OptimizerState::STEPS_KEY)?;
        let momentum_buffers = state
            .buffers_by_variable(KIND, &[MOMENTUM_BUFFER])?
            .into_iter()
            .filter_map(|(name, mut buffers)| Some((name, buffers.remove(MOMENTUM_BUFFER)?)))
            .collect();
        *self = Self {
            config,
            steps,
            momentum_buffers,
        };
        Ok(())
    }
}
