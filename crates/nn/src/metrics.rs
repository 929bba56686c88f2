//! Metrics: how good the predictions are, in the terms people report. Accuracy is the share of
//! correct predictions; the confusion matrix counts, for each true class, which class was
//! predicted, and gives each class's precision (of the examples predicted as c, the share that
//! are c) and recall (of the examples that are c, the share found).

use std::fmt;

use dl_tensor::{DType, Tensor};

use crate::{NnError, Result};

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Adds a batch: class scores `(N, classes)` (the largest is the prediction) and labels `(N)`.
    pub fn add_scores(&mut self, scores: &Tensor, labels: &Tensor) -> Result<()> {
        if scores.rank() != 2 || scores.dim(1)? != self.classes {
            return Err(NnError::Target {
                what: "confusion matrix",
                problem: format!(
                    "expected scores of shape (N, {}), got {:?}",
                    self.classes,
                    scores.dims()
                ),
            });
        }
        if labels.dtype().is_float() {
            return Err(NnError::Target {
                what: "confusion matrix",
                problem: format!(
                    "labels must be integer class indices, got {:?}",
                    labels.dtype()
                ),
            });
        }
        let predicted: Vec<u32> = dl_tensor::argmax(scores)?.to_vec1()?;
        let actual: Vec<u32> = labels.flatten_all()?.to_dtype(DType::U32)?.to_vec1()?;
        self.add_pairs(&actual, &predicted)
    }

    /// Adds pairs of true and predicted class indices.
    pub fn add_pairs(&mut self, actual: &[u32], predicted: &[u32]) -> Result<()> {
        if actual.len() != predicted.len() {
            return Err(NnError::Target {
                what: "confusion matrix",
                problem: format!(
                    "{} labels but {} predictions",
                    actual.len(),
                    predicted.len()
                ),
            });
        }
        let classes = self.classes;
        if let Some(bad) = actual
            .iter()
            .chain(predicted)
            .find(|&&class| class as usize >= classes)
        {
            return Err(NnError::Target {
                what: "confusion matrix",
                problem: format!("class {bad} is outside 0..{classes}"),
            });
        }
        for (&truth, &guess) in actual.iter().zip(predicted) {
            self.counts[truth as usize * classes + guess as usize] += 1;
        }
        Ok(())
    }

    /// How many examples of class `actual` were predicted as `predicted`.
    pub fn count(&self, actual: usize, predicted: usize) -> u64 {
        self.counts[actual * self.classes + predicted]
    }

    /// The number of examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The share of correct predictions (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes)
            .map(|class| self.count(class, class))
            .sum();
        ratio(correct, self.total()).unwrap_or(0.0)
    }

    /// Of the examples predicted as `class`, the share that truly are; `None` if none were.
    pub fn precision(&self, class: usize) -> Option<f64> {
        let predicted: u64 = (0..self.classes)
            .map(|actual| self.count(actual, class))
            .sum();
        ratio(self.count(class, class), predicted)
    }

    /// Of the examples that are `class`, the share predicted as such; `None` if there were none.
    pub fn recall(&self, class: usize) -> Option<f64> {
        let actual: u64 = (0..self.classes)
            .map(|guess| self.count(class, guess))
            .sum();
        ratio(self.count(class, class), actual)
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are true classes, columns predicted classes, then precision and recall per class.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .max()
            .map_or(1, |largest| largest.to_string().len())
            .max(self.classes.to_string().len())
            + 1;
        write!(formatter, "true\\pred")?;
        for class in 0..self.classes {
            write!(formatter, "{class:>width$}")?;
        }
        writeln!(formatter, "  precision  recall")?;
        let percent =
            |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
        for actual in 0..self.classes {
            write!(formatter, "{actual:>9}")?;
            for predicted in 0..self.classes {
                write!(formatter, "{:>width$}", self.count(actual, predicted))?;
            }
            writeln!(
                formatter,
                "  {:>9}  {:>6}",
                percent(self.precision(actual)),
                percent(self.recall(actual))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_recall_by_hand() {
        // truth: 0 0 1 1 1; predicted: 0 1 1 1 0.
        // class 0: predicted twice (one right) → precision 1/2; two true, one found → recall 1/2.
        // class 1: predicted three times (two right) → 2/3; three true, two found → 2/3.
        let mut matrix = ConfusionMatrix::new(2);
        matrix
            .add_pairs(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 0])
            .unwrap();
        assert_eq!(matrix.count(0, 1), 1);
        assert_eq!(matrix.precision(0), Some(0.5));
        assert_eq!(matrix.recall(0), Some(0.5));
        assert!((matrix.precision(1).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((matrix.accuracy() - 0.6).abs() < 1e-12);
        assert!(matrix.add_pairs(&[2], &[0]).is_err());
        assert!(ConfusionMatrix::new(3).precision(2).is_none());
    }
}
