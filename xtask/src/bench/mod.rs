//! `cargo xtask bench`: CPU speed of the course's two models, measured the way
//! `../shared/bench/pytorch_baseline.py` measures PyTorch, so the two can be put side by side.
//!
//! Workloads (see the baseline for their exact definitions): `gemm` (fp32 matrix products),
//! `cnn` (train steps at batch 32 and 128, inference at 1000), `lstm` (train and sampling
//! tokens/s for H = 128 and 256), `epochs N` (whole MNIST epochs with test accuracy), `all`
//! (gemm, cnn and lstm, as the baseline's `all`), `gan` (DCGAN train steps, W = 32 and 64), `quant` (the CNN's fp32 and int8 inference); `kernels` times dl-tensor's kernels against
//! plain Candle, layer by layer. Each result is one JSON line on stdout, with
//! the baseline's field names plus `peak_rss_mib` (the process's peak resident memory so far);
//! progress and a summary table go to stderr. `compare OURS PYTORCH` puts two result files side
//! by side.
//!
//! Numbers from an unoptimised build mean little, so `cargo xtask bench` (a dev build, through
//! the cargo alias) runs itself again as `cargo run --release -p xtask -- bench ...`;
//! `--no-release` measures in the current build (the smoke test does, with `--quick`).

mod cnn;
pub mod compare;
mod gan;
mod gemm;
mod kernels;
mod lstm;
pub mod measure;
mod quant;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dl_data::{resolve_data_dir, ImageSet, Mnist};
use dl_tensor::{Device, SeededRng, Tensor};

use compare::{format_table, format_value, setting, workload_kind, PEAK_RSS};
use measure::Measurement;

/// The `framework` field of our results.
pub const FRAMEWORK: &str = "candle";

/// The Candle version the workspace pins (checked against Cargo.toml by a test).
pub const CANDLE_VERSION: &str = "0.11.1";

/// Options of `cargo xtask bench`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = false)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Option<What>,
    #[command(flatten)]
    options: Options,
}

/// What to measure (default: all).
#[derive(Subcommand, Debug, Clone, PartialEq)]
enum What {
    /// The course's CNN: train images/s at batch 32 and 128, inference at batch 1000.
    Cnn,
    /// The char-LSTM: train tokens/s and sampling tokens/s, H = 128 and 256.
    Lstm,
    /// fp32 matrix products: GFLOP/s at 1024x1024x1024, 32x5408x128 and 128x5408x128.
    Gemm,
    /// Full MNIST training of the CNN at batch 32: seconds and test accuracy per epoch.
    Epochs {
        /// Number of epochs.
        #[arg(default_value_t = 5)]
        count: usize,
    },
    /// The DCGAN: real images/s of a training step (one D and one G update), W = 32 and 64.
    Gan {
        /// Only this width W (default: 32 and 64, as the baseline).
        #[arg(long)]
        width: Option<usize>,
    },
    /// The course CNN's inference in fp32 and int8 after one epoch of training: images/s at
    /// batch 1000 and 1, test accuracy, bytes.
    Quant,
    /// gemm, cnn and lstm (the baseline's `all`; epochs are separate).
    All,
    /// Each layer's forward and backward pass, the Adam step and a CNN train step, with
    /// dl-tensor's kernels and with plain Candle operations (no PyTorch counterpart).
    Kernels {
        /// Only the benchmarks whose names contain one of these (e.g. conv, lstm, adam).
        filters: Vec<String>,
        /// Skip the plain-Candle runs (to profile the kernels).
        #[arg(long)]
        kernels_only: bool,
    },
    /// Print two result files side by side with the ratio first/second.
    Compare {
        /// Our results (`cargo xtask bench all > ours.jsonl`).
        ours: PathBuf,
        /// PyTorch's (`python pytorch_baseline.py all > torch.jsonl`).
        pytorch: PathBuf,
    },
}

#[derive(Args, Debug)]
struct Options {
    /// Where MNIST is; default $DL_DATA_DIR, else datasets/, else ../shared/datasets. Without
    /// MNIST the CNN is measured on random images (said on stderr and in the header line).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Compute threads (matrix products and kernels); default RAYON_NUM_THREADS, else the
    /// physical cores. Candle's element-wise pool follows CANDLE_NUM_THREADS, else 1 (see
    /// dl_tensor::threads).
    #[arg(long, value_name = "N", global = true)]
    threads: Option<usize>,
    /// Also write the JSON lines to FILE.
    #[arg(long, value_name = "FILE", global = true)]
    json: Option<PathBuf>,
    /// Smoke mode: every workload with tiny repeat counts (the numbers mean nothing).
    #[arg(long, global = true)]
    quick: bool,
    /// Train steps per timed repeat (the baseline's --steps).
    #[arg(long, value_name = "N", default_value_t = 40, global = true)]
    steps: usize,
    /// After measuring, print a side-by-side table with this PyTorch result file (to stderr).
    #[arg(long, value_name = "FILE", global = true)]
    compare: Option<PathBuf>,
    /// Use random images even when MNIST is present.
    #[arg(long, global = true)]
    synthetic: bool,
    /// Measure in this build instead of re-running in a release build.
    #[arg(long, global = true)]
    no_release: bool,
}

