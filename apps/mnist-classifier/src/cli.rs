//! The command line: `mnist-classifier [train|evaluate|predict|summary|prune|quantize|explain|serve|search|ensemble]`, with `train` and its
//! course's defaults (and a cosine learning-rate schedule) when no subcommand is given.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use dl_models::{ImageModel, ImageRecipe, LayerWidths};

/// Train, evaluate and use an MNIST digit classifier (the course's project 5.1).
#[derive(Debug, Parser)]
#[command(name = "mnist-classifier", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, trains the course's CNN with the course's settings and a cosine
    /// learning-rate schedule.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// CPU threads for matrix products and kernels (default: $RAYON_NUM_THREADS, else the
    /// physical cores); Candle's element-wise operations use $CANDLE_NUM_THREADS, else 1 (see
    /// dl_tensor::threads).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(usize))]
    pub threads: Option<usize>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and save it as a checkpoint.
    Train(TrainArgs),
    /// Test loss, accuracy, confusion matrix and per-class precision and recall of a checkpoint.
    Evaluate(EvaluateArgs),
    /// Classify image files (PNG or JPEG, any size and colour) or test images.
    Predict(PredictArgs),
    /// Print the layers, output shapes and parameter counts of a model, Keras-style.
    Summary(SummaryArgs),
    /// Remove the smallest weights of a trained model and fine-tune the rest (course §8).
    Prune(PruneArgs),
    /// Store a trained model's weights in int8 (run on integer kernels), f16 or bf16 (course §8).
    Quantize(QuantizeArgs),
    /// Show which pixels a prediction rests on: saliency maps as PNGs, or their sanity checks
    /// (course §8).
    Explain(ExplainArgs),
    /// Serve a page to draw digits on, with live predictions and saliency maps, and its JSON
    /// API (course §8).
    Serve(ServeArgs),
    /// Search hyper-parameters (course §8, AutoML): TPE, random or grid sampling, median or
    /// ASHA pruning, a resumable journal, the results table and the best train command.
    Search(SearchArgs),
    /// Combine several trained classifiers and compare them with their members: accuracy,
    /// NLL, calibration, disagreement, oracle accuracy, cost (course appendix: ensembles).
    Ensemble(EnsembleArgs),
}

/// Which dataset, where it lives and where to compute.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory (default: $DL_DATA_DIR, else ./datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The dataset: handwritten digits or Zalando's clothing images (same format).
    #[arg(long, value_enum, default_value_t = DatasetChoice::Mnist)]
    pub dataset: DatasetChoice,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The datasets the classifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetChoice {
    /// MNIST handwritten digits.
    Mnist,
    /// Fashion-MNIST clothing images.
    FashionMnist,
}

/// The optimizers `--optimizer` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    /// Adam (the course's choice).
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// Stochastic gradient descent with momentum 0.9.
    Sgd,
    /// RMSprop.
    Rmsprop,
}

