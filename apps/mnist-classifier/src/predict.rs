//! `mnist-classifier predict`: classify image files or test images and show the three most
//! probable classes. An image that cannot be read is reported and the others are still
//! classified; the exit status is non-zero if any failed.

use anyhow::{bail, Context, Result};
use dl_compress::load_classifier;
use dl_models::checkpoint_file;
use dl_nn::{Layer, Mode};
use dl_tensor::{DeviceChoice, Tensor};
use serde_json::json;

use crate::{cli::PredictArgs, data::load_images};

/// How many classes to show per image.
const TOP: usize = 3;

/// The `TOP` most probable classes of one prepared image.
fn top_classes(model: &dyn Layer, image: &Tensor) -> Result<Vec<(usize, f32)>> {
    let logits = model.forward(&image.unsqueeze(0)?, Mode::Eval)?;
    let probabilities: Vec<f32> = dl_nn::softmax(&logits)?.squeeze(0)?.to_vec1()?;
    let mut ranked: Vec<(usize, f32)> = probabilities.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(TOP);
    Ok(ranked)
}

/// Runs `predict`.
pub fn run(arguments: &PredictArgs) -> Result<()> {
    if arguments.images.is_empty() && arguments.index.is_empty() {
        bail!("nothing to classify: pass image files, or --index N for a test image");
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let path = checkpoint_file(&arguments.checkpoint, arguments.data.data_dir.as_deref())?;
    let loaded = load_classifier(&path, &device)?;
    let names = loaded.recipe().dataset.class_names();
    let mut inputs: Vec<(String, Result<Tensor>, Option<u32>)> = Vec::new();
    for path in &arguments.images {
        let prepared = dl_data::load_digit(path)
            .map_err(anyhow::Error::from)
            .and_then(|pixels| Ok(Tensor::from_vec(pixels, (1, 28, 28), &device)?));
        inputs.push((path.display().to_string(), prepared, None));
    }
    if !arguments.index.is_empty() {
        let data = crate::cli::DataArgs {
            dataset: loaded.recipe().dataset.into(),
            ..arguments.data.clone()
        };
        let test = load_images(&data, arguments.offline)?.test;
        for &index in &arguments.index {
            let name = format!("test image {index}");
            let entry = if index < test.len() {
                let image = test.images.get(index).map_err(anyhow::Error::from);
                let label = test
                    .labels
                    .get(index)
                    .and_then(|label| label.to_scalar::<u32>());
                let label = label.context("reading the test label")?;
                (
                    name,
                    image.and_then(|image| Ok(image.to_device(&device)?)),
                    Some(label),
                )
            } else {
                (
                    name,
                    Err(match test.len() {
                        0 => {
                            anyhow::anyhow!("the test set is empty: there is no test image {index}")
                        }
                        count => anyhow::anyhow!(
                            "there are only {count} test images (0..={})",
                            count - 1
                        ),
                    }),
                    None,
                )
            };
            inputs.push(entry);
        }
    }
    let mut failures = 0;
    for (name, image, label) in inputs {
        let outcome = image.and_then(|image| top_classes(loaded.layer(), &image));
        match (outcome, arguments.json) {
            (Ok(ranked), true) => {
                let predictions: Vec<_> = ranked
                    .iter()
                    .map(|&(class, probability)| json!({"class": class, "name": names[class], "probability": probability}))
                    .collect();
                println!(
                    "{}",
                    json!({"image": name, "label": label, "predictions": predictions})
                );
            }
            (Ok(ranked), false) => {
                let shown: Vec<String> = ranked
                    .iter()
                    .map(|&(class, probability)| {
                        format!("{} {:.1}%", names[class], 100.0 * probability)
                    })
                    .collect();
                let truth = label.map_or(String::new(), |label| {
                    format!(" (label {})", names[label as usize])
                });
                println!("{name}{truth}: {}", shown.join(", "));
            }
            (Err(error), json) => {
                failures += 1;
                if json {
                    println!("{}", json!({"image": name, "error": format!("{error:#}")}));
                } else {
                    eprintln!("error: {name}: {error:#}");
                }
            }
        }
    }
    if failures > 0 {
        bail!("{failures} image(s) could not be classified");
    }
    Ok(())
}
