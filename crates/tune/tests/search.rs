//! Searches on synthetic objectives, where the optimum is known: the grid covers its grid, random
//! and TPE are reproducible per seed, TPE beats random, pruning saves epochs without losing the
//! best trial, failures are recorded and the search goes on, parallel trials are deterministic,
//! and a search killed with SIGKILL resumes to the same table as an uninterrupted one.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use dl_tune::{
    read_journal, results_table, Direction, Pruner, SamplerKind, Search, SearchOutcome,
    SearchSettings, SearchSpace, Trial, TrialState, TrialStop, Value,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn settings(sampler: SamplerKind, pruner: Pruner, seed: u64, trials: usize) -> SearchSettings {
    SearchSettings {
        sampler,
        pruner,
        direction: Direction::Minimize,
        metric: "loss".into(),
        seed,
        trials,
        time_limit: None,
        jobs: 1,
        threads: 1,
    }
}

/// A 2-D bowl with its minimum 0 at (x, y) = (1.3, 0.01), y searched in log space.
const BOWL: &str = r#"
    [x]
    type = "float"
    low = -5.0
    high = 5.0

    [y]
    type = "float"
    low = 1e-4
    high = 1.0
    log = true
"#;

fn bowl(trial: &Trial) -> Result<f64, TrialStop> {
    let (x, y) = (trial.number("x")?, trial.number("y")?);
    let loss = (x - 1.3).powi(2) + (y.log10() + 2.0).powi(2);
    trial.report(1, loss)?;
    Ok(loss)
}

fn best_value(outcome: &SearchOutcome) -> f64 {
    outcome.best().and_then(|best| best.value).unwrap()
}

#[test]
fn the_grid_sampler_covers_its_grid_once_and_stops() -> TestResult {
    let space = SearchSpace::from_toml(
        r#"
        [width]
        type = "int"
        low = 16
        high = 64
        step = 16
        [model]
        type = "categorical"
        choices = ["cnn", "lenet5", "mlp"]
        [epochs]
        type = "fixed"
        value = 3
    "#,
    )?;
    let outcome = Search::new(&space, settings(SamplerKind::Grid, Pruner::None, 1, 100))?
        .run(|trial| trial.number("width"))?;
    assert_eq!(outcome.trials.len(), 12, "4 widths x 3 models");
    let seen: BTreeSet<String> = outcome
        .trials
        .iter()
        .map(|trial| format!("{:?}", trial.config))
        .collect();
    assert_eq!(seen.len(), 12);
    assert!(outcome
        .trials
        .iter()
        .all(|trial| trial.config["epochs"] == Value::Int(3)));
    Ok(())
}

#[test]
fn random_and_tpe_are_reproducible_per_seed() -> TestResult {
    let space = SearchSpace::from_toml(BOWL)?;
    for sampler in [SamplerKind::Random, SamplerKind::Tpe] {
        let run = |seed| -> Result<Vec<String>, dl_tune::TuneError> {
            let outcome =
                Search::new(&space, settings(sampler, Pruner::None, seed, 25))?.run(bowl)?;
            Ok(outcome
                .trials
                .iter()
                .map(|trial| format!("{:?}", trial.config))
                .collect())
        };
        assert_eq!(run(5)?, run(5)?, "{sampler:?}");
        assert_ne!(run(5)?, run(6)?, "{sampler:?}");
    }
    Ok(())
}

#[test]
fn tpe_beats_random_search_on_a_bowl_over_twelve_seeds() -> TestResult {
    let space = SearchSpace::from_toml(BOWL)?;
    let (mut tpe_total, mut random_total, mut tpe_wins) = (0.0, 0.0, 0);
    for seed in 0..12 {
        let tpe = best_value(
            &Search::new(&space, settings(SamplerKind::Tpe, Pruner::None, seed, 60))?.run(bowl)?,
        );
        let random = best_value(
            &Search::new(
                &space,
                settings(SamplerKind::Random, Pruner::None, seed, 60),
            )?
            .run(bowl)?,
        );
        tpe_total += tpe;
        random_total += random;
        tpe_wins += usize::from(tpe < random);
    }
    println!(
        "mean best loss over 12 seeds, 60 trials: TPE {:.4}, random {:.4}; TPE better on {tpe_wins} seeds",
        tpe_total / 12.0,
        random_total / 12.0
    );
    assert!(
        tpe_total < 0.5 * random_total,
        "TPE {tpe_total}, random {random_total}"
    );
    assert!(tpe_wins >= 9, "{tpe_wins} of 12");
    Ok(())
}

