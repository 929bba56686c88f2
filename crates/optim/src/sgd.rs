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

use crate::hyper_parameters::{
    current_learning_rate, fraction, fraction_below_one, non_negative, positive,
};
use crate::optimizer::{
    check_state_shape, on_variable_device, state_tensor_name, variables_to_update,
};
use crate::{OptimError, Optimizer, OptimizerState, Result};

/// The name of SGD in saved state.
const KIND: &str = "sgd";
/// The state tensor of each variable: its momentum buffer b.
const MOMENTUM_BUFFER: &str = "momentum_buffer";

/// Hyper-parameters of [`Sgd`], set builder-style:
/// `SgdConfig::new(0.1).momentum(0.9).nesterov(true)`.
#[derive(Debug, Clone, Copy, PartialEq)]
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

    /// Sets the learning rate η.
    pub fn learning_rate(mut self, learning_rate: f64) -> Self {
        self.learning_rate = learning_rate;
        self
    }

    /// Sets the momentum μ.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening τ.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// Sets the weight decay λ.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Checks every hyper-parameter's range, and that Nesterov momentum has μ > 0 and τ = 0.
    pub fn validate(&self) -> Result<()> {
        positive("learning_rate", self.learning_rate)?;
        self.validate_all_but_learning_rate()
    }

    /// Checks every hyper-parameter's range but the learning rate's.
    fn validate_all_but_learning_rate(&self) -> Result<()> {
        fraction_below_one("momentum", self.momentum)?;
        fraction("dampening", self.dampening)?;
        non_negative("weight_decay", self.weight_decay)?;
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

    fn write_to(&self, state: &mut OptimizerState) {
        state.set_value("learning_rate", self.learning_rate);
        state.set_value("momentum", self.momentum);
        state.set_value("dampening", self.dampening);
        state.set_value("nesterov", self.nesterov);
        state.set_value("weight_decay", self.weight_decay);
    }

    fn read_from(state: &OptimizerState) -> Result<Self> {
        let config = Self {
            learning_rate: state.value("learning_rate")?,
            momentum: state.value("momentum")?,
            dampening: state.value("dampening")?,
            nesterov: state.value("nesterov")?,
            weight_decay: state.value("weight_decay")?,
        };
        // A schedule may have annealed the rate to exactly 0 by the time the state was saved.
        non_negative("learning_rate", config.learning_rate)?;
        config.validate_all_but_learning_rate()?;
        Ok(config)
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
        let mut state = OptimizerState::new(KIND);
        state.set_value(OptimizerState::STEPS_KEY, self.steps);
        self.config.write_to(&mut state);
        for (name, buffer) in &self.momentum_buffers {
            state
                .tensors
                .insert(state_tensor_name(name, MOMENTUM_BUFFER), buffer.clone());
        }
        Ok(state)
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        state.expect_kind(KIND)?;
        let config = SgdConfig::read_from(state)?;
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
