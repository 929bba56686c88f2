//! The course's CNN (§5.1) on MNIST, as `pytorch_baseline.py` defines it: Conv2d(1→32, 3x3
//! valid) with ReLU, MaxPool 2x2, Flatten (5408), Dense(5408→128) with ReLU, Dense(128→10);
//! softmax cross-entropy; Adam with learning rate 1e-3.
//!
//! - `cnn_train`: train steps per second at batch 32 and 128, on consecutive slices of the
//!   training images, as images/s and the seconds an MNIST epoch (60,000 images) would take.
//! - `cnn_infer`: one forward pass over 1,000 test images.
//! - `cnn_epoch`: whole epochs at batch 32 in a new random order each, timed, then the test
//!   accuracy (the timing excludes the evaluation, as in the baseline).

use anyhow::Result;
use dl_autograd::Gradients;
use dl_data::{BatchLoader, ImageSet};
use dl_models::{ImageModel, ImageRecipe};
use dl_nn::{cross_entropy, Layer, Mode, Sequential, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer};
use dl_tensor::{accuracy, DType, Device, Var};

use super::measure::{median_time, round_to, Measurement};
use super::{Bench, FRAMEWORK};

/// Training images in an MNIST epoch: what `seconds_per_epoch` extrapolates to.
const MNIST_TRAINING_IMAGES: usize = 60_000;

/// The model, its variables and its optimizer: one train step at a time.
pub(super) struct CourseCnn {
    pub(super) model: Sequential,
    variables: Vec<(String, Var)>,
    optimizer: Adam,
}

impl CourseCnn {
    /// A freshly initialised model of the zoo (seed 0) with Adam at learning rate 1e-3. Its
    /// final softmax is left to the loss, as the baseline's logits are.
    pub(super) fn new() -> Result<Self> {
        let store = VarStore::new(&Device::Cpu, DType::F32, 0);
        let model =
            ImageRecipe::new(ImageModel::CourseCnn, dl_data::ImageDataset::Mnist).build(&store)?;
        Ok(Self {
            model,
            variables: store.trainable_variables(),
            optimizer: Adam::new(AdamConfig::default().learning_rate(1e-3))?,
        })
    }

    /// Forward, loss, backward, update: what one batch of training costs.
    pub(super) fn train_step(
        &mut self,
        images: &dl_tensor::Tensor,
        labels: &dl_tensor::Tensor,
    ) -> Result<()> {
        let logits = self.model.forward(images, Mode::Train)?;
        let loss = cross_entropy(&logits, labels)?;
        let gradients = Gradients::compute(
            &loss,
            self.variables
                .iter()
                .map(|(name, var)| (name.as_str(), var)),
        )?;
        self.optimizer.step(&gradients)?;
        Ok(())
    }

    /// The fraction of `set` classified correctly, in batches of 1,000.
    pub(super) fn test_accuracy(&self, set: &ImageSet) -> Result<f64> {
        let mut correct = 0.0;
        for batch in BatchLoader::evaluation(set, 1000)?.epoch_batches(0) {
            let (images, labels) = batch?;
            let logits = self.model.forward(&images, Mode::Eval)?;
            correct += accuracy(&logits, &labels)? * labels.dim(0)? as f64;
        }
        Ok(correct.round() / set.len() as f64)
    }
}

/// `cnn_train` at batch 32 and 128, then `cnn_infer` at batch 1000.
pub fn train_and_infer(bench: &mut Bench) -> Result<()> {
    let data = bench.images()?;
    let (images, labels) = (&data.train.images, &data.train.labels);
    let examples = data.train.len();
    let steps = bench.settings.steps;
    let mut last_model = None;
    for batch in [32usize, 128] {
        let mut cnn = CourseCnn::new()?;
        let mut train = |start: usize| -> Result<()> {
            for step in 0..steps {
                let first = ((start + step) * batch) % (examples - batch);
                cnn.train_step(
                    &images.narrow(0, first, batch)?,
                    &labels.narrow(0, first, batch)?,
                )?;
            }
            Ok(())
        };
        train(0)?; // warm-up
        let seconds = median_time(bench.settings.repeats(5), || train(steps))? / steps as f64;
        bench.emit(
            Measurement::new(FRAMEWORK, "cnn_train")
                .with("batch", batch)
                .with("images_per_s", round_to(batch as f64 / seconds, 1))
                .with(
                    "seconds_per_epoch",
                    round_to(seconds * MNIST_TRAINING_IMAGES.div_ceil(batch) as f64, 2),
                ),
        )?;
        last_model = Some(cnn);
    }
    let cnn = last_model.expect("two batch sizes were trained");
    let test_images = data.test.images.narrow(0, 0, 1000)?;
    let infer = || -> Result<()> {
        cnn.model.forward(&test_images, Mode::Eval)?;
        Ok(())
    };
    infer()?; // warm-up
    let seconds = median_time(bench.settings.repeats(7), infer)?;
    bench.emit(
        Measurement::new(FRAMEWORK, "cnn_infer")
            .with("batch", 1000)
            .with("images_per_s", round_to(1000.0 / seconds, 1)),
    )
}

/// `cnn_epoch`: `epochs` epochs of training at batch 32, each followed by the test accuracy.
pub fn epochs(bench: &mut Bench, epochs: usize) -> Result<()> {
    let data = bench.images()?;
    let train = first(&data.train, bench.settings.epoch_examples())?;
    let test = first(&data.test, bench.settings.test_examples())?;
    let mut cnn = CourseCnn::new()?;
    let loader = BatchLoader::training(&train, 32, 0)?;
    for epoch in 1..=epochs {
        let started = std::time::Instant::now();
        for batch in loader.epoch_batches(epoch) {
            let (images, labels) = batch?;
            cnn.train_step(&images, &labels)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let test_accuracy = cnn.test_accuracy(&test)?;
        bench.emit(
            Measurement::new(FRAMEWORK, "cnn_epoch")
                .with("epoch", epoch)
                .with("seconds", round_to(seconds, 2))
                .with("test_accuracy", test_accuracy),
        )?;
    }
    Ok(())
}

/// The first `limit` examples of `set` (all of them for `None`).
pub(super) fn first(set: &ImageSet, limit: Option<usize>) -> Result<ImageSet> {
    Ok(match limit {
        Some(limit) if limit < set.len() => ImageSet {
            images: set.images.narrow(0, 0, limit)?,
            labels: set.labels.narrow(0, 0, limit)?,
        },
        _ => set.clone(),
    })
}
