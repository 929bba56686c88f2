//! The search loop (course §8, AutoML): sample a configuration, train it, record it, until the
//! trial or time budget is spent or the grid is covered.
//!
//! Trial k sees only the trials numbered k − jobs and below, all finished before it starts (it
//! waits for them if need be). Its configuration and its pruning decisions therefore depend only
//! on the seed and those trials — not on which of the parallel trials happened to finish first —
//! so a search is reproducible for a given seed and `jobs`, and a resumed search ends with the
//! same table as an uninterrupted one (when training itself is deterministic, as ours is for a
//! given seed and thread count).

use std::{
    panic::AssertUnwindSafe,
    path::Path,
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use crate::{
    journal::{Event, Journal, SearchHeader},
    Config, Direction, Pruner, Result, Sampler, SamplerKind, SearchSpace, TrialRecord, TrialState,
    TuneError, Value,
};

/// How a search runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSettings {
    /// Where trials go.
    pub sampler: SamplerKind,
    /// When trials stop early.
    pub pruner: Pruner,
    /// Whether the metric is maximised or minimised.
    pub direction: Direction,
    /// The metric's name, for tables and the journal.
    pub metric: String,
    /// The seed of the sampler; trial k trains with seed `seed + k`.
    pub seed: u64,
    /// The most trials, those of a resumed journal included.
    pub trials: usize,
    /// No trial starts after this long (counted from this run's start).
    pub time_limit: Option<Duration>,
    /// Trials run at once, each on `threads / jobs` threads.
    pub jobs: usize,
    /// The threads the trials share (the physical cores by default).
    pub threads: usize,
}

/// Why a trial stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialStop {
    /// The pruner stopped it.
    Pruned,
    /// It failed, and why.
    Failed(String),
}

impl TrialStop {
    /// A failure from any error.
    pub fn failed(error: impl std::fmt::Display) -> Self {
        Self::Failed(format!("{error:#}"))
    }
}

/// A running trial, as the objective sees it.
pub struct Trial {
    id: usize,
    config: Config,
    seed: u64,
    shared: Arc<Shared>,
}

/// A handle that reports a trial's metric, owned, for code that cannot hold a borrowed
/// [`Trial`] (a training callback, say).
#[derive(Clone)]
pub struct Reporter {
    id: usize,
    shared: Arc<Shared>,
}

impl Reporter {
    /// As [`Trial::report`].
    pub fn report(&self, epoch: usize, value: f64) -> std::result::Result<(), TrialStop> {
        self.report_epoch(epoch, value, true)
    }

    /// As [`Trial::report_last`].
    pub fn report_last(&self, epoch: usize, value: f64) -> std::result::Result<(), TrialStop> {
        self.report_epoch(epoch, value, false)
    }

    fn report_epoch(
        &self,
        epoch: usize,
        value: f64,
        may_prune: bool,
    ) -> std::result::Result<(), TrialStop> {
        if !value.is_finite() {
            return Err(TrialStop::Failed(format!(
                "the metric was {value} after epoch {epoch}"
            )));
        }
        self.shared.report(self.id, epoch, value, may_prune)
    }
}

impl Trial {
    /// Its number.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// An owned handle on [`Trial::report`].
    pub fn reporter(&self) -> Reporter {
        Reporter {
            id: self.id,
            shared: Arc::clone(&self.shared),
        }
    }

    /// The seed it should train with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The value of parameter `name`.
    pub fn value(&self, name: &str) -> std::result::Result<&Value, TrialStop> {
        self.config
            .get(name)
            .ok_or_else(|| TrialStop::Failed(format!("the search space has no parameter {name}")))
    }

    /// The number `name` (an int or a float).
    pub fn number(&self, name: &str) -> std::result::Result<f64, TrialStop> {
        let value = self.value(name)?;
        value
            .as_f64()
            .ok_or_else(|| TrialStop::Failed(format!("parameter {name} is {value}, not a number")))
    }

