//! `mnist-classifier explain`: which pixels a prediction rests on (course §8, 可解释性), as one
//! PNG per image with a panel per method, as JSON, or, with `--sanity`, the sanity checks of
//! the methods on this model (Adebayo et al. 2018).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dl_explain::{
    area_under_curve, cascading_randomization, deletion_curve, display_scale, Method,
};
use dl_models::{checkpoint_file, load_image_classifier};
use dl_nn::{Layer, Mode, Sequential};
use dl_tensor::{DeviceChoice, SeededRng, Tensor};
use serde_json::json;

use crate::{
    cli::{ExplainArgs, ExplainMethod},
    figure::{self, Panel},
    inputs::{gather_inputs, Input},
};

/// The classes shown beside each explanation.
const TOP: usize = 3;

impl ExplainMethod {
    /// The methods `self` stands for.
    fn expand(self) -> Vec<Method> {
        match self {
            Self::All => Method::ALL.to_vec(),
            Self::Saliency => vec![Method::Saliency],
            Self::Gradxinput => vec![Method::GradientTimesInput],
            Self::Smoothgrad => vec![Method::SmoothGrad],
            Self::Ig => vec![Method::IntegratedGradients],
            Self::Gradcam => vec![Method::GradCam],
            Self::Occlusion => vec![Method::Occlusion],
        }
    }
}

/// One map: the attribution of every pixel, and for Integrated Gradients its completeness error.
struct Map {
    values: Vec<f32>,
    completeness_error: Option<f32>,
}

/// The attribution of `method` for `batch` (1, 1, 28, 28) and `class`, one value per pixel.
fn attribute(model: &Sequential, method: Method, batch: &Tensor, class: u32) -> Result<Map> {
    let attribution = method.attribute(model, batch, &[class])?;
    Ok(Map {
        values: attribution.map.flatten_all()?.to_vec1::<f32>()?,
        completeness_error: attribution.completeness_error.map(|errors| errors[0]),
    })
}

/// The PNG of an input: `digit.png` → `OUT/digit.png`, test image 7 → `OUT/test-7.png`.
fn figure_path(out: &Path, input: &Input) -> PathBuf {
    let stem = match input.name.strip_prefix("test image ") {
        Some(index) => format!("test-{index}"),
        None => Path::new(&input.name).file_stem().map_or_else(
            || "image".into(),
            |stem| stem.to_string_lossy().into_owned(),
        ),
    };
    out.join(format!("{stem}.png"))
}