/// Settings of a training run.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The network to train.
    #[arg(long, value_enum, default_value_t = ImageModel::CourseCnn)]
    pub model: ImageModel,
    /// Epochs to train (counting the epochs of a resumed run).
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Examples per gradient step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The step size η of gradient descent.
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerChoice::Adam)]
    pub optimizer: OptimizerChoice,
    /// Learning-rate schedule: cosine[:warmup=N][:min_lr=X] (η falls from --learning-rate to
    /// min_lr over the run's steps), constant (the course's), step:N:GAMMA,
    /// exponential:GAMMA, plateau[:patience=N].
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Weight decay (L2 for Adam, SGD and RMSprop; decoupled for AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Dropout rate (default: the model's own).
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Filters or units of each hidden layer, comma-separated (default: the model's own, e.g.
    /// 32,64,128 for cnn; up to 8 times each default).
    #[arg(long, value_delimiter = ',', value_name = "W1,W2,...")]
    pub widths: Option<Vec<usize>>,
    /// Random shifts, rotations and scaling of training images.
    #[arg(long)]
    pub augment: bool,
    /// Train on the training labels randomly permuted (seeded): a model that can only memorise,
    /// the reference of the data randomization sanity check (`explain --sanity
    /// --random-labels-checkpoint`; Adebayo et al. 2018, Zhang et al. 2017). Expect ~10% test
    /// accuracy.
    #[arg(long)]
    pub shuffle_labels: bool,
    /// Train this many models, with seeds seed, seed + 1, ..., as OUT-member-1, ... (for an
    /// ensemble).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub members: usize,
    /// Fraction of the training set held out for validation (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub validation_split: f64,
    /// Stop when the validation loss has not improved for this many epochs (restores the best weights).
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    /// Seed of initialisation, shuffling, dropout and augmentation (default: 42, or the
    /// resumed checkpoint's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to save the checkpoint; the history (.csv) and plot (.png) go beside it.
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub out: PathBuf,
    /// Continue training from this checkpoint, with its optimizer state and epoch count.
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// The seed of a run that names none.
pub const DEFAULT_SEED: u64 = 42;

impl TrainArgs {
    /// The network these settings describe: `--model` with `--dropout` and `--widths` (each
    /// the model's own when not given), for `--dataset`.
    pub fn recipe(&self) -> anyhow::Result<ImageRecipe> {
        Ok(ImageRecipe {
            model: self.model,
            dropout: self.dropout.unwrap_or(self.model.default_dropout()),
            dataset: self.data.dataset.dataset(),
            widths: layer_widths(self.model, self.widths.as_deref())?,
        })
    }

    /// The seed of the run: `--seed`, else [`DEFAULT_SEED`] (a resumed run's is filled in from
    /// its checkpoint before training).
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }
}

impl Default for TrainArgs {
    fn default() -> Self {
        let cli = Cli::parse_from(["mnist-classifier", "train"]);
        match cli.command {
            Some(Command::Train(arguments)) => arguments,
            _ => unreachable!("`train` parses as the train subcommand"),
        }
    }
}

/// Settings of `evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The checkpoint to evaluate (a file, or hub:OWNER/REPO/FILE.safetensors).
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub checkpoint: PathBuf,
    /// Examples per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Test-time augmentation: average the predictions of each image and its four one-pixel
    /// shifts.
    #[arg(long)]
    pub tta: bool,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// Settings of `predict`.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The checkpoint to use (a file, or hub:OWNER/REPO/FILE.safetensors).
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub checkpoint: PathBuf,
    /// Image files to classify.
    pub images: Vec<PathBuf>,
    /// Classify test image number N instead (0-based).
    #[arg(long, value_name = "N")]
    pub index: Vec<usize>,
    /// Print JSON (one object per image) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Test-time augmentation: average the predictions of each image and its four one-pixel
    /// shifts.
    #[arg(long)]
    pub tta: bool,
    /// Do not download missing data (for --index).
    #[arg(long)]
    pub offline: bool,
}

/// Settings of `summary`.
#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// The network to describe.
    #[arg(long, value_enum, default_value_t = ImageModel::CourseCnn)]
    pub model: ImageModel,
    /// Dropout rate (default: the model's own).
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Filters or units of each hidden layer, comma-separated (default: the model's own).
    #[arg(long, value_delimiter = ',', value_name = "W1,W2,...")]
    pub widths: Option<Vec<usize>>,
}

/// How `prune` picks the weights to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PruneMethod {
    /// One magnitude threshold over all layers (torch's global_unstructured with L1).
    Global,
    /// The same share of every layer's weights.
    Layer,
    /// Whole filters and units with the smallest L2 norm, physically removed: a smaller,
    /// faster model (--sparsity is then the share of filters and units removed).
    Structured,
}

/// How `prune` raises the sparsity while fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PruneScheduleChoice {
    /// Zhu & Gupta's cubic rise over the first two thirds of fine-tuning (TF-MOT's PolynomialDecay).
    Polynomial,
    /// Han et al.'s prune → retrain rounds, one per fine-tuning epoch.
    Iterative,
    /// Everything at once, then fine-tuning.
    OneShot,
}

/// Settings of `prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The trained model to prune (a file, or hub:OWNER/REPO/FILE.safetensors).
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub checkpoint: PathBuf,
    /// The share of weights to remove, in [0, 1).
    #[arg(long, default_value_t = 0.9)]
    pub sparsity: f64,
    /// Instead of one model: prune to each of these sparsities (e.g. 0.5,0.75,0.9,0.95,0.98) and
    /// write a table, a CSV and a plot of accuracy, size and speed.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub sweep: Option<Vec<f64>>,
    /// How to choose the weights.
    #[arg(long, value_enum, default_value_t = PruneMethod::Global)]
    pub method: PruneMethod,
    /// Fine-tuning epochs while pruning (0: prune once, no fine-tuning).
    #[arg(long, default_value_t = 1)]
    pub fine_tune_epochs: usize,
    /// How the sparsity rises during fine-tuning.
    #[arg(long, value_enum, default_value_t = PruneScheduleChoice::Polynomial)]
    pub schedule: PruneScheduleChoice,
    /// Adam's learning rate for fine-tuning (annealed to 0 along a cosine).
    #[arg(long, default_value_t = 5e-4)]
    pub learning_rate: f64,
    /// Examples per fine-tuning batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Also prune the biases.
    #[arg(long)]
    pub biases: bool,
    /// Random seed for shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to save the pruned model (a sweep writes one file per sparsity beside it, and
    /// its table as OUT-sweep.csv and OUT-sweep.png).
    #[arg(long, default_value = "checkpoints/mnist-cnn-pruned.safetensors")]
    pub out: PathBuf,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// The number format `quantize` stores weights in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// int8 weights and activations, run on integer kernels (AVX-512 VNNI where present).
    Int8,
    /// IEEE half precision weights (widened to f32 on loading).
    F16,
    /// bfloat16 weights (widened to f32 on loading).
    Bf16,
}