    /// Records the metric after `epoch` (from 1); an `Err(Pruned)` tells the objective to stop.
    /// A value that is not a number fails the trial.
    pub fn report(&self, epoch: usize, value: f64) -> std::result::Result<(), TrialStop> {
        self.reporter().report(epoch, value)
    }

    /// Records the metric of the objective's last epoch, which the pruner never judges: stopping
    /// a trial there would save nothing, and would mark a finished trial as pruned (ASHA's rung
    /// 9 is the last epoch of a 9-epoch trial). A value that is not a number fails the trial.
    pub fn report_last(&self, epoch: usize, value: f64) -> std::result::Result<(), TrialStop> {
        self.reporter().report_last(epoch, value)
    }
}

/// The trials of a search and their journal, shared by the workers.
struct Shared {
    space: SearchSpace,
    settings: SearchSettings,
    sampler: Sampler,
    state: Mutex<State>,
    finished: Condvar,
    started: Instant,
}

struct State {
    /// Every trial claimed so far, by number; one being prepared is `Running` with no
    /// configuration yet.
    trials: Vec<TrialRecord>,
    /// The configurations of trials a killed run left unfinished, to run again.
    interrupted: std::collections::BTreeMap<usize, Config>,
    next: usize,
    journal: Option<Journal>,
    /// No more trials start: the grid is covered, or the journal failed.
    exhausted: bool,
    failure: Option<TuneError>,
}

impl Shared {
    fn visible(trials: &[TrialRecord], id: usize, jobs: usize) -> Vec<&TrialRecord> {
        let end = (id + 1).saturating_sub(jobs);
        trials[..end.min(trials.len())].iter().collect()
    }

    fn write(state: &mut State, event: &Event) -> std::result::Result<(), TrialStop> {
        if let Some(journal) = &mut state.journal {
            if let Err(error) = journal.append(event) {
                let message = error.to_string();
                state.failure.get_or_insert(error);
                state.exhausted = true;
                return Err(TrialStop::Failed(message));
            }
        }
        Ok(())
    }

    fn report(
        &self,
        id: usize,
        epoch: usize,
        value: f64,
        may_prune: bool,
    ) -> std::result::Result<(), TrialStop> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::write(
            &mut state,
            &Event::Report {
                trial: id,
                epoch,
                value,
            },
        )?;
        state.trials[id].reports.push((epoch, value));
        let visible = Self::visible(&state.trials, id, self.settings.jobs);
        let reports = &state.trials[id].reports;
        if may_prune
            && self
                .settings
                .pruner
                .should_prune(self.settings.direction, reports, &visible)
        {
            Err(TrialStop::Pruned)
        } else {
            Ok(())
        }
    }

    /// Claims the next trial and its configuration, once the trials it may see have finished;
    /// `None` when the budget is spent.
    fn claim(&self) -> Option<(usize, Config)> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let out_of_time = self
                .settings
                .time_limit
                .is_some_and(|limit| self.started.elapsed() >= limit);
            if state.exhausted || out_of_time || state.next >= self.settings.trials {
                return None;
            }
            let id = state.next;
            if state
                .trials
                .get(id)
                .is_some_and(|trial| trial.state != TrialState::Running)
            {
                state.next += 1; // finished in the journal
                continue;
            }
            state.next += 1;
            if id == state.trials.len() {
                // the slot is taken now, so that later claims cannot fill it while this one waits
                state.trials.push(TrialRecord {
                    id,
                    config: Config::new(),
                    state: TrialState::Running,
                    value: None,
                    reports: Vec::new(),
                    seconds: 0.0,
                    error: None,
                });
            }
            let seen = (id + 1).saturating_sub(self.settings.jobs);
            while state.trials[..seen.min(state.trials.len())]
                .iter()
                .any(|trial| trial.state == TrialState::Running)
            {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.exhausted {
                return None;
            }
            let config = match state.interrupted.remove(&id) {
                Some(config) => config,
                None => {
                    let visible = Self::visible(&state.trials, id, self.settings.jobs);
                    match self
                        .sampler
                        .sample(&self.space, id, &visible, self.settings.direction)
                    {
                        Some(config) => config,
                        None => {
                            state.exhausted = true;
                            return None;
                        }
                    }
                }
            };
            if Self::write(
                &mut state,
                &Event::TrialStarted {
                    trial: id,
                    config: config.clone(),
                },
            )
            .is_err()
            {
                return None;
            }
            let record = TrialRecord {
                id,
                config: config.clone(),
                state: TrialState::Running,
                value: None,
                reports: Vec::new(),
                seconds: 0.0,
                error: None,
            };
            state.trials[id] = record;
            return Some((id, config));
        }
    }

    fn finish(
        &self,
        id: usize,
        outcome: std::result::Result<f64, TrialStop>,
        seconds: f64,
    ) -> TrialRecord {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let last_report = state.trials[id].reports.last().map(|&(_, value)| value);
        let (trial_state, value, error) = match outcome {
            Ok(value) if value.is_finite() => (TrialState::Complete, Some(value), None),
            Ok(value) => (
                TrialState::Failed,
                None,
                Some(format!("the objective was {value}")),
            ),
            Err(TrialStop::Pruned) => (TrialState::Pruned, last_report, None),
            Err(TrialStop::Failed(reason)) => (TrialState::Failed, None, Some(reason)),
        };
        let event = Event::TrialFinished {
            trial: id,
            state: trial_state,
            value,
            seconds,
            error: error.clone(),
        };
        // a journal that cannot be written ends the search (its failure is kept)
        let _ = Self::write(&mut state, &event);
        let record = &mut state.trials[id];
        record.state = trial_state;
        record.value = value;
        record.seconds = seconds;
        record.error = error;
        let record = record.clone();
        self.finished.notify_all();
        record
    }
}

