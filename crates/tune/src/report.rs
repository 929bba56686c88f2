//! What a search found, for people: the results table (markdown), the same as CSV, how much each
//! parameter mattered, and the optimisation history as a PNG.

use std::path::Path;

use dl_train::{plot_panels_png, Panel};

use crate::{Parameter, Result, SearchOutcome, SearchSpace, TrialRecord, TrialState, TuneError};

/// The trials best first: complete ones by value, then pruned ones by their last value, then the
/// failed ones.
pub fn ranked_trials(outcome: &SearchOutcome) -> Vec<&TrialRecord> {
    let mut trials: Vec<&TrialRecord> = outcome.trials.iter().collect();
    let group = |trial: &TrialRecord| match trial.state {
        TrialState::Complete => 0,
        TrialState::Pruned => 1,
        TrialState::Running => 2,
        TrialState::Failed => 3,
    };
    trials.sort_by(|a, b| {
        group(a).cmp(&group(b)).then_with(|| {
            let (x, y) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
            if outcome.direction.better(x, y) {
                std::cmp::Ordering::Less
            } else if outcome.direction.better(y, x) {
                std::cmp::Ordering::Greater
            } else {
                a.id.cmp(&b.id)
            }
        })
    });
    trials
}

/// The parameters that vary (fixed ones are the same in every row).
fn varying(space: &SearchSpace) -> Vec<&str> {
    space
        .parameters()
        .filter(|(_, parameter)| !matches!(parameter, Parameter::Fixed { .. }))
        .map(|(name, _)| name)
        .collect()
}

fn state_name(state: TrialState) -> &'static str {
    match state {
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Running => "interrupted",
        TrialState::Failed => "failed",
    }
}

/// The results as a markdown table, best first.
pub fn results_table(outcome: &SearchOutcome, space: &SearchSpace) -> String {
    let names = varying(space);
    let mut table = format!(
        "| rank | trial | state | {} | epochs | seconds | {} |\n|{}\n",
        outcome.metric,
        names.join(" | "),
        "---|".repeat(6 + names.len())
    );
    for (rank, trial) in ranked_trials(outcome).into_iter().enumerate() {
        let value = match (trial.value, &trial.error) {
            (Some(value), _) => format!("{value:.4}"),
            (None, Some(error)) => format!("({})", error.replace('|', "/")),
            (None, None) => "—".into(),
        };
        let parameters: Vec<String> = names
            .iter()
            .map(|name| {
                trial
                    .config
                    .get(*name)
                    .map_or("—".into(), ToString::to_string)
            })
            .collect();
        table.push_str(&format!(
            "| {} | {} | {} | {value} | {} | {:.1} | {} |\n",
            rank + 1,
            trial.id,
            state_name(trial.state),
            trial.epochs(),
            trial.seconds,
            parameters.join(" | ")
        ));
    }
    table
}

/// Quotes a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Writes the results as CSV (one row per trial, best first), atomically.
pub fn write_csv(outcome: &SearchOutcome, space: &SearchSpace, path: &Path) -> Result<()> {
    let names: Vec<&str> = space.parameters().map(|(name, _)| name).collect();
    let mut text = format!(
        "rank,trial,state,{},epochs,seconds,error",
        csv_field(&outcome.metric)
    );
    for name in &names {
        text.push(',');
        text.push_str(&csv_field(name));
    }
    text.push('\n');
    for (rank, trial) in ranked_trials(outcome).into_iter().enumerate() {
        text.push_str(&format!(
            "{},{},{},{},{},{:.3},{}",
            rank + 1,
            trial.id,
            state_name(trial.state),
            trial.value.map_or(String::new(), |value| value.to_string()),
            trial.epochs(),
            trial.seconds,
            csv_field(trial.error.as_deref().unwrap_or(""))
        ));
        for name in &names {
            text.push(',');
            text.push_str(&csv_field(
                &trial
                    .config
                    .get(*name)
                    .map_or(String::new(), ToString::to_string),
            ));
        }
        text.push('\n');
    }
    dl_tensor::write_atomically(path, text.as_bytes()).map_err(|error| TuneError::Output {
        path: path.to_path_buf(),
        problem: format!("cannot write the results: {error}"),
    })
}

/// How much a parameter mattered.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The parameter.
    pub name: String,
    /// |Spearman ρ| between the parameter and the metric over the complete trials, in [0, 1].
    pub rank_correlation: f64,
}

/// Each varying parameter's importance: the absolute Spearman rank correlation between its value
/// and the metric over the complete trials (a category stands for the mean metric of its trials,
/// which flatters categories a little), most important first. A simple, model-free measure — not
/// fANOVA — that needs at least 3 complete trials; it sees monotone effects, not interactions.
pub fn parameter_importance(outcome: &SearchOutcome, space: &SearchSpace) -> Vec<Importance> {
    let complete: Vec<&TrialRecord> = outcome
        .trials
        .iter()
        .filter(|trial| {
            trial.state == TrialState::Complete && trial.value.is_some_and(f64::is_finite)
        })
        .collect();
    if complete.len() < 3 {
        return Vec::new();
    }
    let metric: Vec<f64> = complete.iter().filter_map(|trial| trial.value).collect();
    let mut importance: Vec<Importance> = space
        .parameters()
        .filter(|(_, parameter)| !matches!(parameter, Parameter::Fixed { .. }))
        .map(|(name, parameter)| {
            let encoded: Vec<f64> = complete
                .iter()
                .map(|trial| {
                    let value = trial.config.get(name);
                    match parameter {
                        Parameter::Categorical { .. } => {
                            let same: Vec<f64> = complete
                                .iter()
                                .filter(|other| other.config.get(name) == value)
                                .filter_map(|other| other.value)
                                .collect();
                            same.iter().sum::<f64>() / same.len().max(1) as f64
                        }
                        _ => value
                            .and_then(|value| parameter.position_of(value))
                            .unwrap_or(f64::NAN),
                    }
                })
                .collect();
            Importance {
                name: name.to_string(),
                rank_correlation: dl_tensor::spearman(&encoded, &metric).unwrap_or(0.0).abs(),
            }
        })
        .collect();
    importance.sort_by(|a, b| b.rank_correlation.total_cmp(&a.rank_correlation));
    importance
}

/// Draws the optimisation history: each complete trial's metric, each pruned trial's last report,
/// and the best so far, against the trial number.
pub fn plot_history(outcome: &SearchOutcome, path: &Path) -> Result<()> {
    let points = |state: TrialState| -> Vec<(f64, f64)> {
        outcome
            .trials
            .iter()
            .filter(|trial| trial.state == state)
            .filter_map(|trial| trial.value.map(|value| (trial.id as f64, value)))
            .collect()
    };
    let mut best_so_far = Vec::new();
    let mut best: Option<f64> = None;
    for trial in &outcome.trials {
        if let (TrialState::Complete, Some(value)) = (trial.state, trial.value) {
            if best.is_none_or(|best| outcome.direction.better(value, best)) {
                best = Some(value);
            }
        }
        if let Some(best) = best {
            best_so_far.push((trial.id as f64, best));
        }
    }
    let panel = Panel {
        title: format!("{} of each trial", outcome.metric),
        x_label: "trial".into(),
        curves: vec![
            ("best so far".into(), best_so_far),
            ("complete".into(), points(TrialState::Complete)),
            ("pruned (last report)".into(), points(TrialState::Pruned)),
        ],
    };
    plot_panels_png(path, "the optimisation history", &[panel]).map_err(|error| TuneError::Output {
        path: path.to_path_buf(),
        problem: error.to_string(),
    })
}
