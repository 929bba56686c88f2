//! Scoring generated digits with one of our classifiers (course §2.3 and §8's "how do we know
//! the model is good?"): Inception Score, Fréchet distance of the classifier's penultimate
//! features against the test set, the class histogram and its KL to uniform, the share of
//! confident samples, and the share that copy a training image — with the same figures for the
//! real test set (the ceiling) and for the training set against the test set (the Fréchet
//! floor), so that each number reads against real data.
//!
//! Samples are scored as bytes, exactly as an IDX file stores them, so that `score
//! --checkpoint` and `score --samples FILE.idx` of the same images agree.

use anyhow::{bail, Result};
use dl_nn::{
    class_histogram, confident_share, frechet_distance, inception_score, kl_to_uniform,
    FeatureStatistics, InceptionScore, Sequential,
};
use dl_tensor::{DType, Tensor};

/// Images classified at a time.
const BATCH: usize = 500;
/// The Inception Score's splits (10 of 1,000 for 10,000 samples, as the literature reports).
pub const SPLITS: usize = 10;
/// A sample "copies" a training image when the root-mean-square difference of their pixels
/// (in [0, 1]) is below this: 0.05 is about 12 grey levels per pixel, where distinct
/// handwritten digits differ by 0.15 or more (the measured nearest-neighbour distances of the
/// test set to the training set are in docs/gan.md).
pub const COPY_RMS: f32 = 0.05;
/// A class holding more than this share of the samples is mode collapse.
pub const COLLAPSE_SHARE: f64 = 0.5;
/// Samples whose pixels vary less than this across the batch (mean standard deviation, pixels
/// in [0, 1]) are all the same image.
pub const COLLAPSE_PIXEL_STD: f64 = 0.02;
/// Fewer confident samples than this share means the samples do not look like the data.
pub const NOISE_CONFIDENT_SHARE: f64 = 0.5;
/// The confidence that counts a sample as recognised.
pub const CONFIDENT: f64 = 0.9;

/// What the classifier makes of a set of images.
pub struct Classified {
    /// p(y|x), `(N, 10)`.
    pub probabilities: Tensor,
    /// The penultimate features, `(N, K)`.
    pub features: Tensor,
}

/// Runs `classifier` over images `(N, 1, 28, 28)` in [0, 1].
pub fn classify(classifier: &Sequential, images: &Tensor) -> Result<Classified> {
    let count = images.dim(0)?;
    let mut probabilities = Vec::new();
    let mut features = Vec::new();
    for start in (0..count).step_by(BATCH) {
        let batch = images.narrow(0, start, BATCH.min(count - start))?;
        // Detached: a kept output would keep its batch's whole forward graph alive (its
        // activations and im2col columns, ~150 MB per 500 images for the course CNN).
        probabilities.push(classifier.predict(&batch)?.detach());
        features.push(classifier.features(&batch)?.flatten_from(1)?.detach());
    }
    Ok(Classified {
        probabilities: Tensor::cat(&probabilities, 0)?,
        features: Tensor::cat(&features, 0)?,
    })
}

/// Images as bytes `(N, 784)` (as an IDX file holds them) back to `(N, 1, 28, 28)` in [0, 1].
pub fn from_bytes(bytes: &[u8], device: &dl_tensor::Device) -> Result<Tensor> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(784) {
        bail!("expected whole 28x28 images, got {} bytes", bytes.len());
    }
    let count = bytes.len() / 784;
    Ok(
        Tensor::from_vec(bytes.to_vec(), (count, 1, 28, 28), device)?
            .to_dtype(DType::F32)?
            .affine(1.0 / 255.0, 0.0)?,
    )
}

/// The figures of one set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// How many images.
    pub count: usize,
    /// The Inception Score under our classifier.
    pub inception: InceptionScore,
    /// The Fréchet distance of the features to the test set's (None for the test set itself).
    pub frechet: Option<f64>,
    /// The share of each predicted class.
    pub histogram: Vec<f64>,
    /// KL(histogram ‖ uniform), nats.
    pub kl_to_uniform: f64,
    /// The share of images with max p > 0.9.
    pub confident: f64,
    /// The share of images within [`COPY_RMS`] of a training image (None when not measured).
    pub copies: Option<f64>,
    /// The mean over pixels of the pixels' standard deviation across the images.
    pub pixel_std: f64,
}

/// The mean over pixels of the standard deviation across images (`(N, …)`, N ≥ 2).
pub fn pixel_spread(images: &Tensor) -> Result<f64> {
    let flat = images.flatten_from(1)?.to_dtype(DType::F64)?;
    let variance = flat.broadcast_sub(&flat.mean_keepdim(0)?)?.sqr()?.mean(0)?;
    Ok(variance.sqrt()?.mean_all()?.to_scalar::<f64>()?)
}