/// The trials of a finished search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// Every trial, by number.
    pub trials: Vec<TrialRecord>,
    /// Whether larger or smaller was better.
    pub direction: Direction,
    /// The metric's name.
    pub metric: String,
}

impl SearchOutcome {
    /// The best complete trial.
    pub fn best(&self) -> Option<&TrialRecord> {
        self.trials
            .iter()
            .filter(|trial| trial.state == TrialState::Complete)
            .filter(|trial| trial.value.is_some())
            .reduce(|best, trial| {
                if self.direction.better(
                    trial.value.unwrap_or(f64::NAN),
                    best.value.unwrap_or(f64::NAN),
                ) {
                    trial
                } else {
                    best
                }
            })
    }

    /// Epochs trained over all trials (the cost that pruning saves).
    pub fn epochs_trained(&self) -> usize {
        self.trials.iter().map(TrialRecord::epochs).sum()
    }
}

/// What [`Search::on_trial_end`] calls.
type TrialCallback<'a> = Box<dyn Fn(&TrialRecord) + Send + Sync + 'a>;

/// A search over `space` with `settings`.
pub struct Search<'a> {
    space: &'a SearchSpace,
    settings: SearchSettings,
    journal: Option<Journal>,
    resumed: Vec<TrialRecord>,
    on_trial_end: Option<TrialCallback<'a>>,
}

impl<'a> Search<'a> {
    /// A search over `space`, checked.
    pub fn new(space: &'a SearchSpace, settings: SearchSettings) -> Result<Self> {
        if settings.trials == 0 {
            return Err(TuneError::Setting {
                setting: "trials",
                problem: "0: allow at least one trial".into(),
            });
        }
        if settings.jobs == 0 || settings.threads == 0 {
            return Err(TuneError::Setting {
                setting: "jobs",
                problem: "jobs and threads must be at least 1".into(),
            });
        }
        Ok(Self {
            space,
            settings,
            journal: None,
            resumed: Vec::new(),
            on_trial_end: None,
        })
    }

    fn header(&self) -> SearchHeader {
        SearchHeader {
            seed: self.settings.seed,
            sampler: self.settings.sampler,
            pruner: self.settings.pruner,
            direction: self.settings.direction,
            jobs: self.settings.jobs,
            metric: self.settings.metric.clone(),
            space: self.space.clone(),
        }
    }

