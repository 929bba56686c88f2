//! `mnist-classifier quantize`: post-training quantization (course §8, 模型压缩; Jacob et al.
//! 2018) to int8, run on integer kernels, or half-precision weight storage; prints accuracy,
//! size and speed beside the fp32 model's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dl_compress::{save_compact, save_int8, Calibration, QuantizedModel, QUANTIZATION_KEY};
use dl_models::{checkpoint_file, load_image_classifier};
use dl_tensor::{DType, DeviceChoice, IndexOp};

use crate::{
    cli::{DataArgs, Precision, QuantizeArgs},
    data::load_images,
    measure,
};

/// The default output: `model.safetensors` → `model.int8.safetensors`.
fn default_out(checkpoint: &Path, precision: Precision, compact: bool) -> PathBuf {
    let stem = checkpoint.file_stem().map_or_else(
        || "model".into(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let tag = match precision {
        Precision::Int8 => "int8",
        Precision::F16 => "f16",
        Precision::Bf16 => "bf16",
    };
    let extension = if compact { "dlc" } else { "safetensors" };
    checkpoint.with_file_name(format!("{stem}.{tag}.{extension}"))
}

/// Runs `quantize`.
pub fn run(arguments: &QuantizeArgs) -> Result<()> {
    let calibration = match arguments.percentile {
        Some(percentile) => Calibration::Percentile { percentile },
        None => Calibration::MinMax,
    };
    calibration.validate()?;
    if arguments.precision == Precision::Int8 && arguments.calibration == 0 {
        bail!("--calibration 0: int8 needs calibration images to measure activation ranges; give e.g. --calibration 1000");
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let path = checkpoint_file(&arguments.checkpoint, arguments.data.data_dir.as_deref())?;
    let loaded = load_image_classifier(&path, &device).with_context(|| {
        format!(
            "cannot load the fp32 model to quantize from {}",
            path.display()
        )
    })?;
    if dl_compress::is_int8(&loaded.metadata) {
        bail!("{} is already quantized", path.display());
    }
    let out = arguments
        .out
        .clone()
        .unwrap_or_else(|| default_out(&path, arguments.precision, arguments.compact));
    if arguments.compact && arguments.precision != Precision::Int8 {
        bail!("--compact stores int8 models: drop --precision or use --precision int8");
    }
    let data = DataArgs {
        dataset: loaded.recipe.dataset.into(),
        ..arguments.data.clone()
    };
    let images = load_images(&data, arguments.offline)?;
    let test = images.test.to_device(&device)?;
    let float_accuracy = measure::test_accuracy(&loaded.model, &test)?;
    let (float_speed, float_single) =
        measure::images_per_second(&test, measure::forward_fp32(&loaded.model))?;
    let float_bytes = measure::file_bytes(&path)?;
    let mut metadata = loaded.metadata.clone();
    for key in [dl_train::RUN_FILES_KEY, dl_train::GLOBAL_STEP_KEY] {
        metadata.remove(key);
    }
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let (accuracy, speed, single, name) = match arguments.precision {
        Precision::Int8 => {
            let count = arguments.calibration.min(images.train.len());
            if count < arguments.calibration {
                println!(
                    "note: --calibration {}: the training set has {count} images, all of them calibrate",
                    arguments.calibration
                );
            }
            let calibration_images = images.train.images.i(..count)?;
            let quantized =
                QuantizedModel::calibrate(&loaded.model, &calibration_images, calibration)?;
            let accuracy = measure::test_accuracy(&quantized, &test)?;
            let (speed, single) =
                measure::images_per_second(&test, |images| Ok(quantized.forward(images)?))?;
            let description = serde_json::json!({
                "precision": "int8",
                "weights": "symmetric per output channel",
                "activations": "u8 with a zero point",
                "calibration": calibration,
                "calibration_images": count,
                "source_checkpoint": path.display().to_string(),
                "source_test_accuracy": float_accuracy,
                "kernel": dl_tensor::kernels::int8::backend(),
            });
            metadata.insert(QUANTIZATION_KEY.into(), description.to_string());
            metadata.insert("test_accuracy".into(), format!("{accuracy:.6}"));
            if arguments.compact {
                save_compact(&out, &quantized, &metadata)?;
            } else {
                save_int8(&out, &quantized, &metadata)?;
            }
            let format = if arguments.compact { ", compact" } else { "" };
            (
                accuracy,
                speed,
                single,
                format!(
                    "int8{format} ({} kernel)",
                    dl_tensor::kernels::int8::backend()
                ),
            )
        }
        Precision::F16 | Precision::Bf16 => {
            let dtype = if arguments.precision == Precision::F16 {
                DType::F16
            } else {
                DType::BF16
            };
            let store = loaded.model.store();
            let tensors = store
                .parameters()
                .into_iter()
                .map(|parameter| Ok((parameter.name, parameter.var.as_tensor().to_dtype(dtype)?)))
                .collect::<Result<Vec<_>>>()?;
            metadata.insert("weights_dtype".into(), format!("{dtype:?}").to_lowercase());
            dl_nn::save_tensors(&out, &tensors, &metadata)?;
            // What a reader gets: the stored weights widened back to f32.
            let reloaded = load_image_classifier(&out, &device)?;
            let accuracy = measure::test_accuracy(&reloaded.model, &test)?;
            metadata.insert("test_accuracy".into(), format!("{accuracy:.6}"));
            dl_nn::save_tensors(&out, &tensors, &metadata)?;
            let (speed, single) =
                measure::images_per_second(&test, measure::forward_fp32(&reloaded.model))?;
            (
                accuracy,
                speed,
                single,
                format!("{dtype:?} weights").to_lowercase(),
            )
        }
    };
    let bytes = measure::file_bytes(&out)?;
    println!("| model | test accuracy | file bytes | images/s (batch 1000) | images/s (batch 1) |");
    println!("|---|---|---|---|---|");
    println!(
        "| fp32 | {:.2}% | {float_bytes} | {float_speed:.0} | {float_single:.0} |",
        100.0 * float_accuracy
    );
    println!(
        "| {name} | {:.2}% ({:+.2} pp) | {bytes} ({:.2}x smaller) | {speed:.0} ({:.2}x) | {single:.0} ({:.2}x) |",
        100.0 * accuracy,
        100.0 * (accuracy - float_accuracy),
        float_bytes as f64 / bytes as f64,
        speed / float_speed,
        single / float_single
    );
    println!("saved {}", out.display());
    println!("use it (evaluate and predict read it as it is):");
    println!(
        "  cargo run --release -p mnist-classifier -- evaluate --checkpoint {}",
        out.display()
    );
    Ok(())
}
