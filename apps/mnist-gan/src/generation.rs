//! Drawing images from a trained generator: seeded noise (the same seed gives the same images,
//! bit for bit), chosen digits for a conditional GAN, and walks through the latent space.

use std::path::Path;

use anyhow::{bail, Context, Result};
use dl_models::{load_gan, Gan, GAN_CLASSES};
use dl_nn::Mode;
use dl_tensor::{SeededRng, Tensor};

/// Images generated at a time.
const BATCH: usize = 500;

/// How the generator's batch normalisation runs when generating: with the running averages
/// gathered in training (evaluation mode), so that an image does not depend on the others
/// drawn with it.
pub const GENERATION_MODE: Mode = Mode::Eval;

/// The GAN of the checkpoint at `path` (`train --out`), on `device`; anything else is an error
/// that says what the file holds.
pub fn load(path: &Path, device: &dl_tensor::Device) -> Result<Gan> {
    Ok(load_gan(path, device)
        .with_context(|| {
            format!(
                "--checkpoint {} is not a GAN to generate from",
                path.display()
            )
        })?
        .model)
}

/// The labels of `count` samples: `digit` for all, or for a conditional GAN without one the
/// classes in turn (0, 1, …, 9, 0, …); none for an unconditional GAN.
pub fn labels(gan: &Gan, count: usize, digit: Option<u32>) -> Result<Option<Vec<u32>>> {
    match (gan.recipe().conditional, digit) {
        (false, Some(_)) => bail!(
            "--digit needs a conditional GAN, and this one is not: train one with `mnist-gan train --conditional`"
        ),
        (false, None) => Ok(None),
        (true, Some(digit)) if digit as usize >= GAN_CLASSES => {
            bail!("--digit must be 0 to {}, got {digit}", GAN_CLASSES - 1)
        }
        (true, Some(digit)) => Ok(Some(vec![digit; count])),
        (true, None) => Ok(Some((0..count).map(|i| (i % GAN_CLASSES) as u32).collect())),
    }
}

/// `count` noise vectors drawn from `seed`.
pub fn noise(gan: &Gan, count: usize, seed: u64) -> Result<Tensor> {
    let store = gan.store();
    Ok(SeededRng::new(seed)
        .normal_tensor((count, gan.recipe().latent_dim), 0.0, 1.0, store.device())?
        .to_dtype(store.dtype())?)
}

/// Images `(N, 1, 28, 28)` in [−1, 1] from `noise` `(N, latent)` and optional labels.
pub fn generate_from(gan: &Gan, noise: &Tensor, labels: Option<&[u32]>) -> Result<Tensor> {
    let count = noise.dim(0)?;
    let mut parts = Vec::new();
    for start in (0..count).step_by(BATCH) {
        let size = BATCH.min(count - start);
        let batch_noise = noise.narrow(0, start, size)?;
        let batch_labels = labels
            .map(|labels| Tensor::new(&labels[start..start + size], noise.device()))
            .transpose()?;
        // Detached, so that the batch's forward graph is freed (see `quality::classify`).
        parts.push(
            gan.sampler()
                .generate(&batch_noise, batch_labels.as_ref(), GENERATION_MODE)?
                .detach(),
        );
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// `count` images from the noise of `seed` (and `digit`, for a conditional GAN).
pub fn generate(gan: &Gan, count: usize, seed: u64, digit: Option<u32>) -> Result<Tensor> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let labels = labels(gan, count, digit)?;
    generate_from(gan, &noise(gan, count, seed)?, labels.as_deref())
}

/// Spherical interpolation between two noise vectors (White, "Sampling Generative Networks",
/// 2016): a straight line between two Gaussian samples passes through vectors far shorter
/// than any the generator saw, the great circle keeps their norm.
pub fn slerp(from: &[f32], to: &[f32], t: f32) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (a, b) = (norm(from), norm(to));
    let cosine = if a > 0.0 && b > 0.0 {
        (from.iter().zip(to).map(|(x, y)| x * y).sum::<f32>() / (a * b)).clamp(-1.0, 1.0)
    } else {
        1.0
    };
    let omega = cosine.acos();
    if omega.abs() < 1e-4 {
        return from.iter().zip(to).map(|(x, y)| x + t * (y - x)).collect();
    }
    let (p, q) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    from.iter().zip(to).map(|(x, y)| p * x + q * y).collect()
}

/// `steps` images along the great circle from the noise of seed `from` to that of seed `to`.
pub fn interpolate(
    gan: &Gan,
    from: u64,
    to: u64,
    steps: usize,
    digit: Option<u32>,
) -> Result<Tensor> {
    if steps < 2 {
        bail!("--steps must be at least 2 (both ends), got {steps}");
    }
    let start = noise(gan, 1, from)?
        .flatten_all()?
        .to_dtype(dl_tensor::DType::F32)?
        .to_vec1::<f32>()?;
    let end = noise(gan, 1, to)?
        .flatten_all()?
        .to_dtype(dl_tensor::DType::F32)?
        .to_vec1::<f32>()?;
    let path: Vec<f32> = (0..steps)
        .flat_map(|step| slerp(&start, &end, step as f32 / (steps - 1) as f32))
        .collect();
    let store = gan.store();
    let noise =
        Tensor::from_vec(path, (steps, start.len()), store.device())?.to_dtype(store.dtype())?;
    let labels = labels(gan, steps, digit)?;
    let labels = match (labels, digit) {
        // A conditional walk without a digit keeps one class (the first) all along.
        (Some(_), None) => Some(vec![0; steps]),
        (labels, _) => labels,
    };
    generate_from(gan, &noise, labels.as_deref())
}
