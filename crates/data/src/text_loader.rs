//! Training windows for a language model (course §5.2, text generation): the model reads
//! `sequence_length` tokens and, at every position, predicts the next one, so each example is a
//! window of `sequence_length + 1` tokens — the input is its first `sequence_length` tokens, the
//! target the same window shifted by one.
//!
//! ```text
//! tokens:  t0 t1 t2 t3 t4 t5 ...        window at start 1, sequence_length 3:
//! input:      t1 t2 t3
//! target:        t2 t3 t4
//! ```
//!
//! Training draws windows at random starts (a different, seeded set every epoch); validation
//! walks non-overlapping windows in order so that every token is predicted once, which is what a
//! perplexity needs.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use dl_tensor::{Device, SeededRng, Tensor};

use crate::{DataError, Result};

/// Batches of `(input, target)` windows over a token sequence, both `(batch, sequence_length)`
/// u32 tensors.
///
/// ```
/// use dl_data::TextWindows;
/// use std::path::Path;
///
/// let tokens: Vec<u32> = (0..100).collect();
/// let windows = TextWindows::new(Path::new("counting.txt"), tokens, 8, 4, 42)?;
/// for batch in windows.epoch_batches(0, 10) {
///     let (input, target) = batch?;
///     assert_eq!(input.dims(), &[4, 8]);
///     // With tokens 0, 1, 2, ... every target is its input plus one: the next token.
///     let input = input.flatten_all()?.to_vec1::<u32>()?;
///     let target = target.flatten_all()?.to_vec1::<u32>()?;
///     assert!(input.iter().zip(&target).all(|(token, next)| token + 1 == *next));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TextWindows {
    source: PathBuf,
    tokens: Arc<[u32]>,
    sequence_length: usize,
    batch_size: usize,
    seed: u64,
    device: Device,
}

impl TextWindows {
    /// Windows of `sequence_length + 1` tokens over `tokens` (the token ids of the corpus at
    /// `source`, which only names it in errors), in batches of `batch_size`, on the CPU.
    ///
    /// # Errors
    /// [`DataError::Config`] when `sequence_length` or `batch_size` is 0;
    /// [`DataError::TooLittleText`] when there are fewer than `sequence_length + 1` tokens.
    pub fn new(
        source: &Path,
        tokens: impl Into<Arc<[u32]>>,
        sequence_length: usize,
        batch_size: usize,
        seed: u64,
    ) -> Result<Self> {
        if sequence_length == 0 {
            return Err(DataError::config(
                "sequence length",
                "0: a window needs at least one input token",
            ));
        }
        if batch_size == 0 {
            return Err(DataError::config(
                "batch size",
                "0: a batch needs at least one window",
            ));
        }
        let tokens = tokens.into();
        let needed = sequence_length + 1;
        if tokens.len() < needed {
            return Err(DataError::TooLittleText {
                path: source.to_path_buf(),
                problem: format!(
                    "{} tokens, but a window of sequence length {sequence_length} needs \
                     {needed} (its input and the next token); use a longer corpus or a shorter \
                     sequence length",
                    tokens.len()
                ),
            });
        }
        Ok(Self {
            source: source.to_path_buf(),
            tokens,
            sequence_length,
            batch_size,
            seed,
            device: Device::Cpu,
        })
    }

    /// The same windows, with batches created on `device`.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The corpus the tokens came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The token sequence.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Input tokens per window.
    pub fn sequence_length(&self) -> usize {
        self.sequence_length
    }

    /// Windows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of distinct window starts, `tokens − sequence_length`.
    pub fn window_count(&self) -> usize {
        self.tokens.len() - self.sequence_length
    }

    /// `batches_per_epoch` batches of windows at random starts, the same for the same seed and
    /// epoch, different from one epoch to the next.
    pub fn epoch_batches(&self, epoch: usize, batches_per_epoch: usize) -> RandomWindowBatches<'_> {
        RandomWindowBatches {
            windows: self,
            rng: SeededRng::new(self.seed).fork(epoch as u64),
            remaining: batches_per_epoch,
        }
    }

    /// Non-overlapping windows in corpus order (window `i` starts at token `i × sequence_length`),
    /// `batch_size` per batch, the last batch possibly smaller: every token but the first is a
    /// target exactly once, except a tail shorter than one window.
    pub fn sequential_batches(&self) -> SequentialWindowBatches<'_> {
        let windows = (self.tokens.len() - 1) / self.sequence_length;
        SequentialWindowBatches {
            windows: self,
            next_window: 0,
            window_total: windows,
        }
    }

    /// One batch from the windows starting at `starts`: `(input, target)`, each
    /// `(starts.len(), sequence_length)`.
    ///
    /// # Errors
    /// [`DataError::Config`] when a window would run past the end of the tokens; a Candle error
    /// when the tensors cannot be created on the device.
    pub fn batch_at(&self, starts: &[usize]) -> Result<(Tensor, Tensor)> {
        let length = self.sequence_length;
        let mut inputs = Vec::with_capacity(starts.len() * length);
        let mut targets = Vec::with_capacity(starts.len() * length);
        for &start in starts {
            let Some(window) = self.tokens.get(start..start + length + 1) else {
                return Err(DataError::config(
                    "window start",
                    format!(
                        "{start}: a window of {} tokens must start before {}",
                        length + 1,
                        self.window_count()
                    ),
                ));
            };
            inputs.extend_from_slice(&window[..length]);
            targets.extend_from_slice(&window[1..]);
        }
        let shape = (starts.len(), length);
        Ok((
            Tensor::from_vec(inputs, shape, &self.device)?,
            Tensor::from_vec(targets, shape, &self.device)?,
        ))
    }
}

/// The random batches of one epoch; see [`TextWindows::epoch_batches`].
#[derive(Debug)]
pub struct RandomWindowBatches<'a> {
    windows: &'a TextWindows,
    rng: SeededRng,
    remaining: usize,
}

impl Iterator for RandomWindowBatches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let window_count = self.windows.window_count();
        let starts: Vec<usize> = (0..self.windows.batch_size)
            .map(|_| self.rng.below(window_count))
            .collect();
        Some(self.windows.batch_at(&starts))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for RandomWindowBatches<'_> {}

/// The in-order batches of non-overlapping windows; see [`TextWindows::sequential_batches`].
#[derive(Debug)]
pub struct SequentialWindowBatches<'a> {
    windows: &'a TextWindows,
    next_window: usize,
    window_total: usize,
}

impl Iterator for SequentialWindowBatches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_window >= self.window_total {
            return None;
        }
        let end = (self.next_window + self.windows.batch_size).min(self.window_total);
        let length = self.windows.sequence_length;
        let starts: Vec<usize> = (self.next_window..end)
            .map(|window| window * length)
            .collect();
        self.next_window = end;
        Some(self.windows.batch_at(&starts))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = (self.window_total - self.next_window).div_ceil(self.windows.batch_size);
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for SequentialWindowBatches<'_> {}
