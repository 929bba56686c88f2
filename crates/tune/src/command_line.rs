//! What every app's `search` subcommand shares (course §8, 自动机器学习): the options (with the
//! `clap` feature), a configuration as `train` flags, one line per finished trial, and the end of
//! a search — the results table, the CSV, the history plot, the parameter importance and the
//! best configuration saved as TOML and printed as a ready `train` command.

use std::path::{Path, PathBuf};

use crate::{
    parameter_importance, plot_history, results_table, write_csv, Config, Pruner, Result,
    SearchOutcome, SearchSpace, TrialRecord, TrialState, TuneError, Value,
};

/// The pruners a command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PrunerKind {
    /// Train every trial to the end.
    None,
    /// Stop a trial below the median of completed trials at the same epoch (Optuna's default).
    Median,
    /// Asynchronous successive halving: keep the best third at epochs 1, 3, 9, ...
    Asha,
}

impl PrunerKind {
    /// The pruner with its default settings.
    pub fn pruner(self) -> Pruner {
        match self {
            Self::None => Pruner::None,
            Self::Median => Pruner::median(),
            Self::Asha => Pruner::asha(),
        }
    }

    /// The pruner with its default settings, except that with `warmup` given it never stops a
    /// trial before that many epochs (see [`Pruner::with_warmup`]).
    pub fn pruner_with_warmup(self, warmup: Option<usize>) -> Pruner {
        let pruner = self.pruner();
        warmup.map_or(pruner, |epochs| pruner.with_warmup(epochs))
    }
}

/// The options of a `search` subcommand, flattened into each app's own arguments (which add
/// their data, validation and `--retrain` options).
#[cfg(feature = "clap")]
#[derive(Debug, Clone, clap::Args)]
pub struct SearchOptions {
    /// The search space (TOML; default: the app's search-space.toml, built in).
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,
    /// The most trials (a resumed journal's included).
    #[arg(long, default_value_t = 30)]
    pub trials: usize,
    /// Start no trial after this many minutes.
    #[arg(long, value_name = "M")]
    pub minutes: Option<f64>,
    /// How configurations are chosen.
    #[arg(long, value_enum, default_value_t = crate::SamplerKind::Tpe)]
    pub sampler: crate::SamplerKind,
    /// When trials stop early.
    #[arg(long, value_enum, default_value_t = PrunerKind::Median)]
    pub pruner: PrunerKind,
    /// Epochs every trial trains before it may be stopped: the median rule's warmup (default 0)
    /// or ASHA's first rung (default 1). Raise it when slow starters (e.g. augmented models)
    /// are cut against fast ones.
    #[arg(long, value_name = "EPOCHS")]
    pub prune_warmup: Option<usize>,
    /// Trials at once, each on threads / jobs threads.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Seed of the sampler and the validation split; trial k trains with seed + k.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The journal (JSONL); the results CSV, history PNG and best configuration go beside it
    /// (default: checkpoints/APP-search/journal.jsonl).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Continue the search in the journal (after a crash or a kill, or with a larger --trials).
    #[arg(long)]
    pub resume: bool,
}

#[cfg(feature = "clap")]
impl SearchOptions {
    /// The search's settings: these options, the direction and metric of the app's objective,
    /// and the compute threads to share between trials.
    pub fn settings(
        &self,
        direction: crate::Direction,
        metric: &str,
        threads: usize,
    ) -> crate::SearchSettings {
        crate::SearchSettings {
            sampler: self.sampler,
            pruner: self.pruner.pruner_with_warmup(self.prune_warmup),
            direction,
            metric: metric.to_string(),
            seed: self.seed,
            trials: self.trials,
            time_limit: self
                .minutes
                .map(|minutes| std::time::Duration::from_secs_f64(60.0 * minutes)),
            jobs: self.jobs.max(1),
            threads,
        }
    }

    /// The line a search prints before its first trial: the space's size, the sampler, the
    /// pruner, the budgets, what the trials learn from (`data`) and the journal.
    pub fn banner(&self, space: &SearchSpace, data: &str, journal: &Path) -> String {
        format!(
            "searching {} parameters with {:?} sampling and {}: up to {} trials{}, {} at a time; {data}; journal {}",
            space.parameters().count(),
            self.sampler,
            self.pruner.pruner_with_warmup(self.prune_warmup),
            self.trials,
            self.minutes
                .map_or(String::new(), |minutes| format!(" or {minutes} minutes")),
            self.jobs.max(1),
            journal.display()
        )
    }

