//! `text-gen train`: the course's `model.compile(optimizer='adam',
//! loss='sparse_categorical_crossentropy')` and `model.fit(x_train, y_train, epochs=5)` for a
//! language model — windows of the text as inputs, the same windows shifted by one token as
//! targets, validation on the END of the text, resumable checkpoints that carry the tokenizer,
//! a CSV history and a plot of the loss curves.

use std::{
    cell::Cell,
    path::{Path, PathBuf},
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use dl_data::{split_train_validation, TextWindows, Tokenizer};
use dl_nn::{Checkpoint, Loss, VarStore};
use dl_optim::{
    evaluate, optimizer_state_path, restore_schedule, schedule_state_metadata, Adam, AdamConfig,
    Callback, Control, EarlyStopping, EpochRecord, History, ModelCheckpoint, Optimizer,
    ScheduleSpec, Trainer, TrainingContext, TrainingResult, SCHEDULE_KEY,
};
use dl_tensor::{DType, Device, DeviceChoice, SeededRng, Tensor};

use crate::{
    cli::TrainArgs,
    data::{build_tokenizer, corpus_path, encode, read_text},
    generate::{encode_prompt, generate, print_flushed, FastEngine},
    model::{ModelConfig, TextModel},
    perplexity,
    sampling::Sampling,
    saved_model::Recipe,
};

/// Optimizer steps when neither --steps nor --epochs is given: about 14.7 passes over Tiny
/// Shakespeare. With dl-tensor's LSTM kernel the default model trains 2,400 steps in about
/// 100 s on this project's 2-core machine, so 7,200 fit the one-command run's nine minutes
/// with room to spare (they reached 1.49 nats/char, against 1.56 after 2,400).
pub const DEFAULT_STEPS: usize = 7_200;

/// Windows per validation batch (no gradients, so larger is faster).
const VALIDATION_BATCH: usize = 128;

/// The validation windows: non-overlapping windows over the validation tokens, all of them for
/// the final measurement, an evenly spread subset after each round.
struct Validation {
    windows: TextWindows,
    subset: Vec<usize>,
}

impl Validation {
    fn new(
        corpus: &Path,
        tokens: Vec<u32>,
        seq_len: usize,
        batches: usize,
        device: &Device,
    ) -> Result<Self> {
        let token_count = tokens.len();
        let windows = TextWindows::new(corpus, tokens, seq_len, VALIDATION_BATCH, 0)
            .map(|windows| windows.with_device(device.clone()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}: the validation part (the end of the text) has {token_count} tokens, fewer than one window of --seq-len {seq_len} + 1; use a longer corpus, a shorter --seq-len, a larger --validation-fraction, or --validation-fraction 0",
                    corpus.display()
                )
            })?;
        // The windows of `TextWindows::sequential_batches`, window i starting at i × seq_len.
        let count = (token_count - 1) / seq_len;
        let wanted = if batches == 0 {
            count
        } else {
            count.min(batches * VALIDATION_BATCH)
        };
        let subset = (0..wanted).map(|k| k * count / wanted * seq_len).collect();
        Ok(Self { windows, subset })
    }

    /// The batches measured after each round.
    fn subset_batches(&self) -> impl Iterator<Item = dl_data::Result<(Tensor, Tensor)>> + '_ {
        self.subset
            .chunks(VALIDATION_BATCH)
            .map(|chunk| self.windows.batch_at(chunk))
    }
}

/// Stops training when another round would end after `limit` (counted from the start),
/// assuming the next round takes as long as the last one.
struct TimeLimit {
    started: Instant,
    limit: Duration,
    reached: Rc<Cell<bool>>,
}

impl Callback for TimeLimit {
    fn on_epoch_end(
        &mut self,
        record: &EpochRecord,
        _context: &TrainingContext<'_>,
    ) -> TrainingResult<Control> {
        let next_round_ends = self.started.elapsed() + Duration::from_secs_f64(record.seconds);
        if next_round_ends <= self.limit {
            return Ok(Control::Continue);
        }
        self.reached.set(true);
        println!(
            "stopping after round {}: another round would end after the time limit of {:.1} minutes",
            record.epoch,
            self.limit.as_secs_f64() / 60.0
        );
        Ok(Control::Stop)
    }
}

