//! `mnist-gan train`: the adversarial game on MNIST, with a live progress line (D loss, G loss,
//! D(x), D(G(z)), images/s, ETA), a grid of fixed-noise samples per epoch and a GIF of them, a
//! watch for the known failures after each epoch, a resumable run (G, D, both optimizers, the
//! noise generator), and the quality score at the end.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dl_data::BatchLoader;
use dl_models::{checkpoint_file, gan_recipe, load_image_classifier, Gan, GanRecipe, Recipe};
use dl_nn::{Sequential, VarStore};
use dl_tensor::DType;
use dl_train::{
    EpochMeans, GanStep, ModelCheckpoint, NoValidation, Run, RunFlags, RunPlan, StepSettings,
    TrainStep, Trainer, TrainingError, DISCRIMINATOR_OPTIMIZER, GENERATOR_OPTIMIZER,
};
use mnist_gan::{generation, quality, samples};
use serde::{Deserialize, Serialize};

use crate::cli::{TrainArgs, DEFAULT_CLASSIFIER};
use crate::score;

/// The seed of the fixed noise behind the per-epoch grids (the same grid positions show the
/// same z every epoch, so the GIF shows each digit taking shape).
const GRID_SEED: u64 = 0x5eed_0001;
/// The seed of the noise the failure watch generates from.
const WATCH_SEED: u64 = 0x5eed_0002;
/// Samples generated after each epoch for the failure watch.
const WATCH_SAMPLES: usize = 1000;
/// D is "winning" when its epoch loss falls below this while G's exceeds [`G_LOSS_HIGH`].
const D_LOSS_LOW: f64 = 0.05;
/// See [`D_LOSS_LOW`].
const G_LOSS_HIGH: f64 = 5.0;

/// How a run was trained, recorded in its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSettings {
    /// Seed of initialisation, shuffling and noise.
    pub seed: u64,
    /// Real images per step.
    pub batch_size: usize,
    /// G's learning rate.
    pub generator_learning_rate: f64,
    /// D's learning rate.
    pub discriminator_learning_rate: f64,
    /// Adam's β₁.
    pub beta1: f64,
    /// D's target for real images.
    pub real_target: f64,
}

impl TrainingSettings {
    fn of(arguments: &TrainArgs) -> Self {
        Self {
            seed: arguments.seed(),
            batch_size: arguments.batch_size,
            generator_learning_rate: arguments.learning_rate,
            discriminator_learning_rate: arguments
                .discriminator_learning_rate
                .unwrap_or(arguments.learning_rate),
            beta1: arguments.beta1,
            real_target: arguments.real_target,
        }
    }

    fn step(&self) -> StepSettings {
        StepSettings {
            generator_learning_rate: self.generator_learning_rate,
            discriminator_learning_rate: self.discriminator_learning_rate,
            beta1: self.beta1,
            real_target: self.real_target,
        }
    }
}

/// Fails, naming the flag, unless the numbers make a run.
fn check_flags(arguments: &TrainArgs) -> Result<()> {
    if arguments.batch_size < 2 || arguments.epochs == 0 {
        bail!("--batch-size must be at least 2 (batch normalisation needs two images) and --epochs at least 1");
    }
    let settings = TrainingSettings::of(arguments);
    for (flag, rate) in [
        ("--learning-rate", settings.generator_learning_rate),
        (
            "--discriminator-learning-rate",
            settings.discriminator_learning_rate,
        ),
    ] {
        if !(rate.is_finite() && rate > 0.0 && rate < 1.0) {
            bail!("{flag} must be in (0, 1), got {rate}");
        }
    }
    if !(0.0..1.0).contains(&arguments.beta1) {
        bail!("--beta1 must be in [0, 1), got {}", arguments.beta1);
    }
    if !(arguments.real_target > 0.5 && arguments.real_target <= 1.0) {
        bail!(
            "--real-target must be in (0.5, 1] (0.9 is one-sided label smoothing), got {}",
            arguments.real_target
        );
    }
    Ok(())
}

/// The classifier to score with: `--classifier`, else the default checkpoint when it exists.
fn classifier(
    arguments: &TrainArgs,
    device: &dl_tensor::Device,
) -> Result<Option<(PathBuf, Sequential)>> {
    let path = match &arguments.classifier {
        Some(path) => path.clone(),
        None if Path::new(DEFAULT_CLASSIFIER).is_file() => PathBuf::from(DEFAULT_CLASSIFIER),
        None => return Ok(None),
    };
    let loaded = load_image_classifier(&path, device)
        .with_context(|| format!("--classifier {} cannot judge the samples", path.display()))?;
    Ok(Some((path, loaded.model)))
}

