//! dl-train: the training loop (course §3.1, "梯度下降算法": gradient descent, repeated) and
//! what runs around it, so that every model of the project — the classifiers, the language
//! model, a GAN, a hyper-parameter search trial — trains with the same progress line, history,
//! NaN stop, callbacks and resumable checkpoints.
//!
//! | file | what | used by |
//! |---|---|---|
//! | `trainer.rs` | [`Trainer`]: epochs of steps, validation, history, callbacks | both apps |
//! | `step.rs` | [`TrainStep`], the step hook (burn's `TrainStep`): one batch's training | a GAN, search trials |
//! | `adversarial.rs` | [`GanStep`]: D on real and fake, then G with the non-saturating loss, for any [`AdversarialPair`] | mnist-gan, the bench |
//! | `supervised.rs` | the course's step (forward → loss → backward → optimizer) and [`evaluate`] | [`Trainer::fit`] |
//! | `run.rs` | [`Run`]: a run's files saved and put back together | apps, [`ModelCheckpoint`] |
//! | `run_plan.rs` | [`RunPlan`]: device, schedule, resumed run and outputs, settled first | apps |
//! | `callbacks.rs` | [`Callback`], [`EarlyStopping`] | apps |
//! | `model_checkpoint.rs` | [`ModelCheckpoint`]: the best / latest run after each epoch | apps |
//! | `history.rs` | [`History`]: one [`EpochRecord`] per epoch, as CSV | apps, plots |
//! | `plot.rs` | [`History::plot_png`]: the learning curves; [`plot_panels_png`]: any (x, y) curves | apps |
//! | `progress.rs` | the live progress bar or plain lines | [`Trainer`] |
//!
//! The optimizers and schedules it drives are dl-optim's; this crate adds the plotting and
//! terminal dependencies (plotters, image, indicatif) that a user who only wants Adam does not
//! need.

mod adversarial;
mod callbacks;
mod error;
mod history;
mod model_checkpoint;
mod plot;
mod progress;
mod run;
mod run_plan;
mod step;
mod supervised;
mod trainer;

pub use adversarial::{
    AdversarialPair, EpochHook, EpochMeans, GanStep, StepSettings, DISCRIMINATOR_OPTIMIZER,
    GENERATOR_OPTIMIZER,
};
pub use callbacks::{Callback, Control, EarlyStopping, TrainingContext};
pub use error::{TrainingError, TrainingResult};
pub use history::{EpochRecord, History, CSV_HEADER};
pub use model_checkpoint::{ModelCheckpoint, MONITORED_LOSS_KEY};
pub use plot::{plot_panels_png, Panel};
pub(crate) use progress::EpochProgress;
pub use progress::ProgressMode;
pub use run::{
    optimizer_state_file, optimizer_state_path, recorded_seed, training_metadata, Resumed, Run,
    EPOCH_KEY, GLOBAL_STEP_KEY, RUN_FILES_KEY, TRAINING_KEY,
};
pub use run_plan::{RunFlags, RunPlan};
pub use step::{StepOptimizer, StepOptimizerMut, StepOutput, TrainStep};
pub use supervised::{evaluate, Evaluation, IntoBatch, OPTIMIZER_NAME};
pub use trainer::{EpochBatches, NoValidation, Trainer};