fn check(arguments: &TrainArgs) -> Result<()> {
    let positive = [
        ("--batch-size", arguments.batch_size),
        ("--seq-len", arguments.seq_len),
        ("--eval-every", arguments.eval_every),
        ("--embedding", arguments.embedding),
        ("--hidden", arguments.hidden),
        ("--layers", arguments.layers),
    ];
    for (flag, value) in positive {
        if value == 0 {
            bail!("{flag} must be positive, got 0");
        }
    }
    if arguments.steps == Some(0) {
        bail!("--steps must be positive, got 0");
    }
    if let Some(epochs) = arguments.epochs {
        if !(epochs.is_finite() && epochs > 0.0) {
            bail!("--epochs must be positive, got {epochs}");
        }
    }
    if !(0.0..1.0).contains(&arguments.dropout) {
        bail!("--dropout must be in [0, 1), got {}", arguments.dropout);
    }
    if !(0.0..1.0).contains(&arguments.validation_fraction) {
        bail!(
            "--validation-fraction must be in [0, 1), got {}",
            arguments.validation_fraction
        );
    }
    if !(arguments.learning_rate.is_finite() && arguments.learning_rate > 0.0) {
        bail!(
            "--learning-rate must be positive, got {}",
            arguments.learning_rate
        );
    }
    if !(arguments.clip_norm.is_finite() && arguments.clip_norm >= 0.0) {
        bail!(
            "--clip-norm must be 0 (off) or positive, got {}",
            arguments.clip_norm
        );
    }
    if let Some(minutes) = arguments.time_limit {
        if !(minutes.is_finite() && minutes > 0.0) {
            bail!("--time-limit must be a positive number of minutes, got {minutes}");
        }
    }
    if arguments.early_stopping.is_some() && arguments.validation_fraction == 0.0 {
        bail!("--early-stopping watches the validation loss: keep --validation-fraction above 0");
    }
    Sampling {
        temperature: arguments.temperature,
        top_k: None,
        top_p: None,
    }
    .validate()
}

/// The checkpoint being resumed: its file, contents and recipe.
struct Resumed {
    path: PathBuf,
    checkpoint: Checkpoint,
    recipe: Recipe,
}