/// Runs `train`.
pub fn run(arguments: &TrainArgs) -> Result<()> {
    let mut arguments = arguments.clone();
    check_flags(&arguments)?;
    let resume = arguments
        .resume
        .as_deref()
        .map(|argument| checkpoint_file(argument, arguments.data.data_dir.as_deref()))
        .transpose()?;
    let out_path = arguments.out.clone();
    let plan = RunPlan::new(
        RunFlags {
            device: &arguments.data.device,
            schedule: "constant",
            resume,
            out: &out_path,
            inputs: &[],
            optimizers: &[GENERATOR_OPTIMIZER, DISCRIMINATOR_OPTIMIZER],
        },
        &mut arguments.seed,
    )?;
    let arguments = &arguments;
    let recipe = match &plan.resumed {
        Some((run, checkpoint)) => gan_recipe(run.checkpoint_path(), checkpoint)?,
        None => GanRecipe {
            model: arguments.model,
            width: arguments.width,
            latent_dim: arguments.latent_dim,
            conditional: arguments.conditional,
            dataset: arguments.data.dataset.dataset(),
            ema: arguments.ema,
        },
    };
    recipe
        .validate()
        .map_err(|problem| anyhow::anyhow!("--width / --latent-dim: {problem}"))?;
    let device = plan.device.clone();
    let classifier = classifier(arguments, &device)?;
    let data_dir = dl_data::resolve_data_dir(arguments.data.data_dir.as_deref());
    let images = recipe
        .dataset
        .load_or_download(&data_dir, arguments.data.offline)
        .with_context(|| {
            format!(
                "cannot load the training images from {}",
                data_dir.display()
            )
        })?;
    // G ends in tanh: the real images are scaled the same way, to [−1, 1].
    let mut train_set = images.train.to_device(&device)?;
    if let Some(limit) = arguments.train_images {
        let kept: Vec<usize> = (0..limit.min(train_set.len())).collect();
        train_set = train_set.select(&kept)?;
    }
    train_set.images = train_set.images.affine(2.0, -1.0)?;
    if train_set.len() < arguments.batch_size {
        bail!(
            "the training set has {} images, fewer than one batch of --batch-size {}",
            train_set.len(),
            arguments.batch_size
        );
    }

    let store = VarStore::new(&device, DType::F32, arguments.seed());
    let gan = recipe.build(&store)?;
    let settings = TrainingSettings::of(arguments);
    let out = Run::new(&arguments.out);
    let samples_dir = samples_directory(out.checkpoint_path());
    let mut metadata = Recipe::Gan(recipe).metadata()?;
    metadata.extend(dl_train::training_metadata(&settings)?);

    let mut trainer = Trainer::default()
        .epochs(arguments.epochs)
        .callback(Box::new(
            ModelCheckpoint::new(metadata.clone()).last(out.checkpoint_path()),
        ));
    let mut step = GanStep::new(&gan, settings.step())?;
    let mut first_epoch = 1;
    if let Some((run, checkpoint)) = &plan.resumed {
        let resumed = run.restore(checkpoint, &gan, &store, step.optimizers_mut(), None)?;
        trainer = trainer.resume(&resumed);
        first_epoch = resumed.epoch() + 1;
        println!(
            "resuming {} from {} after epoch {}",
            recipe.model,
            run.checkpoint_path().display(),
            resumed.epoch()
        );
    }
    println!(
        "{} GAN{}, width {}, z of {}: G {} and D {} parameters; samples go to {}",
        recipe.model,
        if recipe.conditional {
            " (conditional)"
        } else {
            ""
        },
        recipe.width,
        recipe.latent_dim,
        count_parameters(&gan, dl_models::GENERATOR_PREFIX),
        count_parameters(&gan, dl_models::DISCRIMINATOR_PREFIX),
        samples_dir.display()
    );

    let grid_noise = generation::noise(&gan, 64, GRID_SEED)?;
    let grid_labels = generation::labels(&gan, 64, None)?;
    let watch_noise = generation::noise(&gan, WATCH_SAMPLES, WATCH_SEED)?;
    let watch_labels = generation::labels(&gan, WATCH_SAMPLES, None)?;
    let mut epoch = first_epoch - 1;
    let classifier_model = classifier.as_ref().map(|(_, model)| model);
    let samples_dir_for_hook = samples_dir.clone();
    step = step.after_each_epoch(Box::new(move |gan: &Gan, means: EpochMeans| {
        epoch += 1;
        let hook = || -> Result<()> {
            let grid = generation::generate_from(gan, &grid_noise, grid_labels.as_deref())?;
            samples::save_png(
                &samples::grid(&grid, 8)?,
                &samples::epoch_file(&samples_dir_for_hook, epoch),
            )?;
            let watched = generation::generate_from(gan, &watch_noise, watch_labels.as_deref())?;
            for warning in watch(&watched, classifier_model, means)? {
                eprintln!("epoch {epoch}: warning: {warning}");
            }
            Ok(())
        };
        hook().map_err(|error| TrainingError::Config(format!("{error:#}")))
    }));

    let loader =
        BatchLoader::training(&train_set, arguments.batch_size, arguments.seed())?.drop_last(true);
    let started = std::time::Instant::now();
    let history = trainer
        .fit_step(
            &mut step,
            &gan,
            &store,
            |epoch| loader.epoch_batches(epoch),
            None::<NoValidation>,
        )
        .context("training failed")?;
    let seconds = started.elapsed().as_secs_f64();
    out.save(&trainer.step_context(&step, &gan, &store), &metadata)?;
    history.plot_png(&out.plot_path())?;
    let last_epoch = history.last().map_or(0, |record| record.epoch);
    let gif = samples_dir.join("epochs.gif");
    let frames = samples::save_gif(&samples_dir, last_epoch, &gif)?;

    let path = out.checkpoint_path().display().to_string();
    println!("trained {last_epoch} epochs in {seconds:.1}s; saved {path}");
    println!(
        "  samples {} ({frames} frames in {}), history {}",
        samples::epoch_file(&samples_dir, last_epoch).display(),
        gif.display(),
        out.history_path().display()
    );
    match (&classifier, arguments.score_samples) {
        (Some((classifier_path, model)), count) if count > 0 => {
            let generated = generation::generate(&gan, count, 1, None)?;
            let recognised = generation::labels(&gan, count, None)?
                .map(|requested| score::recognised_share(&generated, &requested, model, &device))
                .transpose()?;
            score::report_generated(
                &generated,
                model,
                classifier_path,
                &images,
                &device,
                recognised,
                false,
            )?;
        }
        (None, count) if count > 0 => println!(
            "no classifier to score the samples with: train one (`cargo run --release -p mnist-classifier`), then `cargo run --release -p mnist-gan -- score --checkpoint {path}`"
        ),
        _ => {}
    }
    println!("generate with:");
    println!("  cargo run --release -p mnist-gan -- generate --checkpoint {path} --out digits.png");
    if recipe.conditional {
        println!("  cargo run --release -p mnist-gan -- generate --checkpoint {path} --digit 7 --out sevens.png");
    }
    println!("  cargo run --release -p mnist-gan -- score --checkpoint {path}");
    Ok(())
}

