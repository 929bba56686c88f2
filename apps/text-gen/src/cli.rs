//! The command line: `text-gen [train|generate|perplexity|search]`. Without a subcommand it trains the
//! default model on Tiny Shakespeare and prints a sample from the course's prompt.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The course's start string (§5.2): `start_string = "The meaning of life is"`.
pub const COURSE_PROMPT: &str = "The meaning of life is";

/// Where checkpoints go unless `--out` / `--checkpoint` say otherwise.
pub const DEFAULT_CHECKPOINT: &str = "checkpoints/text-gen.safetensors";

/// Train an LSTM language model on a text and generate text with it (the course's project 5.2).
///
/// Without a subcommand: trains like `train` (and takes its options) with a nine-minute limit —
/// by default a character-level LSTM on Tiny Shakespeare, downloaded when missing — saves
/// checkpoints/text-gen.safetensors and prints 500 characters generated from "The meaning of
/// life is".
#[derive(Debug, Parser)]
#[command(
    name = "text-gen",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without one, trains the default model and prints a sample.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The training settings when no subcommand is given.
    #[command(flatten)]
    pub train: TrainArgs,
    /// CPU threads for matrix products and kernels (default: $RAYON_NUM_THREADS, else the
    /// physical cores); Candle's element-wise operations use $CANDLE_NUM_THREADS, else 1 (see
    /// dl_tensor::threads).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

/// The time limit of a run without a subcommand, in minutes: the course's one-command run
/// should end within about ten minutes on a 2-core laptop.
pub const DEFAULT_RUN_MINUTES: f64 = 9.0;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model on a corpus and save it (tokenizer and configuration included).
    ///
    /// Training draws random windows of --seq-len tokens from the text (all but its last
    /// --validation-fraction) in batches of --batch-size. Progress is reported in rounds of
    /// --eval-every optimizer steps, which the progress lines, the history CSV and the plot call
    /// epochs: after each, the validation loss is measured and the checkpoint written.
    /// --steps counts optimizer steps; --epochs counts passes over the training text instead.
    Train(Box<TrainArgs>),
    /// Generate text from a prompt with a trained checkpoint, streaming it to stdout.
    Generate(GenerateArgs),
    /// Loss per token and per character, and perplexity, of a checkpoint on a corpus.
    Perplexity(PerplexityArgs),
    /// Search hyper-parameters (learning rate, hidden size, layers, dropout, ...) by the
    /// validation loss, with TPE, random or grid sampling, pruning and a resumable journal
    /// (course §8: AutoML).
    Search(SearchArgs),
}

