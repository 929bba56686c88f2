//! `mnist-classifier search`: hyper-parameter search (course §8, 自动机器学习: 优化超参数) with
//! dl-tune. Each parameter of the space is a `train` flag; each trial trains on the training
//! images less a validation split and reports its validation accuracy after every epoch, so the
//! pruner can stop it early. The test set is never looked at, unless `--retrain` trains the best
//! configuration on all the training images and evaluates it once at the end.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dl_data::{split_validation, AugmentConfig, Augmenter, BatchLoader, ImageSet};
use dl_nn::{Loss, VarStore};
use dl_optim::ScheduleSpec;
use dl_tensor::{DType, Device, DeviceChoice};
use dl_train::{Callback, Control, ProgressMode, Trainer, TrainingContext, TrainingResult};
use dl_tune::{
    parameter_importance, plot_history, results_table, write_csv, Config, Direction, Reporter,
    Search, SearchSettings, SearchSpace, Trial, TrialRecord, TrialState, TrialStop, Value,
};

use crate::{
    cli::{Cli, Command, PrunerChoice, SearchArgs, TrainArgs},
    data::load_images,
    train::{optimizer, EVALUATION_BATCH},
};

/// The default space (`apps/mnist-classifier/search-space.toml`).
const DEFAULT_SPACE: &str = include_str!("../search-space.toml");

/// Settings that the search decides itself, and that a space may not vary.
const SET_BY_SEARCH: [&str; 10] = [
    "members",
    "data_dir",
    "dataset",
    "device",
    "out",
    "resume",
    "seed",
    "validation_split",
    "offline",
    "early_stopping",
];