/// Runs `train`.
pub fn run(arguments: &TrainArgs) -> Result<()> {
    check(arguments)?;
    let device = arguments.device.parse::<DeviceChoice>()?.resolve()?;
    let schedule_spec: ScheduleSpec = arguments.schedule.parse()?;
    let data_dir = dl_data::resolve_data_dir(arguments.data_dir.as_deref());
    let corpus = corpus_path(arguments.corpus.as_deref(), &data_dir, arguments.offline)?;
    let text = read_text(&corpus)?;

    let resumed = match &arguments.resume {
        Some(path) => {
            let checkpoint = Checkpoint::load(path)?;
            let recipe = Recipe::from_metadata(path, &checkpoint.metadata)?;
            Some(Resumed {
                path: path.clone(),
                checkpoint,
                recipe,
            })
        }
        None => None,
    };
    let recipe = match &resumed {
        Some(resumed) => resumed.recipe.clone(),
        None => {
            let tokenizer = build_tokenizer(
                &arguments.tokenizer,
                &text,
                arguments.vocab_size,
                &data_dir,
                arguments.offline,
            )?;
            Recipe {
                config: ModelConfig {
                    vocab_size: tokenizer.vocab_size(),
                    embedding: arguments.embedding,
                    hidden: arguments.hidden,
                    layers: arguments.layers,
                    dropout: arguments.dropout,
                },
                tokenizer,
            }
        }
    };
    let tokenizer = &recipe.tokenizer;
    let tokens = encode(tokenizer, &text, &corpus)?;
    let (train_tokens, validation_tokens) =
        split_train_validation(&tokens, arguments.validation_fraction)?;
    println!(
        "corpus {}: {} characters, {} tokens ({} tokenizer, vocabulary of {}); training on the first {}, validating on the last {}",
        corpus.display(),
        text.chars().count(),
        tokens.len(),
        tokenizer.kind(),
        tokenizer.vocab_size(),
        train_tokens.len(),
        validation_tokens.len()
    );
    let train_token_count = train_tokens.len();
    let train_windows = TextWindows::new(
        &corpus,
        train_tokens,
        arguments.seq_len,
        arguments.batch_size,
        arguments.seed,
    )
    .context("not enough text to train on")?
    .with_device(device.clone());
    let validation = if validation_tokens.is_empty() {
        None
    } else {
        Some(Validation::new(
            &corpus,
            validation_tokens.clone(),
            arguments.seq_len,
            arguments.validation_batches,
            &device,
        )?)
    };

    let tokens_per_step = arguments.batch_size * arguments.seq_len;
    let steps_per_pass = train_token_count as f64 / tokens_per_step as f64;
    let total_steps = match (arguments.steps, arguments.epochs) {
        (Some(steps), _) => steps,
        (None, Some(epochs)) => ((epochs * steps_per_pass).ceil() as usize).max(1),
        (None, None) => DEFAULT_STEPS,
    };
    let eval_every = arguments.eval_every;
    let rounds = total_steps.div_ceil(eval_every);
    let steps_in_round = |round: usize| eval_every.min(total_steps - (round - 1) * eval_every);

    let store = VarStore::new(&device, DType::F32, arguments.seed);
    let model = TextModel::new(&store, recipe.config)?;
    let mut optimizer: Box<dyn Optimizer> = Box::new(Adam::new(
        AdamConfig::default().learning_rate(arguments.learning_rate),
    )?);
    let mut schedule = schedule_spec.build(arguments.learning_rate, total_steps)?;
    let mut history = History::default();
    let mut global_step = 0;
    if let Some(resumed) = &resumed {
        resumed
            .checkpoint
            .restore_into(&resumed.path, &store)
            .context("resuming")?;
        // Dropout continues with the masks the uninterrupted run would have drawn.
        dl_nn::restore_random_states(&model, &resumed.checkpoint.metadata)
            .with_context(|| format!("resuming from {}", resumed.path.display()))?;
        optimizer
            .load_state_file(&optimizer_state_path(&resumed.path))
            .context("resuming needs the optimizer state saved beside the checkpoint")?;
        let history_path = resumed.path.with_extension("csv");
        history = History::read_csv(&history_path)
            .with_context(|| format!("resuming needs the history {}", history_path.display()))?;
        global_step = resumed
            .checkpoint
            .metadata
            .get("global_step")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let outcome = restore_schedule(
            schedule.as_mut(),
            &schedule_spec,
            &resumed.checkpoint.metadata,
        )
        .with_context(|| format!("resuming the schedule of {}", resumed.path.display()))?;
        if let Some(notice) = outcome.notice(&schedule_spec) {
            println!("{} {notice}", resumed.path.display());
        }
        let done = history.last().map_or(0, |record| record.epoch);
        if done >= rounds {
            bail!(
                "{} has already trained {done} rounds ({global_step} steps) of the {rounds} that --steps {total_steps} / --eval-every {eval_every} asks for: pass a larger --steps or --epochs",
                resumed.path.display()
            );
        }
        println!(
            "resuming {} after round {done} (step {global_step})",
            resumed.path.display()
        );
    }

    let config = recipe.config;
    println!(
        "model: Embedding({}, {}) → LSTM({} → {}, {} layer{}, dropout {}) → Dense({} → {}): {} parameters",
        config.vocab_size,
        config.embedding,
        config.embedding,
        config.hidden,
        config.layers,
        if config.layers == 1 { "" } else { "s" },
        config.dropout,
        config.hidden,
        config.vocab_size,
        store.parameter_count()
    );
    println!(
        "training: {total_steps} steps of {} windows × {} tokens ({:.2} passes over the training text), Adam at {} with schedule {schedule_spec}, clip-norm {}, seed {}; validation every {eval_every} steps",
        arguments.batch_size,
        arguments.seq_len,
        total_steps as f64 / steps_per_pass,
        arguments.learning_rate,
        arguments.clip_norm,
        arguments.seed
    );

    let mut metadata = recipe.metadata()?;
    for (key, value) in [
        ("seed", arguments.seed.to_string()),
        ("seq_len", arguments.seq_len.to_string()),
        ("batch_size", arguments.batch_size.to_string()),
        ("learning_rate", arguments.learning_rate.to_string()),
        ("optimizer", "adam".to_string()),
        (SCHEDULE_KEY, schedule_spec.to_string()),
        ("clip_norm", arguments.clip_norm.to_string()),
        ("steps", total_steps.to_string()),
        ("eval_every", eval_every.to_string()),
        (
            "validation_fraction",
            arguments.validation_fraction.to_string(),
        ),
    ] {
        metadata.insert(key.to_string(), value);
    }

    let out = &arguments.out;
    let history_path = out.with_extension("csv");
    let mut trainer = Trainer::new(optimizer)
        .loss(Loss::CrossEntropy)
        .epochs(rounds)
        .resume_from(history, global_step)
        .schedule(schedule)
        .history_csv(&history_path)
        .callback(Box::new(ModelCheckpoint::new(metadata.clone()).last(out)));
    if arguments.clip_norm > 0.0 {
        trainer = trainer.clip_norm(arguments.clip_norm);
    }
    if let Some(patience) = arguments.early_stopping {
        trainer = trainer.callback(Box::new(
            EarlyStopping::new(patience).restore_best_weights(true),
        ));
    }
    let started = Instant::now();
    let time_limit_reached = Rc::new(Cell::new(false));
    if let Some(minutes) = arguments.time_limit {
        trainer = trainer.callback(Box::new(TimeLimit {
            started,
            limit: Duration::from_secs_f64(minutes * 60.0),
            reached: Rc::clone(&time_limit_reached),
        }));
    }
    let train_batches = |round: usize| train_windows.epoch_batches(round, steps_in_round(round));
    let history = match &validation {
        Some(validation) => trainer.fit_with_validation(&model, &store, train_batches, |_| {
            validation.subset_batches()
        }),
        None => trainer.fit(&model, &store, train_batches),
    }
    .context("training failed")?;
    let training_seconds = started.elapsed().as_secs_f64();
    let steps_done = trainer.global_step();

    if let Some(validation) = &validation {
        let windowed = evaluate(
            &model,
            Loss::CrossEntropy,
            validation.windows.sequential_batches(),
        )?;
        let carried = perplexity::score(&model, &validation_tokens, 32, 256, &device)?;
        let characters = perplexity::predicted_characters(
            tokenizer,
            &tokenizer.decode(&validation_tokens)?,
            &validation_tokens,
        )?;
        println!(
            "validation (the last {:.0}% of the text, {} tokens): loss {:.4} nats/token over windows of {} from a zero state; {:.4} nats/token, {:.4} nats/char, perplexity {:.3} with the state carried",
            100.0 * arguments.validation_fraction,
            validation_tokens.len(),
            windowed.loss,
            arguments.seq_len,
            carried.nats_per_token(),
            carried.total_nats / characters as f64,
            carried.nats_per_token().exp()
        );
        metadata.insert("validation_loss".into(), format!("{:.6}", windowed.loss));
    }
    metadata.insert(
        "epoch".into(),
        history.last().map_or(0, |record| record.epoch).to_string(),
    );
    metadata.insert("global_step".into(), steps_done.to_string());
    if let Some(schedule) = trainer.learning_rate_schedule() {
        metadata.extend(schedule_state_metadata(schedule));
    }
    metadata.extend(dl_nn::random_states_metadata(&model));
    dl_nn::save_checkpoint(out, &store, &metadata)?;
    trainer
        .optimizer()
        .save_state_file(&optimizer_state_path(out))?;
    let plot_path = out.with_extension("png");
    history.plot_png(&plot_path)?;

    let new_steps = steps_done - global_step;
    println!(
        "trained {new_steps} steps in {training_seconds:.1} s ({:.0} tokens/s){}",
        (new_steps * tokens_per_step) as f64 / training_seconds.max(1e-9),
        if time_limit_reached.get() {
            format!(", stopped by --time-limit before the {total_steps} steps asked for")
        } else {
            String::new()
        }
    );
    println!("saved {}", out.display());
    println!(
        "  history {}, loss curves {}, optimizer state {}",
        history_path.display(),
        plot_path.display(),
        optimizer_state_path(out).display()
    );
    if arguments.sample_length > 0 {
        print_sample(&model, tokenizer, &text, arguments)?;
    }
    println!("use it:");
    println!(
        "  cargo run --release -p text-gen -- generate --checkpoint {} --prompt \"{}\"",
        out.display(),
        arguments.prompt
    );
    println!(
        "  cargo run --release -p text-gen -- perplexity --checkpoint {} --corpus FILE",
        out.display()
    );
    Ok(())
}

