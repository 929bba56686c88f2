//! `text-gen train`: the course's `model.compile(optimizer='adam',
//! loss='sparse_categorical_crossentropy')` and `model.fit(x_train, y_train, epochs=5)` for a
//! language model — windows of the text as inputs, the same windows shifted by one token as
//! targets, validation on the END of the text, resumable checkpoints that carry the tokenizer,
//! a CSV history and a plot of the loss curves.

use std::{
    cell::Cell,
    collections::BTreeMap,
    path::{Path, PathBuf},
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use dl_data::{split_train_validation, TextWindows, Tokenizer};
use dl_models::{Recipe, TextModel, TextModelConfig, TextRecipe};
use dl_nn::{Loss, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer, ScheduleSpec, SCHEDULE_KEY};
use dl_tensor::{DType, Device, SeededRng, Tensor};
use dl_train::{
    evaluate, Callback, Control, EarlyStopping, ModelCheckpoint, Run, RunFlags, RunPlan, Trainer,
    TrainingContext, TrainingResult, OPTIMIZER_NAME,
};
use serde::{Deserialize, Serialize};

use crate::{
    cli::TrainArgs,
    data::{build_tokenizer, corpus_path, encode, read_text},
    generate::{encode_prompt, generate, print_flushed, FastEngine},
    perplexity,
    sampling::Sampling,
};

/// Optimizer steps when neither --steps nor --epochs is given: about 14.7 passes over Tiny
/// Shakespeare, chosen so that the one-command run ends well within its time limit on a 2-core
/// machine (measured times: docs/performance.md).
pub const DEFAULT_STEPS: usize = 7_200;

/// The largest `--batch-size` and `--seq-len`.
const MAX_BATCH: usize = 1 << 16;
/// The most tokens one step may train on (`--batch-size` × `--seq-len`).
const MAX_TOKENS_PER_STEP: usize = 1 << 22;

/// Windows per validation batch (no gradients, so larger is faster).
const VALIDATION_BATCH: usize = 128;

/// The validation windows: non-overlapping windows over the validation tokens, all of them for
/// the final measurement, an evenly spread subset after each round.
pub(crate) struct Validation {
    windows: TextWindows,
    subset: Vec<usize>,
}

impl Validation {
    pub(crate) fn new(
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
    pub(crate) fn subset_batches(
        &self,
    ) -> impl Iterator<Item = dl_data::Result<(Tensor, Tensor)>> + '_ {
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
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control> {
        let record = context.record();
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

/// Checks the sizes and rates of `arguments` before anything is read or built.
pub(crate) fn check(arguments: &TrainArgs) -> Result<()> {
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
    let bounded = [
        ("--embedding", arguments.embedding, dl_models::MAX_WIDTH),
        ("--hidden", arguments.hidden, dl_models::MAX_WIDTH),
        ("--layers", arguments.layers, dl_models::MAX_LAYERS),
        (
            "--vocab-size",
            arguments.vocab_size,
            dl_models::MAX_VOCABULARY,
        ),
        ("--batch-size", arguments.batch_size, MAX_BATCH),
        ("--seq-len", arguments.seq_len, MAX_BATCH),
    ];
    for (flag, value, most) in bounded {
        if value > most {
            bail!("{flag} {value} is too large: at most {most}");
        }
    }
    if arguments.batch_size * arguments.seq_len > MAX_TOKENS_PER_STEP {
        bail!(
            "--batch-size {} × --seq-len {} is {} tokens a step: at most {MAX_TOKENS_PER_STEP}",
            arguments.batch_size,
            arguments.seq_len,
            arguments.batch_size * arguments.seq_len
        );
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

/// How a run is laid out in steps: `rounds` of `eval_every` steps (the last may be shorter),
/// validated after each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub(crate) total: usize,
    eval_every: usize,
    per_pass: f64,
    tokens_per_step: usize,
}

impl Steps {
    pub(crate) fn new(arguments: &TrainArgs, train_token_count: usize) -> Self {
        let tokens_per_step = arguments.batch_size * arguments.seq_len;
        let per_pass = train_token_count as f64 / tokens_per_step as f64;
        let total = match (arguments.steps, arguments.epochs) {
            (Some(steps), _) => steps,
            (None, Some(epochs)) => ((epochs * per_pass).ceil() as usize).max(1),
            (None, None) => DEFAULT_STEPS,
        };
        Self {
            total,
            eval_every: arguments.eval_every,
            per_pass,
            tokens_per_step,
        }
    }

    pub(crate) fn rounds(&self) -> usize {
        self.total.div_ceil(self.eval_every)
    }

    pub(crate) fn in_round(&self, round: usize) -> usize {
        self.eval_every
            .min(self.total - (round - 1) * self.eval_every)
    }
}

/// The run (device, schedule, resumed run, outputs), the text, and the recipe (resumed or new).
struct Plan {
    run: RunPlan,
    corpus: PathBuf,
    text: String,
    recipe: TextRecipe,
}

impl Plan {
    /// Checks the flags and finds what is resumed; a resumed run without `--seed` takes its
    /// checkpoint's (filled into `arguments`).
    fn new(arguments: &mut TrainArgs) -> Result<Self> {
        check(arguments)?;
        let data_dir = dl_data::resolve_data_dir(arguments.data_dir.as_deref());
        let corpus = corpus_path(arguments.corpus.as_deref(), &data_dir, arguments.offline)?;
        let text = read_text(&corpus)?;
        // Outputs must not overwrite the text (or tokenizer file) the run reads.
        let tokenizer_file = PathBuf::from(&arguments.tokenizer);
        let mut inputs = vec![corpus.as_path()];
        if tokenizer_file.is_file() {
            inputs.push(&tokenizer_file);
        }
        let out = arguments.out.clone();
        let flags = RunFlags {
            device: &arguments.device,
            schedule: &arguments.schedule,
            resume: arguments.resume.clone(),
            out: &out,
            inputs: &inputs,
            optimizers: &[OPTIMIZER_NAME],
        };
        let run = RunPlan::new(flags, &mut arguments.seed)?;
        let recipe = match &run.resumed {
            Some((run, checkpoint)) => {
                dl_models::language_model_recipe(run.checkpoint_path(), checkpoint)?
            }
            None => {
                let tokenizer = build_tokenizer(
                    &arguments.tokenizer,
                    &text,
                    arguments.vocab_size,
                    &data_dir,
                    arguments.offline,
                )?;
                TextRecipe {
                    config: TextModelConfig {
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
        Ok(Self {
            run,
            corpus,
            text,
            recipe,
        })
    }

    /// The checkpoint metadata of the run: recipe with tokenizer, training settings, schedule.
    fn metadata(&self, arguments: &TrainArgs, steps: &Steps) -> Result<BTreeMap<String, String>> {
        let mut metadata = Recipe::LanguageModel(self.recipe.clone()).metadata()?;
        metadata.extend(dl_train::training_metadata(&TrainingSettings::of(
            arguments,
            steps.total,
        ))?);
        metadata.insert(SCHEDULE_KEY.into(), self.run.schedule_spec.to_string());
        Ok(metadata)
    }
}

/// The training settings a checkpoint records (its `training` entry, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainingSettings {
    seed: u64,
    seq_len: usize,
    batch_size: usize,
    learning_rate: f64,
    optimizer: String,
    clip_norm: f64,
    steps: usize,
    eval_every: usize,
    validation_fraction: f64,
}

impl TrainingSettings {
    fn of(arguments: &TrainArgs, steps: usize) -> Self {
        Self {
            seed: arguments.seed(),
            seq_len: arguments.seq_len,
            batch_size: arguments.batch_size,
            learning_rate: arguments.learning_rate,
            optimizer: "adam".into(),
            clip_norm: arguments.clip_norm,
            steps,
            eval_every: arguments.eval_every,
            validation_fraction: arguments.validation_fraction,
        }
    }
}

/// The tokens, split into training windows and validation windows, and the run's steps.
struct Corpus {
    train_windows: TextWindows,
    validation: Option<Validation>,
    validation_tokens: Vec<u32>,
    steps: Steps,
}

impl Corpus {
    fn prepare(plan: &Plan, arguments: &TrainArgs) -> Result<Self> {
        let tokenizer = &plan.recipe.tokenizer;
        let tokens = encode(tokenizer, &plan.text, &plan.corpus)?;
        let (train_tokens, validation_tokens) =
            split_train_validation(&tokens, arguments.validation_fraction)?;
        println!(
            "corpus {}: {} characters, {} tokens ({} tokenizer, vocabulary of {}); training on the first {}, validating on the last {}",
            plan.corpus.display(),
            plan.text.chars().count(),
            tokens.len(),
            tokenizer.kind(),
            tokenizer.vocab_size(),
            train_tokens.len(),
            validation_tokens.len()
        );
        let steps = Steps::new(arguments, train_tokens.len());
        let train_windows = TextWindows::new(
            &plan.corpus,
            train_tokens,
            arguments.seq_len,
            arguments.batch_size,
            arguments.seed(),
        )
        .context("not enough text to train on")?
        .with_device(plan.run.device.clone());
        let validation = if validation_tokens.is_empty() {
            None
        } else {
            Some(Validation::new(
                &plan.corpus,
                validation_tokens.clone(),
                arguments.seq_len,
                arguments.validation_batches,
                &plan.run.device,
            )?)
        };
        Ok(Self {
            train_windows,
            validation,
            validation_tokens,
            steps,
        })
    }
}

/// The trainer of the run (resumed when asked), and the flag its time limit raises.
fn build_trainer(
    plan: &Plan,
    arguments: &TrainArgs,
    steps: &Steps,
    model: &TextModel,
    store: &VarStore,
    metadata: &BTreeMap<String, String>,
) -> Result<(Trainer, Rc<Cell<bool>>)> {
    let optimizer: Box<dyn Optimizer> = Box::new(Adam::new(
        AdamConfig::default().learning_rate(arguments.learning_rate),
    )?);
    let out = Run::new(&arguments.out);
    let mut trainer = Trainer::new(optimizer)
        .loss(Loss::CrossEntropy)
        .epochs(steps.rounds())
        .schedule(
            plan.run
                .schedule_spec
                .build(arguments.learning_rate, steps.total)?,
        )
        .callback(Box::new(
            ModelCheckpoint::new(metadata.clone()).last(out.checkpoint_path()),
        ));
    if let Some((run, checkpoint)) = &plan.run.resumed {
        let (resuming, resumed) =
            trainer.restore(run, checkpoint, model, store, Some(&plan.run.schedule_spec))?;
        trainer = resuming;
        for notice in &resumed.notices {
            println!("{notice}");
        }
        let done = resumed.epoch();
        if done >= steps.rounds() {
            bail!(
                "{} has already trained {done} rounds ({} steps) of the {} that --steps {} / --eval-every {} asks for: pass a larger --steps or --epochs",
                run.checkpoint_path().display(),
                resumed.global_step,
                steps.rounds(),
                steps.total,
                steps.eval_every
            );
        }
        println!(
            "resuming {} after round {done} (step {})",
            run.checkpoint_path().display(),
            resumed.global_step
        );
    }
    if arguments.clip_norm > 0.0 {
        trainer = trainer.clip_norm(arguments.clip_norm);
    }
    if let Some(patience) = arguments.early_stopping {
        trainer = trainer.callback(Box::new(
            EarlyStopping::new(patience).restore_best_weights(true),
        ));
    }
    let time_limit_reached = Rc::new(Cell::new(false));
    if let Some(minutes) = arguments.time_limit {
        trainer = trainer.callback(Box::new(TimeLimit {
            started: Instant::now(),
            limit: Duration::from_secs_f64(minutes * 60.0),
            reached: Rc::clone(&time_limit_reached),
        }));
    }
    Ok((trainer, time_limit_reached))
}

/// Runs `train`.
pub fn run(arguments: &TrainArgs) -> Result<()> {
    let mut arguments = arguments.clone();
    let plan = Plan::new(&mut arguments)?;
    let arguments = &arguments;
    let corpus = Corpus::prepare(&plan, arguments)?;
    let steps = corpus.steps;
    let store = VarStore::new(&plan.run.device, DType::F32, arguments.seed());
    let model = plan.recipe.build(&store)?;
    let mut metadata = plan.metadata(arguments, &steps)?;
    let (mut trainer, time_limit_reached) =
        build_trainer(&plan, arguments, &steps, &model, &store, &metadata)?;
    describe(
        &plan.recipe.config,
        &store,
        arguments,
        &plan.run.schedule_spec,
        &steps,
    );

    let started = Instant::now();
    let steps_before = trainer.global_step();
    let train_batches = |round: usize| {
        corpus
            .train_windows
            .epoch_batches(round, steps.in_round(round))
    };
    let history = match &corpus.validation {
        Some(validation) => trainer.fit_with_validation(&model, &store, train_batches, |_| {
            validation.subset_batches()
        }),
        None => trainer.fit(&model, &store, train_batches),
    }
    .context("training failed")?;
    let training_seconds = started.elapsed().as_secs_f64();

    if let Some(validation) = &corpus.validation {
        let loss = report_validation(
            &model,
            &plan.recipe.tokenizer,
            validation,
            &corpus.validation_tokens,
            arguments,
            &plan.run.device,
        )?;
        metadata.insert("validation_loss".into(), format!("{loss:.6}"));
    }
    let out = Run::new(&arguments.out);
    out.save(&trainer.context(&model, &store), &metadata)?;
    history.plot_png(&out.plot_path())?;
    let new_steps = trainer.global_step() - steps_before;
    println!(
        "trained {new_steps} steps in {training_seconds:.1} s ({:.0} tokens/s){}",
        (new_steps * steps.tokens_per_step) as f64 / training_seconds.max(1e-9),
        if time_limit_reached.get() {
            format!(
                ", stopped by --time-limit before the {} steps asked for",
                steps.total
            )
        } else {
            String::new()
        }
    );
    report(&out, &model, &plan, arguments)
}

/// Says where the run is, prints a sample, and how to use the model.
fn report(out: &Run, model: &TextModel, plan: &Plan, arguments: &TrainArgs) -> Result<()> {
    let path = out.checkpoint_path().display();
    println!("saved {path}");
    println!(
        "  history {}, loss curves {}, optimizer state {}",
        out.history_path().display(),
        out.plot_path().display(),
        out.optimizer_state_path(OPTIMIZER_NAME).display()
    );
    if arguments.sample_length > 0 {
        print_sample(model, &plan.recipe.tokenizer, &plan.text, arguments)?;
    }
    println!("use it:");
    println!(
        "  cargo run --release -p text-gen -- generate --checkpoint {path} --prompt \"{}\"",
        arguments.prompt
    );
    println!("  cargo run --release -p text-gen -- perplexity --checkpoint {path} --corpus FILE");
    Ok(())
}

/// Prints the model and the run's plan.
fn describe(
    config: &TextModelConfig,
    store: &VarStore,
    arguments: &TrainArgs,
    schedule_spec: &ScheduleSpec,
    steps: &Steps,
) {
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
        "training: {} steps of {} windows × {} tokens ({:.2} passes over the training text), Adam at {} with schedule {schedule_spec}, clip-norm {}, seed {}; validation every {} steps",
        steps.total,
        arguments.batch_size,
        arguments.seq_len,
        steps.total as f64 / steps.per_pass,
        arguments.learning_rate,
        arguments.clip_norm,
        arguments.seed(),
        steps.eval_every
    );
}

/// Measures the trained model on the whole validation text, prints it, and returns the
/// windowed loss.
fn report_validation(
    model: &TextModel,
    tokenizer: &Tokenizer,
    validation: &Validation,
    validation_tokens: &[u32],
    arguments: &TrainArgs,
    device: &Device,
) -> Result<f64> {
    let windowed = evaluate(
        model,
        Loss::CrossEntropy,
        validation.windows.sequential_batches(),
    )?;
    let carried = perplexity::score(model, validation_tokens, 32, 256, device)?;
    let characters = perplexity::predicted_characters(
        tokenizer,
        &tokenizer.decode(validation_tokens)?,
        validation_tokens,
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
    Ok(windowed.loss)
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
        &mut SeededRng::new(arguments.seed()),
        &mut print_flushed,
    )?;
    println!();
    println!("-----");
    Ok(())
}
