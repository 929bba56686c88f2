//! RMSprop: gradient descent with each gradient divided by the root of its running mean square.
//!
//! Course §3 "梯度下降" (gradient descent), refined (Hinton, Coursera lecture 6e): a weight whose
//! gradients are large gets a small step and one whose gradients are small a large step, by
//! dividing each gradient by √v, where v is an exponential moving average of g². The centered
//! variant divides by an estimate of the gradient's variance, v − (mean g)², instead. The rule
//! is exactly `torch.optim.RMSprop` (with `maximize = false`); for gradient g_t and weights θ:
//!
//! ```text
//! g ← g_t + λ θ                          (weight decay λ, if λ ≠ 0)
//! v ← α v + (1 − α) g²                   (v starts at 0)
//! ṽ = v                                  (plain)
//! ḡ ← α ḡ + (1 − α) g,   ṽ = v − ḡ²      (centered; ḡ starts at 0)
//! b ← μ b + g / (√ṽ + ε),  θ ← θ − η b   (momentum μ > 0; b starts at 0)
//! θ ← θ − η g / (√ṽ + ε)                 (no momentum)
//! ```

use std::collections::BTreeMap;

use dl_autograd::Gradients;
use dl_tensor::Tensor;

use serde::{Deserialize, Serialize};

use crate::hyper_parameters::{current_learning_rate, setters, Range};
use crate::optimizer::{
    check_state_shape, on_variable_device, state_tensor_name, variables_to_update,
};
use crate::{HyperParameters, OptimError, Optimizer, OptimizerState, Result};

/// The name of RMSprop in saved state.
const KIND: &str = "rmsprop";
/// The state tensor holding the running mean square v.
const SQUARE_AVG: &str = "square_avg";
/// The state tensor holding the running mean gradient ḡ (centered only).
const GRAD_AVG: &str = "grad_avg";
/// The state tensor holding the momentum buffer b (momentum only).
const MOMENTUM_BUFFER: &str = "momentum_buffer";

/// Hyper-parameters of [`RmsProp`], set builder-style:
/// `RmsPropConfig::default().momentum(0.9).centered(true)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RmsPropConfig {
    /// The learning rate η > 0.
    pub learning_rate: f64,
    /// The smoothing constant α in [0, 1) of the running averages.
    pub alpha: f64,
    /// The ε > 0 added to √ṽ so that the division is safe.
    pub epsilon: f64,
    /// The L2 weight decay λ >= 0, added to the gradient as λ θ.
    pub weight_decay: f64,
    /// The momentum μ in [0, 1); 0 (the default) turns momentum off.
    pub momentum: f64,
    /// Divide by an estimate of the gradient's variance instead of its mean square.
    pub centered: bool,
}

impl Default for RmsPropConfig {
    /// PyTorch's defaults: η = 0.01, α = 0.99, ε = 1e-8, no weight decay, no momentum, not
    /// centered.
    fn default() -> Self {
        Self {
            learning_rate: 1e-2,
            alpha: 0.99,
            epsilon: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

setters!(RmsPropConfig {
    /// Sets the learning rate η.
    learning_rate: f64,
    /// Sets the smoothing constant α.
    alpha: f64,
    /// Sets ε.
    epsilon: f64,
    /// Sets the weight decay λ.
    weight_decay: f64,
    /// Sets the momentum μ.
    momentum: f64,
    /// Turns the centered variant on or off.
    centered: bool,
});

impl HyperParameters for RmsPropConfig {
    fn ranges(&self) -> Vec<(&'static str, f64, Range)> {
        vec![
            ("learning_rate", self.learning_rate, Range::Positive),
            ("alpha", self.alpha, Range::FractionBelowOne),
            ("epsilon", self.epsilon, Range::Positive),
            ("weight_decay", self.weight_decay, Range::NonNegative),
            ("momentum", self.momentum, Range::FractionBelowOne),
        ]
    }
}

#[derive(Debug, Clone)]
struct Averages {
    /// The running mean square v.
    square_avg: Tensor,
    /// The running mean ḡ (centered only).
    grad_avg: Option<Tensor>,
    /// The momentum buffer b (momentum only).
    momentum_buffer: Option<Tensor>,
}

/// RMSprop as `torch.optim.RMSprop`; see the [module documentation](self) for the update rule.
///
/// ```
/// use dl_autograd::Gradients;
/// use dl_optim::{Optimizer, RmsProp, RmsPropConfig};
/// use dl_tensor::{Device, Tensor, Var};
///
/// // First step: v = (1 − α) g², so the step is η g / (√(1 − α) |g| + ε) ≈ η / √(1 − α) · sign(g)
/// // = 0.01 / √0.01 = 0.1 for α = 0.99, whatever the gradient's size.
/// let weight = Var::new(&[0.0f64, 0.0], &Device::Cpu)?;
/// let direction = Tensor::new(&[50.0f64, -0.5], &Device::Cpu)?;
/// let mut optimizer = RmsProp::new(RmsPropConfig::default())?;
/// let loss = weight.as_tensor().mul(&direction)?.sum_all()?;
/// optimizer.step(&Gradients::compute(&loss, [("weight", &weight)])?)?;
/// let after: Vec<f64> = weight.as_tensor().to_vec1()?;
/// assert!((after[0] + 0.1).abs() < 1e-6 && (after[1] - 0.1).abs() < 1e-6);
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RmsProp {
    config: RmsPropConfig,
    steps: u64,
    averages: BTreeMap<String, Averages>,
}

impl RmsProp {
    /// An RMSprop optimizer, after checking `config` (see [`RmsPropConfig::validate`]).
    pub fn new(config: RmsPropConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            steps: 0,
            averages: BTreeMap::new(),
        })
    }

    /// The hyper-parameters in use.
    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }

