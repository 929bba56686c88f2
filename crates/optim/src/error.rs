//! The error type of dl-optim: bad hyper-parameters, unusable optimizer state, bad schedules.
//!
//! Every error says which parameter, tensor, file or text is at fault and what would be
//! accepted, so that a wrong `--learning-rate` or a stale checkpoint is fixed from the message
//! alone.

use std::path::PathBuf;

/// Everything that can go wrong while configuring an optimizer, stepping it, saving or loading
/// its state, or building a learning-rate schedule.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter outside its allowed range (or a combination that is not allowed).
    #[error("hyper-parameter {name} = {value} is not allowed: it must be {allowed}")]
    BadHyperParameter {
        /// The parameter's name, as in the config struct (`learning_rate`, `beta1`, ...).
        name: &'static str,
        /// The value that was given.
        value: String,
        /// What would be accepted.
        allowed: String,
    },
    /// Two variables handed to one step share a name, so their state would be mixed up.
    #[error("two variables are both called '{name}': optimizer state is kept by name, so names must be unique")]
    DuplicateVariable {
        /// The repeated name.
        name: String,
    },
    /// A gradient whose shape differs from its variable's.
    #[error("the gradient of '{variable}' has shape {gradient_shape:?} but the variable has shape {variable_shape:?}")]
    GradientShapeMismatch {
        /// The variable's name.
        variable: String,
        /// The variable's shape.
        variable_shape: Vec<usize>,
        /// The gradient's shape.
        gradient_shape: Vec<usize>,
    },
    /// Optimizer state saved by a different optimizer.
    #[error("the optimizer state belongs to a '{found}' optimizer, not to '{expected}': load it into the optimizer that saved it")]
    WrongOptimizerKind {
        /// The kind of the optimizer loading the state.
        expected: &'static str,
        /// The kind recorded in the state.
        found: String,
    },
    /// Optimizer state that lacks a tensor the optimizer needs.
    #[error("the optimizer state has no tensor '{tensor}'")]
    MissingStateTensor {
        /// The missing tensor's name.
        tensor: String,
    },
    /// Optimizer state holding a tensor this optimizer does not use.
    #[error(
        "the optimizer state holds a tensor '{tensor}' that a '{kind}' optimizer does not use"
    )]
    UnexpectedStateTensor {
        /// The tensor's name.
        tensor: String,
        /// The kind of the optimizer loading the state.
        kind: &'static str,
    },
    /// A state tensor whose shape does not fit its variable (the model changed since saving).
    #[error("the optimizer state tensor '{tensor}' has shape {found:?} but must have shape {expected:?} (did the model change since the state was saved?)")]
    StateShapeMismatch {
        /// The tensor's name.
        tensor: String,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        found: Vec<usize>,
    },
    /// Optimizer state that lacks a value (hyper-parameter or counter) the optimizer needs.
    #[error("the optimizer state has no value '{key}'")]
    MissingStateValue {
        /// The missing key.
        key: String,
    },
    /// A state value that cannot be read as what it should be.
    #[error("the optimizer state value '{key}' = '{value}' is not {expected}")]
    BadStateValue {
        /// The key.
        key: String,
        /// The text stored under it.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A state file that cannot be written or read: missing, not safetensors, truncated, or not
    /// an optimizer state.
    #[error("optimizer state file {}: {problem}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A state file whose content does not fit the optimizer loading it (wrong kind, missing
    /// tensor, wrong shape...): `source` says what.
    #[error("optimizer state file {}: {source}", path.display())]
    InStateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<OptimError>,
    },
    /// A learning-rate schedule description that cannot be parsed or built.
    #[error("learning-rate schedule '{given}': {problem} (examples: constant, step:10:0.5, exponential:0.95, cosine, cosine:warmup=500:min_lr=1e-5, plateau:patience=5:factor=0.5)")]
    BadSchedule {
        /// The text or schedule that was given.
        given: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A schedule that needs a validation metric at the end of an epoch did not get one.
    #[error("the {schedule} schedule needs the validation metric at the end of every epoch, but none was given")]
    MissingMetric {
        /// The schedule.
        schedule: &'static str,
    },
    /// An optimizer wrapper (pruning masks around an optimizer, say) failed in its own work.
    #[error("{wrapper}: {problem}")]
    Wrapper {
        /// What the wrapper does (`pruning`).
        wrapper: &'static str,
        /// What went wrong.
        problem: String,
    },
    /// An error from backpropagation (dl-autograd).
    #[error(transparent)]
    Autograd(#[from] dl_autograd::AutogradError),
    /// An error raised by Candle itself.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// `Result` with [`OptimError`].
pub type Result<T> = std::result::Result<T, OptimError>;
