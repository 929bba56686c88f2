//! The record of a training run: one row per epoch, written as CSV so that a spreadsheet or a
//! plotting script can draw the learning curves (the course's way of seeing overfitting: the
//! training loss keeps falling while the validation loss turns up).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use crate::{TrainingError, TrainingResult};

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EpochRecord {
    /// The epoch number, from 1 (continuing after a resumed run).
    pub epoch: usize,
    /// Mean training loss over the epoch's examples.
    pub train_loss: f64,
    /// Training accuracy, for classification.
    pub train_accuracy: Option<f64>,
    /// Mean validation loss, if validation data was given.
    pub validation_loss: Option<f64>,
    /// Validation accuracy, for classification with validation data.
    pub validation_accuracy: Option<f64>,
    /// The learning rate used at the end of the epoch.
    pub learning_rate: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Training examples per second.
    pub examples_per_second: f64,
    /// The step's own metrics, each averaged over the epoch's examples (a GAN's discriminator
    /// and generator losses, say); written as extra CSV columns after the fixed ones.
    pub metrics: BTreeMap<String, f64>,
}

impl EpochRecord {
    /// The number early stopping, checkpointing and plateau schedules watch: the validation
    /// loss when there is one, else the training loss.
    pub fn monitored_loss(&self) -> f64 {
        self.validation_loss.unwrap_or(self.train_loss)
    }
}

/// The records of all epochs so far, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// One record per epoch.
    pub epochs: Vec<EpochRecord>,
}

/// The CSV header's fixed columns, in the order of [`History::to_csv`]; a step's own metrics
/// follow them, one column each, in name order.
pub const CSV_HEADER: &str =
    "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,learning_rate,seconds,examples_per_second";

impl History {
    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The epoch with the lowest monitored loss.
    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs
            .iter()
            .min_by(|a, b| a.monitored_loss().total_cmp(&b.monitored_loss()))
    }

    /// The names of the step's own metrics, in column order.
    fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .epochs
            .iter()
            .flat_map(|record| record.metrics.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The history as CSV text (empty cells for values not measured).
    pub fn to_csv(&self) -> String {
        let cell = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.6}"));
        let names = self.metric_names();
        let mut text = String::from(CSV_HEADER);
        for name in &names {
            text.push(',');
            text.push_str(name);
        }
        text.push('\n');
        for record in &self.epochs {
            let _ = write!(
                text,
                "{},{:.6},{},{},{},{:e},{:.3},{:.1}",
                record.epoch,
                record.train_loss,
                cell(record.train_accuracy),
                cell(record.validation_loss),
                cell(record.validation_accuracy),
                record.learning_rate,
                record.seconds,
                record.examples_per_second
            );
            for name in &names {
                let _ = write!(text, ",{}", cell(record.metrics.get(*name).copied()));
            }
            text.push('\n');
        }
        text
    }

    /// Writes the CSV atomically (temporary file, then rename).
    pub fn write_csv(&self, path: &Path) -> TrainingResult<()> {
        dl_tensor::write_atomically(path, self.to_csv().as_bytes()).map_err(|error| {
            TrainingError::File {
                path: path.to_path_buf(),
                problem: format!("cannot write the training history: {error}"),
            }
        })
    }

    /// Reads a CSV written by [`History::write_csv`] (to continue a resumed run's history).
    pub fn read_csv(path: &Path) -> TrainingResult<Self> {
        let bad = |problem: String| TrainingError::File {
            path: path.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| bad(format!("cannot read the training history: {error}")))?;
        Self::from_csv(&text, path)
    }

    /// Reads a history from CSV text written by [`History::to_csv`] (`path` names it in errors).
    pub fn from_csv(text: &str, path: &Path) -> TrainingResult<Self> {
        let bad = |problem: String| TrainingError::File {
            path: path.to_path_buf(),
            problem,
        };
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let Some(extra) = header.strip_prefix(CSV_HEADER) else {
            return Err(bad(
                "not a training history: the header does not match".into()
            ));
        };
        let names: Vec<&str> = extra.split(',').skip(1).collect();
        let is_name = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.()".contains(c))
        };
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        if !extra.is_empty() && !extra.starts_with(',')
            || !names.iter().all(|name| is_name(name))
            || unique.len() != names.len()
        {
            return Err(bad(format!(
                "not a training history: unexpected header columns '{}' (a metric's name is letters, digits and _-.() only, each once)",
                extra.escape_debug()
            )));
        }
        let columns = 8 + names.len();
        let mut epochs = Vec::new();
        for (index, line) in lines
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
        {
            let cells: Vec<&str> = line.split(',').collect();
            let row = index + 2;
            if cells.len() != columns {
                return Err(bad(format!(
                    "line {row} has {} cells, expected {columns}",
                    cells.len()
                )));
            }
            let number = |cell: &str| -> TrainingResult<f64> {
                cell.parse()
                    .map_err(|_| bad(format!("line {row}: '{cell}' is not a number")))
            };
            let optional = |cell: &str| -> TrainingResult<Option<f64>> {
                if cell.is_empty() {
                    Ok(None)
                } else {
                    number(cell).map(Some)
                }
            };
            epochs.push(EpochRecord {
                epoch: number(cells[0])? as usize,
                train_loss: number(cells[1])?,
                train_accuracy: optional(cells[2])?,
                validation_loss: optional(cells[3])?,
                validation_accuracy: optional(cells[4])?,
                learning_rate: number(cells[5])?,
                seconds: number(cells[6])?,
                examples_per_second: number(cells[7])?,
                metrics: names
                    .iter()
                    .zip(&cells[8..])
                    .filter_map(|(name, cell)| Some((name, optional(cell).transpose()?)))
                    .map(|(name, value)| Ok((name.to_string(), value?)))
                    .collect::<TrainingResult<_>>()?,
            });
        }
        Ok(Self { epochs })
    }
}
