//! The training loop and what runs around it: callbacks (early stopping, checkpointing), the
//! history of epochs, and progress output.

mod callbacks;
mod error;
mod history;
mod plot;
mod progress;
mod trainer;

pub use callbacks::{
    optimizer_state_path, Callback, Control, EarlyStopping, ModelCheckpoint, TrainingContext,
};
pub use error::{TrainingError, TrainingResult};
pub use history::{EpochRecord, History, CSV_HEADER};
pub(crate) use progress::EpochProgress;
pub use progress::ProgressMode;
pub use trainer::{evaluate, Evaluation, IntoBatch, Trainer};
