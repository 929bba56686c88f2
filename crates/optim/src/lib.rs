//! dl-optim: gradient descent (course §3.1, "梯度下降算法") and the optimizers built on it.
//!
//! Training repeats one rule, w ← w − η ∂L/∂w: compute the loss, backpropagate to get the
//! gradient of every weight ([`dl_autograd::Gradients`]), move each weight a little against
//! it. This crate implements that rule and its standard refinements, each matching PyTorch's
//! `torch.optim` exactly so that results can be compared with the literature:
//! - [`Sgd`]: plain gradient descent, with optional momentum, Nesterov momentum and weight
//!   decay.
//! - [`Adam`] and [`AdamW`]: per-element step sizes from bias-corrected moment estimates, with
//!   L2 or decoupled weight decay.
//! - [`RmsProp`]: gradients divided by their running root mean square.
//! - Learning-rate schedules ([`LearningRateSchedule`]): constant, step, exponential, cosine
//!   with warm-up and reduce-on-plateau, also parsed from text ([`ScheduleSpec`]) for
//!   command lines.
//! - [`OptimizerState`]: everything an optimizer remembers, saved as safetensors, so that an
//!   interrupted run resumes with bit-identical weights.
//!
//! All optimizers implement [`Optimizer`], update `f32` or `f64` variables in place on any
//! device with tensor operations, and check their hyper-parameters, returning an
//! [`OptimError`] instead of panicking.
//!
//! ```
//! use dl_autograd::Gradients;
//! use dl_optim::{Optimizer, Sgd, SgdConfig};
//! use dl_tensor::{Device, Var};
//!
//! // Minimise L(w) = (w − 3)² by gradient descent: ∂L/∂w = 2(w − 3).
//! let weight = Var::new(&[0.0f64], &Device::Cpu)?;
//! let mut optimizer = Sgd::new(SgdConfig::new(0.1))?;
//! for _ in 0..100 {
//!     let loss = (weight.as_tensor() - 3.0)?.sqr()?.sum_all()?;
//!     optimizer.step(&Gradients::compute(&loss, [("weight", &weight)])?)?;
//! }
//! assert!((weight.as_tensor().to_vec1::<f64>()?[0] - 3.0).abs() < 1e-6);
//! # Ok::<(), dl_optim::OptimError>(())
//! ```

mod adam;
mod error;
mod hyper_parameters;
mod optimizer;
mod rmsprop;
mod schedule;
mod schedule_checkpoint;
mod schedule_spec;
mod sgd;
mod state;

pub use adam::{Adam, AdamConfig, AdamW};
pub use error::{OptimError, Result};
pub use hyper_parameters::{HyperParameters, Range};
pub use optimizer::Optimizer;
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{
    ConstantSchedule, CosineWithWarmup, ExponentialDecay, LearningRateSchedule, PlateauConfig,
    PlateauMode, ReduceOnPlateau, StepDecay, ThresholdMode,
};
pub use schedule_checkpoint::{
    restore_schedule, schedule_metadata, schedule_state_metadata, ScheduleResume, SCHEDULE_KEY,
};
pub use schedule_spec::ScheduleSpec;
pub use sgd::{Sgd, SgdConfig};
pub use state::OptimizerState;