/// How long to measure: the baseline's counts, or tiny ones in `--quick` mode.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Train steps per timed repeat (the LSTM takes a quarter of them, as the baseline).
    pub steps: usize,
    /// Smoke mode.
    pub quick: bool,
}

impl Settings {
    /// Timed repeats: the baseline's `full` count, 1 in quick mode.
    pub fn repeats(&self, full: usize) -> usize {
        if self.quick {
            1
        } else {
            full
        }
    }

    /// Characters generated per timed sampling run.
    pub fn sample_tokens(&self) -> usize {
        if self.quick {
            20
        } else {
            500
        }
    }

    /// How many training images an epoch uses: all, or 512 in quick mode.
    pub fn epoch_examples(&self) -> Option<usize> {
        self.quick.then_some(512)
    }

    /// How many test images the accuracy after an epoch uses: all, or 1000 in quick mode.
    pub fn test_examples(&self) -> Option<usize> {
        self.quick.then_some(1000)
    }
}

/// MNIST's training and test images (or random stand-ins).
#[derive(Debug, Clone)]
pub struct ImageData {
    /// Training images (N, 1, 28, 28) f32 in 0..1 and labels (N) u32.
    pub train: ImageSet,
    /// Test images and labels.
    pub test: ImageSet,
}

/// Where the CNN's images come from.
#[derive(Debug, Clone, PartialEq)]
enum ImageSource {
    /// The data directory holding `mnist/`.
    Mnist(PathBuf),
    /// Random images of MNIST's shape.
    Synthetic,
}

impl ImageSource {
    /// The header line's `data` field.
    fn name(&self) -> &'static str {
        match self {
            Self::Mnist(_) => "mnist",
            Self::Synthetic => "synthetic",
        }
    }
}

/// A run in progress: its settings, data, and the results so far.
pub struct Bench {
    /// How long to measure.
    pub settings: Settings,
    source: Option<ImageSource>,
    images: Option<ImageData>,
    json: Option<File>,
    results: Vec<Measurement>,
    peak_rss_mib: f64,
}

impl Bench {
    /// The images of the CNN workloads, loaded at the first call (so that the workloads before
    /// it, `gemm` in `all`, report their own peak memory, without MNIST's).
    pub fn images(&mut self) -> Result<ImageData> {
        if self.images.is_none() {
            let source = self
                .source
                .as_ref()
                .context("internal: no image source for this workload")?;
            self.images = Some(load_images(source, self.settings)?);
        }
        Ok(self.images.clone().expect("loaded above"))
    }

    /// Records a result: a JSON line on stdout (and in --json's file) and a line on stderr.
    /// A workload's result gets the peak resident memory so far.
    pub fn emit(&mut self, measurement: Measurement) -> Result<()> {
        let measurement = match (measurement.workload(), measure::peak_rss_mib()) {
            (Some(_), Some(peak)) => {
                // The kernel's counters are approximate by a few hundred KiB; keep the
                // reported high-water mark from going down.
                self.peak_rss_mib = self.peak_rss_mib.max(peak);
                measurement.with(PEAK_RSS.field, self.peak_rss_mib)
            }
            _ => measurement,
        };
        let line = measurement.to_json_line();
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        if let Some(file) = self.json.as_mut() {
            writeln!(file, "{line}")?;
            file.flush()?;
        }
        if measurement.workload().is_some() {
            let [workload, setting, result, memory] = summary_row(&measurement);
            eprintln!("{workload} {setting}: {result} (peak RSS {memory} MiB)");
        }
        self.results.push(measurement);
        Ok(())
    }
}

