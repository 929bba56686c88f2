//! What a compressed model is judged by: test accuracy, bytes on disk and inference speed,
//! measured the same way for every variant so that the rows of a table compare.

use std::{path::Path, time::Instant};

use anyhow::{Context, Result};
use dl_data::{BatchLoader, ImageSet};
use dl_nn::{Layer, Loss, Mode};
use dl_tensor::{IndexOp, Tensor};
use dl_train::evaluate;

/// Images per timed batch, as PyTorch's `quant` baseline.
pub const SPEED_BATCH: usize = 1000;

/// Test accuracy of `model` on `test`, in [0, 1].
pub fn test_accuracy(model: &dyn Layer, test: &ImageSet) -> Result<f64> {
    let loader = BatchLoader::evaluation(test, SPEED_BATCH)?;
    let result = evaluate(model, Loss::CrossEntropy, loader.epoch_batches(0))?;
    Ok(result.accuracy.unwrap_or(0.0))
}

/// The median of `repeats` timings of `run`, in seconds, after one warm-up call.
pub fn median_seconds(repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    run()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let started = Instant::now();
        run()?;
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Inference speed of `forward` in images per second: at batch 1000 (the first 1000 test
/// images) and at batch 1 (200 single images per timing).
pub fn images_per_second(
    test: &ImageSet,
    mut forward: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<(f64, f64)> {
    let batch = test.images.i(..SPEED_BATCH.min(test.len()))?;
    let count = batch.dims()[0] as f64;
    let large = median_seconds(7, || forward(&batch).map(drop))?;
    let singles: Vec<Tensor> = (0..200.min(test.len()))
        .map(|index| test.images.i(index..index + 1))
        .collect::<std::result::Result<_, _>>()?;
    let single = median_seconds(5, || {
        for image in &singles {
            forward(image)?;
        }
        Ok(())
    })? / singles.len() as f64;
    Ok((count / large, 1.0 / single))
}

/// The fp32 model's forward pass, for [`images_per_second`].
pub fn forward_fp32(model: &dyn Layer) -> impl FnMut(&Tensor) -> Result<Tensor> + '_ {
    move |images| Ok(model.forward(images, Mode::Eval)?)
}

/// The size of the file at `path`, in bytes.
pub fn file_bytes(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("cannot read the size of {}", path.display()))?
        .len())
}
