//! Ensembles (course appendix, FAQ "how to improve a model"): train several models and combine
//! their predictions. The members make different mistakes, so their combination is usually
//! more accurate and better calibrated than any one of them (Lakshminarayanan et al., "Simple
//! and Scalable Predictive Uncertainty Estimation using Deep Ensembles", 2017).
//!
//! - [`combine`]: soft voting (the mean of the class probabilities) or hard voting (one vote
//!   per member for its argmax).
//! - [`negative_log_likelihood`]: −(1/N) Σ ln p(yᵢ | xᵢ). The mean ensemble's NLL is never above
//!   the members' mean NLL, since −ln is convex (Jensen's inequality; when no probability is
//!   small enough to be clamped).
//! - [`expected_calibration_error`] (Guo et al., "On Calibration of Modern Neural Networks",
//!   2017): ECE = Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)| over confidence bins.
//! - Why an ensemble helps, or cannot: [`pairwise_disagreement`] (members that always agree
//!   add nothing) and [`oracle_accuracy`] (no vote beats "some member is right").
//!
//! Probabilities are `(N, C)` tensors (f32 or f64, each row one example's class
//! probabilities), labels are `(N)` integer class indices; everything is computed in f64.
//! An argmax tie within one row goes to the lowest class index, as in PyTorch and NumPy.

use dl_tensor::{DType, Device, Tensor};

use crate::{NnError, Result};

/// How members' predictions are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnsembleMethod {
    /// Average the members' class probabilities (soft voting); predict the argmax of the mean.
    Mean,
    /// Each member votes for its argmax; the class with most votes wins; ties go to the tied
    /// class with the highest mean probability (then the lowest class index).
    Vote,
}

impl EnsembleMethod {
    /// `mean` or `vote`, as command lines and checkpoint metadata spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Vote => "vote",
        }
    }
}

impl std::str::FromStr for EnsembleMethod {
    type Err = NnError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "mean" => Ok(Self::Mean),
            "vote" => Ok(Self::Vote),
            other => Err(NnError::config(
                "ensemble method",
                format!("'{other}' is not one; use mean or vote"),
            )),
        }
    }
}

/// The ensemble's combined prediction.
#[derive(Debug, Clone)]
pub struct Combined {
    /// `(N, C)` f64: the mean probabilities ([`EnsembleMethod::Mean`], rows summing to 1 when
    /// the members' do) or the vote shares, votes for the class / members
    /// ([`EnsembleMethod::Vote`], rows summing to 1).
    pub probabilities: Tensor,
    /// The predicted class of each example. For `Mean` it is the argmax of `probabilities`; for
    /// `Vote` it also settles ties between vote shares (see [`EnsembleMethod::Vote`]).
    pub predictions: Vec<u32>,
}

/// Probabilities read as f64: `rows` examples of `classes` values each, row-major.
struct Table {
    rows: usize,
    classes: usize,
    values: Vec<f64>,
}

impl Table {
    /// Reads and checks `(N, C)` probabilities: float, not empty, every value in [0, 1] (rows
    /// need not sum to exactly 1: an f32 softmax rarely does).
    fn read(what: &str, name: &str, probabilities: &Tensor) -> Result<Self> {
        let (rows, classes) = match probabilities.dims2() {
            Ok((rows, classes)) if rows > 0 && classes > 0 && probabilities.dtype().is_float() => {
                (rows, classes)
            }
            _ => {
                return Err(NnError::config(
                    what,
                    format!(
                        "{name}: expected (N, C) f32 or f64 probabilities with N, C ≥ 1, got \
                         shape {:?} of {:?}",
                        probabilities.dims(),
                        probabilities.dtype()
                    ),
                ))
            }
        };
        let values: Vec<f64> = probabilities
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        if let Some(index) = values.iter().position(|p| !(0.0..=1.0).contains(p)) {
            return Err(NnError::config(
                what,
                format!(
                    "{name}: the probability at row {}, class {} is {}; expected a value in [0, 1]",
                    index / classes,
                    index % classes,
                    values[index]
                ),
            ));
        }
        Ok(Self {
            rows,
            classes,
            values,
        })
    }

    /// Each member's table; all must have the shape of the first.
    fn read_members(what: &str, members: &[Tensor]) -> Result<Vec<Self>> {
        if members.is_empty() {
            return Err(NnError::config(
                what,
                "needs at least one member, got an empty list",
            ));
        }
        let tables = members
            .iter()
            .enumerate()
            .map(|(index, member)| Self::read(what, &format!("member {index}"), member))
            .collect::<Result<Vec<_>>>()?;
        let first = &tables[0];
        if let Some(index) = tables
            .iter()
            .position(|table| (table.rows, table.classes) != (first.rows, first.classes))
        {
            return Err(NnError::config(
                what,
                format!(
                    "member {index} has shape {:?}, expected {:?} like member 0 (every member \
                     predicts the same examples over the same classes)",
                    members[index].dims(),
                    members[0].dims()
                ),
            ));
        }
        Ok(tables)
    }

