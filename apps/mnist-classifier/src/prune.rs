//! `mnist-classifier prune`: magnitude pruning with fine-tuning (course §8, 模型剪枝; Han et al.
//! 2015, Zhu & Gupta 2017), one model or a sweep of sparsities with its table, CSV and plot.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use dl_compress::{
    encode_compact, measured_sparsity, prunable_weights, prune_by_magnitude, Calibration,
    MaskedOptimizer, PrunableSelection, PruneScope, PruningSchedule, QuantizedModel, Sparsity,
    StructuredPlan, VariableSparsity, QUANTIZATION_KEY,
};
use dl_data::{BatchLoader, ImageSet};
use dl_models::{
    checkpoint_file, load_image_classifier, ImageRecipe, LayerWidths, LoadedImageClassifier, Recipe,
};
use dl_nn::{Loss, Sequential, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer, ScheduleSpec};
use dl_tensor::{DType, Device, DeviceChoice, IndexOp};
use dl_train::{plot_panels_png, Panel, ProgressMode, Trainer};

use crate::{
    cli::{DataArgs, PruneArgs, PruneMethod, PruneScheduleChoice},
    data::load_images,
    measure,
};

/// Training images that calibrate the int8 version of each pruned model in the table.
const CALIBRATION_IMAGES: usize = 1000;

/// The checkpoint metadata entry describing how a model was pruned (JSON).
pub const PRUNING_KEY: &str = "pruning";

/// One pruned model, measured.
struct Outcome {
    target: f64,
    layers: Vec<VariableSparsity>,
    sparsity: f64,
    accuracy: f64,
    file_bytes: u64,
    images_per_second: f64,
    /// The pruned model quantized to int8 (calibrated on 1,000 training images).
    int8_accuracy: f64,
    /// Bytes of that int8 model in the compact format.
    compact_bytes: usize,
    path: PathBuf,
}

