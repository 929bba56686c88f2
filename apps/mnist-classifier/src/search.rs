//! `mnist-classifier search`: hyper-parameter search (course §8, 自动机器学习: 优化超参数) with
//! dl-tune. Each parameter of the space is a `train` flag; each trial trains on the training
//! images less a validation split and reports its validation accuracy after every epoch, so the
//! pruner can stop it early. The test set is never looked at, unless `--retrain` trains the best
//! configuration on all the training images and evaluates it once at the end.

use anyhow::{bail, Context, Result};
use dl_data::{split_validation, AugmentConfig, Augmenter, BatchLoader, ImageSet};
use dl_nn::{Loss, VarStore};
use dl_optim::ScheduleSpec;
use dl_tensor::{DType, Device, DeviceChoice};
use dl_train::{ProgressMode, Trainer};
use dl_tune::{
    check_each_value, check_reserved, describe_trial, finish_search, parse_train_command,
    print_resumed, Config, Direction, Finish, ReportEpochs, Search, Trial, TrialStop,
};

use crate::{
    cli::{Cli, Command, SearchArgs, TrainArgs},
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

/// The `train` settings of `config`, on the search's data and device.
fn train_arguments(config: &Config, search: &SearchArgs) -> Result<TrainArgs> {
    let cli: Cli =
        parse_train_command("mnist-classifier", config).map_err(|error| anyhow::anyhow!(error))?;
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

/// Trains one trial's configuration and returns its final validation accuracy.
fn train_trial(
    trial: &Trial,
    images: &SearchImages,
    search: &SearchArgs,
) -> Result<f64, TrialStop> {
    let arguments = train_arguments(trial.config(), search).map_err(TrialStop::failed)?;
    let seed = trial.seed();
    let recipe = arguments.recipe().map_err(TrialStop::failed)?;
    let (reports, stop) = ReportEpochs::new(
        trial.reporter(),
        |record| record.validation_accuracy,
        arguments.epochs,
    );
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
            .callback(Box::new(reports));
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
    stop.outcome(outcome)
}

/// Where the journal goes unless `--journal` says.
const DEFAULT_JOURNAL: &str = "checkpoints/search/journal.jsonl";

/// A validation accuracy as a percentage.
fn percent(value: f64) -> String {
    format!("{:.2}%", 100.0 * value)
}

/// Runs `search`.
pub fn run(arguments: &SearchArgs, threads: usize) -> Result<()> {
    let options = &arguments.search;
    let space = options.space_or(DEFAULT_SPACE)?;
    check_reserved(&space, &SET_BY_SEARCH)?;
    if !(0.0..0.5).contains(&arguments.validation_split) || arguments.validation_split == 0.0 {
        bail!("--validation-split must be in (0, 0.5): the search needs validation images and never looks at the test set");
    }
    check_each_value(&space, |config| train_arguments(config, arguments))?;
    let journal = options.journal_or(DEFAULT_JOURNAL);
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let all = load_images(&arguments.data, arguments.offline)?;
    let (train, validation) =
        split_validation(&all.train, arguments.validation_split, options.seed)?;
    let images = SearchImages {
        train: train.to_device(&device)?,
        validation: validation.to_device(&device)?,
        device,
    };
    let settings = options.settings(Direction::Maximize, "validation_accuracy", threads);
    let search = Search::new(&space, settings)?
        .journal(&journal, options.resume)?
        .on_trial_end(|record| {
            println!("{}", describe_trial(record, "validation accuracy", percent))
        });
    print_resumed(search.resumed_trials(), &journal);
    let data = format!(
        "{} training and {} validation images",
        images.train.len(),
        images.validation.len()
    );
    println!("{}", options.banner(&space, &data, &journal));
    let begun = std::time::Instant::now();
    let outcome = search.run(|trial| train_trial(trial, &images, arguments))?;
    let (best, seed) = finish_search(
        &outcome,
        &Finish {
            space: &space,
            journal: &journal,
            metric: "validation accuracy",
            show: &percent,
            train_command: "cargo run --release -p mnist-classifier -- train",
            seed: options.seed,
            begun,
        },
    )?;
    if arguments.retrain {
        let mut final_arguments = train_arguments(&best.config, arguments)?;
        final_arguments.seed = Some(seed);
        final_arguments.validation_split = 0.0;
        final_arguments.out = journal.with_file_name("best.safetensors");
        println!(
            "retraining the best configuration on all {} training images, then the test set, once:",
            all.train.len()
        );
        crate::train::run(&final_arguments)?;
    }
    Ok(())
}