/// Settings of `search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub search: dl_tune::SearchOptions,
    /// The text to learn, any UTF-8 file (default: Tiny Shakespeare, downloaded into the data
    /// directory when missing); tokenized by characters.
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Data directory for Tiny Shakespeare (default: $DL_DATA_DIR, else ./datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Do not download anything.
    #[arg(long)]
    pub offline: bool,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Fraction of the text, at its END, that scores the trials.
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Then train the best configuration as `train` would (checkpoint best.safetensors beside
    /// the journal, history, sample).
    #[arg(long)]
    pub retrain: bool,
}

/// Settings of a training run.
///
/// Progress: the Trainer's "epochs" are evaluation rounds of --eval-every optimizer steps each
/// (random windows of the training text); after each round the validation loss is measured and
/// a checkpoint written. --epochs instead counts passes over the training text.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The text to learn, any UTF-8 file (default: Tiny Shakespeare, downloaded into the data
    /// directory when missing).
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Data directory for Tiny Shakespeare and Hub tokenizers (default: $DL_DATA_DIR, else
    /// ./datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Do not download anything.
    #[arg(long)]
    pub offline: bool,
    /// Tokenizer: char (one token per character), bpe (a byte-level BPE trained on the corpus,
    /// see --vocab-size), PATH/tokenizer.json, or hub:OWNER/REPO (a Hugging Face tokenizer).
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    /// Vocabulary size of the BPE tokenizer trained with --tokenizer bpe (at least 256).
    #[arg(long, default_value_t = 512)]
    pub vocab_size: usize,
    /// Length of each token's embedding vector.
    #[arg(long, default_value_t = 64)]
    pub embedding: usize,
    /// LSTM hidden state size.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Stacked LSTM layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Dropout between LSTM layers and before the output layer (training only).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Tokens per training window (backpropagation through time spans this many steps).
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
    /// Windows per optimizer step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Optimizer steps in all (counting a resumed run's); default 7,200, or what --epochs gives.
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the training text instead of --steps (fractions allowed, e.g. 0.5); one pass
    /// is training tokens / (batch size × sequence length) steps.
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Optimizer steps between validation measurements (one progress "epoch").
    #[arg(long, default_value_t = 400)]
    pub eval_every: usize,
    /// Validation batches per measurement, spread evenly over the validation text (0 = all);
    /// the final validation loss always uses all of it.
    #[arg(long, default_value_t = 4)]
    pub validation_batches: usize,
    /// Adam's step size η.
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Learning-rate schedule: constant, cosine[:warmup=N][:min_lr=X] (per step),
    /// step:N:GAMMA, exponential:GAMMA, plateau[:patience=N] (per --eval-every round).
    #[arg(long, default_value = "cosine:min_lr=0.0002")]
    pub schedule: String,
    /// Rescale gradients whose global norm exceeds this (0 = no clipping).
    #[arg(long, default_value_t = 5.0)]
    pub clip_norm: f64,
    /// Fraction of the text, at its END, kept for validation (0 = none).
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Stop when the validation loss has not improved for this many rounds (restores the best
    /// weights).
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    /// Stop training before a round that would end after this many minutes (a round is assumed
    /// to take as long as the one before). A run cut short this way depends on the machine's
    /// speed; one limited by --steps repeats bit for bit.
    #[arg(long, value_name = "MINUTES")]
    pub time_limit: Option<f64>,
    /// Seed of the initial weights, the training windows and dropout (default: 42, or the
    /// resumed checkpoint's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Continue training from this checkpoint (its tokenizer, model, optimizer state, history
    /// and schedule); --steps or --epochs then counts the earlier steps too.
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// Where to save the checkpoint; the history (.csv), the loss plot (.png) and the optimizer
    /// state (.optimizer.safetensors) go beside it.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub out: PathBuf,
    /// Characters to generate at the end of training from --prompt (0 = none).
    #[arg(long, default_value_t = 500)]
    pub sample_length: usize,
    /// The prompt of the sample printed at the end (the start of the corpus is used instead if
    /// the vocabulary lacks one of its characters).
    #[arg(long, default_value = COURSE_PROMPT)]
    pub prompt: String,
    /// Sampling temperature of the final sample (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
}

/// How the next token is drawn from the model's output distribution.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Keep only the K most likely tokens before sampling.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Keep only the most likely tokens whose probabilities add up to P (nucleus sampling), P in
    /// (0, 1].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The generation engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Plain-Rust matrix-vector products on the CPU (dl_nn::LstmInference): the fastest for
    /// one sequence at a time.
    Fast,
    /// Candle tensors, step by step (Lstm::step), on --device.
    Candle,
}

/// Settings of `generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// The checkpoint written by `text-gen train`.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// The text to continue.
    #[arg(long, default_value = COURSE_PROMPT)]
    pub prompt: String,
    /// Characters to generate after the prompt.
    #[arg(long, default_value_t = 500)]
    pub length: usize,
    /// Sampling temperature: logits are divided by it before the softmax (0 = greedy, always the
    /// most likely token). Several, comma-separated (0.2,0.5,1.0), print one sample block each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.8",
        allow_negative_numbers = true
    )]
    pub temperature: Vec<f32>,
    /// Samples per temperature (sample i uses seed + i).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// How to run the model.
    #[arg(long, value_enum, default_value_t = Engine::Fast)]
    pub engine: Engine,
    /// Device of the candle engine: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Settings of `perplexity`.
#[derive(Debug, Clone, Args)]
pub struct PerplexityArgs {
    /// The checkpoint written by `text-gen train`.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// The text to score, any UTF-8 file.
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Contiguous streams the text is cut into and read side by side (the batch); the LSTM
    /// state is carried along each stream.
    #[arg(long, default_value_t = 32)]
    pub streams: usize,
    /// Tokens per forward pass of each stream (the state is carried from one to the next).
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The seed of a run that names none.
pub const DEFAULT_SEED: u64 = 42;

impl TrainArgs {
    /// The seed of the run: `--seed`, else [`DEFAULT_SEED`] (a resumed run's is filled in from
    /// its checkpoint before training).
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }
}
