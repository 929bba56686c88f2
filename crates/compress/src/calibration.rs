//! Calibration: the range of each quantized layer's input, measured by running the fp32 model
//! on training images (post-training quantization, Jacob et al. 2018; Krishnamoorthi 2018,
//! "Quantizing deep convolutional networks for efficient inference: A whitepaper").
//!
//! Min/max covers every value seen; a percentile ignores the rarest extremes, which buys a
//! finer scale for the common values at the price of clipping a few.

use dl_tensor::{DType, Tensor};

use crate::{CompressError, Result};

/// How an input range is read from the calibration values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Calibration {
    /// The smallest and largest value seen.
    MinMax,
    /// The given percentile of the values at each end (99.99 clips the top and bottom 0.01%).
    Percentile {
        /// In (50, 100].
        percentile: f64,
    },
}

impl Calibration {
    /// Checks the percentile.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::MinMax => Ok(()),
            Self::Percentile { percentile } if percentile > 50.0 && percentile <= 100.0 => Ok(()),
            Self::Percentile { percentile } => Err(CompressError::BadSetting {
                setting: "calibration percentile",
                problem: format!("{percentile} is not in (50, 100]; 99.99 is a common choice"),
            }),
        }
    }
}

/// The values seen at one layer's input, summarised as the calibration needs.
#[derive(Debug, Clone, Default)]
pub struct RangeObserver {
    min: f32,
    max: f32,
    values: Vec<f32>,
    keep_values: bool,
}

impl RangeObserver {
    /// An observer for `calibration` (a percentile keeps every value it sees).
    pub fn new(calibration: Calibration) -> Self {
        Self {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            values: Vec::new(),
            keep_values: matches!(calibration, Calibration::Percentile { .. }),
        }
    }

    /// Records a batch of inputs.
    pub fn observe(&mut self, input: &Tensor) -> Result<()> {
        let values = input
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for &value in &values {
            if !value.is_finite() {
                return Err(CompressError::BadSetting {
                    setting: "calibration",
                    problem: "the model produced a value that is not finite on a calibration image"
                        .into(),
                });
            }
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        if self.keep_values {
            self.values.extend_from_slice(&values);
        }
        Ok(())
    }

    /// The range to quantize for, under `calibration`; an error if nothing was observed.
    pub fn range(&mut self, calibration: Calibration) -> Result<(f32, f32)> {
        if self.min > self.max {
            return Err(CompressError::BadSetting {
                setting: "calibration",
                problem: "no calibration values were seen: give at least one image".into(),
            });
        }
        match calibration {
            Calibration::MinMax => Ok((self.min, self.max)),
            Calibration::Percentile { percentile } => {
                let count = self.values.len();
                let rank =
                    |share: f64| ((share * (count - 1) as f64).round() as usize).min(count - 1);
                let high_rank = rank(percentile / 100.0);
                let low_rank = rank(1.0 - percentile / 100.0);
                let high = *self
                    .values
                    .select_nth_unstable_by(high_rank, f32::total_cmp)
                    .1;
                let low = *self
                    .values
                    .select_nth_unstable_by(low_rank, f32::total_cmp)
                    .1;
                Ok((low, high))
            }
        }
    }
}