    /// How many times [`Optimizer::step`] has run.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

/// `decay · previous + addition`, or `addition` when there is no previous value (a running
/// average that starts at zero).
fn accumulate(
    previous: Option<&Tensor>,
    decay: f64,
    addition: Tensor,
    variable: &dl_tensor::Var,
) -> Result<Tensor> {
    Ok(match previous {
        None => addition,
        Some(previous) => on_variable_device(previous, variable)?
            .affine(decay, 0.0)?
            .add(&addition)?,
    })
}

impl Optimizer for RmsProp {
    fn step(&mut self, gradients: &Gradients) -> Result<()> {
        current_learning_rate(self.config.learning_rate)?;
        let updates = variables_to_update(gradients)?;
        for update in &updates {
            if let Some(averages) = self.averages.get(update.name) {
                check_state_shape(update, SQUARE_AVG, &averages.square_avg)?;
                if let Some(grad_avg) = &averages.grad_avg {
                    check_state_shape(update, GRAD_AVG, grad_avg)?;
                }
                if let Some(buffer) = &averages.momentum_buffer {
                    check_state_shape(update, MOMENTUM_BUFFER, buffer)?;
                }
            }
        }
        let RmsPropConfig {
            learning_rate,
            alpha,
            epsilon,
            weight_decay,
            momentum,
            centered,
        } = self.config;
        for update in updates {
            let value = update.value();
            let variable = update.variable;
            let previous = self.averages.get(update.name);
            let mut gradient = update.gradient.clone();
            if weight_decay != 0.0 {
                gradient = value.affine(weight_decay, 0.0)?.add(&gradient)?;
            }
            let square_avg = accumulate(
                previous.map(|averages| &averages.square_avg),
                alpha,
                gradient.sqr()?.affine(1.0 - alpha, 0.0)?,
                variable,
            )?;
            let grad_avg = if centered {
                Some(accumulate(
                    previous.and_then(|averages| averages.grad_avg.as_ref()),
                    alpha,
                    gradient.affine(1.0 - alpha, 0.0)?,
                    variable,
                )?)
            } else {
                None
            };
            let root = match &grad_avg {
                Some(grad_avg) => square_avg.sub(&grad_avg.sqr()?)?.sqrt()?,
                None => square_avg.sqrt()?,
            };
            let normalised = gradient.div(&root.affine(1.0, epsilon)?)?;
            let momentum_buffer = if momentum > 0.0 {
                Some(accumulate(
                    previous.and_then(|averages| averages.momentum_buffer.as_ref()),
                    momentum,
                    normalised.clone(),
                    variable,
                )?)
            } else {
                None
            };
            if learning_rate != 0.0 {
                let direction = momentum_buffer.as_ref().unwrap_or(&normalised);
                variable.set(&value.sub(&direction.affine(learning_rate, 0.0)?)?)?;
            }
            self.averages.insert(
                update.name.to_string(),
                Averages {
                    square_avg,
                    grad_avg,
                    momentum_buffer,
                },
            );
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
        for (name, averages) in &self.averages {
            state.insert_buffers(
                name,
                [
                    (SQUARE_AVG, Some(&averages.square_avg)),
                    (GRAD_AVG, averages.grad_avg.as_ref()),
                    (MOMENTUM_BUFFER, averages.momentum_buffer.as_ref()),
                ],
            );
        }
        Ok(state)
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        state.expect_kind(KIND)?;
        let config: RmsPropConfig = state.config()?;
        let steps = state.value(OptimizerState::STEPS_KEY)?;
        let mut averages = BTreeMap::new();
        let grouped = state.buffers_by_variable(KIND, &[SQUARE_AVG, GRAD_AVG, MOMENTUM_BUFFER])?;
        for (name, mut buffers) in grouped {
            let square_avg = OptimizerState::required_buffer(&mut buffers, &name, SQUARE_AVG)?;
            // The other buffers are required exactly when the configuration uses them.
            let mut take = |buffer: &str, needed: bool| match (buffers.remove(buffer), needed) {
                (Some(tensor), true) => Ok(Some(tensor)),
                (None, false) => Ok(None),
                (None, true) => Err(OptimError::MissingStateTensor {
                    tensor: state_tensor_name(&name, buffer),
                }),
                (Some(_), false) => Err(OptimError::UnexpectedStateTensor {
                    tensor: state_tensor_name(&name, buffer),
                    kind: KIND,
                }),
            };
            let grad_avg = take(GRAD_AVG, config.centered)?;
            let momentum_buffer = take(MOMENTUM_BUFFER, config.momentum > 0.0)?;
            for (buffer, tensor) in [(GRAD_AVG, &grad_avg), (MOMENTUM_BUFFER, &momentum_buffer)] {
                if let Some(tensor) = tensor {
                    if tensor.dims() != square_avg.dims() {
                        return Err(OptimError::StateShapeMismatch {
                            tensor: state_tensor_name(&name, buffer),
                            expected: square_avg.dims().to_vec(),
                            found: tensor.dims().to_vec(),
                        });
                    }
                }
            }
            averages.insert(
                name,
                Averages {
                    square_avg,
                    grad_avg,
                    momentum_buffer,
                },
            );
        }
        *self = Self {
            config,
            steps,
            averages,
        };
        Ok(())
    }
}
