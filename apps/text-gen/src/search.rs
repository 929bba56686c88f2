//! `text-gen search`: hyper-parameter search for the language model (course §8, 自动机器学习:
//! 优化超参数) with dl-tune, the same engine as `mnist-classifier search`. Each parameter of the
//! space is a `train` flag; each trial trains on the text less its end, reports the validation
//! loss (cross-entropy per token) after every round of --eval-every steps, so the pruner can stop
//! it early, and is scored by its last validation loss (lower is better). `--retrain` then trains
//! the best configuration like `train` would, with its checkpoint, history and sample.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dl_data::{split_train_validation, TextWindows, Tokenizer};
use dl_models::{TextModelConfig, TextRecipe};
use dl_nn::{Loss, VarStore};
use dl_optim::{Adam, AdamConfig, ScheduleSpec};
use dl_tensor::{DType, Device, DeviceChoice};
use dl_train::{ProgressMode, Trainer};
use dl_tune::{
    check_each_value, check_reserved, describe_trial, finish_search, parse_train_command,
    print_resumed, Config, Direction, Finish, ReportEpochs, Search, Trial, TrialStop,
};

use crate::{
    cli::{Cli, Command, SearchArgs, TrainArgs},
    data::{corpus_path, encode, read_text},
    train::{check, Steps, Validation},
};

/// The default space (`apps/text-gen/search-space.toml`).
const DEFAULT_SPACE: &str = include_str!("../search-space.toml");

/// Where the journal goes unless `--journal` says.
const DEFAULT_JOURNAL: &str = "checkpoints/text-gen-search/journal.jsonl";

/// Settings that the search decides itself, and that a space may not vary. The tokenizer is
/// among them: a loss per token compares models only over one vocabulary.
const SET_BY_SEARCH: [&str; 14] = [
    "corpus",
    "data_dir",
    "offline",
    "tokenizer",
    "vocab_size",
    "device",
    "resume",
    "out",
    "seed",
    "validation_fraction",
    "early_stopping",
    "time_limit",
    "sample_length",
    "prompt",
];

/// A validation loss, in nats per token.
fn nats(value: f64) -> String {
    format!("{value:.4}")
}

/// The `train` settings of `config`, on the search's corpus and device.
fn train_arguments(config: &Config, search: &SearchArgs) -> Result<TrainArgs> {
    let cli: Cli =
        parse_train_command("text-gen", config).map_err(|error| anyhow::anyhow!(error))?;
    let Some(Command::Train(arguments)) = cli.command else {
        bail!("`train` did not parse as the train command");
    };
    let mut arguments = *arguments;
    arguments.corpus = search.corpus.clone();
    arguments.data_dir = search.data_dir.clone();
    arguments.offline = search.offline;
    arguments.device = search.device.clone();
    arguments.validation_fraction = search.validation_fraction;
    check(&arguments)?;
    Ok(arguments)
}

/// The text of a search, tokenized once: its training and validation tokens.
struct SearchText {
    corpus: PathBuf,
    tokenizer: Tokenizer,
    train: Vec<u32>,
    validation: Vec<u32>,
    device: Device,
}

