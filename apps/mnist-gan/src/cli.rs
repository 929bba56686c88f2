//! The command line: `mnist-gan [train|generate|interpolate|score]`, with `train` and its
//! defaults when no subcommand is given.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dl_models::GanModel;

/// Train a GAN that writes digits, generate from it, and measure how real its digits are
/// (course §2.3, 生成对抗网络).
#[derive(Debug, Parser)]
#[command(name = "mnist-gan", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, trains the default DCGAN.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// CPU threads for matrix products and kernels (default: $RAYON_NUM_THREADS, else the
    /// physical cores).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(usize))]
    pub threads: Option<usize>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a GAN and save G and D with their optimizer states.
    Train(TrainArgs),
    /// Generate images from a trained generator: a PNG grid, or IDX for scoring.
    Generate(GenerateArgs),
    /// A walk through the latent space between two seeds, as a PNG strip.
    Interpolate(InterpolateArgs),
    /// Score generated images with a classifier, against the real test set.
    Score(ScoreArgs),
}

/// Which dataset, where it lives and where to compute.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory (default: $DL_DATA_DIR, else ./datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The dataset.
    #[arg(long, value_enum, default_value_t = DatasetChoice::Mnist)]
    pub dataset: DatasetChoice,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Do not download missing data.
    #[arg(long)]
    pub offline: bool,
}

/// The datasets a GAN can learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetChoice {
    /// MNIST handwritten digits.
    Mnist,
    /// Fashion-MNIST clothing images.
    FashionMnist,
}

impl DatasetChoice {
    /// The dl-data dataset behind the choice.
    pub fn dataset(self) -> dl_data::ImageDataset {
        match self {
            Self::Mnist => dl_data::ImageDataset::Mnist,
            Self::FashionMnist => dl_data::ImageDataset::FashionMnist,
        }
    }
}

/// The default run's checkpoint.
pub const DEFAULT_CHECKPOINT: &str = "checkpoints/mnist-gan.safetensors";
/// The default classifier for scoring: what `cargo run --release -p mnist-classifier` writes.
pub const DEFAULT_CLASSIFIER: &str = "checkpoints/mnist-cnn.safetensors";

/// Settings of a training run.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The architecture.
    #[arg(long, value_enum, default_value_t = GanModel::Dcgan)]
    pub model: GanModel,
    /// Epochs to train (counting the epochs of a resumed run).
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Real images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam's learning rate for G and D. DCGAN's is 2e-4; 1e-3 gave better digits in the
    /// default run's 5 epochs (see docs/gan.md, Results).
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// D's learning rate, when it should differ from G's (two time-scales, Heusel et al. 2017).
    #[arg(long)]
    pub discriminator_learning_rate: Option<f64>,
    /// Adam's β₁ (DCGAN: 0.5).
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    /// The size of the noise vector z.
    #[arg(long, default_value_t = 100)]
    pub latent_dim: usize,
    /// W: feature maps of the first convolution (DCGAN), or the unit scale (MLP).
    #[arg(long, default_value_t = 32)]
    pub width: usize,
    /// Class-conditional G and D, so that `generate --digit D` works.
    #[arg(long)]
    pub conditional: bool,
    /// Keep an exponential moving average of G's weights (decay 0.999) and generate with it.
    #[arg(long)]
    pub ema: bool,
    /// One-sided label smoothing: D's target for real images (1 = none, 0.9 = smoothed).
    #[arg(long, default_value_t = 1.0)]
    pub real_target: f64,
    /// Seed of initialisation, shuffling and noise (default: 42, or the resumed run's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to save the run (G and D); optimizer states, history and samples go beside it.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub out: PathBuf,
    /// Continue a saved run, bit for bit as if it had not stopped.
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// A classifier checkpoint to score the samples after training and to watch for mode
    /// collapse after each epoch (default: checkpoints/mnist-cnn.safetensors when it exists).
    #[arg(long, value_name = "CHECKPOINT")]
    pub classifier: Option<PathBuf>,
    /// Train on the first N training images only (a quick run; default: all 60,000).
    #[arg(long, value_name = "N")]
    pub train_images: Option<usize>,
    /// Samples scored after training (0: skip the score).
    #[arg(long, default_value_t = 10_000)]
    pub score_samples: usize,
}

/// The seed of a run that names none.
pub const DEFAULT_SEED: u64 = 42;

impl TrainArgs {
    /// The seed of the run.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }
}

impl Default for TrainArgs {
    fn default() -> Self {
        let cli = Cli::parse_from(["mnist-gan", "train"]);
        match cli.command {
            Some(Command::Train(arguments)) => arguments,
            _ => unreachable!("`train` parses as the train subcommand"),
        }
    }
}

/// Settings of `generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// The GAN checkpoint (`train --out`).
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// How many images.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Generate this digit (class), with a conditional GAN.
    #[arg(long)]
    pub digit: Option<u32>,
    /// Seed of the noise: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output: .png (a grid) or .idx (idx3-ubyte, white on black like MNIST).
    #[arg(long)]
    pub out: PathBuf,
    /// Device: cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Settings of `interpolate`.
#[derive(Debug, Clone, Args)]
pub struct InterpolateArgs {
    /// The GAN checkpoint.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// Seed of the starting noise vector.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Seed of the final noise vector.
    #[arg(long, default_value_t = 1)]
    pub to: u64,
    /// Images along the way, both ends included.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// The digit, with a conditional GAN.
    #[arg(long)]
    pub digit: Option<u32>,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

/// Settings of `score`.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Score samples of this GAN checkpoint.
    #[arg(long, conflicts_with = "samples")]
    pub checkpoint: Option<PathBuf>,
    /// Score the images of this idx3-ubyte file (from `generate --out FILE.idx`, or another
    /// framework's).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// The classifier that judges (an mnist-classifier checkpoint).
    #[arg(long, default_value = DEFAULT_CLASSIFIER)]
    pub classifier: PathBuf,
    /// Samples generated from --checkpoint.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Seed of the noise for --checkpoint.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}