/// Where the per-epoch grids of the run at `checkpoint` go: `<stem>-samples/` beside it
/// (`checkpoints/mnist-gan-samples/`), so that two runs in one directory keep their own.
pub fn samples_directory(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gan".into());
    checkpoint
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(format!("{stem}-samples"))
}

fn count_parameters(gan: &Gan, prefix: &str) -> usize {
    gan.variables(prefix)
        .iter()
        .map(|(_, var)| var.elem_count())
        .sum()
}

/// The failures the epoch shows: D winning (from the losses), mode collapse and noise (from
/// the watch samples, with the classifier when there is one).
fn watch(
    images: &dl_tensor::Tensor,
    classifier: Option<&Sequential>,
    means: EpochMeans,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if means.batches > 0
        && means.discriminator_loss < D_LOSS_LOW
        && means.generator_loss > G_LOSS_HIGH
    {
        warnings.push(format!(
            "D is winning: its loss is {:.3} while G's is {:.2}, so G learns little; try --real-target 0.9, a smaller --discriminator-learning-rate, or a smaller --width for D",
            means.discriminator_loss, means.generator_loss
        ));
    }
    let device = images.device().clone();
    let as_read = quality::from_bytes(&dl_models::images_to_bytes(images)?, &device)?;
    match classifier {
        Some(classifier) => {
            let (figures, _) = quality::judge(classifier, &as_read, 1)?;
            warnings.extend(quality::diagnose(&figures));
        }
        None => warnings.extend(quality::collapse_finding(quality::pixel_spread(&as_read)?)),
    }
    Ok(warnings)
}