    fn row(&self, row: usize) -> &[f64] {
        &self.values[row * self.classes..(row + 1) * self.classes]
    }

    /// The predicted class of every row.
    fn predictions(&self) -> Vec<usize> {
        (0..self.rows).map(|row| argmax(self.row(row))).collect()
    }

    /// Checks `(N)` integer labels against the table and returns them as class indices.
    fn labels(&self, what: &str, labels: &Tensor) -> Result<Vec<usize>> {
        if labels.dtype().is_float() || labels.dims() != [self.rows] {
            return Err(NnError::config(
                what,
                format!(
                    "expected labels of shape ({},) (one per row of the probabilities) holding \
                     integer class indices, got shape {:?} of {:?}",
                    self.rows,
                    labels.dims(),
                    labels.dtype()
                ),
            ));
        }
        let values: Vec<i64> = labels.to_dtype(DType::I64)?.to_vec1()?;
        values
            .iter()
            .enumerate()
            .map(|(position, &label)| {
                usize::try_from(label)
                    .ok()
                    .filter(|&class| class < self.classes)
                    .ok_or_else(|| {
                        NnError::config(
                            what,
                            format!(
                                "label {label} at position {position} is outside 0..{}",
                                self.classes
                            ),
                        )
                    })
            })
            .collect()
    }
}

/// The index of the largest value; a tie goes to the lowest index.
fn argmax(row: &[f64]) -> usize {
    (1..row.len()).fold(
        0,
        |best, index| if row[index] > row[best] { index } else { best },
    )
}

/// Combines members' probabilities (each `(N, C)`, all the same shape) into the ensemble's:
/// their element-wise mean ([`EnsembleMethod::Mean`]) or the vote shares
/// ([`EnsembleMethod::Vote`]), with the predicted classes.
///
/// ```
/// use dl_nn::{combine, EnsembleMethod};
/// use dl_tensor::{Device, Tensor};
///
/// // Two members lean, a little, to class 1; the third is sure of class 0.
/// let leaning = Tensor::new(&[[0.3f64, 0.4, 0.3]], &Device::Cpu)?;
/// let sure = Tensor::new(&[[0.9f64, 0.05, 0.05]], &Device::Cpu)?;
/// let members = [leaning.clone(), leaning, sure];
/// // Soft voting weighs confidence: mean = (1.5, 0.85, 0.65) / 3 ≈ (0.50, 0.28, 0.22), class 0.
/// assert_eq!(combine(&members, EnsembleMethod::Mean)?.predictions, vec![0]);
/// // Hard voting counts heads: 2 votes against 1, class 1.
/// assert_eq!(combine(&members, EnsembleMethod::Vote)?.predictions, vec![1]);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
pub fn combine(members: &[Tensor], method: EnsembleMethod) -> Result<Combined> {
    let tables = Table::read_members("ensemble", members)?;
    let (rows, classes) = (tables[0].rows, tables[0].classes);
    let member_count = tables.len() as f64;
    // ANCHOR: mean-of-probabilities
    let mut mean = vec![0.0; rows * classes];
    for table in &tables {
        mean.iter_mut()
            .zip(&table.values)
            .for_each(|(sum, p)| *sum += p);
    }
    mean.iter_mut().for_each(|sum| *sum /= member_count);
    let (probabilities, predictions): (Vec<f64>, Vec<usize>) = match method {
        EnsembleMethod::Mean => {
            let predictions = (0..rows)
                .map(|row| argmax(&mean[row * classes..(row + 1) * classes]))
                .collect();
            (mean, predictions)
        }
        // ANCHOR_END: mean-of-probabilities
        EnsembleMethod::Vote => {
            let mut votes = vec![0usize; rows * classes];
            for table in &tables {
                for (row, class) in table.predictions().into_iter().enumerate() {
                    votes[row * classes + class] += 1;
                }
            }
            // The most votes, then the highest mean probability, then (by keeping the first
            // best) the lowest index.
            let predictions = (0..rows)
                .map(|row| {
                    let (votes, means) = (&votes[row * classes..], &mean[row * classes..]);
                    (1..classes).fold(0, |best, class| {
                        let better = votes[class] > votes[best]
                            || (votes[class] == votes[best] && means[class] > means[best]);
                        if better {
                            class
                        } else {
                            best
                        }
                    })
                })
                .collect();
            let shares = votes
                .iter()
                .map(|&count| count as f64 / member_count)
                .collect();
            (shares, predictions)
        }
    };
    Ok(Combined {
        probabilities: Tensor::from_vec(probabilities, (rows, classes), &Device::Cpu)?,
        predictions: predictions.into_iter().map(|class| class as u32).collect(),
    })
}

