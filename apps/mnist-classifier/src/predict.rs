//! `mnist-classifier predict`: classify image files or test images and show the three most
//! probable classes. An image that cannot be read is reported and the others are still
//! classified; the exit status is non-zero if any failed.

use anyhow::{bail, Result};
use dl_compress::load_classifier;
use dl_models::checkpoint_file;
use dl_nn::Layer;
use dl_tensor::{DeviceChoice, Tensor};
use serde_json::json;

use crate::{
    cli::PredictArgs,
    inputs::{gather_inputs, Input},
    tta,
};

/// How many classes to show per image.
const TOP: usize = 3;

/// The `TOP` most probable classes of one prepared image.
fn top_classes(model: &dyn Layer, image: &Tensor, augment: bool) -> Result<Vec<(usize, f32)>> {
    let probabilities: Vec<f32> = tta::probabilities(model, &image.unsqueeze(0)?, augment)?
        .squeeze(0)?
        .to_vec1()?;
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
    let inputs = gather_inputs(
        &arguments.images,
        &arguments.index,
        &arguments.data,
        loaded.recipe().dataset,
        arguments.offline,
        &device,
    )?;
    let mut failures = 0;
    for Input { name, image, label } in inputs {
        let outcome = image.and_then(|image| top_classes(loaded.layer(), &image, arguments.tta));
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