    /// `--journal`, else `default`.
    pub fn journal_or(&self, default: &str) -> PathBuf {
        self.journal.clone().unwrap_or_else(|| default.into())
    }

    /// The space of `--space`, else the app's built-in `default` TOML.
    pub fn space_or(&self, default: &str) -> Result<SearchSpace> {
        match &self.space {
            Some(path) => SearchSpace::load(path),
            None => SearchSpace::from_toml(default),
        }
    }
}

/// Parses `PROGRAM train FLAGS` with the app's command line `P`, the flags being `config`'s:
/// how a configuration becomes the settings of a training run, checked exactly as a user's
/// command would be. The error is clap's first line, after the flags.
#[cfg(feature = "clap")]
pub fn parse_train_command<P: clap::Parser>(
    program: &str,
    config: &Config,
) -> std::result::Result<P, String> {
    let flags = config_flags(config);
    P::try_parse_from(
        [program, "train"]
            .into_iter()
            .map(String::from)
            .chain(flags.iter().cloned()),
    )
    .map_err(|error| {
        format!(
            "the configuration {} is not a valid train command: {}",
            flags.join(" "),
            error.to_string().lines().next().unwrap_or_default()
        )
    })
}

/// Checks, before any training, that every value of each categorical or fixed parameter makes a
/// valid training run: `check` gets one configuration per value, and its error names the
/// parameter. A space with a value `train` refuses fails at once rather than in its fifth trial.
pub fn check_each_value<T, E: std::fmt::Display>(
    space: &SearchSpace,
    mut check: impl FnMut(&Config) -> std::result::Result<T, E>,
) -> Result<()> {
    for config in single_value_configs(space) {
        if let Err(error) = check(&config) {
            let name = config.keys().next().cloned().unwrap_or_default();
            return Err(TuneError::space(&name, format!("{error:#}")));
        }
    }
    Ok(())
}

/// Says what a resumed search keeps and reruns (nothing for a new one).
pub fn print_resumed(resumed: &[TrialRecord], journal: &Path) {
    if resumed.is_empty() {
        return;
    }
    let interrupted = resumed
        .iter()
        .filter(|trial| trial.state == TrialState::Running)
        .count();
    println!(
        "resuming {}: {} finished trial(s) kept, {interrupted} interrupted one(s) to run again",
        journal.display(),
        resumed.len() - interrupted
    );
}

/// The `train` flags of a configuration: `learning_rate = 0.001` → `--learning-rate 0.001`; a
/// true boolean is a bare flag, a false one is left out.
///
/// ```
/// use dl_tune::{config_flags, Config, Value};
///
/// let config = Config::from([
///     ("augment".to_string(), Value::Bool(true)),
///     ("learning_rate".to_string(), Value::Float(0.002)),
/// ]);
/// assert_eq!(config_flags(&config), ["--augment", "--learning-rate", "0.002"]);
/// ```
pub fn config_flags(config: &Config) -> Vec<String> {
    let mut flags = Vec::new();
    for (name, value) in config {
        let flag = format!("--{}", name.replace('_', "-"));
        match value {
            Value::Bool(true) => flags.push(flag),
            Value::Bool(false) => {}
            value => {
                flags.push(flag);
                flags.push(value.to_string());
            }
        }
    }
    flags
}

/// Refuses a space that varies one of `reserved`, the settings the search sets itself (its seed,
/// data, output paths).
pub fn check_reserved(space: &SearchSpace, reserved: &[&str]) -> Result<()> {
    match space.parameters().find(|(name, _)| reserved.contains(name)) {
        Some((name, _)) => Err(TuneError::space(
            name,
            "the search sets it itself (seed, data, outputs): remove it from the space",
        )),
        None => Ok(()),
    }
}

/// Every value a categorical or fixed parameter can take, one configuration each (see
/// [`check_each_value`]).
pub fn single_value_configs(space: &SearchSpace) -> Vec<Config> {
    let mut configs = Vec::new();
    for (name, parameter) in space.parameters() {
        let values = match parameter {
            crate::Parameter::Categorical { choices } => choices.clone(),
            crate::Parameter::Fixed { value } => vec![value.clone()],
            _ => Vec::new(),
        };
        for value in values {
            configs.push(Config::from([(name.to_string(), value)]));
        }
    }
    configs
}

/// The files a search writes beside its journal: `NAME.csv`, `NAME.png`, `NAME-best.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchFiles {
    /// The results table.
    pub csv: PathBuf,
    /// The optimisation history.
    pub plot: PathBuf,
    /// The best configuration.
    pub best: PathBuf,
}