/// Trains one trial's configuration and returns its last validation loss.
fn train_trial(trial: &Trial, text: &SearchText, search: &SearchArgs) -> Result<f64, TrialStop> {
    let arguments = train_arguments(trial.config(), search).map_err(TrialStop::failed)?;
    let seed = trial.seed();
    let steps = Steps::new(&arguments, text.train.len());
    let (reports, stop) = ReportEpochs::new(
        trial.reporter(),
        |record| record.validation_loss,
        steps.rounds(),
    );
    let outcome = (|| -> Result<f64> {
        let recipe = TextRecipe {
            config: TextModelConfig {
                vocab_size: text.tokenizer.vocab_size(),
                embedding: arguments.embedding,
                hidden: arguments.hidden,
                layers: arguments.layers,
                dropout: arguments.dropout,
            },
            tokenizer: text.tokenizer.clone(),
        };
        let store = VarStore::new(&text.device, DType::F32, seed);
        let model = recipe.build(&store)?;
        let windows = TextWindows::new(
            &text.corpus,
            text.train.clone(),
            arguments.seq_len,
            arguments.batch_size,
            seed,
        )
        .context("not enough text to train on")?
        .with_device(text.device.clone());
        let validation = Validation::new(
            &text.corpus,
            text.validation.clone(),
            arguments.seq_len,
            arguments.validation_batches,
            &text.device,
        )?;
        let schedule = arguments
            .schedule
            .parse::<ScheduleSpec>()?
            .build(arguments.learning_rate, steps.total)?;
        let optimizer = Adam::new(AdamConfig::default().learning_rate(arguments.learning_rate))?;
        let mut trainer = Trainer::new(Box::new(optimizer))
            .loss(Loss::CrossEntropy)
            .epochs(steps.rounds())
            .schedule(schedule)
            .progress(ProgressMode::Quiet)
            .callback(Box::new(reports));
        if arguments.clip_norm > 0.0 {
            trainer = trainer.clip_norm(arguments.clip_norm);
        }
        let history = trainer.fit_with_validation(
            &model,
            &store,
            |round| windows.epoch_batches(round, steps.in_round(round)),
            |_| validation.subset_batches(),
        )?;
        history
            .last()
            .and_then(|record| record.validation_loss)
            .context("training recorded no validation loss")
    })();
    stop.outcome(outcome)
}

/// Reads and tokenizes the corpus (character tokenizer) and splits off its end for validation.
fn prepare_text(arguments: &SearchArgs, device: Device) -> Result<SearchText> {
    let data_dir = dl_data::resolve_data_dir(arguments.data_dir.as_deref());
    let corpus = corpus_path(arguments.corpus.as_deref(), &data_dir, arguments.offline)?;
    let text = read_text(&corpus)?;
    let tokenizer = Tokenizer::char_level(&text)?;
    let tokens = encode(&tokenizer, &text, &corpus)?;
    let (train, validation) = split_train_validation(&tokens, arguments.validation_fraction)?;
    if validation.is_empty() {
        bail!("--validation-fraction leaves no validation text: the search scores trials on it");
    }
    Ok(SearchText {
        corpus,
        tokenizer,
        train,
        validation,
        device,
    })
}

/// Runs `search`.
pub fn run(arguments: &SearchArgs, threads: usize) -> Result<()> {
    let options = &arguments.search;
    let space = options.space_or(DEFAULT_SPACE)?;
    check_reserved(&space, &SET_BY_SEARCH)?;
    if !(0.0..0.5).contains(&arguments.validation_fraction) || arguments.validation_fraction == 0.0
    {
        bail!("--validation-fraction must be in (0, 0.5): the search scores trials on the end of the text");
    }
    check_each_value(&space, |config| train_arguments(config, arguments))?;
    let journal = options.journal_or(DEFAULT_JOURNAL);
    let device = arguments.device.parse::<DeviceChoice>()?.resolve()?;
    let text = prepare_text(arguments, device)?;
    let settings = options.settings(Direction::Minimize, "validation_loss", threads);
    let search = Search::new(&space, settings)?
        .journal(&journal, options.resume)?
        .on_trial_end(|record| println!("{}", describe_trial(record, "validation loss", nats)));
    print_resumed(search.resumed_trials(), &journal);
    let data = format!(
        "{} training and {} validation tokens of {}",
        text.train.len(),
        text.validation.len(),
        text.corpus.display()
    );
    println!("{}", options.banner(&space, &data, &journal));
    let begun = std::time::Instant::now();
    let outcome = search.run(|trial| train_trial(trial, &text, arguments))?;
    let (best, seed) = finish_search(
        &outcome,
        &Finish {
            space: &space,
            journal: &journal,
            metric: "validation loss",
            show: &nats,
            train_command: "cargo run --release -p text-gen -- train",
            seed: options.seed,
            begun,
        },
    )?;
    if arguments.retrain {
        let mut final_arguments = train_arguments(&best.config, arguments)?;
        final_arguments.seed = Some(seed);
        final_arguments.out = retrained_checkpoint(&journal);
        println!("training the best configuration as `train` would:");
        crate::train::run(&final_arguments)?;
    }
    Ok(())
}

/// Where `--retrain` saves its model: `best.safetensors` beside the journal.
fn retrained_checkpoint(journal: &Path) -> PathBuf {
    journal.with_file_name("best.safetensors")
}
