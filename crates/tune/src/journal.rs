//! The search's journal: one JSON event per line, appended, flushed and synced to disk before the
//! search goes on, so that a search killed at any moment (even `kill -9`) loses at most the line
//! being written. `--resume` replays it: finished trials are kept, an interrupted one is run
//! again with its configuration, and the search continues as the uninterrupted one would have.
//!
//! ```text
//! {"event":"search","version":1,"header":{"seed":7,"sampler":"tpe",...}}
//! {"event":"trial_started","trial":0,"config":{"learning_rate":0.001,"width":32}}
//! {"event":"report","trial":0,"epoch":1,"value":0.9712}
//! {"event":"trial_finished","trial":0,"state":"complete","value":0.9851,"seconds":41.2,"error":null}
//! ```

use std::{
    fs::{File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    Config, Direction, Pruner, Result, SamplerKind, SearchSpace, TrialRecord, TrialState, TuneError,
};

/// The journal format's version.
pub const JOURNAL_VERSION: u32 = 1;

/// What a search was started with; a resumed search must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchHeader {
    /// The seed.
    pub seed: u64,
    /// The sampler.
    pub sampler: SamplerKind,
    /// The pruner.
    pub pruner: Pruner,
    /// Whether the metric is maximised or minimised.
    pub direction: Direction,
    /// Trials run at once.
    pub jobs: usize,
    /// The metric's name (e.g. `validation_accuracy`).
    pub metric: String,
    /// The space searched.
    pub space: SearchSpace,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The first line: the search's settings.
    Search {
        /// The format's version.
        version: u32,
        /// The settings.
        header: SearchHeader,
    },
    /// A trial started (again, after an interruption) with `config`.
    TrialStarted {
        /// The trial.
        trial: usize,
        /// Its configuration.
        config: Config,
    },
    /// A trial's metric after an epoch.
    Report {
        /// The trial.
        trial: usize,
        /// The epoch, from 1.
        epoch: usize,
        /// The metric.
        value: f64,
    },
    /// A trial ended.
    TrialFinished {
        /// The trial.
        trial: usize,
        /// How.
        state: TrialState,
        /// Its value (none for a failed trial).
        value: Option<f64>,
        /// Its wall-clock seconds.
        seconds: f64,
        /// Why it failed.
        error: Option<String>,
    },
}

/// A journal open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Starts a new journal at `path` with `header`; an existing non-empty file is refused.
    pub fn create(path: &Path, header: &SearchHeader) -> Result<Self> {
        if std::fs::metadata(path).is_ok_and(|metadata| metadata.len() > 0) {
            return Err(TuneError::journal(
                path,
                "it already exists: pass --resume to continue that search, or choose another --journal",
            ));
        }
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                TuneError::journal(path, format!("cannot create its folder: {error}"))
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| TuneError::journal(path, format!("cannot create it: {error}")))?;
        let mut journal = Self {
            path: path.to_path_buf(),
            file,
        };
        journal.append(&Event::Search {
            version: JOURNAL_VERSION,
            header: header.clone(),
        })?;
        Ok(journal)
    }

    /// Opens the journal at `path` to continue its search, which must have been started with
    /// `header`; hands back the trials it records. A last line cut short by a kill is dropped.
    pub fn resume(path: &Path, header: &SearchHeader) -> Result<(Self, Vec<TrialRecord>)> {
        let replay = read_journal(path)?;
        if &replay.header != header {
            return Err(TuneError::journal(
                path,
                format!(
                    "it was written by a search with other settings ({}): resume with the same space, seed, sampler, pruner, jobs and metric, or start a new journal",
                    differences(&replay.header, header)
                ),
            ));
        }
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|error| TuneError::journal(path, format!("cannot open it: {error}")))?;
        file.set_len(replay.valid_bytes)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
            .map_err(|error| {
                TuneError::journal(path, format!("cannot drop its cut-off last line: {error}"))
            })?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
            },
            replay.trials,
        ))
    }

    /// Appends `event` as one line and syncs it to disk.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event).map_err(|error| {
            TuneError::journal(&self.path, format!("cannot encode an event: {error}"))
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data())
            .map_err(|error| TuneError::journal(&self.path, format!("cannot write to it: {error}")))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a journal holds.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The search's settings.
    pub header: SearchHeader,
    /// Its trials by number; interrupted ones are `Running`.
    pub trials: Vec<TrialRecord>,
    /// The bytes up to the end of the last complete line.
    pub valid_bytes: u64,
    /// Whether a cut-off last line was dropped.
    pub dropped_last_line: bool,
}