/// Learning curves that rise towards a ceiling set by the configuration: quality q in (0, 1],
/// accuracy after epoch e = q (1 − 0.5^e). The best configuration stays best at every epoch.
const CURVES: &str = r#"
    [learning_rate]
    type = "float"
    low = 1e-4
    high = 1e-1
    log = true
    [epochs]
    type = "fixed"
    value = 10
"#;

fn curve(trial: &Trial) -> Result<f64, TrialStop> {
    let rate = trial.number("learning_rate")?;
    let quality = 1.0 / (1.0 + (rate.log10() + 2.5).powi(2));
    let epochs = trial.number("epochs")? as usize;
    let mut accuracy = 0.0;
    for epoch in 1..=epochs {
        accuracy = quality * (1.0 - 0.5f64.powi(epoch as i32));
        trial.report(epoch, accuracy)?;
    }
    Ok(accuracy)
}

#[test]
fn pruning_saves_epochs_and_keeps_the_best_trial() -> TestResult {
    let space = SearchSpace::from_toml(CURVES)?;
    let search = |pruner| -> Result<SearchOutcome, dl_tune::TuneError> {
        let settings = SearchSettings {
            direction: Direction::Maximize,
            metric: "accuracy".into(),
            ..settings(SamplerKind::Random, pruner, 3, 30)
        };
        Search::new(&space, settings)?.run(curve)
    };
    let full = search(Pruner::None)?;
    assert_eq!(full.epochs_trained(), 300);
    for pruner in [Pruner::median(), Pruner::asha()] {
        let pruned = search(pruner)?;
        let saved = 1.0 - pruned.epochs_trained() as f64 / full.epochs_trained() as f64;
        println!(
            "{pruner:?}: {} epochs instead of 300 ({:.0}% saved)",
            pruned.epochs_trained(),
            100.0 * saved
        );
        assert!(saved >= 0.4, "{pruner:?} saved {saved}");
        assert_eq!(best_value(&pruned), best_value(&full), "{pruner:?}");
        assert_eq!(pruned.best().unwrap().id, full.best().unwrap().id);
        assert!(pruned
            .trials
            .iter()
            .any(|trial| trial.state == TrialState::Pruned));
    }
    Ok(())
}

/// Three-epoch curves, whose last epoch is ASHA's second rung (1, 3, 9, ...).
fn three_epochs(
    trial: &Trial,
    last: fn(&Trial, usize, f64) -> Result<(), TrialStop>,
) -> Result<f64, TrialStop> {
    let rate = trial.number("learning_rate")?;
    let quality = 1.0 / (1.0 + (rate.log10() + 2.5).powi(2));
    let mut accuracy = 0.0;
    for epoch in 1..=3 {
        accuracy = quality * (1.0 - 0.5f64.powi(epoch as i32));
        if epoch == 3 {
            last(trial, epoch, accuracy)?;
        } else {
            trial.report(epoch, accuracy)?;
        }
    }
    Ok(accuracy)
}

#[test]
fn a_trial_that_trained_every_epoch_is_complete_not_pruned() -> TestResult {
    let space = SearchSpace::from_toml(CURVES)?;
    let search = |last: fn(&Trial, usize, f64) -> Result<(), TrialStop>| {
        let settings = SearchSettings {
            direction: Direction::Maximize,
            metric: "accuracy".into(),
            ..settings(SamplerKind::Random, Pruner::asha(), 5, 20)
        };
        Search::new(&space, settings)?.run(|trial| three_epochs(trial, last))
    };
    let pruned_at_the_end = |outcome: &SearchOutcome| {
        outcome
            .trials
            .iter()
            .filter(|trial| trial.state == TrialState::Pruned && trial.reports.len() == 3)
            .count()
    };
    // judged at its last epoch, a trial that trained to the end can be marked pruned...
    let judged = search(|trial, epoch, value| trial.report(epoch, value))?;
    assert!(pruned_at_the_end(&judged) > 0);
    // ...reported with report_last, it is complete, and the pruner still stops others at epoch 1
    let finished = search(|trial, epoch, value| trial.report_last(epoch, value))?;
    assert_eq!(pruned_at_the_end(&finished), 0);
    assert!(finished
        .trials
        .iter()
        .any(|trial| trial.state == TrialState::Pruned && trial.reports.len() == 1));
    assert_eq!(
        finished.epochs_trained(),
        judged.epochs_trained(),
        "the last epoch was trained either way"
    );
    Ok(())
}