impl SearchFiles {
    /// The files beside `journal`.
    pub fn beside(journal: &Path) -> Self {
        let stem = journal.file_stem().map_or_else(
            || "search".into(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        let file = |suffix: &str| journal.with_file_name(format!("{stem}{suffix}"));
        Self {
            csv: file(".csv"),
            plot: file(".png"),
            best: file("-best.toml"),
        }
    }
}

/// One line for a finished trial; `show` writes its metric (e.g. as a percentage).
pub fn describe_trial(record: &TrialRecord, metric: &str, show: impl Fn(f64) -> String) -> String {
    let settings: Vec<String> = record
        .config
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let result = match (record.state, record.value, &record.error) {
        (TrialState::Complete, Some(value), _) => format!("{metric} {}", show(value)),
        (TrialState::Pruned, Some(value), _) => {
            format!("pruned at {} after epoch {}", show(value), record.epochs())
        }
        (_, _, Some(error)) => format!("failed: {error}"),
        _ => "ended".into(),
    };
    format!(
        "trial {:>3}: {result} ({} epochs, {:.0} s) {}",
        record.id,
        record.epochs(),
        record.seconds,
        settings.join(" ")
    )
}

/// How a search ends: what [`finish_search`] prints and writes.
pub struct Finish<'a> {
    /// The search's space.
    pub space: &'a SearchSpace,
    /// Its journal (the other files go beside it).
    pub journal: &'a Path,
    /// The metric's name, for messages (`validation accuracy`).
    pub metric: &'a str,
    /// How the metric is shown (`99.37%`).
    pub show: &'a dyn Fn(f64) -> String,
    /// The command that trains a configuration, before its flags
    /// (`cargo run --release -p mnist-classifier -- train`).
    pub train_command: &'a str,
    /// The search's seed: trial k trained with seed + k.
    pub seed: u64,
    /// When the search began.
    pub begun: std::time::Instant,
}

/// Prints the results table, writes the CSV and the history plot, prints the parameter importance
/// and saves the best configuration with the command that trains it. Returns the best trial and
/// its training seed; an error when no trial completed.
pub fn finish_search<'o>(
    outcome: &'o SearchOutcome,
    finish: &Finish<'_>,
) -> Result<(&'o TrialRecord, u64)> {
    let files = SearchFiles::beside(finish.journal);
    println!();
    print!("{}", results_table(outcome, finish.space));
    write_csv(outcome, finish.space, &files.csv)?;
    plot_history(outcome, &files.plot)?;
    let importance = parameter_importance(outcome, finish.space);
    if !importance.is_empty() {
        let shown: Vec<String> = importance
            .iter()
            .map(|entry| format!("{} {:.2}", entry.name, entry.rank_correlation))
            .collect();
        println!(
            "parameter importance (|Spearman ρ| with {}, complete trials): {}",
            finish.metric,
            shown.join(", ")
        );
    }
    println!(
        "{} trials, {} epochs trained, {:.1} minutes; results {}, history {}",
        outcome.trials.len(),
        outcome.epochs_trained(),
        finish.begun.elapsed().as_secs_f64() / 60.0,
        files.csv.display(),
        files.plot.display()
    );
    let best = outcome.best().ok_or_else(|| TuneError::Setting {
        setting: "search",
        problem: "no trial completed: see the errors above".into(),
    })?;
    let seed = finish.seed.wrapping_add(best.id as u64);
    let best_toml = toml::to_string(&best.config).map_err(|error| TuneError::Output {
        path: files.best.clone(),
        problem: format!("cannot encode the best configuration: {error}"),
    })?;
    let value = best.value.unwrap_or(f64::NAN);
    dl_tensor::write_atomically(
        &files.best,
        format!(
            "# The best configuration of the search in {} (trial {}, {} {value:.6}, seed {seed}).\n{best_toml}",
            finish.journal.display(),
            best.id,
            finish.metric,
        )
        .as_bytes(),
    )
    .map_err(|error| TuneError::Output {
        path: files.best.clone(),
        problem: format!("cannot write: {error}"),
    })?;
    println!(
        "best: trial {} with {} {} (saved as {}); train it with:",
        best.id,
        finish.metric,
        (finish.show)(value),
        files.best.display()
    );
    println!(
        "  {} {} --seed {seed}",
        finish.train_command,
        config_flags(&best.config).join(" ")
    );
    Ok((best, seed))
}
