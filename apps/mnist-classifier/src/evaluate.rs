//! `mnist-classifier evaluate`: the course's `model.evaluate(x_test, y_test)`, plus what it
//! hides — which digits are confused with which, and each class's precision and recall.

use anyhow::Result;
use dl_compress::{load_classifier, ClassifierFile};
use dl_data::BatchLoader;
use dl_models::{checkpoint_file, ImageRecipe};
use dl_nn::{ConfusionMatrix, Loss, Mode};
use dl_tensor::DeviceChoice;
use dl_train::evaluate;

use crate::{cli::EvaluateArgs, data::load_images, settings::TrainingSettings, tta};

/// Runs `evaluate`.
pub fn run(arguments: &EvaluateArgs) -> Result<()> {
    if arguments.batch_size == 0 {
        anyhow::bail!("--batch-size must be positive, got 0");
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let path = checkpoint_file(&arguments.checkpoint, arguments.data.data_dir.as_deref())?;
    let loaded = load_classifier(&path, &device)?;
    let recipe = *loaded.recipe();
    let data = crate::cli::DataArgs {
        dataset: recipe.dataset.into(),
        ..arguments.data.clone()
    };
    let test = load_images(&data, arguments.offline)?
        .test
        .to_device(&device)?;
    if test.is_empty() {
        anyhow::bail!(
            "the test set of {} in {} has no images: nothing to evaluate",
            recipe.dataset.name(),
            dl_data::resolve_data_dir(arguments.data.data_dir.as_deref()).display()
        );
    }
    let loader = BatchLoader::evaluation(&test, arguments.batch_size)?;
    let mut confusion = ConfusionMatrix::new(10);
    let (loss, accuracy, targets) = if arguments.tta {
        // the mean of five views' probabilities: its NLL is the test loss
        let mut nll_sum = 0.0;
        for batch in loader.epoch_batches(0) {
            let (images, labels) = batch?;
            let probabilities = tta::probabilities(loaded.layer(), &images, true)?;
            confusion.add_scores(&probabilities, &labels)?;
            nll_sum +=
                dl_nn::negative_log_likelihood(&probabilities, &labels)? * labels.dim(0)? as f64;
        }
        let total = confusion.total() as usize;
        (nll_sum / total.max(1) as f64, confusion.accuracy(), total)
    } else {
        let result = evaluate(loaded.layer(), Loss::CrossEntropy, loader.epoch_batches(0))?;
        for batch in loader.epoch_batches(0) {
            let (images, labels) = batch?;
            confusion.add_scores(&loaded.layer().forward(&images, Mode::Eval)?, &labels)?;
        }
        (result.loss, result.accuracy.unwrap_or(0.0), result.targets)
    };
    println!(
        "{} ({}, {}), {targets} test images of {}{}",
        arguments.checkpoint.display(),
        loaded.description(),
        loaded.precision(),
        recipe.dataset.name(),
        if arguments.tta {
            ", each averaged over itself and its four one-pixel shifts (--tta)"
        } else {
            ""
        }
    );
    if let ClassifierFile::Ensemble(ensemble) = &loaded {
        for (index, member) in ensemble.members.iter().enumerate() {
            let epochs = member
                .metadata
                .get(dl_train::EPOCH_KEY)
                .map_or("?", String::as_str);
            println!(
                "member {}: {} ({}, {}, trained {epochs} epochs)",
                index + 1,
                member.name,
                member.recipe.model,
                member.precision
            );
        }
        return print_results(&recipe, loss, accuracy, &confusion);
    }
    let epochs = loaded
        .metadata()
        .get(dl_train::EPOCH_KEY)
        .map_or("?", String::as_str);
    match TrainingSettings::from_metadata(loaded.metadata()) {
        Some(settings) => println!(
            "trained {epochs} epochs, batch {}, {} at learning rate {}, seed {}{}",
            settings.batch_size,
            settings.optimizer,
            settings.learning_rate,
            settings.seed,
            if settings.shuffled_labels {
                ", on randomly permuted labels"
            } else {
                ""
            }
        ),
        None => println!("trained {epochs} epochs (the checkpoint does not say how)"),
    }
    print_results(&recipe, loss, accuracy, &confusion)
}

/// Prints the test loss, the accuracy and the confusion matrix.
fn print_results(
    recipe: &ImageRecipe,
    loss: f64,
    accuracy: f64,
    confusion: &ConfusionMatrix,
) -> Result<()> {
    println!("test loss {loss:.4}");
    println!("test accuracy {:.2}%", 100.0 * accuracy);
    println!();
    println!("confusion matrix (rows: true class, columns: predicted class)");
    print!("{confusion}");
    let names = recipe.dataset.class_names();
    if names[0] != "0" {
        println!();
        for (class, name) in names.iter().enumerate() {
            println!("class {class}: {name}");
        }
    }
    Ok(())
}
