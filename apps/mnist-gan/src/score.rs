//! `mnist-gan score`: how real the generated digits are, under one of our classifiers, read
//! against real data (see `mnist_gan::quality`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use dl_data::Mnist;
use dl_models::load_image_classifier;
use dl_nn::Sequential;
use dl_tensor::{Device, Tensor};
use mnist_gan::{generation, quality};

use crate::cli::ScoreArgs;

/// Runs `score`.
pub fn run(arguments: &ScoreArgs) -> Result<()> {
    let device = Device::Cpu;
    let classifier = load_classifier(&arguments.classifier, &device)?;
    if arguments.count == 0 {
        bail!("--count must be at least 1 (the score uses 10 splits: 10,000 is the usual count)");
    }
    let mut requested = None;
    let images = match (&arguments.checkpoint, &arguments.samples) {
        (Some(checkpoint), None) => {
            let gan = generation::load(checkpoint, &device)?;
            requested = generation::labels(&gan, arguments.count, None)?;
            generation::generate(&gan, arguments.count, arguments.seed, None)?
        }
        (None, Some(samples)) => read_samples(samples, &device)?,
        _ => bail!("give the images to score: --checkpoint GAN_CHECKPOINT or --samples FILE.idx"),
    };
    let data_dir = dl_data::resolve_data_dir(arguments.data.data_dir.as_deref());
    let dataset = arguments.data.dataset.dataset();
    let real = dataset
        .load_or_download(&data_dir, arguments.data.offline)
        .with_context(|| format!("the score reads the real images against the generated ones; cannot load them from {}", data_dir.display()))?;
    let recognised = requested
        .map(|requested| recognised_share(&images, &requested, &classifier, &device))
        .transpose()?;
    report_generated(
        &images,
        &classifier,
        &arguments.classifier,
        &real,
        &device,
        recognised,
        arguments.json,
    )
}

/// The share of `images` (in [−1, 1]) that `classifier` assigns to the class they were
/// generated for.
pub fn recognised_share(
    images: &Tensor,
    requested: &[u32],
    classifier: &Sequential,
    device: &Device,
) -> Result<f64> {
    let samples = quality::from_bytes(&dl_models::images_to_bytes(images)?, device)?;
    let predicted = dl_tensor::argmax(&quality::classify(classifier, &samples)?.probabilities)?
        .to_dtype(dl_tensor::DType::U32)?
        .to_vec1::<u32>()?;
    let hits = predicted
        .iter()
        .zip(requested)
        .filter(|(p, r)| p == r)
        .count();
    Ok(hits as f64 / requested.len().max(1) as f64)
}

/// The classifier at `path`, or an error saying how to get one.
fn load_classifier(path: &Path, device: &Device) -> Result<Sequential> {
    if !path.is_file() {
        bail!(
            "no classifier at {}: train one with `cargo run --release -p mnist-classifier` (it writes checkpoints/mnist-cnn.safetensors), or pass --classifier CHECKPOINT",
            path.display()
        );
    }
    Ok(load_image_classifier(path, device)
        .with_context(|| {
            format!(
                "--classifier {} must be an mnist-classifier checkpoint",
                path.display()
            )
        })?
        .model)
}

/// The images of an idx3-ubyte file, as generated images in [−1, 1].
fn read_samples(path: &Path, device: &Device) -> Result<Tensor> {
    let array = dl_data::read_idx(path)
        .with_context(|| format!("cannot read --samples {}", path.display()))?;
    if array.dims.len() != 3 || array.dims[1] != 28 || array.dims[2] != 28 || array.dims[0] == 0 {
        bail!(
            "--samples {} holds an array of shape {:?}; expected N x 28 x 28 images (idx3-ubyte)",
            path.display(),
            array.dims
        );
    }
    Ok(quality::from_bytes(&array.data, device)?.affine(2.0, -1.0)?)
}

/// Scores `generated` (in [−1, 1]) and prints the table (or JSON) with the real references.
pub fn report_generated(
    generated: &Tensor,
    classifier: &Sequential,
    classifier_path: &Path,
    real: &Mnist,
    device: &Device,
    recognised: Option<f64>,
    json: bool,
) -> Result<()> {
    let samples = quality::from_bytes(&dl_models::images_to_bytes(generated)?, device)?;
    let train = real.train.images.to_device(device)?;
    let test = real.test.images.to_device(device)?;
    let reference = quality::Reference::new(classifier, &train, &test)?;
    let generated = reference.quality(&samples, true)?;
    let test_quality = reference.test_quality()?;
    let floor = reference.train_quality(generated.count.max(2))?;
    let findings = quality::diagnose(&generated);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "classifier": classifier_path.display().to_string(),
                "generated": to_json(&generated),
                "real_test": to_json(&test_quality),
                "train_vs_test": to_json(&floor),
                "inception_ratio": generated.inception.mean / test_quality.inception.mean,
                "frechet_ratio": ratio(generated.frechet, floor.frechet),
                "findings": findings,
            "requested_digit_recognised": recognised,
            })
        );
        return Ok(());
    }
    println!(
        "scored by {} (penultimate features for the Fréchet distance)",
        classifier_path.display()
    );
    println!(
        "{:<22} {:>7} {:>13} {:>9} {:>8} {:>10} {:>8}  classes (min–max)",
        "", "images", "IS (± std)", "Fréchet", "KL(U)", "confident", "copies"
    );
    for (name, row) in [
        ("generated", &generated),
        ("real test (ceiling)", &test_quality),
        ("train vs test (floor)", &floor),
    ] {
        let (low, high) = row
            .histogram
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(low, high), &share| {
                (low.min(share), high.max(share))
            });
        println!(
            "{name:<22} {:>7} {:>7.3} ± {:.2} {:>9} {:>8.4} {:>9.1}% {:>8}  {:.1}%–{:.1}%",
            row.count,
            row.inception.mean,
            row.inception.std,
            row.frechet
                .map_or("–".to_string(), |value| format!("{value:.3}")),
            row.kl_to_uniform,
            100.0 * row.confident,
            row.copies
                .map_or("–".to_string(), |value| format!("{:.2}%", 100.0 * value)),
            100.0 * low,
            100.0 * high,
        );
    }
    println!(
        "Inception Score {:.3} of the real test set's; Fréchet distance {} the train-vs-test floor",
        generated.inception.mean / test_quality.inception.mean,
        ratio(generated.frechet, floor.frechet)
            .map_or("–".into(), |value| format!("{value:.2}x"))
    );
    println!(
        "class histogram: {}",
        generated
            .histogram
            .iter()
            .enumerate()
            .map(|(class, share)| format!("{class}: {:.1}%", 100.0 * share))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(recognised) = recognised {
        println!(
            "conditional: the classifier recognises the requested digit in {:.2}% of the samples (digits 0–9 in turn)",
            100.0 * recognised
        );
    }
    for finding in &findings {
        println!("warning: {finding}");
    }
    Ok(())
}

fn ratio(value: Option<f64>, floor: Option<f64>) -> Option<f64> {
    Some(value? / floor?.max(f64::MIN_POSITIVE))
}

fn to_json(quality: &quality::Quality) -> serde_json::Value {
    serde_json::json!({
        "images": quality.count,
        "inception_score": quality.inception.mean,
        "inception_score_std": quality.inception.std,
        "frechet": quality.frechet,
        "class_histogram": quality.histogram,
        "kl_to_uniform": quality.kl_to_uniform,
        "confident_share": quality.confident,
        "copy_share": quality.copies,
        "pixel_std": quality.pixel_std,
    })
}
