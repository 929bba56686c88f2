//! How much to prune: a sparsity (the fraction of weights that are zero) or a count.
//!
//! Sparsity is always the share of *all* prunable weights that the mask removes, as in Zhu &
//! Gupta 2017 and TF-MOT (`torch.nn.utils.prune` instead prunes a fraction of the weights still
//! left; [`PruneAmount::Count`] covers that case exactly).

use crate::{CompressError, Result};

/// A fraction of weights to remove, in [0, 1).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Sparsity(f64);

impl Sparsity {
    /// A sparsity, checked: 0.9 removes 90% of the weights; 1.0 (an empty model) is refused.
    ///
    /// ```
    /// use dl_compress::Sparsity;
    /// assert_eq!(Sparsity::new(0.9)?.value(), 0.9);
    /// assert!(Sparsity::new(1.0).is_err());
    /// assert!(Sparsity::new(-0.1).is_err());
    /// # Ok::<(), dl_compress::CompressError>(())
    /// ```
    pub fn new(value: f64) -> Result<Self> {
        if (0.0..1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(CompressError::BadSparsity { value })
        }
    }

    /// The fraction.
    pub fn value(self) -> f64 {
        self.0
    }

    /// How many of `total` weights this sparsity removes (rounded to the nearest count).
    pub fn count_of(self, total: usize) -> usize {
        ((self.0 * total as f64).round() as usize).min(total)
    }
}

/// How many weights a pruning step removes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PruneAmount {
    /// A fraction of the weights (of each layer, or of all layers for a global threshold).
    Fraction(Sparsity),
    /// An exact number of weights (of each layer, or in all for a global threshold).
    Count(usize),
}

impl PruneAmount {
    /// The number of weights to remove out of `total`; more than there are is an error.
    pub fn count_of(self, total: usize) -> Result<usize> {
        match self {
            Self::Fraction(sparsity) => Ok(sparsity.count_of(total)),
            Self::Count(count) if count <= total => Ok(count),
            Self::Count(count) => Err(CompressError::TooManyWeights {
                requested: count,
                available: total,
            }),
        }
    }
}

impl From<Sparsity> for PruneAmount {
    fn from(sparsity: Sparsity) -> Self {
        Self::Fraction(sparsity)
    }
}