/// The `train` flags of a configuration: `learning_rate = 0.001` → `--learning-rate 0.001`; a
/// true boolean is a bare flag, a false one is left out.
fn train_flags(config: &Config) -> Vec<String> {
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

/// The `train` settings of `config`, on the search's data and device.
fn train_arguments(config: &Config, search: &SearchArgs) -> Result<TrainArgs> {
    let flags = train_flags(config);
    let cli = Cli::try_parse_from(
        ["mnist-classifier", "train"]
            .into_iter()
            .map(String::from)
            .chain(flags.iter().cloned()),
    )
    .map_err(|error| {
        anyhow::anyhow!(
            "the configuration {} is not a valid train command: {}",
            flags.join(" "),
            error.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let Some(Command::Train(mut arguments)) = cli.command else {
        bail!("`train` did not parse as the train command");
    };
    arguments.data = search.data.clone();
    arguments.offline = search.offline;
    Ok(arguments)
}

/// The images of a search: training and validation, on the device.
struct SearchImages {
    train: ImageSet,
    validation: ImageSet,
    device: Device,
}

/// Reports each epoch's validation accuracy to the trial, and stops training when the pruner
/// says so.
struct ReportEpochs {
    reporter: Reporter,
    stopped: Arc<Mutex<Option<TrialStop>>>,
}

impl Callback for ReportEpochs {
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control> {
        let record = context.record();
        let accuracy = record.validation_accuracy.unwrap_or(f64::NAN);
        Ok(match self.reporter.report(record.epoch, accuracy) {
            Ok(()) => Control::Continue,
            Err(stop) => {
                *self
                    .stopped
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stop);
                Control::Stop
            }
        })
    }
}

/// Trains one trial's configuration and returns its final validation accuracy.
fn train_trial(
    trial: &Trial,
    images: &SearchImages,
    search: &SearchArgs,
) -> Result<f64, TrialStop> {
    let arguments = train_arguments(trial.config(), search).map_err(TrialStop::failed)?;
    let seed = trial.seed();
    let recipe = dl_models::ImageRecipe {
        model: arguments.model,
        dropout: arguments
            .dropout
            .unwrap_or(arguments.model.default_dropout()),
        dataset: search.data.dataset.dataset(),
        widths: None,
    };
    let stopped = Arc::new(Mutex::new(None));
    let outcome = (|| -> Result<f64> {
        let store = VarStore::new(&images.device, DType::F32, seed);
        let model = recipe.build(&store)?;
        let mut loader = BatchLoader::training(&images.train, arguments.batch_size, seed)?;
        if arguments.augment {
            loader = loader.augmented(Augmenter::new(AugmentConfig::default(), seed)?);
        }
        let validation = BatchLoader::evaluation(&images.validation, EVALUATION_BATCH)?;
        let schedule = arguments.schedule.parse::<ScheduleSpec>()?.build(
            arguments.learning_rate,
            loader.batch_count() * arguments.epochs,
        )?;
        let mut trainer = Trainer::new(optimizer(&arguments)?)
            .loss(Loss::CrossEntropy)
            .epochs(arguments.epochs)
            .schedule(schedule)
            .progress(ProgressMode::Quiet)
            .callback(Box::new(ReportEpochs {
                reporter: trial.reporter(),
                stopped: Arc::clone(&stopped),
            }));
        let history = trainer.fit_with_validation(
            &model,
            &store,
            |epoch| loader.epoch_batches(epoch),
            |epoch| validation.epoch_batches(epoch),
        )?;
        history
            .last()
            .and_then(|record| record.validation_accuracy)
            .context("training recorded no validation accuracy")
    })();
    if let Some(stop) = stopped
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
    {
        return Err(stop);
    }
    outcome.map_err(TrialStop::failed)
}

/// The files a search writes beside its journal.
struct Outputs {
    csv: PathBuf,
    plot: PathBuf,
    best: PathBuf,
}

impl Outputs {
    fn beside(journal: &Path) -> Self {
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

/// One line per finished trial.
fn describe(record: &TrialRecord) -> String {
    let settings: Vec<String> = record
        .config
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let result = match (record.state, record.value, &record.error) {
        (TrialState::Complete, Some(value), _) => {
            format!("validation accuracy {:.2}%", 100.0 * value)
        }
        (TrialState::Pruned, Some(value), _) => {
            format!(
                "pruned at {:.2}% after epoch {}",
                100.0 * value,
                record.epochs()
            )
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

/// Runs `search`.
pub fn run(arguments: &SearchArgs, threads: usize) -> Result<()> {
    let space = match &arguments.space {
        Some(path) => SearchSpace::load(path)?,
        None => SearchSpace::from_toml(DEFAULT_SPACE).context("the built-in search space")?,
    };
    if let Some((name, _)) = space
        .parameters()
        .find(|(name, _)| SET_BY_SEARCH.contains(name))
    {
        bail!("the search space varies {name}, which the search sets itself: remove it from the space");
    }
    if !(0.0..0.5).contains(&arguments.validation_split) || arguments.validation_split == 0.0 {
        bail!("--validation-split must be in (0, 0.5): the search needs validation images and never looks at the test set");
    }
    // every configuration must be a valid train command: check one of each value now
    for (name, parameter) in space.parameters() {
        let values = match parameter {
            dl_tune::Parameter::Categorical { choices } => choices.clone(),
            dl_tune::Parameter::Fixed { value } => vec![value.clone()],
            _ => Vec::new(),
        };
        for value in values {
            train_arguments(&Config::from([(name.to_string(), value)]), arguments)
                .with_context(|| format!("search space: {name}"))?;
        }
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let all = load_images(&arguments.data, arguments.offline)?;
    let (train, validation) =
        split_validation(&all.train, arguments.validation_split, arguments.seed)?;
    let images = SearchImages {
        train: train.to_device(&device)?,
        validation: validation.to_device(&device)?,
        device,
    };
    let settings = SearchSettings {
        sampler: arguments.sampler,
        pruner: match arguments.pruner {
            PrunerChoice::None => dl_tune::Pruner::None,
            PrunerChoice::Median => dl_tune::Pruner::median(),
            PrunerChoice::Asha => dl_tune::Pruner::asha(),
        },
        direction: Direction::Maximize,
        metric: "validation_accuracy".into(),
        seed: arguments.seed,
        trials: arguments.trials,
        time_limit: arguments
            .minutes
            .map(|minutes| std::time::Duration::from_secs_f64(60.0 * minutes)),
        jobs: arguments.jobs.max(1),
        threads,
    };
    let search = Search::new(&space, settings)?
        .journal(&arguments.journal, arguments.resume)?
        .on_trial_end(|record| println!("{}", describe(record)));
    let resumed = search.resumed_trials();
    if !resumed.is_empty() {
        let interrupted = resumed
            .iter()
            .filter(|trial| trial.state == TrialState::Running)
            .count();
        println!(
            "resuming {}: {} finished trial(s) kept, {interrupted} interrupted one(s) to run again",
            arguments.journal.display(),
            resumed.len() - interrupted
        );
    }
    println!(
        "searching {} parameters with {:?} sampling and {:?} pruning: up to {} trials{}, {} at a time; {} training and {} validation images; journal {}",
        space.parameters().count(),
        arguments.sampler,
        arguments.pruner,
        arguments.trials,
        arguments.minutes.map_or(String::new(), |minutes| format!(" or {minutes} minutes")),
        arguments.jobs.max(1),
        images.train.len(),
        images.validation.len(),
        arguments.journal.display()
    );
    let begun = std::time::Instant::now();
    let outcome = search.run(|trial| train_trial(trial, &images, arguments))?;
    let outputs = Outputs::beside(&arguments.journal);
    println!();
    print!("{}", results_table(&outcome, &space));
    write_csv(&outcome, &space, &outputs.csv)?;
    plot_history(&outcome, &outputs.plot)?;
    let importance = parameter_importance(&outcome, &space);
    if !importance.is_empty() {
        let shown: Vec<String> = importance
            .iter()
            .map(|entry| format!("{} {:.2}", entry.name, entry.rank_correlation))
            .collect();
        println!(
            "parameter importance (|Spearman ρ| with validation accuracy, complete trials): {}",
            shown.join(", ")
        );
    }
    println!(
        "{} trials, {} epochs trained, {:.1} minutes; results {}, history {}",
        outcome.trials.len(),
        outcome.epochs_trained(),
        begun.elapsed().as_secs_f64() / 60.0,
        outputs.csv.display(),
        outputs.plot.display()
    );
    let Some(best) = outcome.best() else {
        bail!("no trial completed: see the errors above");
    };
    let flags = train_flags(&best.config).join(" ");
    let seed = arguments.seed.wrapping_add(best.id as u64);
    let best_toml = toml::to_string(&best.config).context("encoding the best configuration")?;
    dl_tensor::write_atomically(
        &outputs.best,
        format!(
            "# The best configuration of the search in {} (trial {}, validation accuracy {:.4}, seed {seed}).\n{best_toml}",
            arguments.journal.display(),
            best.id,
            best.value.unwrap_or(f64::NAN)
        )
        .as_bytes(),
    )
    .with_context(|| format!("cannot write {}", outputs.best.display()))?;
    println!(
        "best: trial {} with validation accuracy {:.2}% (saved as {}); train it with:",
        best.id,
        100.0 * best.value.unwrap_or(f64::NAN),
        outputs.best.display()
    );
    println!("  cargo run --release -p mnist-classifier -- train {flags} --seed {seed}");
    if arguments.retrain {
        let mut final_arguments = train_arguments(&best.config, arguments)?;
        final_arguments.seed = Some(seed);
        final_arguments.validation_split = 0.0;
        final_arguments.out = arguments.journal.with_file_name("best.safetensors");
        println!(
            "retraining the best configuration on all {} training images, then the test set, once:",
            all.train.len()
        );
        crate::train::run(&final_arguments)?;
    }
    Ok(())
}