/// Expected calibration error (Guo et al. 2017): the examples are binned by confidence (their
/// max probability) into `bins` equal-width bins over [0, 1], bin i holding (i/bins, (i+1)/bins]
/// (a confidence of 0 goes to the first bin, of exactly 1.0 to the last), and
/// ECE = Σ_b |B_b|/N · |accuracy(B_b) − mean confidence(B_b)|. 15 bins is the usual choice.
///
/// ```
/// use dl_nn::expected_calibration_error;
/// use dl_tensor::{Device, Tensor};
///
/// // Four examples at 75% confidence, three of them right: perfectly calibrated.
/// let probabilities = Tensor::new(&[[0.75f64, 0.25]; 4], &Device::Cpu)?;
/// let labels = Tensor::new(&[0u32, 0, 0, 1], &Device::Cpu)?;
/// assert!(expected_calibration_error(&probabilities, &labels, 15)?.abs() < 1e-12);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
pub fn expected_calibration_error(
    probabilities: &Tensor,
    labels: &Tensor,
    bins: usize,
) -> Result<f64> {
    let what = "expected calibration error";
    if bins == 0 {
        return Err(NnError::config(
            what,
            "needs at least 1 bin, got 0 (15 is the usual choice)",
        ));
    }
    let table = Table::read(what, "probabilities", probabilities)?;
    let labels = table.labels(what, labels)?;
    // ANCHOR: expected-calibration-error
    // Per bin: (examples, correct ones, sum of confidences).
    let mut totals = vec![(0usize, 0usize, 0.0f64); bins];
    for (row, &label) in labels.iter().enumerate() {
        let predicted = argmax(table.row(row));
        let confidence = table.row(row)[predicted];
        // The literal rule, upper edge included: the first bin whose upper edge reaches it.
        let bin = (0..bins)
            .find(|&bin| confidence <= (bin + 1) as f64 / bins as f64)
            .unwrap_or(bins - 1);
        let total = &mut totals[bin];
        total.0 += 1;
        total.1 += usize::from(predicted == label);
        total.2 += confidence;
    }
    let examples = table.rows as f64;
    Ok(totals
        .iter()
        .filter(|(count, _, _)| *count > 0)
        .map(|&(count, correct, confidences)| {
            let size = count as f64;
            size / examples * (correct as f64 / size - confidences / size).abs()
        })
        .sum())
    // ANCHOR_END: expected-calibration-error
}

/// The smallest probability [`negative_log_likelihood`] takes the log of: a confident mistake
/// costs ln(10¹²) ≈ 27.6 rather than infinity.
const SMALLEST_PROBABILITY: f64 = 1e-12;

/// The mean negative log-likelihood −(1/N) Σ ln p(yᵢ | xᵢ), with p clamped below at 10⁻¹² so
/// that a confident mistake costs ln(10¹²) ≈ 27.6, not infinity.
pub fn negative_log_likelihood(probabilities: &Tensor, labels: &Tensor) -> Result<f64> {
    let what = "negative log-likelihood";
    let table = Table::read(what, "probabilities", probabilities)?;
    let labels = table.labels(what, labels)?;
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(row, &label)| -table.row(row)[label].max(SMALLEST_PROBABILITY).ln())
        .sum();
    Ok(total / table.rows as f64)
}

/// For each pair of members (i < j, in order (0, 1), (0, 2), …, (1, 2), …), the share of
/// examples on which their argmax predictions differ. One member has no pairs: an empty list.
pub fn pairwise_disagreement(members: &[Tensor]) -> Result<Vec<((usize, usize), f64)>> {
    let tables = Table::read_members("pairwise disagreement", members)?;
    let predictions: Vec<Vec<usize>> = tables.iter().map(Table::predictions).collect();
    let examples = tables[0].rows as f64;
    let mut shares = Vec::new();
    for i in 0..predictions.len() {
        for j in i + 1..predictions.len() {
            let differing = predictions[i]
                .iter()
                .zip(&predictions[j])
                .filter(|(a, b)| a != b)
                .count();
            shares.push(((i, j), differing as f64 / examples));
        }
    }
    Ok(shares)
}

/// The oracle accuracy: the share of examples that at least one member classifies correctly.
///
/// It bounds the accuracy of every rule that picks one of the members' predicted classes
/// (hard voting, choosing a member per example). Soft voting is not bound by it: the mean of
/// (0.45, 0.1, 0.45) and (0.1, 0.45, 0.45) predicts class 2, which neither member chose.
pub fn oracle_accuracy(members: &[Tensor], labels: &Tensor) -> Result<f64> {
    let what = "oracle accuracy";
    let tables = Table::read_members(what, members)?;
    let labels = tables[0].labels(what, labels)?;
    let predictions: Vec<Vec<usize>> = tables.iter().map(Table::predictions).collect();
    let reached = labels
        .iter()
        .enumerate()
        .filter(|&(row, &label)| predictions.iter().any(|member| member[row] == label))
        .count();
    Ok(reached as f64 / labels.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_ties_go_to_the_lowest_index() {
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[0.1, 0.2, 0.7]), 2);
    }
}