/// For each image `(N, 1, 28, 28)`, the root-mean-square pixel difference to its nearest
/// image in `references` `(M, 1, 28, 28)`, both in [0, 1]: ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b, one
/// matrix product per block of images.
pub fn nearest_rms(images: &Tensor, references: &Tensor) -> Result<Vec<f32>> {
    let references = references.flatten_from(1)?.to_dtype(DType::F32)?;
    let reference_norms = references.sqr()?.sum(1)?;
    let references_t = references.t()?.contiguous()?;
    let pixels = references.dim(1)? as f32;
    let images = images.flatten_from(1)?.to_dtype(DType::F32)?;
    let count = images.dim(0)?;
    let mut nearest = Vec::with_capacity(count);
    for start in (0..count).step_by(BATCH) {
        let block = images.narrow(0, start, BATCH.min(count - start))?;
        let norms = block.sqr()?.sum_keepdim(1)?;
        let distances = norms
            .broadcast_add(&reference_norms.unsqueeze(0)?)?
            .sub(&(block.matmul(&references_t)? * 2.0)?)?;
        let smallest = distances.min(1)?.to_vec1::<f32>()?;
        nearest.extend(smallest.into_iter().map(|d2| (d2.max(0.0) / pixels).sqrt()));
    }
    Ok(nearest)
}

/// The reference the samples are read against: the classifier and the real images.
pub struct Reference<'a> {
    /// The classifier.
    pub classifier: &'a Sequential,
    /// The training images, in [0, 1] (for copies and the Fréchet floor).
    pub train: &'a Tensor,
    /// The test images, in [0, 1].
    pub test: &'a Tensor,
    test_statistics: FeatureStatistics,
}

impl<'a> Reference<'a> {
    /// Classifies the test images once.
    pub fn new(classifier: &'a Sequential, train: &'a Tensor, test: &'a Tensor) -> Result<Self> {
        let test_statistics = FeatureStatistics::of(&classify(classifier, test)?.features)?;
        Ok(Self {
            classifier,
            train,
            test,
            test_statistics,
        })
    }

    /// The figures of `images` (in [0, 1]); copies are looked for when `copies` (the slow
    /// part: one distance per image and training image).
    pub fn quality(&self, images: &Tensor, with_copies: bool) -> Result<Quality> {
        let (mut quality, features) = judge(self.classifier, images, SPLITS)?;
        quality.frechet = Some(frechet_distance(
            &FeatureStatistics::of(&features)?,
            &self.test_statistics,
        )?);
        if with_copies {
            let nearest = nearest_rms(images, self.train)?;
            let copies = nearest.iter().filter(|&&rms| rms < COPY_RMS).count();
            quality.copies = Some(copies as f64 / quality.count as f64);
        }
        Ok(quality)
    }

    /// The test set's own figures (the ceiling; its Fréchet distance to itself is 0, left out).
    pub fn test_quality(&self) -> Result<Quality> {
        let mut quality = self.quality(self.test, true)?;
        quality.frechet = None;
        Ok(quality)
    }

    /// The first `count` training images scored like samples: their Fréchet distance to the
    /// test set is the floor a perfect generator would reach with that many samples.
    pub fn train_quality(&self, count: usize) -> Result<Quality> {
        let count = count.min(self.train.dim(0)?);
        self.quality(&self.train.narrow(0, 0, count)?, false)
    }
}

/// What the classifier alone says of `images` (in [0, 1]), over up to `splits` splits: every
/// figure but the Fréchet distance and the copies (left `None`), and the features for them.
pub fn judge(classifier: &Sequential, images: &Tensor, splits: usize) -> Result<(Quality, Tensor)> {
    let count = images.dim(0)?;
    let classified = classify(classifier, images)?;
    let histogram = class_histogram(&classified.probabilities)?;
    let quality = Quality {
        count,
        inception: inception_score(&classified.probabilities, splits.clamp(1, count))?,
        frechet: None,
        kl_to_uniform: kl_to_uniform(&histogram),
        histogram,
        confident: confident_share(&classified.probabilities, CONFIDENT)?,
        copies: None,
        pixel_std: pixel_spread(images)?,
    };
    Ok((quality, classified.features))
}

/// The warning for samples whose pixels hardly vary across the set (mean standard deviation
/// `pixel_std`), if they are that uniform: what needs no classifier to see.
pub fn collapse_finding(pixel_std: f64) -> Option<String> {
    (pixel_std < COLLAPSE_PIXEL_STD).then(|| format!(
        "mode collapse: the samples are nearly identical (pixel spread {pixel_std:.3}, real digits ~0.3); try a lower learning rate for G, label smoothing (--real-target 0.9), or resume from an earlier checkpoint"
    ))
}

/// The failures a set of samples shows, each with a hint; empty when none.
pub fn diagnose(quality: &Quality) -> Vec<String> {
    let mut findings: Vec<String> = collapse_finding(quality.pixel_std).into_iter().collect();
    if let Some((class, share)) = quality
        .histogram
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .filter(|(_, &share)| share > COLLAPSE_SHARE)
    {
        findings.push(format!(
            "mode collapse: {:.0}% of the samples are classified as {class}; try label smoothing (--real-target 0.9), a smaller learning rate, or more epochs",
            100.0 * share
        ));
    }
    if quality.confident < NOISE_CONFIDENT_SHARE {
        findings.push(format!(
            "the samples do not look like the data: only {:.0}% are classified with p > {CONFIDENT} (real digits: ~97%); train longer, or check that D is not winning (d_loss near 0)",
            100.0 * quality.confident
        ));
    }
    findings
}