#[test]
fn failed_trials_are_recorded_and_the_search_goes_on() -> TestResult {
    let space = SearchSpace::from_toml(BOWL)?;
    let directory = tempfile::tempdir()?;
    let journal = directory.path().join("search.jsonl");
    let outcome = Search::new(&space, settings(SamplerKind::Random, Pruner::None, 9, 12))?
        .journal(&journal, false)?
        .run(|trial| match trial.id() % 4 {
            1 => Err(TrialStop::Failed("out of memory (simulated)".into())),
            2 => panic!("a bug in trial {}", trial.id()),
            3 => Ok(f64::NAN),
            _ => bowl(trial),
        })?;
    assert_eq!(outcome.trials.len(), 12);
    let failed: Vec<_> = outcome
        .trials
        .iter()
        .filter(|trial| trial.state == TrialState::Failed)
        .collect();
    assert_eq!(failed.len(), 9);
    let reasons: BTreeSet<&str> = failed
        .iter()
        .filter_map(|trial| trial.error.as_deref())
        .collect();
    assert!(reasons.contains("out of memory (simulated)"), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|reason| reason.starts_with("panicked: a bug in trial")),
        "{reasons:?}"
    );
    assert!(reasons.contains("the objective was NaN"), "{reasons:?}");
    assert_eq!(outcome.best().unwrap().id % 4, 0);
    let replay = read_journal(&journal)?;
    assert_eq!(replay.trials, outcome.trials);
    Ok(())
}

#[test]
fn a_time_budget_stops_starting_trials() -> TestResult {
    let space = SearchSpace::from_toml(BOWL)?;
    let begun = Instant::now();
    let settings = SearchSettings {
        time_limit: Some(Duration::from_millis(300)),
        ..settings(SamplerKind::Random, Pruner::None, 1, 1000)
    };
    let outcome = Search::new(&space, settings)?.run(|trial| {
        std::thread::sleep(Duration::from_millis(40));
        bowl(trial)
    })?;
    assert!(
        (2..=9).contains(&outcome.trials.len()),
        "{}",
        outcome.trials.len()
    );
    assert!(begun.elapsed() < Duration::from_secs(5));
    Ok(())
}