/// Runs `cargo xtask bench`.
pub fn run(arguments: BenchArgs) -> Result<()> {
    let what = arguments.what.unwrap_or(What::All);
    let options = arguments.options;
    if let What::Compare { ours, pytorch } = &what {
        return compare::run(ours, pytorch);
    }
    if cfg!(debug_assertions) && !options.no_release {
        return rerun_in_release();
    }
    if options.threads == Some(0) {
        bail!("--threads 0: use at least 1");
    }
    // Before any Candle operation starts a thread pool (see dl_tensor::threads).
    let plan = dl_tensor::threads::configure(options.threads)?;
    let threads = plan.compute_threads;
    eprintln!("threads: {plan}");

    let settings = Settings {
        steps: if options.quick {
            2
        } else {
            options.steps.max(1)
        },
        quick: options.quick,
    };
    if let What::Kernels {
        filters,
        kernels_only,
    } = &what
    {
        return dl_tensor::threads::on_compute_threads(|| kernels::run(filters, *kernels_only));
    }
    let needs_images = matches!(
        what,
        What::Cnn | What::Epochs { .. } | What::Gan { .. } | What::Quant | What::All
    );
    let source = if needs_images {
        Some(image_source(&options)?)
    } else {
        None
    };
    let json = match &options.json {
        Some(path) => Some(
            File::create(path)
                .with_context(|| format!("cannot create --json file {}", path.display()))?,
        ),
        None => None,
    };
    let mut bench = Bench {
        settings,
        source: source.clone(),
        images: None,
        json,
        results: Vec::new(),
        peak_rss_mib: 0.0,
    };
    let mut header = Measurement::header(FRAMEWORK)
        .with("version", CANDLE_VERSION)
        .with("threads", threads)
        .with(
            "profile",
            if cfg!(debug_assertions) {
                "dev"
            } else {
                "release"
            },
        );
    if let Some(source) = &source {
        header = header.with("data", source.name());
    }
    if settings.quick {
        header = header.with("quick", true);
    }
    // dl-tensor's switch back from its CPU kernels to Candle's own operations, when set.
    if let Some(value) = std::env::var("DL_PLAIN_CANDLE")
        .ok()
        .filter(|value| !value.is_empty())
    {
        header = header.with("dl_plain_candle", value);
    }
    bench.emit(header)?;

    // On a thread of the compute pool, as the apps train (see dl_tensor::threads).
    dl_tensor::threads::on_compute_threads(|| -> Result<()> {
        match what {
            What::Gemm => gemm::run(&mut bench)?,
            What::Cnn => cnn::train_and_infer(&mut bench)?,
            What::Lstm => lstm::train_and_sample(&mut bench)?,
            What::Epochs { count } => cnn::epochs(&mut bench, count)?,
            What::Gan { width } => match width {
                Some(width) => gan::train(&mut bench, &[width])?,
                None => gan::train(&mut bench, &[32, 64])?,
            },
            What::Quant => quant::run(&mut bench)?,
            What::All => {
                gemm::run(&mut bench)?;
                cnn::train_and_infer(&mut bench)?;
                lstm::train_and_sample(&mut bench)?;
            }
            What::Compare { .. } | What::Kernels { .. } => unreachable!("handled above"),
        }
        Ok(())
    })?;
    eprintln!("\n{}", summary(&bench.results));
    if let Some(path) = &options.compare {
        let theirs = compare::read_jsonl(path)?;
        eprintln!("{}", compare::side_by_side(&bench.results, &theirs));
    }
    Ok(())
}

/// Runs the same command again from a release build, and exits with its status.
fn rerun_in_release() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "cargo xtask bench: measuring in a release build (cargo run --release -p xtask -- bench ...); the first build takes a few minutes"
    );
    let status = std::process::Command::new(cargo)
        .args(["run", "--release", "--package", "xtask", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--")
        .args(std::env::args_os().skip(1))
        .status()
        .context("cannot run cargo to build the release xtask")?;
    std::process::exit(status.code().unwrap_or(1));
}

/// The first data directory with MNIST, or random images (said on stderr) when none has it;
/// an explicit `--data-dir` without MNIST is an error.
fn image_source(options: &Options) -> Result<ImageSource> {
    if options.synthetic {
        eprintln!("data: random images (--synthetic)");
        return Ok(ImageSource::Synthetic);
    }
    let candidates = match &options.data_dir {
        Some(directory) => vec![directory.clone()],
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            vec![resolve_data_dir(None), workspace.join("../shared/datasets")]
        }
    };
    if let Some(directory) = candidates.iter().find(|directory| has_mnist(directory)) {
        eprintln!("data: MNIST from {}", directory.join("mnist").display());
        return Ok(ImageSource::Mnist(directory.clone()));
    }
    let tried: Vec<String> = candidates
        .iter()
        .map(|directory| directory.join("mnist").display().to_string())
        .collect();
    if options.data_dir.is_some() {
        bail!(
            "MNIST not found in {} (train-images-idx3-ubyte.gz missing); run cargo xtask download-data --data-dir DIR, or pass --synthetic to measure on random images",
            tried.join(", ")
        );
    }
    eprintln!(
        "note: MNIST not found in {}; measuring on random images of the same shape instead (speeds hold, test accuracies mean nothing). Run cargo xtask download-data or pass --data-dir for real data.",
        tried.join(", ")
    );
    Ok(ImageSource::Synthetic)
}

