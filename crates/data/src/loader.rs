//! Mini-batches for training and evaluation (course §5.1): the examples of a dataset cut into
//! batches, in a new seeded random order every training epoch, in file order for evaluation.
//!
//! Shuffling matters for stochastic gradient descent: batches of one class at a time would pull
//! the weights back and forth. The order of epoch `e` depends only on the seed and `e`, so a run
//! repeats exactly and a resumed run continues where it stopped.
//!
//! ```
//! use dl_data::BatchLoader;
//! use dl_tensor::{Device, Tensor};
//!
//! let inputs = Tensor::arange(0f32, 10.0, &Device::Cpu)?.reshape((10, 1))?;
//! let targets = Tensor::arange(0u32, 10, &Device::Cpu)?;
//! let loader = BatchLoader::new(inputs, targets, 4)?.shuffled(42);
//! let batches = loader.epoch_batches(1);
//! assert_eq!(batches.len(), 3); // 4 + 4 + 2
//! for batch in batches {
//!     let (inputs, targets) = batch?;
//!     assert_eq!(inputs.dim(0)?, targets.dim(0)?);
//! }
//! # Ok::<(), dl_data::DataError>(())
//! ```

use dl_tensor::{SeededRng, Tensor};

use crate::augment::Augmenter;
use crate::error::{DataError, Result};
use crate::mnist::ImageSet;

/// Cuts (inputs, targets) tensors, whose first dimension is the example, into batches.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    inputs: Tensor,
    targets: Tensor,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    drop_last: bool,
    augmenter: Option<Augmenter>,
}

impl BatchLoader {
    /// Batches of `batch_size` examples in file order, last batch kept even if short: what
    /// evaluation wants. Inputs and targets must have the same (non-zero-rank) first dimension.
    pub fn new(inputs: Tensor, targets: Tensor, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::config("batch size", "0; use at least 1"));
        }
        let (Some(&examples), Some(&target_examples)) =
            (inputs.dims().first(), targets.dims().first())
        else {
            return Err(DataError::config(
                "batch loader data",
                "inputs and targets need a first dimension, one entry per example; got a scalar",
            ));
        };
        if examples != target_examples {
            return Err(DataError::config(
                "batch loader data",
                format!(
                    "{examples} inputs but {target_examples} targets; they must match one to one"
                ),
            ));
        }
        Ok(Self {
            inputs,
            targets,
            batch_size,
            shuffle_seed: None,
            drop_last: false,
            augmenter: None,
        })
    }

    /// Batches of images and labels for training: shuffled every epoch from `seed`.
    pub fn training(set: &ImageSet, batch_size: usize, seed: u64) -> Result<Self> {
        Ok(Self::new(set.images.clone(), set.labels.clone(), batch_size)?.shuffled(seed))
    }

    /// Batches of images and labels for evaluation: file order, no augmentation.
    pub fn evaluation(set: &ImageSet, batch_size: usize) -> Result<Self> {
        Self::new(set.images.clone(), set.labels.clone(), batch_size)
    }

    /// Shuffles the examples every epoch, from `seed`.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Whether to drop the last batch of an epoch when it is short (so every batch has
    /// `batch_size` examples, as batch normalisation prefers).
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Augments the inputs of every batch with `augmenter` (training loaders only). Its draws
    /// depend on its seed and the epoch, see [`Augmenter::for_epoch`].
    pub fn augmented(mut self, augmenter: Augmenter) -> Self {
        self.augmenter = Some(augmenter);
        self
    }

    /// Number of examples.
    pub fn example_count(&self) -> usize {
        self.inputs.dims()[0]
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of batches per epoch.
    pub fn batch_count(&self) -> usize {
        if self.drop_last {
            self.example_count() / self.batch_size
        } else {
            self.example_count().div_ceil(self.batch_size)
        }
    }

    /// The batches of one epoch (numbered as the caller likes; the trainer starts at 1). With a
    /// shuffle seed the order is a permutation fixed by seed and epoch; each batch is gathered
    /// with one `index_select` per tensor. The iterator knows its length (for a progress bar).
    pub fn epoch_batches(&self, epoch: usize) -> EpochBatches<'_> {
        let order = self.shuffle_seed.map(|seed| {
            let mut rng = SeededRng::new(seed).fork(epoch as u64);
            let permutation = rng.permutation(self.example_count());
            permutation.into_iter().map(|index| index as u32).collect()
        });
        EpochBatches {
            loader: self,
            order,
            augmenter: self
                .augmenter
                .as_ref()
                .map(|augmenter| augmenter.for_epoch(epoch)),
            next_batch: 0,
            batch_count: self.batch_count(),
        }
    }
}

/// The batches of one epoch, as `Result<(inputs, targets)>`; see [`BatchLoader::epoch_batches`].
#[derive(Debug)]
pub struct EpochBatches<'a> {
    loader: &'a BatchLoader,
    /// The epoch's order of examples, `None` for file order.
    order: Option<Vec<u32>>,
    augmenter: Option<Augmenter>,
    next_batch: usize,
    batch_count: usize,
}

impl EpochBatches<'_> {
    /// The batch of the examples at positions `start..start + length` of the epoch's order.
    fn batch(&mut self, start: usize, length: usize) -> Result<(Tensor, Tensor)> {
        let loader = self.loader;
        let (inputs, targets) = match &self.order {
            None => (
                loader.inputs.narrow(0, start, length)?,
                loader.targets.narrow(0, start, length)?,
            ),
            Some(order) => {
                let indices = &order[start..start + length];
                let input_indices = Tensor::from_slice(indices, length, loader.inputs.device())?;
                let target_indices = if loader.targets.device().same_device(loader.inputs.device())
                {
                    input_indices.clone()
                } else {
                    Tensor::from_slice(indices, length, loader.targets.device())?
                };
                (
                    loader.inputs.index_select(&input_indices, 0)?,
                    loader.targets.index_select(&target_indices, 0)?,
                )
            }
        };
        let inputs = match &mut self.augmenter {
            Some(augmenter) => augmenter.apply(&inputs)?,
            None => inputs,
        };
        Ok((inputs, targets))
    }
}

impl Iterator for EpochBatches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_batch >= self.batch_count {
            return None;
        }
        let batch_size = self.loader.batch_size;
        let start = self.next_batch * batch_size;
        let length = batch_size.min(self.loader.example_count() - start);
        self.next_batch += 1;
        Some(self.batch(start, length))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.batch_count - self.next_batch;
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for EpochBatches<'_> {}

/// Splits `set` into (training, validation) sets: a seeded random `fraction` of the examples
/// (rounded to the nearest whole example) goes to validation, the rest to training, each
/// keeping the original order. `fraction` must be in [0, 1).
pub fn split_validation(set: &ImageSet, fraction: f64, seed: u64) -> Result<(ImageSet, ImageSet)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::config(
            "validation fraction",
            format!("{fraction}; use a value in [0, 1), e.g. 0.1 to hold out 10%"),
        ));
    }
    let count = set.len();
    let validation_count = ((count as f64 * fraction).round() as usize).min(count);
    let mut order = SeededRng::new(seed).permutation(count);
    let (validation, training) = order.split_at_mut(validation_count);
    validation.sort_unstable();
    training.sort_unstable();
    Ok((set.select(training)?, set.select(validation)?))
}