/// Settings of `quantize`.
#[derive(Debug, Clone, Args)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The trained (or pruned) model to quantize.
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub checkpoint: PathBuf,
    /// The number format.
    #[arg(long, value_enum, default_value_t = Precision::Int8)]
    pub precision: Precision,
    /// Training images used to calibrate the activation ranges (int8).
    #[arg(long, default_value_t = 1000)]
    pub calibration: usize,
    /// Calibrate to this percentile of the activations (e.g. 99.99) instead of their min/max.
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Write int8 in the compact format (pruned weights as bitmask or gaps, zstd) instead of
    /// safetensors: the smallest file, for a pruned model.
    #[arg(long)]
    pub compact: bool,
    /// Where to save it (default: the checkpoint's name with .int8, .f16 or .bf16 before
    /// .safetensors, or .int8.dlc for --compact).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// The attribution methods `explain` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainMethod {
    /// |∂S_c/∂x| (Simonyan 2013).
    Saliency,
    /// x ⊙ ∂S_c/∂x.
    Gradxinput,
    /// The gradient averaged over 50 noisy copies (Smilkov 2017).
    Smoothgrad,
    /// Integrated Gradients from a black image, 64 steps (Sundararajan 2017).
    Ig,
    /// Grad-CAM on the last convolution (Selvaraju 2017).
    Gradcam,
    /// The probability drop under a sliding 4x4 patch (Zeiler & Fergus 2014).
    Occlusion,
    /// Every method, one column each.
    All,
}

/// Settings of `explain`.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The model (a float checkpoint: int8 models have no gradients).
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub checkpoint: PathBuf,
    /// Image files to explain.
    pub images: Vec<PathBuf>,
    /// Explain test image N instead (0-based).
    #[arg(long, value_name = "N")]
    pub index: Vec<usize>,
    /// The attribution method.
    #[arg(long, value_enum, default_value_t = ExplainMethod::All)]
    pub method: ExplainMethod,
    /// Explain this class instead of the predicted one.
    #[arg(long, value_name = "CLASS")]
    pub target: Option<u32>,
    /// Where the PNGs go (one per image).
    #[arg(long, default_value = "explanations")]
    pub out: PathBuf,
    /// Print the maps and scores as JSON (one object per image) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Instead: run the sanity checks (cascading randomization, deletion curves) on the images
    /// and print their table.
    #[arg(long)]
    pub sanity: bool,
    /// With --sanity: a model of the same architecture trained on permuted labels (`train
    /// --shuffle-labels`), for the data randomization check: its maps should not resemble this
    /// model's.
    #[arg(long, value_name = "CHECKPOINT", requires = "sanity")]
    pub random_labels_checkpoint: Option<PathBuf>,
    /// Do not download missing data (for --index).
    #[arg(long)]
    pub offline: bool,
}

/// Settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The model (any precision; int8 models predict but cannot explain).
    #[arg(long, default_value = "checkpoints/mnist-cnn.safetensors")]
    pub checkpoint: PathBuf,
    /// Data directory, where a hub checkpoint (hf:…) is cached (default: $DL_DATA_DIR, else
    /// ./datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The address to listen on: 127.0.0.1 (this machine only) unless you mean to share it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// The port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The largest request body read, in bytes.
    #[arg(long, default_value_t = dl_serve::Limits::default().max_body_bytes, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Requests admitted at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = dl_serve::Limits::default().max_requests, value_name = "N")]
    pub max_requests: usize,
    /// Model runs at once (default: the compute threads).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Settings of `search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub search: dl_tune::SearchOptions,
    /// The share of the training images held out to score trials (the test set is never used).
    #[arg(long, default_value_t = 0.1)]
    pub validation_split: f64,
    /// Then train the best configuration on all the training images and evaluate it on the
    /// test set, once.
    #[arg(long)]
    pub retrain: bool,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// How `ensemble` combines its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnsembleChoice {
    /// The mean of the members' class probabilities (soft voting).
    Mean,
    /// One vote per member for its most probable class; ties go to the higher mean probability.
    Vote,
}

/// Settings of `ensemble`.
#[derive(Debug, Clone, Args)]
pub struct EnsembleArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// A member (a checkpoint of any precision); give two or more.
    #[arg(long, required = true)]
    pub checkpoint: Vec<PathBuf>,
    /// How the members are combined.
    #[arg(long, value_enum, default_value_t = EnsembleChoice::Mean)]
    pub method: EnsembleChoice,
    /// Also save the members, with the method, as one checkpoint that evaluate, predict and
    /// serve take like any other (e.g. checkpoints/ensemble.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// `--widths` checked against `model`'s layers; `None` keeps the model's own widths.
pub fn layer_widths(
    model: ImageModel,
    widths: Option<&[usize]>,
) -> anyhow::Result<Option<LayerWidths>> {
    let Some(widths) = widths else {
        return Ok(None);
    };
    let expected = model.default_widths().len();
    if widths.len() != expected {
        anyhow::bail!(
            "--widths {}: {model} has {expected} hidden layers, so give {expected} widths (its own are {})",
            join_widths(widths),
            join_widths(model.default_widths())
        );
    }
    LayerWidths::new(widths)
        .map(Some)
        .map_err(|problem| anyhow::anyhow!("--widths: {problem}"))
}

fn join_widths(widths: &[usize]) -> String {
    widths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