/// Prints `--sample-length` characters generated from `--prompt` (or from the start of the
/// corpus when the vocabulary lacks a character of the prompt).
fn print_sample(
    model: &TextModel,
    tokenizer: &Tokenizer,
    text: &str,
    arguments: &TrainArgs,
) -> Result<()> {
    let (prompt, ids) = match encode_prompt(tokenizer, &arguments.prompt) {
        Ok(ids) => (arguments.prompt.clone(), ids),
        Err(error) => {
            let start: String = text.chars().take(20).collect();
            println!("(the sample starts from the corpus instead of --prompt: {error:#})");
            let ids = encode_prompt(tokenizer, &start)?;
            (start, ids)
        }
    };
    println!(
        "----- {} characters generated from {prompt:?} (temperature {}) -----",
        arguments.sample_length, arguments.temperature
    );
    let mut engine = FastEngine::new(model)?;
    let sampling = Sampling {
        temperature: arguments.temperature,
        top_k: None,
        top_p: None,
    };
    print_flushed(&prompt)?;
    generate(
        &mut engine,
        tokenizer,
        &ids,
        arguments.sample_length,
        &sampling,
        &mut SeededRng::new(arguments.seed),
        &mut print_flushed,
    )?;
    println!();
    println!("-----");
    Ok(())
}