/// Runs `explain`.
pub fn run(arguments: &ExplainArgs) -> Result<()> {
    if arguments.images.is_empty() && arguments.index.is_empty() {
        bail!("nothing to explain: pass image files, or --index N for a test image");
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let path = checkpoint_file(&arguments.checkpoint, arguments.data.data_dir.as_deref())?;
    if let Ok(bytes) = std::fs::read(&path) {
        if dl_compress::int8_classifier_from_bytes(&path, &bytes).is_ok_and(|int8| int8.is_some()) {
            bail!(
                "{} is an int8 model, which has no gradients to explain: give the float checkpoint it was quantized from",
                path.display()
            );
        }
    }
    let loaded = load_image_classifier(&path, &device)?;
    let model = &loaded.model;
    let classes = model.output_shape().iter().product::<usize>();
    if let Some(target) = arguments
        .target
        .filter(|&target| target as usize >= classes)
    {
        bail!(
            "--target {target}: the model has {classes} classes (0 to {})",
            classes - 1
        );
    }
    let inputs = gather_inputs(
        &arguments.images,
        &arguments.index,
        &arguments.data,
        loaded.recipe.dataset,
        arguments.offline,
        &device,
    )?;
    let mut methods = arguments.method.expand();
    if !Method::GradCam.supports(model) {
        if arguments.method == ExplainMethod::Gradcam {
            bail!(
                "{} has no convolution: Grad-CAM needs one; try --method ig or saliency",
                loaded.recipe.model
            );
        }
        methods.retain(|&method| method != Method::GradCam);
    }
    if arguments.sanity {
        let random_labels = arguments
            .random_labels_checkpoint
            .as_deref()
            .map(|argument| -> Result<Sequential> {
                let path = checkpoint_file(argument, arguments.data.data_dir.as_deref())?;
                let random = load_image_classifier(&path, &device)
                    .with_context(|| format!("--random-labels-checkpoint {}", path.display()))?;
                if random.recipe.model != loaded.recipe.model {
                    bail!(
                        "--random-labels-checkpoint {} is a {}, the model a {}: train the same architecture with --shuffle-labels",
                        path.display(),
                        random.recipe.model,
                        loaded.recipe.model
                    );
                }
                Ok(random.model)
            })
            .transpose()?;
        return sanity(
            model,
            random_labels.as_ref(),
            &inputs,
            &methods,
            arguments.target,
        );
    }
    std::fs::create_dir_all(&arguments.out)
        .with_context(|| format!("cannot create {}", arguments.out.display()))?;
    let names = loaded.recipe.dataset.class_names();
    let mut failures = 0;
    for input in &inputs {
        match explain_one(model, input, &methods, arguments, &names) {
            Ok(line) => println!("{line}"),
            Err(error) => {
                failures += 1;
                if arguments.json {
                    println!(
                        "{}",
                        json!({"image": input.name, "error": format!("{error:#}")})
                    );
                } else {
                    eprintln!("error: {}: {error:#}", input.name);
                }
            }
        }
    }
    if failures > 0 {
        bail!("{failures} image(s) could not be explained");
    }
    Ok(())
}

/// Explains one input: its figure, and the line (text or JSON) that describes it.
fn explain_one(
    model: &Sequential,
    input: &Input,
    methods: &[Method],
    arguments: &ExplainArgs,
    names: &[&str],
) -> Result<String> {
    let image = match &input.image {
        Ok(image) => image,
        Err(error) => bail!("{error:#}"),
    };
    let batch = image.unsqueeze(0)?;
    let probabilities: Vec<f32> = dl_nn::softmax(&model.forward(&batch, Mode::Eval)?)?
        .squeeze(0)?
        .to_vec1()?;
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(TOP);
    let class = arguments.target.unwrap_or(ranked[0].0 as u32);
    let pixels = image.flatten_all()?.to_vec1::<f32>()?;
    let mut panels = vec![Panel {
        caption: "input".into(),
        heat: None,
    }];
    let mut maps = serde_json::Map::new();
    for &method in methods {
        let map = attribute(model, method, &batch, class)?;
        panels.push(Panel {
            caption: method.title().into(),
            heat: Some(display_scale(&map.values)),
        });
        maps.insert(
            method.title().into(),
            json!({"attribution": map.values, "completeness_error": map.completeness_error}),
        );
    }
    let top: Vec<String> = ranked
        .iter()
        .map(|&(class, probability)| format!("{} {:.1}%", names[class], 100.0 * probability))
        .collect();
    let truth = input.label.map_or(String::new(), |label| {
        format!(" (label {})", names[label as usize])
    });
    let title = format!(
        "{}{truth}: {} — explaining {}",
        input.name,
        top.join(", "),
        names[class as usize]
    );
    let path = figure_path(&arguments.out, input);
    figure::save(&path, &title, &pixels, 28, &panels)?;
    Ok(if arguments.json {
        let predictions: Vec<_> = ranked
            .iter()
            .map(|&(class, probability)| json!({"class": class, "name": names[class], "probability": probability}))
            .collect();
        json!({
            "image": input.name,
            "label": input.label,
            "predictions": predictions,
            "explained_class": class,
            "figure": path.display().to_string(),
            "maps": maps,
        })
        .to_string()
    } else {
        format!("{title}; wrote {}", path.display())
    })
}

/// The sanity checks on the images that could be read: for each gradient method, the rank
/// correlation with the trained model's maps as layers are re-initialised from the top; with a
/// model trained on permuted labels, the rank correlation with its maps (data randomization);
/// and for every method the deletion curve's area against a random order.
fn sanity(
    model: &Sequential,
    random_labels: Option<&Sequential>,
    inputs: &[Input],
    methods: &[Method],
    target: Option<u32>,
) -> Result<()> {
    let images: Vec<Tensor> = inputs
        .iter()
        .filter_map(|input| input.image.as_ref().ok().cloned())
        .collect();
    if images.is_empty() {
        bail!("none of the images could be read: nothing to check");
    }
    let batch = Tensor::stack(&images, 0)?;
    let predicted = model
        .forward(&batch, Mode::Eval)?
        .argmax(1)?
        .to_vec1::<u32>()?;
    let classes: Vec<u32> = predicted
        .iter()
        .map(|&class| target.unwrap_or(class))
        .collect();
    println!(
        "sanity checks on {} image(s) (Adebayo et al. 2018)",
        images.len()
    );
    println!("| method | ρ of |map| as layers are randomised, top first | ρ of the signed map | ρ with the random-label model, of |map| / signed | deletion AUC | random order AUC |");
    println!("|---|---|---|---|---|---|");
    let mut rng = SeededRng::new(0);
    for &method in methods {
        let maps = |model: &Sequential| -> dl_explain::Result<Tensor> {
            let mut all = Vec::new();
            for (index, &class) in classes.iter().enumerate() {
                let one = batch.narrow(0, index, 1)?;
                let map = attribute(model, method, &one, class).map_err(|error| {
                    dl_explain::ExplainError::BadSetting {
                        setting: "explain",
                        problem: format!("{error:#}"),
                    }
                })?;
                all.push(Tensor::new(map.values.as_slice(), one.device())?);
            }
            Ok(Tensor::stack(&all, 0)?)
        };
        let (rho, signed) = if method == Method::Occlusion {
            ("(no gradient)".to_string(), String::new())
        } else {
            let stages = cascading_randomization(model, 1, maps)?;
            let format = |pick: fn(&dl_explain::RandomizationStage) -> f64| {
                stages
                    .iter()
                    .map(|stage| format!("{} {:.2}", stage.layer, pick(stage)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (
                format(|stage| stage.rank_correlation),
                format(|stage| stage.signed_rank_correlation),
            )
        };
        let trained = maps(model)?;
        let data_randomization = match random_labels {
            Some(random) => {
                let random_maps = maps(random)?;
                format!(
                    "{:.2} / {:.2}",
                    dl_explain::mean_rank_correlation(&trained, &random_maps, true)?,
                    dl_explain::mean_rank_correlation(&trained, &random_maps, false)?
                )
            }
            None => "—".to_string(),
        };
        let (mut ranked, mut random) = (0.0, 0.0);
        for (index, &class) in classes.iter().enumerate() {
            let image = batch.get(index)?;
            let map = trained.get(index)?.abs()?;
            ranked += area_under_curve(&deletion_curve(model, &image, class, &map, 28, 0.0)?);
            let order: Vec<f32> = (0..map.elem_count()).map(|_| rng.uniform()).collect();
            let order = Tensor::new(order.as_slice(), image.device())?;
            random += area_under_curve(&deletion_curve(model, &image, class, &order, 28, 0.0)?);
        }
        let count = classes.len() as f64;
        println!(
            "| {} | {rho} | {signed} | {data_randomization} | {:.3} | {:.3} |",
            method.title(),
            ranked / count,
            random / count
        );
    }
    if random_labels.is_none() {
        println!("(data randomization: pass --random-labels-checkpoint F, a model trained with train --shuffle-labels)");
    }
    Ok(())
}