/// Loads MNIST, or makes random images: 60,000 and 10,000 like MNIST, 512 and 1,000 in quick
/// mode.
fn load_images(source: &ImageSource, settings: Settings) -> Result<ImageData> {
    if let ImageSource::Mnist(directory) = source {
        let mnist = Mnist::load(directory)
            .with_context(|| format!("loading MNIST from {}", directory.display()))?;
        return Ok(ImageData {
            train: mnist.train,
            test: mnist.test,
        });
    }
    let (train, test) = if settings.quick {
        (512, 1000)
    } else {
        (60_000, 10_000)
    };
    let mut rng = SeededRng::new(3);
    let mut random_set = |count: usize| -> Result<ImageSet> {
        let images = rng.uniform_tensor((count, 1, 28, 28), 0.0, 1.0, &Device::Cpu)?;
        let labels: Vec<u32> = (0..count).map(|_| rng.below(10) as u32).collect();
        Ok(ImageSet {
            images,
            labels: Tensor::from_vec(labels, count, &Device::Cpu)?,
        })
    };
    Ok(ImageData {
        train: random_set(train)?,
        test: random_set(test)?,
    })
}

/// Whether `directory/mnist` holds the training images, compressed or not.
fn has_mnist(directory: &Path) -> bool {
    let folder = directory.join("mnist");
    ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]
        .iter()
        .any(|name| folder.join(name).is_file())
}

/// A result as the summary shows it: workload, setting, values, peak memory.
fn summary_row(measurement: &Measurement) -> [String; 4] {
    let workload = measurement.workload().unwrap_or("?");
    let values = workload_kind(workload).map_or_else(String::new, |kind| {
        kind.metrics
            .iter()
            .filter_map(|metric| {
                let value = measurement.number(metric.field)?;
                Some(format!("{} {}", format_value(Some(value)), metric.label))
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    [
        workload.to_string(),
        setting(measurement).unwrap_or_default(),
        values,
        format_value(measurement.number(PEAK_RSS.field)),
    ]
}

/// The table of a run's results, for people.
fn summary(results: &[Measurement]) -> String {
    let mut table = vec![[
        "workload".to_string(),
        "setting".into(),
        "result".into(),
        "peak RSS MiB".into(),
    ]];
    table.extend(
        results
            .iter()
            .filter(|measurement| measurement.workload().is_some())
            .map(summary_row),
    );
    let title = results
        .iter()
        .find(|measurement| measurement.workload().is_none())
        .map(|header| compare::describe(std::slice::from_ref(header)))
        .unwrap_or_default();
    format!("{title}\n{}", format_table(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candle_version_is_the_workspaces() {
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("candle-core = \"{CANDLE_VERSION}\"")),
            "update CANDLE_VERSION to the candle-core version of Cargo.toml"
        );
    }

    #[test]
    fn quick_settings_are_tiny() {
        let quick = Settings {
            steps: 2,
            quick: true,
        };
        assert_eq!(
            (
                quick.repeats(7),
                quick.sample_tokens(),
                quick.epoch_examples()
            ),
            (1, 20, Some(512))
        );
        let full = Settings {
            steps: 40,
            quick: false,
        };
        assert_eq!(
            (
                full.repeats(7),
                full.sample_tokens(),
                full.epoch_examples(),
                full.test_examples()
            ),
            (7, 500, None, None)
        );
    }

    #[test]
    fn the_summary_shows_values_and_memory() {
        let results = [
            Measurement::header(FRAMEWORK)
                .with("version", CANDLE_VERSION)
                .with("threads", 2),
            Measurement::new(FRAMEWORK, "cnn_train")
                .with("batch", 32)
                .with("images_per_s", 1234.5)
                .with("seconds_per_epoch", 48.6)
                .with(PEAK_RSS.field, 300.2),
        ];
        let text = summary(&results);
        assert!(text.starts_with("candle 0.11.1, 2 threads\n"), "{text}");
        let row = text.lines().last().unwrap();
        assert!(
            row.starts_with("cnn_train  batch 32  1234.5 images/s, 48.6 s/epoch"),
            "{row}"
        );
        assert!(row.ends_with("300.2"), "{row}");
    }
}