#[test]
fn parallel_trials_give_the_same_table_whatever_order_they_finish_in() -> TestResult {
    let space = SearchSpace::from_toml(CURVES)?;
    let run = |delays: u64| -> Result<String, dl_tune::TuneError> {
        let settings = SearchSettings {
            direction: Direction::Maximize,
            metric: "accuracy".into(),
            jobs: 3,
            threads: 3,
            ..settings(SamplerKind::Tpe, Pruner::median(), 11, 24)
        };
        let outcome = Search::new(&space, settings)?.run(|trial| {
            // finishing order varies with the trial and the run
            std::thread::sleep(Duration::from_millis((trial.id() as u64 * delays) % 7));
            curve(trial)
        })?;
        Ok(results_table(&outcome, &space)
            .lines()
            .map(|line| {
                // the seconds column differs from run to run
                let cells: Vec<&str> = line.split('|').collect();
                cells
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| *index != 6)
                    .map(|(_, cell)| *cell)
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect::<Vec<_>>()
            .join("\n"))
    };
    assert_eq!(run(3)?, run(5)?);
    Ok(())
}

/// Set in the child process of the kill test: the journal it writes.
const CHILD_JOURNAL: &str = "DL_TUNE_TEST_CHILD_JOURNAL";

/// The search of the kill test: TPE with the median pruner on the learning curves, each epoch
/// taking `epoch_delay`.
fn killable_search(
    journal: &Path,
    resume: bool,
    epoch_delay: Duration,
) -> Result<SearchOutcome, dl_tune::TuneError> {
    let space = SearchSpace::from_toml(CURVES)?;
    let settings = SearchSettings {
        direction: Direction::Maximize,
        metric: "accuracy".into(),
        ..settings(SamplerKind::Tpe, Pruner::median(), 21, 16)
    };
    let outcome = Search::new(&space, settings)?
        .journal(journal, resume)?
        .run(|trial| {
            let rate = trial.number("learning_rate")?;
            let quality = 1.0 / (1.0 + (rate.log10() + 2.5).powi(2));
            let mut accuracy = 0.0;
            for epoch in 1..=10 {
                std::thread::sleep(epoch_delay);
                accuracy = quality * (1.0 - 0.5f64.powi(epoch));
                trial.report(epoch as usize, accuracy)?;
            }
            Ok(accuracy)
        });
    outcome
}

/// Not a test on its own: the child process that the kill test starts (and kills). Without
/// the variable it does nothing.
#[test]
fn search_in_a_child_process() -> TestResult {
    if let Some(journal) = std::env::var_os(CHILD_JOURNAL) {
        killable_search(Path::new(&journal), false, Duration::from_millis(15))?;
    }
    Ok(())
}

#[test]
fn a_search_killed_mid_trial_resumes_to_the_uninterrupted_table() -> TestResult {
    let directory = tempfile::tempdir()?;
    let journal = directory.path().join("killed.jsonl");
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "search_in_a_child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_JOURNAL, &journal)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // kill it once four trials have finished and a fifth has reported an epoch
    let begun = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        let finished = text.matches("\"trial_finished\"").count();
        let last_is_report = text
            .lines()
            .last()
            .is_some_and(|line| line.contains("\"report\""));
        if finished >= 4 && last_is_report {
            break;
        }
        assert!(
            child.try_wait()?.is_none(),
            "the child search ended before it was killed"
        );
        assert!(
            begun.elapsed() < Duration::from_secs(60),
            "the child search made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill()?; // SIGKILL: no chance to clean up
    child.wait()?;
    let killed = read_journal(&journal)?;
    let interrupted = killed
        .trials
        .iter()
        .filter(|trial| trial.state == TrialState::Running)
        .count();
    assert_eq!(interrupted, 1, "{:?}", killed.trials);
    let kept = killed.trials.len() - 1;

    let resumed = killable_search(&journal, true, Duration::ZERO)?;
    let uninterrupted =
        killable_search(&directory.path().join("whole.jsonl"), false, Duration::ZERO)?;
    let without_seconds = |outcome: &SearchOutcome| -> Vec<_> {
        outcome
            .trials
            .iter()
            .map(|trial| {
                (
                    trial.id,
                    trial.config.clone(),
                    trial.state,
                    trial.value,
                    trial.reports.clone(),
                )
            })
            .collect()
    };
    assert_eq!(without_seconds(&resumed), without_seconds(&uninterrupted));
    // the finished trials were kept, not run again: their times are the killed run's
    for (before, after) in killed.trials.iter().zip(&resumed.trials).take(kept) {
        assert_eq!(before.seconds, after.seconds, "trial {}", before.id);
    }
    // resuming with other settings is refused, naming them
    let error = Search::new(
        &SearchSpace::from_toml(CURVES)?,
        SearchSettings {
            direction: Direction::Maximize,
            metric: "accuracy".into(),
            ..settings(SamplerKind::Tpe, Pruner::median(), 22, 16)
        },
    )?
    .journal(&journal, true)
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("seed"), "{error}");
    Ok(())
}

#[test]
fn a_journal_is_never_overwritten_and_a_torn_last_line_is_dropped() -> TestResult {
    let directory = tempfile::tempdir()?;
    let journal = directory.path().join("search.jsonl");
    let space = SearchSpace::from_toml(BOWL)?;
    let make = || Search::new(&space, settings(SamplerKind::Random, Pruner::None, 4, 3));
    make()?.journal(&journal, false)?.run(bowl)?;
    let error = make()?.journal(&journal, false).err().unwrap().to_string();
    assert!(error.contains("already exists: pass --resume"), "{error}");
    // a kill in the middle of a line leaves half a line: it is dropped, and the search resumes
    let mut text = std::fs::read_to_string(&journal)?;
    text.push_str("{\"event\":\"trial_started\",\"tri");
    std::fs::write(&journal, &text)?;
    let replay = read_journal(&journal)?;
    assert!(replay.dropped_last_line);
    let more = Search::new(&space, settings(SamplerKind::Random, Pruner::None, 4, 5))?
        .journal(&journal, true)?
        .run(bowl)?;
    assert_eq!(more.trials.len(), 5);
    assert_eq!(read_journal(&journal)?.trials.len(), 5);
    // a damaged line in the middle is an error naming it
    let text = std::fs::read_to_string(&journal)?.replacen("\"report\"", "\"rep0rt\"", 1);
    std::fs::write(&journal, text)?;
    let error = read_journal(&journal).err().unwrap().to_string();
    assert!(error.contains("line 3 is not a journal event"), "{error}");
    Ok(())
}
