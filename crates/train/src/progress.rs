//! Showing a training run as it happens: a live progress bar with loss, accuracy, throughput
//! and ETA on a terminal, and plain periodic lines when the output goes to a file or a CI log
//! (where a redrawn bar would be noise).

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

use crate::EpochRecord;

/// How the training loop reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always a progress bar.
    Bar,
    /// Always plain lines (one every few seconds, and one per epoch).
    Lines,
    /// Nothing during training; one line per epoch.
    EpochsOnly,
    /// Nothing at all.
    Quiet,
}

impl ProgressMode {
    fn resolved(self) -> Self {
        match self {
            Self::Auto if std::io::stdout().is_terminal() => Self::Bar,
            Self::Auto => Self::Lines,
            other => other,
        }
    }
}

/// Interval between plain progress lines.
const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// Progress of one epoch.
pub(crate) struct EpochProgress {
    mode: ProgressMode,
    epoch: usize,
    last_epoch: usize,
    batches: Option<usize>,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl EpochProgress {
    pub(crate) fn start(
        mode: ProgressMode,
        epoch: usize,
        last_epoch: usize,
        batches: Option<usize>,
    ) -> Self {
        let mode = mode.resolved();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = match batches {
                Some(total) => ProgressBar::new(total as u64),
                None => ProgressBar::new_spinner(),
            };
            let template = "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("{epoch}/{last_epoch}"));
            bar
        });
        let now = Instant::now();
        Self {
            mode,
            epoch,
            last_epoch,
            batches,
            bar,
            started: now,
            last_line: now,
        }
    }

    /// Reports that `batch` batches and `examples` examples are done, with running means (the
    /// step's own metrics among them).
    pub(crate) fn update(
        &mut self,
        batch: usize,
        examples: usize,
        loss: f64,
        accuracy: Option<f64>,
        metrics: &[(&str, f64)],
    ) {
        let throughput = examples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let accuracy_text =
            accuracy.map_or(String::new(), |value| format!(" acc {:.2}%", 100.0 * value));
        let metrics_text = metrics_text(metrics.iter().copied());
        let message = format!("loss {loss:.4}{accuracy_text}{metrics_text} {throughput:.0} ex/s");
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(batch as u64);
                bar.set_message(message);
            }
            (None, ProgressMode::Lines) if self.last_line.elapsed() >= LINE_INTERVAL => {
                self.last_line = Instant::now();
                let of_total = self
                    .batches
                    .map_or(String::new(), |total| format!("/{total}"));
                let eta = self.batches.map_or(String::new(), |total| {
                    let remaining = total.saturating_sub(batch) as f64
                        * self.started.elapsed().as_secs_f64()
                        / batch.max(1) as f64;
                    format!(" ETA {remaining:.0}s")
                });
                println!(
                    "epoch {}/{} batch {batch}{of_total}: {message}{eta}",
                    self.epoch, self.last_epoch
                );
            }
            _ => {}
        }
    }

    /// Ends the epoch with its summary line.
    pub(crate) fn finish(self, record: &EpochRecord) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let percent =
            |value: Option<f64>| value.map_or(String::new(), |v| format!(" acc {:.2}%", 100.0 * v));
        let validation = record.validation_loss.map_or(String::new(), |loss| {
            format!(
                " | validation loss {loss:.4}{}",
                percent(record.validation_accuracy)
            )
        });
        let metrics = metrics_text(
            record
                .metrics
                .iter()
                .map(|(name, value)| (name.as_str(), *value)),
        );
        println!(
            "epoch {}/{}: loss {:.4}{}{metrics}{validation} | lr {:.2e} | {:.1}s ({:.0} ex/s)",
            record.epoch,
            self.last_epoch,
            record.train_loss,
            percent(record.train_accuracy),
            record.learning_rate,
            record.seconds,
            record.examples_per_second
        );
    }
}

/// A step's own metrics as ` name value` pairs (empty for none).
fn metrics_text<'a>(metrics: impl Iterator<Item = (&'a str, f64)>) -> String {
    metrics
        .map(|(name, value)| format!(" {name} {value:.4}"))
        .collect()
}
