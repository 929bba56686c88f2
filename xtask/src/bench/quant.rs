//! `cnn_quant`, as `pytorch_baseline.py quant` defines it: the course's CNN trained one epoch
//! (batch 32, Adam 1e-3), then inference at batch 1000 and batch 1 in fp32 and in int8
//! (dl-compress: per-channel int8 weights, u8 activations calibrated on 1,000 training images,
//! integer kernels), with the test accuracy and the bytes of each saved model. PyTorch's
//! counterpart is its dynamic int8 quantization of the Linear layers (`int8_dynamic`).

use anyhow::Result;
use dl_compress::{encode_int8, Calibration, QuantizedModel};
use dl_data::{BatchLoader, ImageSet};
use dl_nn::{Layer, Mode};
use dl_tensor::{accuracy, Tensor};

use super::cnn::{first, CourseCnn};
use super::measure::{median_time, round_to, Measurement};
use super::{Bench, FRAMEWORK};

/// Images calibrating the int8 activation ranges.
const CALIBRATION_IMAGES: usize = 1000;

fn test_accuracy(model: &dyn Layer, set: &ImageSet) -> Result<f64> {
    let mut correct = 0.0;
    for batch in BatchLoader::evaluation(set, 1000)?.epoch_batches(0) {
        let (images, labels) = batch?;
        let logits = model.forward(&images, Mode::Eval)?;
        correct += accuracy(&logits, &labels)? * labels.dim(0)? as f64;
    }
    Ok(correct.round() / set.len() as f64)
}

/// Images per second of `model` at batch 1000 and at batch 1.
fn speeds(bench: &Bench, model: &dyn Layer, test: &ImageSet) -> Result<(f64, f64)> {
    let batch = test.images.narrow(0, 0, 1000.min(test.len()))?;
    let count = batch.dim(0)? as f64;
    let large = || -> Result<()> {
        model.forward(&batch, Mode::Eval)?;
        Ok(())
    };
    large()?;
    let large = median_time(bench.settings.repeats(7), large)?;
    let singles: Vec<Tensor> = (0..200.min(test.len()))
        .map(|index| test.images.narrow(0, index, 1))
        .collect::<std::result::Result<_, _>>()?;
    let single = || -> Result<()> {
        for image in &singles {
            model.forward(image, Mode::Eval)?;
        }
        Ok(())
    };
    single()?;
    let single = median_time(bench.settings.repeats(5), single)? / singles.len() as f64;
    Ok((count / large, 1.0 / single))
}

/// Trains, quantizes and measures both precisions.
pub fn run(bench: &mut Bench) -> Result<()> {
    let data = bench.images()?;
    let train = first(&data.train, bench.settings.epoch_examples())?;
    let test = first(&data.test, bench.settings.test_examples())?;
    let mut cnn = CourseCnn::new()?;
    for batch in BatchLoader::training(&train, 32, 0)?.epoch_batches(1) {
        let (images, labels) = batch?;
        cnn.train_step(&images, &labels)?;
    }
    let metadata = dl_models::Recipe::ImageClassifier(dl_models::ImageRecipe::new(
        dl_models::ImageModel::CourseCnn,
        dl_data::ImageDataset::Mnist,
    ))
    .metadata()?;
    let store = cnn.model.store();
    let fp32_bytes = dl_tensor::encode_safetensors(
        &store
            .parameters()
            .into_iter()
            .map(|parameter| (parameter.name, parameter.var.as_tensor().clone()))
            .collect::<Vec<_>>(),
        &metadata,
    )
    .map_err(anyhow::Error::msg)?
    .len();
    let calibration = train
        .images
        .narrow(0, 0, CALIBRATION_IMAGES.min(train.len()))?;
    let int8 = QuantizedModel::calibrate(&cnn.model, &calibration, Calibration::MinMax)?;
    let int8_bytes = encode_int8(&int8, &metadata)?.len();
    let models: [(&str, &dyn Layer, usize); 2] = [
        ("fp32", &cnn.model, fp32_bytes),
        ("int8", &int8, int8_bytes),
    ];
    for (precision, model, bytes) in models {
        let accuracy = test_accuracy(model, &test)?;
        let (images_per_s, batch1) = speeds(bench, model, &test)?;
        bench.emit(
            Measurement::new(FRAMEWORK, "cnn_quant")
                .with("precision", precision)
                .with("test_accuracy", accuracy)
                .with("images_per_s", round_to(images_per_s, 1))
                .with("batch1_images_per_s", round_to(batch1, 1))
                .with("state_bytes", bytes),
        )?;
    }
    Ok(())
}
