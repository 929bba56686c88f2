//! dl-tune: hyper-parameter search (course §8, 自动机器学习 AutoML: 自动选择模型、优化超参数).
//!
//! > 自动机器学习（AutoML）：自动选择模型、优化超参数。
//! > *AutoML: choosing the model and optimising the hyper-parameters automatically.*
//!
//! A search samples configurations from a typed [`SearchSpace`] (TOML), trains each through an
//! objective closure that reports its metric after every epoch, stops unpromising trials early,
//! and records everything in a crash-safe journal:
//!
//! | piece | file | after |
//! |---|---|---|
//! | [`SearchSpace`]: int, float (linear or log), categorical, fixed | `space.rs` | KerasTuner's `HyperParameters`, Optuna's distributions |
//! | [`Sampler`]: grid, random, TPE | `sampler.rs`, `tpe.rs` | Bergstra & Bengio 2012; Bergstra et al. 2011 |
//! | [`Pruner`]: median, ASHA | `pruner.rs` | Optuna's `MedianPruner`; Li et al. 2020 |
//! | [`Journal`]: append-only JSONL, synced; resume after a kill | `journal.rs` | Optuna's journal storage |
//! | [`Search`]: budgets, parallel trials, failures | `search.rs` | |
//! | results table, CSV, importance, history plot | `report.rs` | Optuna's `trials_dataframe`, importance |
//! | what every app's `search` command shares | `command_line.rs` | |
//! | a training callback reporting each epoch to its trial | `epoch_reports.rs` | Optuna's pruning callbacks |
//!
//! The objective is any closure, so the same search trains an MNIST classifier or a language
//! model:
//!
//! ```
//! use dl_tune::{Direction, Pruner, SamplerKind, Search, SearchSettings, SearchSpace};
//!
//! let space = SearchSpace::from_toml(r#"
//!     [x]
//!     type = "float"
//!     low = -5.0
//!     high = 5.0
//! "#)?;
//! let settings = SearchSettings {
//!     sampler: SamplerKind::Tpe,
//!     pruner: Pruner::None,
//!     direction: Direction::Minimize,
//!     metric: "loss".into(),
//!     seed: 7,
//!     trials: 40,
//!     time_limit: None,
//!     jobs: 1,
//!     threads: 1,
//! };
//! let outcome = Search::new(&space, settings)?.run(|trial| {
//!     let x = trial.number("x")?;
//!     let loss = (x - 1.5).powi(2);
//!     trial.report(1, loss)?; // one "epoch"
//!     Ok(loss)
//! })?;
//! let best = outcome.best().unwrap();
//! assert!(best.value.unwrap() < 0.05, "{best:?}");
//! # Ok::<(), dl_tune::TuneError>(())
//! ```

mod command_line;
mod epoch_reports;
mod error;
mod journal;
mod pruner;
mod report;
mod sampler;
mod search;
mod space;
mod tpe;
mod trial;

pub use command_line::{
    check_each_value, check_reserved, config_flags, describe_trial, finish_search, print_resumed,
    single_value_configs, Finish, PrunerKind, SearchFiles,
};
#[cfg(feature = "clap")]
pub use command_line::{parse_train_command, SearchOptions};
pub use epoch_reports::{ReportEpochs, StopSignal};
pub use error::{Result, TuneError};
pub use journal::{
    read_journal, replay_journal, Event, Journal, Replay, SearchHeader, JOURNAL_VERSION,
};
pub use pruner::Pruner;
pub use report::{
    parameter_importance, plot_history, ranked_trials, results_table, write_csv, Importance,
};
pub use sampler::{Sampler, SamplerKind};
pub use search::{Reporter, Search, SearchOutcome, SearchSettings, Trial, TrialStop};
pub use space::{Config, Parameter, SearchSpace, Value};
pub use tpe::TpeSettings;
pub use trial::{Direction, TrialRecord, TrialState};