/// Runs `prune`.
pub fn run(arguments: &PruneArgs) -> Result<()> {
    if arguments.batch_size == 0 {
        bail!("--batch-size must be positive, got 0");
    }
    let targets = arguments
        .sweep
        .clone()
        .unwrap_or_else(|| vec![arguments.sparsity]);
    for &target in &targets {
        Sparsity::new(target).with_context(|| {
            format!("--sparsity/--sweep {target}: give the share of weights to remove, e.g. 0.9")
        })?;
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let path = checkpoint_file(&arguments.checkpoint, arguments.data.data_dir.as_deref())?;
    let dense = load_image_classifier(&path, &device)
        .with_context(|| format!("cannot load the model to prune from {}", path.display()))?;
    let data = DataArgs {
        dataset: dense.recipe.dataset.into(),
        ..arguments.data.clone()
    };
    let images = load_images(&data, arguments.offline)?;
    let train = images.train.to_device(&device)?;
    let test = images.test.to_device(&device)?;
    if train.len() < arguments.batch_size && arguments.fine_tune_epochs > 0 {
        bail!(
            "the training set has {} images, fewer than one batch of --batch-size {}",
            train.len(),
            arguments.batch_size
        );
    }
    let dense_accuracy = measure::test_accuracy(&dense.model, &test)?;
    let (dense_speed, _) = measure::images_per_second(&test, measure::forward_fp32(&dense.model))?;
    println!(
        "{} ({}): test accuracy {:.2}%, {} bytes, {:.0} images/s",
        path.display(),
        dense.recipe.model,
        100.0 * dense_accuracy,
        measure::file_bytes(&path)?,
        dense_speed
    );
    let mut outcomes = Vec::new();
    for &target in &targets {
        let out = match &arguments.sweep {
            Some(_) => sweep_file(&arguments.out, target),
            None => arguments.out.clone(),
        };
        let job = Job {
            arguments,
            path: &path,
            device: &device,
            train: &train,
            test: &test,
            target,
            out: &out,
            dense_accuracy,
        };
        let outcome = prune_one(&job)?;
        println!(
            "sparsity {:.4} (asked {target}): test accuracy {:.2}% ({:+.2} pp), saved {}",
            outcome.sparsity,
            100.0 * outcome.accuracy,
            100.0 * (outcome.accuracy - dense_accuracy),
            outcome.path.display()
        );
        outcomes.push(outcome);
    }
    let dense_bytes = measure::file_bytes(&path)?;
    let table = table(&outcomes, dense_accuracy, dense_bytes);
    print!("{table}");
    if arguments.sweep.is_some() {
        let csv = with_suffix(&arguments.out, "-sweep.csv");
        dl_nn::write_atomically(
            &csv,
            csv_text(&outcomes, dense_accuracy, dense_bytes).as_bytes(),
        )
        .with_context(|| format!("cannot write {}", csv.display()))?;
        let png = with_suffix(&arguments.out, "-sweep.png");
        plot(&png, &outcomes, dense_accuracy)?;
        println!("table {}, plot {}", csv.display(), png.display());
    }
    let last = &outcomes[outcomes.len() - 1].path;
    println!("use it:");
    println!(
        "  cargo run --release -p mnist-classifier -- evaluate --checkpoint {}",
        last.display()
    );
    Ok(())
}

/// `OUT` with `suffix` replacing its extension: `pruned.safetensors` → `pruned-sweep.csv`.
fn with_suffix(out: &Path, suffix: &str) -> PathBuf {
    let stem = out.file_stem().map_or_else(
        || "pruned".into(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    out.with_file_name(format!("{stem}{suffix}"))
}

/// The file of one sweep point: `pruned.safetensors` → `pruned-0.90.safetensors`.
fn sweep_file(out: &Path, target: f64) -> PathBuf {
    with_suffix(out, &format!("-{target:.2}.safetensors"))
}

/// The sparsity schedule over `steps` fine-tuning steps of `steps_per_epoch` each.
fn schedule(
    choice: PruneScheduleChoice,
    target: f64,
    steps: u64,
    steps_per_epoch: u64,
) -> PruningSchedule {
    match choice {
        PruneScheduleChoice::OneShot => PruningSchedule::OneShot { target },
        PruneScheduleChoice::Iterative => PruningSchedule::Iterative {
            target,
            rounds: (steps / steps_per_epoch).max(1),
            steps_per_round: steps_per_epoch,
        },
        PruneScheduleChoice::Polynomial => {
            let end_step = steps * 2 / 3;
            PruningSchedule::Polynomial {
                initial: 0.0,
                target,
                begin_step: 0,
                end_step,
                frequency: (end_step / 20).max(1),
            }
        }
    }
}

/// One pruned model to make: the settings, the dense model's file and measures, the data.
struct Job<'a> {
    arguments: &'a PruneArgs,
    path: &'a Path,
    device: &'a Device,
    train: &'a ImageSet,
    test: &'a ImageSet,
    target: f64,
    out: &'a Path,
    dense_accuracy: f64,
}

/// What pruning left: the model and how sparse it is.
struct Pruned {
    model: Sequential,
    layers: Vec<VariableSparsity>,
    sparsity: f64,
    schedule: Option<PruningSchedule>,
}

fn prune_one(job: &Job<'_>) -> Result<Outcome> {
    let Job {
        arguments,
        path,
        device,
        train,
        target,
        ..
    } = *job;
    let LoadedImageClassifier {
        model: dense,
        recipe,
        mut metadata,
    } = load_image_classifier(path, device)?;
    let loader = BatchLoader::training(train, arguments.batch_size, arguments.seed)?;
    let steps_per_epoch = loader.batch_count() as u64;
    let steps = steps_per_epoch * arguments.fine_tune_epochs as u64;
    let adam = Adam::new(AdamConfig::default().learning_rate(arguments.learning_rate))?;
    let scope = match arguments.method {
        PruneMethod::Global => PruneScope::Global,
        PruneMethod::Layer => PruneScope::Layer,
        PruneMethod::Structured => {
            let plan = StructuredPlan::rank(&dense, Sparsity::new(target)?)?;
            let narrow_recipe = ImageRecipe {
                widths: Some(LayerWidths::new(&plan.widths()).map_err(anyhow::Error::msg)?),
                ..recipe
            };
            let store = VarStore::new(device, DType::F32, arguments.seed);
            let model = narrow_recipe.build(&store)?;
            plan.transfer(&dense, &model)?;
            metadata.extend(Recipe::ImageClassifier(narrow_recipe).metadata()?);
            fine_tune(arguments, &model, Box::new(adam), &loader, steps)?;
            let layers = plan
                .kept
                .iter()
                .zip(recipe.model.default_widths())
                .map(|((name, kept), &width)| VariableSparsity {
                    name: name.clone(),
                    total: width,
                    zeros: width - kept.len(),
                })
                .collect();
            let sparsity = 1.0 - model.parameter_count() as f64 / dense.parameter_count() as f64;
            let pruned = Pruned {
                model,
                layers,
                sparsity,
                schedule: None,
            };
            return finish(job, metadata, pruned);
        }
    };
    let model = dense;
    let weights = prunable_weights(
        &model,
        PrunableSelection {
            biases: arguments.biases,
        },
    )?;
    let schedule_used = if arguments.fine_tune_epochs == 0 {
        prune_by_magnitude(&weights, Sparsity::new(target)?.into(), scope)?;
        None
    } else {
        let schedule = schedule(arguments.schedule, target, steps, steps_per_epoch);
        let optimizer =
            MaskedOptimizer::with_schedule(Box::new(adam), weights.clone(), schedule, scope)?;
        fine_tune(arguments, &model, Box::new(optimizer), &loader, steps)?;
        Some(schedule)
    };
    let (layers, sparsity) = measured_sparsity(&weights)?;
    let pruned = Pruned {
        model,
        layers,
        sparsity,
        schedule: schedule_used,
    };
    finish(job, metadata, pruned)
}

/// Fine-tunes `model` for `--fine-tune-epochs` with `optimizer` (its learning rate annealed to
/// 0 along a cosine over `steps`); nothing when that is 0.
fn fine_tune(
    arguments: &PruneArgs,
    model: &Sequential,
    optimizer: Box<dyn Optimizer>,
    loader: &BatchLoader,
    steps: u64,
) -> Result<()> {
    if arguments.fine_tune_epochs == 0 {
        return Ok(());
    }
    let learning_rates = "cosine"
        .parse::<ScheduleSpec>()?
        .build(arguments.learning_rate, steps as usize)?;
    let mut trainer = Trainer::new(optimizer)
        .loss(Loss::CrossEntropy)
        .epochs(arguments.fine_tune_epochs)
        .schedule(learning_rates)
        .progress(ProgressMode::Auto);
    trainer
        .fit(model, model.store(), |epoch| loader.epoch_batches(epoch))
        .context("fine-tuning the pruned model failed")?;
    Ok(())
}

/// Measures, describes and saves one pruned model.
fn finish(
    job: &Job<'_>,
    mut metadata: BTreeMap<String, String>,
    pruned: Pruned,
) -> Result<Outcome> {
    let Job {
        arguments,
        path,
        train,
        test,
        target,
        out,
        dense_accuracy,
        ..
    } = *job;
    let Pruned {
        model,
        layers,
        sparsity,
        schedule: schedule_used,
    } = pruned;
    let store = model.store().clone();
    let accuracy = measure::test_accuracy(&model, test)?;
    let pruning = serde_json::json!({
        "method": format!("{:?}", arguments.method).to_lowercase(),
        "target_sparsity": target,
        "sparsity": sparsity,
        "biases": arguments.biases,
        "fine_tune_epochs": arguments.fine_tune_epochs,
        "schedule": schedule_used,
        "learning_rate": arguments.learning_rate,
        "dense_checkpoint": path.display().to_string(),
        "dense_test_accuracy": dense_accuracy,
    });
    metadata.insert(PRUNING_KEY.into(), pruning.to_string());
    metadata.insert("test_accuracy".into(), format!("{accuracy:.6}"));
    // The dense run's training state does not describe this model: it cannot be resumed.
    for key in [dl_train::RUN_FILES_KEY, dl_train::GLOBAL_STEP_KEY] {
        metadata.remove(key);
    }
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    dl_nn::save_checkpoint(out, &store, &metadata)
        .with_context(|| format!("cannot save the pruned model to {}", out.display()))?;
    let (images_per_second, _) = measure::images_per_second(test, measure::forward_fp32(&model))?;
    let calibration = train.images.i(..CALIBRATION_IMAGES.min(train.len()))?;
    let int8 = QuantizedModel::calibrate(&model, &calibration, Calibration::MinMax)?;
    let int8_accuracy = measure::test_accuracy(&int8, test)?;
    metadata.insert(QUANTIZATION_KEY.into(), "{\"precision\":\"int8\"}".into());
    let compact_bytes = encode_compact(&int8, &metadata)?.len();
    Ok(Outcome {
        int8_accuracy,
        compact_bytes,
        target,
        layers,
        sparsity,
        accuracy,
        file_bytes: measure::file_bytes(out)?,
        images_per_second,
        path: out.to_path_buf(),
    })
}

fn layer_text(layers: &[VariableSparsity]) -> String {
    layers
        .iter()
        .map(|layer| format!("{} {:.1}%", layer.name, 100.0 * layer.sparsity()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(outcomes: &[Outcome], dense_accuracy: f64, dense_bytes: u64) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "| sparsity | test accuracy | Δ vs dense | file bytes | fp32 images/s (batch 1000) | int8 accuracy | int8 compact bytes | smaller than the dense file | per layer |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|---|---|---|");
    for outcome in outcomes {
        let _ = writeln!(
            text,
            "| {:.4} | {:.2}% | {:+.2} pp | {} | {:.0} | {:.2}% ({:+.2} pp) | {} | {:.1}x | {} |",
            outcome.sparsity,
            100.0 * outcome.accuracy,
            100.0 * (outcome.accuracy - dense_accuracy),
            outcome.file_bytes,
            outcome.images_per_second,
            100.0 * outcome.int8_accuracy,
            100.0 * (outcome.int8_accuracy - dense_accuracy),
            outcome.compact_bytes,
            dense_bytes as f64 / outcome.compact_bytes as f64,
            layer_text(&outcome.layers)
        );
    }
    text
}

fn csv_text(outcomes: &[Outcome], dense_accuracy: f64, dense_bytes: u64) -> String {
    let mut text = String::from(
        "target_sparsity,sparsity,test_accuracy,delta_pp,file_bytes,images_per_s,int8_test_accuracy,int8_delta_pp,compact_bytes,compression,per_layer\n",
    );
    for outcome in outcomes {
        let _ = writeln!(
            text,
            "{},{:.6},{:.6},{:.4},{},{:.1},{:.6},{:.4},{},{:.2},\"{}\"",
            outcome.target,
            outcome.sparsity,
            outcome.accuracy,
            100.0 * (outcome.accuracy - dense_accuracy),
            outcome.file_bytes,
            outcome.images_per_second,
            outcome.int8_accuracy,
            100.0 * (outcome.int8_accuracy - dense_accuracy),
            outcome.compact_bytes,
            dense_bytes as f64 / outcome.compact_bytes as f64,
            layer_text(&outcome.layers)
        );
    }
    text
}

fn plot(path: &Path, outcomes: &[Outcome], dense_accuracy: f64) -> Result<()> {
    let points = |pick: &dyn Fn(&Outcome) -> f64| -> Vec<(f64, f64)> {
        outcomes
            .iter()
            .map(|outcome| (outcome.sparsity, pick(outcome)))
            .collect()
    };
    let dense_line = vec![
        (outcomes[0].sparsity.min(0.0), 100.0 * dense_accuracy),
        (
            outcomes[outcomes.len() - 1].sparsity,
            100.0 * dense_accuracy,
        ),
    ];
    let panels = [Panel {
        title: "test accuracy (%) against sparsity".into(),
        x_label: "sparsity".into(),
        curves: vec![
            (
                "pruned + fine-tuned".into(),
                points(&|o| 100.0 * o.accuracy),
            ),
            ("then int8".into(), points(&|o| 100.0 * o.int8_accuracy)),
            ("dense".into(), dense_line),
        ],
    }];
    plot_panels_png(path, "the pruning sweep", &panels)?;
    Ok(())
}