    /// Records the search in the journal at `path`: a new one, or with `resume` the one a
    /// previous run of the same search left.
    pub fn journal(mut self, path: &Path, resume: bool) -> Result<Self> {
        let header = self.header();
        if resume {
            let (journal, trials) = Journal::resume(path, &header)?;
            self.journal = Some(journal);
            self.resumed = trials;
        } else {
            self.journal = Some(Journal::create(path, &header)?);
        }
        Ok(self)
    }

    /// The trials a resumed journal held (interrupted ones as `Running`).
    pub fn resumed_trials(&self) -> &[TrialRecord] {
        &self.resumed
    }

    /// Calls `callback` with each trial as it ends (for progress lines).
    pub fn on_trial_end(mut self, callback: impl Fn(&TrialRecord) + Send + Sync + 'a) -> Self {
        self.on_trial_end = Some(Box::new(callback));
        self
    }

    /// Runs the search: `objective` trains the trial's configuration, reports its metric after
    /// each epoch with [`Trial::report`] (stopping when told it is pruned) and returns the final
    /// metric. An objective that fails, panics or returns NaN fails its trial; the search goes
    /// on.
    pub fn run<F>(self, objective: F) -> Result<SearchOutcome>
    where
        F: Fn(&Trial) -> std::result::Result<f64, TrialStop> + Sync,
    {
        let sampler = Sampler::new(self.settings.sampler, self.space, self.settings.seed)?;
        let shared = Arc::new(Shared {
            space: self.space.clone(),
            settings: self.settings.clone(),
            sampler,
            state: Mutex::new(State {
                interrupted: self
                    .resumed
                    .iter()
                    .filter(|trial| trial.state == TrialState::Running)
                    .map(|trial| (trial.id, trial.config.clone()))
                    .collect(),
                trials: self.resumed,
                next: 0,
                journal: self.journal,
                exhausted: false,
                failure: None,
            }),
            finished: Condvar::new(),
            started: Instant::now(),
        });
        let jobs = self.settings.jobs;
        let threads_per_trial = (self.settings.threads / jobs).max(1);
        let on_trial_end = self.on_trial_end.as_deref();
        let worker = || -> Result<()> {
            let pool = if jobs > 1 {
                Some(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads_per_trial)
                        .stack_size(dl_tensor::threads::WORKER_STACK_BYTES)
                        .build()
                        .map_err(|error| TuneError::Setting {
                            setting: "jobs",
                            problem: format!(
                                "cannot start a trial's {threads_per_trial} threads: {error}"
                            ),
                        })?,
                )
            } else {
                None
            };
            while let Some((id, config)) = shared.claim() {
                let trial = Trial {
                    id,
                    config,
                    seed: self.settings.seed.wrapping_add(id as u64),
                    shared: Arc::clone(&shared),
                };
                let begun = Instant::now();
                let run = || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| objective(&trial))).unwrap_or_else(
                        |panic| {
                            let message = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                                .unwrap_or_else(|| "a panic".into());
                            Err(TrialStop::Failed(format!("panicked: {message}")))
                        },
                    )
                };
                let outcome = match &pool {
                    Some(pool) => pool.install(run),
                    None => run(),
                };
                let record = shared.finish(id, outcome, begun.elapsed().as_secs_f64());
                if let Some(callback) = on_trial_end {
                    callback(&record);
                }
            }
            Ok(())
        };
        if jobs == 1 {
            worker()?;
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..jobs).map(|_| scope.spawn(worker)).collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap_or(Ok(())))
                    .collect::<Result<Vec<()>>>()
            })?;
        }
        let shared = Arc::try_unwrap(shared).map_err(|_| TuneError::Setting {
            setting: "objective",
            problem: "it kept a trial's reporter after the search ended".into(),
        })?;
        let mut state = shared
            .state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(failure) = state.failure {
            return Err(failure);
        }
        // slots claimed after the grid ran out were never configured
        state
            .trials
            .retain(|trial| !(trial.state == TrialState::Running && trial.config.is_empty()));
        Ok(SearchOutcome {
            trials: state.trials,
            direction: self.settings.direction,
            metric: self.settings.metric,
        })
    }
}
