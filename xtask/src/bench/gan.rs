//! The DCGAN of course §2.3 on MNIST, as `pytorch_baseline.py`'s `gan` workload defines it (see
//! `dl_models::Gan`): one training step is one D update on a real batch of 64 and a detached
//! fake one, then one G update with the non-saturating loss, Adam 2e-4, β = (0.5, 0.999).
//!
//! - `gan_train`: real images consumed per second at width W = 32 and 64 (or `--width`), and
//!   the seconds an MNIST epoch would take, on consecutive slices of the training images
//!   scaled to [−1, 1].

use anyhow::Result;
use dl_models::{GanModel, GanRecipe};
use dl_nn::VarStore;
use dl_tensor::{DType, Device};
use dl_train::{GanStep, StepSettings, TrainStep};

use super::measure::{median_time, round_to, Measurement};
use super::{Bench, FRAMEWORK};

/// Real images per step, the baseline's.
const BATCH: usize = 64;
/// Training images in an MNIST epoch.
const MNIST_TRAINING_IMAGES: usize = 60_000;

/// `gan_train` at each of `widths`.
pub fn train(bench: &mut Bench, widths: &[usize]) -> Result<()> {
    let data = bench.images()?;
    let images = data.train.images.affine(2.0, -1.0)?;
    let labels = &data.train.labels;
    let examples = data.train.len();
    // The baseline times max(4, steps / 2) steps per repeat.
    let steps = (bench.settings.steps / 2).max(if bench.settings.quick { 1 } else { 4 });
    for &width in widths {
        let store = VarStore::new(&Device::Cpu, DType::F32, 0);
        let gan = GanRecipe {
            model: GanModel::Dcgan,
            width,
            latent_dim: 100,
            conditional: false,
            dataset: dl_data::ImageDataset::Mnist,
            ema: false,
        }
        .build(&store)?;
        let mut step = GanStep::new(
            &gan,
            StepSettings {
                generator_learning_rate: 2e-4,
                discriminator_learning_rate: 2e-4,
                beta1: 0.5,
                real_target: 1.0,
            },
        )?;
        let mut train = |start: usize| -> Result<()> {
            for index in 0..steps {
                let first = ((start + index) * BATCH) % (examples - BATCH);
                step.train(
                    &images.narrow(0, first, BATCH)?,
                    &labels.narrow(0, first, BATCH)?,
                )?;
            }
            Ok(())
        };
        train(0)?; // warm-up
        let seconds = median_time(bench.settings.repeats(5), || train(steps))? / steps as f64;
        bench.emit(
            Measurement::new(FRAMEWORK, "gan_train")
                .with("width", width)
                .with("images_per_s", round_to(BATCH as f64 / seconds, 1))
                .with(
                    "seconds_per_epoch",
                    round_to(seconds * MNIST_TRAINING_IMAGES.div_ceil(BATCH) as f64, 2),
                ),
        )?;
    }
    Ok(())
}