/// Reads and checks the journal at `path`.
pub fn read_journal(path: &Path) -> Result<Replay> {
    let bytes = std::fs::read(path)
        .map_err(|error| TuneError::journal(path, format!("cannot read it: {error}")))?;
    replay_journal(path, &bytes)
}

/// Checks and replays the journal `bytes` (read from `path`, which names it in errors).
pub fn replay_journal(path: &Path, bytes: &[u8]) -> Result<Replay> {
    let mut header = None;
    let mut trials: Vec<TrialRecord> = Vec::new();
    let mut valid_bytes = 0u64;
    let mut dropped_last_line = false;
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        number += 1;
        let end = bytes[start..]
            .iter()
            .position(|&byte| byte == b'\n')
            .map(|offset| start + offset);
        let line = &bytes[start..end.unwrap_or(bytes.len())];
        let parsed = std::str::from_utf8(line)
            .map_err(|error| error.to_string())
            .and_then(|text| {
                serde_json::from_str::<Event>(text).map_err(|error| error.to_string())
            });
        let event = match (parsed, end) {
            (Ok(event), Some(_)) => event,
            // the last line, cut short by a kill: the event never happened
            (_, None) => {
                dropped_last_line = true;
                break;
            }
            (Err(problem), Some(_)) => {
                return Err(TuneError::journal(
                    path,
                    format!("line {number} is not a journal event ({problem}); was it edited? Start a new journal"),
                ))
            }
        };
        apply(path, number, event, &mut header, &mut trials)?;
        start = end.map_or(bytes.len(), |end| end + 1);
        valid_bytes = start as u64;
    }
    let header = header.ok_or_else(|| {
        TuneError::journal(path, "it has no search line: it is empty or not a journal")
    })?;
    Ok(Replay {
        header,
        trials,
        valid_bytes,
        dropped_last_line,
    })
}

/// Applies one event, checking that it follows from the ones before.
fn apply(
    path: &Path,
    number: usize,
    event: Event,
    header: &mut Option<SearchHeader>,
    trials: &mut Vec<TrialRecord>,
) -> Result<()> {
    let wrong = |problem: String| {
        Err(TuneError::journal(
            path,
            format!("line {number}: {problem}"),
        ))
    };
    match event {
        Event::Search {
            version,
            header: read,
        } => {
            if version != JOURNAL_VERSION {
                return wrong(format!(
                    "version {version}; this program reads version {JOURNAL_VERSION}"
                ));
            }
            if header.is_some() || number != 1 {
                return wrong("a second search line: only the first line starts a search".into());
            }
            *header = Some(read);
        }
        _ if header.is_none() => return wrong("an event before the search line".into()),
        Event::TrialStarted { trial, config } => {
            let fresh = TrialRecord {
                id: trial,
                config,
                state: TrialState::Running,
                value: None,
                reports: Vec::new(),
                seconds: 0.0,
                error: None,
            };
            match trial.cmp(&trials.len()) {
                std::cmp::Ordering::Equal => trials.push(fresh),
                std::cmp::Ordering::Less if trials[trial].state == TrialState::Running => {
                    trials[trial] = fresh;
                }
                _ => {
                    return wrong(format!(
                        "trial {trial} starts out of order or after it finished"
                    ))
                }
            }
        }
        Event::Report {
            trial,
            epoch,
            value,
        } => match trials.get_mut(trial) {
            Some(record) if record.state == TrialState::Running && value.is_finite() => {
                record.reports.push((epoch, value));
            }
            _ => return wrong(format!("a report of trial {trial}, which is not running")),
        },
        Event::TrialFinished {
            trial,
            state,
            value,
            seconds,
            error,
        } => match trials.get_mut(trial) {
            Some(record) if record.state == TrialState::Running && state != TrialState::Running => {
                record.state = state;
                record.value = value;
                record.seconds = seconds;
                record.error = error;
            }
            _ => return wrong(format!("trial {trial} finishes without running")),
        },
    }
    Ok(())
}

/// The settings in which two headers differ, for the message.
fn differences(journal: &SearchHeader, now: &SearchHeader) -> String {
    let mut names = Vec::new();
    if journal.space != now.space {
        names.push("space");
    }
    if journal.seed != now.seed {
        names.push("seed");
    }
    if journal.sampler != now.sampler {
        names.push("sampler");
    }
    if journal.pruner != now.pruner {
        names.push("pruner");
    }
    if journal.direction != now.direction || journal.metric != now.metric {
        names.push("metric");
    }
    if journal.jobs != now.jobs {
        names.push("jobs");
    }
    names.join(", ")
}
