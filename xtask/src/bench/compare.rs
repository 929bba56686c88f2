//! `cargo xtask bench compare OURS.jsonl PYTORCH.jsonl`: two result files side by side.
//!
//! Results are paired by workload and setting (the GEMM shape, the batch size, the hidden size,
//! the epoch); each row shows one metric of both and the ratio first/second, so with our file
//! first a throughput ratio above 1 means we are faster, and a time ratio above 1 that we are
//! slower. Lines of unknown workloads are skipped. A file may hold several runs (`>>` appends
//! one more): a result measured more than once counts with the median of its values, which is
//! steadier than any one run on a machine shared with other work.

use std::path::Path;

use anyhow::{Context, Result};

use super::measure::{median, Measurement};

/// A metric of a workload: its JSON field, how the tables name it, and which way is better.
pub struct Metric {
    /// The JSON field, e.g. `images_per_s`.
    pub field: &'static str,
    /// The column name, e.g. `images/s`.
    pub label: &'static str,
    /// Whether a larger value is better (throughputs) or worse (seconds, memory).
    pub higher_is_better: bool,
}

/// A workload of the baseline: the fields that tell its results apart, and what it measures.
pub struct WorkloadKind {
    /// The `workload` field.
    pub name: &'static str,
    /// The fields naming the setting (`m`, `k`, `n` for a GEMM; `batch`; `hidden`; `epoch`).
    pub setting: &'static [&'static str],
    /// What it measures.
    pub metrics: &'static [Metric],
}

const fn metric(field: &'static str, label: &'static str, higher_is_better: bool) -> Metric {
    Metric {
        field,
        label,
        higher_is_better,
    }
}

/// Every workload of `pytorch_baseline.py`, in its order.
pub const WORKLOADS: [WorkloadKind; 8] = [
    workload(
        "gemm",
        &["m", "k", "n"],
        &[metric("gflops", "GFLOP/s", true)],
    ),
    workload(
        "cnn_train",
        &["batch"],
        &[IMAGES_PER_S, metric("seconds_per_epoch", "s/epoch", false)],
    ),
    workload("cnn_infer", &["batch"], &[IMAGES_PER_S]),
    workload("lstm_train", &["hidden"], &[TOKENS_PER_S]),
    workload("lstm_sample", &["hidden"], &[TOKENS_PER_S]),
    workload(
        "gan_train",
        &["width"],
        &[IMAGES_PER_S, metric("seconds_per_epoch", "s/epoch", false)],
    ),
    workload(
        "cnn_quant",
        &["precision"],
        &[
            IMAGES_PER_S,
            metric("batch1_images_per_s", "batch-1 images/s", true),
            metric("test_accuracy", "test accuracy", true),
            metric("state_bytes", "bytes", false),
        ],
    ),
    workload(
        "cnn_epoch",
        &["epoch"],
        &[
            metric("seconds", "seconds", false),
            metric("test_accuracy", "test accuracy", true),
        ],
    ),
];

/// Images per second, the CNN's throughput.
const IMAGES_PER_S: Metric = metric("images_per_s", "images/s", true);
/// Tokens per second, the LSTM's throughput.
const TOKENS_PER_S: Metric = metric("tokens_per_s", "tokens/s", true);

/// A workload, its setting fields and its metrics (one row of [`WORKLOADS`]).
const fn workload(
    name: &'static str,
    setting: &'static [&'static str],
    metrics: &'static [Metric],
) -> WorkloadKind {
    WorkloadKind {
        name,
        setting,
        metrics,
    }
}

/// The peak-memory field our lines carry (the baseline's do not).
pub const PEAK_RSS: Metric = metric("peak_rss_mib", "peak RSS MiB", false);

/// The description of a workload called `name`.
pub fn workload_kind(name: &str) -> Option<&'static WorkloadKind> {
    WORKLOADS.iter().find(|kind| kind.name == name)
}

/// How a result's setting reads: `1024x1024x1024`, `batch 32`, `hidden 128`, `epoch 1`.
pub fn setting(measurement: &Measurement) -> Option<String> {
    let kind = workload_kind(measurement.workload()?)?;
    let values: Vec<String> = kind
        .setting
        .iter()
        .map(|field| measurement.get(field).map(ToString::to_string))
        .collect::<Option<_>>()?;
    Some(match kind.setting {
        [field] => format!("{field} {}", values[0]),
        _ => values.join("x"),
    })
}

/// The results of a JSON-lines text; `source` names it in errors. Blank lines are skipped.
pub fn parse_jsonl(text: &str, source: &str) -> Result<Vec<Measurement>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            Measurement::parse(line).with_context(|| {
                format!(
                    "{source}:{}: not a JSON object (expected one result per line, as `cargo xtask bench` and pytorch_baseline.py write)",
                    index + 1
                )
            })
        })
        .collect()
}

/// Reads a JSON-lines file of results.
pub fn read_jsonl(path: &Path) -> Result<Vec<Measurement>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read results file {}", path.display()))?;
    parse_jsonl(&text, &path.display().to_string())
}

/// One row of the side-by-side table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The workload, e.g. `cnn_train`.
    pub workload: String,
    /// Its setting, e.g. `batch 32`.
    pub setting: String,
    /// The metric's label, e.g. `images/s`.
    pub metric: &'static str,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// The first file's value (the median over its runs).
    pub first: Option<f64>,
    /// The second file's value.
    pub second: Option<f64>,
    /// The first file's smallest and largest value, when it holds more than one run.
    pub first_spread: Option<(f64, f64)>,
    /// The second file's.
    pub second_spread: Option<(f64, f64)>,
}

impl Row {
    /// first / second, when both exist and the second is not 0.
    pub fn ratio(&self) -> Option<f64> {
        match (self.first, self.second) {
            (Some(first), Some(second)) if second != 0.0 => Some(first / second),
            _ => None,
        }
    }
}

/// The results of each (workload, setting), in the order first seen.
fn keyed(results: &[Measurement]) -> Vec<((String, String), Vec<&Measurement>)> {
    let mut keyed: Vec<((String, String), Vec<&Measurement>)> = Vec::new();
    for measurement in results {
        let (Some(workload), Some(setting)) = (measurement.workload(), setting(measurement)) else {
            continue;
        };
        let key = (workload.to_string(), setting);
        match keyed.iter_mut().find(|(known, _)| *known == key) {
            Some((_, all)) => all.push(measurement),
            None => keyed.push((key, vec![measurement])),
        }
    }
    keyed
}

/// The median of field `field` over `results` (those that have it), `None` when none has it,
/// and the smallest and largest value when there are several.
fn median_of(results: &[&Measurement], field: &str) -> (Option<f64>, Option<(f64, f64)>) {
    let mut values: Vec<f64> = results.iter().filter_map(|m| m.number(field)).collect();
    if values.is_empty() {
        return (None, None);
    }
    let middle = median(&mut values); // sorts
    let spread = (values.len() > 1).then(|| (values[0], values[values.len() - 1]));
    (Some(middle), spread)
}

/// The most times any one result occurs in `results`: how many runs a file holds.
pub fn run_count(results: &[Measurement]) -> usize {
    keyed(results)
        .iter()
        .map(|(_, all)| all.len())
        .max()
        .unwrap_or(0)
}

/// Pairs the results of two files: a row per metric of every (workload, setting) either has,
/// in the first file's order and then the second's, each value the median over the file's
/// runs; peak memory only where both report it.
pub fn compare(first: &[Measurement], second: &[Measurement]) -> Vec<Row> {
    let (first, second) = (keyed(first), keyed(second));
    let mut keys: Vec<&(String, String)> = first.iter().map(|(key, _)| key).collect();
    for (key, _) in &second {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    fn find<'a>(
        results: &[((String, String), Vec<&'a Measurement>)],
        key: &(String, String),
    ) -> Vec<&'a Measurement> {
        results
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, all)| all.clone())
            .unwrap_or_default()
    }
    let mut rows = Vec::new();
    for key in keys {
        let (ours, theirs) = (find(&first, key), find(&second, key));
        let kind = workload_kind(&key.0).expect("keyed results have known workloads");
        for metric in kind.metrics.iter().chain(std::iter::once(&PEAK_RSS)) {
            let ((a, a_spread), (b, b_spread)) = (
                median_of(&ours, metric.field),
                median_of(&theirs, metric.field),
            );
            let shown = if metric.field == PEAK_RSS.field {
                a.is_some() && b.is_some()
            } else {
                a.is_some() || b.is_some()
            };
            if shown {
                rows.push(Row {
                    workload: key.0.clone(),
                    setting: key.1.clone(),
                    metric: metric.label,
                    higher_is_better: metric.higher_is_better,
                    first: a,
                    second: b,
                    first_spread: a_spread,
                    second_spread: b_spread,
                });
            }
        }
    }
    rows
}

/// How a run describes itself: `candle 0.11.1, 2 threads, release, mnist` from its header line.
pub fn describe(results: &[Measurement]) -> String {
    let Some(header) = results.iter().find(|m| m.workload().is_none()) else {
        return results
            .iter()
            .find_map(|m| m.text("framework"))
            .unwrap_or("?")
            .to_string();
    };
    let mut parts = vec![header.text("framework").unwrap_or("?").to_string()];
    if let Some(version) = header.text("version") {
        parts[0] = format!("{} {version}", parts[0]);
    }
    if let Some(threads) = header.number("threads") {
        parts.push(format!("{threads} threads"));
    }
    for field in ["profile", "data"] {
        if let Some(value) = header.text(field) {
            parts.push(value.to_string());
        }
    }
    if let Some(value) = header.text("dl_plain_candle") {
        parts.push(format!("DL_PLAIN_CANDLE={value}"));
    }
    parts.join(", ")
}

/// A number as the tables show it: as written in the file (the results are rounded already),
/// or with four decimals when that would be long; `-` when missing.
pub fn format_value(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(value) => {
            let plain = value.to_string();
            if plain.len() > 10 {
                format!("{value:.4}")
            } else {
                plain
            }
        }
    }
}

/// A value, followed by `[smallest, largest]` of its runs when there were several.
fn with_spread(value: Option<f64>, spread: Option<(f64, f64)>) -> String {
    match spread {
        Some((low, high)) => format!(
            "{} [{}, {}]",
            format_value(value),
            format_value(Some(low)),
            format_value(Some(high))
        ),
        None => format_value(value),
    }
}

/// The side-by-side table, `first_name` and `second_name` heading the value columns; a value
/// of several runs is their median followed by `[smallest, largest]`.
pub fn render(rows: &[Row], first_name: &str, second_name: &str) -> String {
    let ratio_name = format!("{first_name}/{second_name}");
    let header = [
        "workload".to_string(),
        "setting".into(),
        "metric".into(),
        first_name.into(),
        second_name.into(),
        ratio_name,
    ];
    let mut table: Vec<[String; 6]> = vec![header];
    for row in rows {
        let arrow = if row.higher_is_better {
            "(higher better)"
        } else {
            "(lower better)"
        };
        table.push([
            row.workload.clone(),
            row.setting.clone(),
            format!("{} {arrow}", row.metric),
            with_spread(row.first, row.first_spread),
            with_spread(row.second, row.second_spread),
            row.ratio()
                .map_or("-".into(), |ratio| format!("{ratio:.2}")),
        ]);
    }
    format_table(&table)
}

/// Columns padded to their widest cell; the first three left-aligned, numbers right-aligned.
pub fn format_table<const N: usize>(table: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                if column < 3 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// Reads both files and prints their table to stdout.
pub fn run(first: &Path, second: &Path) -> Result<()> {
    let (ours, theirs) = (read_jsonl(first)?, read_jsonl(second)?);
    print!("{}", side_by_side(&ours, &theirs));
    Ok(())
}

/// The title lines and the table of two runs.
pub fn side_by_side(ours: &[Measurement], theirs: &[Measurement]) -> String {
    let name = |results: &[Measurement], fallback: &str| {
        results
            .iter()
            .find_map(|m| m.text("framework"))
            .unwrap_or(fallback)
            .to_string()
    };
    let (mut first_name, second_name) = (name(ours, "first"), name(theirs, "second"));
    if first_name == second_name {
        first_name = format!("{first_name} (1)");
    }
    let rows = compare(ours, theirs);
    let runs = |results: &[Measurement]| match run_count(results) {
        0 | 1 => String::new(),
        count => format!(" (medians of {count} runs, [smallest, largest])"),
    };
    format!(
        "{first_name}: {}{}\n{second_name}: {}{}\nratio = {first_name}/{second_name}: above 1 is better for \"higher better\" rows, below 1 for \"lower better\" rows\n\n{}",
        describe(ours),
        runs(ours),
        describe(theirs),
        runs(theirs),
        render(&rows, &first_name, &second_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as pytorch_baseline.py prints them (json.dumps of its emit() calls).
    const TORCH: &str = r#"{"framework": "pytorch", "version": "2.5.1+cpu", "threads": 2}
{"framework": "pytorch", "workload": "gemm", "m": 1024, "k": 1024, "n": 1024, "gflops": 100.0}
{"framework": "pytorch", "workload": "gemm", "m": 32, "k": 5408, "n": 128, "gflops": 80.0}
{"framework": "pytorch", "workload": "cnn_train", "batch": 32, "images_per_s": 2000.0, "seconds_per_epoch": 30.0}
{"framework": "pytorch", "workload": "cnn_infer", "batch": 1000, "images_per_s": 10000.0}
{"framework": "pytorch", "workload": "lstm_sample", "hidden": 128, "tokens_per_s": 4000.0}

{"framework": "pytorch", "workload": "cnn_epoch", "epoch": 1, "seconds": 30.0, "test_accuracy": 0.9812}
"#;

    const OURS: &str = r#"{"framework": "candle", "version": "0.11.1", "threads": 2, "profile": "release", "data": "mnist"}
{"framework": "candle", "workload": "gemm", "m": 1024, "k": 1024, "n": 1024, "gflops": 50.0, "peak_rss_mib": 40.0}
{"framework": "candle", "workload": "cnn_train", "batch": 32, "images_per_s": 1000.0, "seconds_per_epoch": 60.0, "peak_rss_mib": 300.0}
{"framework": "candle", "workload": "cnn_train", "batch": 32, "images_per_s": 1500.0, "seconds_per_epoch": 40.0, "peak_rss_mib": 300.0}
{"framework": "candle", "workload": "lstm_sample", "hidden": 128, "tokens_per_s": 8000.0, "peak_rss_mib": 310.0}
{"framework": "candle", "workload": "some_future_workload", "x": 1}
"#;

    #[test]
    fn parses_the_baselines_lines() {
        let results = parse_jsonl(TORCH, "torch.jsonl").unwrap();
        assert_eq!(results.len(), 7);
        assert_eq!(results[0].workload(), None);
        assert_eq!(setting(&results[1]).as_deref(), Some("1024x1024x1024"));
        assert_eq!(setting(&results[3]).as_deref(), Some("batch 32"));
        assert_eq!(results[6].number("test_accuracy"), Some(0.9812));
        assert_eq!(
            describe(&results),
            "pytorch 2.5.1+cpu, 2 threads",
            "the header line describes the run"
        );
    }

    #[test]
    fn a_broken_line_is_named_with_its_number() {
        let error = parse_jsonl("{\"workload\": \"gemm\"}\n{oops\n", "torch.jsonl").unwrap_err();
        assert!(
            format!("{error:#}").starts_with("torch.jsonl:2: not a JSON object"),
            "{error:#}"
        );
        assert!(
            parse_jsonl("[1, 2]", "x").is_err(),
            "an array is not a result"
        );
    }

    #[test]
    fn pairs_results_and_computes_ours_over_theirs() {
        let ours = parse_jsonl(OURS, "ours").unwrap();
        let theirs = parse_jsonl(TORCH, "torch").unwrap();
        let rows = compare(&ours, &theirs);
        let find = |workload: &str, setting: &str, metric: &str| {
            rows.iter()
                .find(|row| {
                    row.workload == workload && row.setting == setting && row.metric == metric
                })
                .unwrap_or_else(|| panic!("no row {workload} {setting} {metric} in {rows:#?}"))
        };
        // 50 / 100 GFLOP/s.
        assert_eq!(find("gemm", "1024x1024x1024", "GFLOP/s").ratio(), Some(0.5));
        // Two cnn_train batch-32 results: their median (1000 + 1500) / 2 against 2000.
        let train = find("cnn_train", "batch 32", "images/s");
        assert_eq!(train.ratio(), Some(0.625));
        assert_eq!(train.first_spread, Some((1000.0, 1500.0)));
        assert_eq!(train.second_spread, None);
        assert!(train.higher_is_better);
        let epoch_time = find("cnn_train", "batch 32", "s/epoch");
        assert!(!epoch_time.higher_is_better);
        assert_eq!(epoch_time.ratio(), Some(50.0 / 30.0));
        assert_eq!(
            find("lstm_sample", "hidden 128", "tokens/s").ratio(),
            Some(2.0)
        );
        // Only in the PyTorch file: shown with no ratio.
        let only_theirs = find("gemm", "32x5408x128", "GFLOP/s");
        assert_eq!((only_theirs.first, only_theirs.ratio()), (None, None));
        assert_eq!(
            find("cnn_epoch", "epoch 1", "test accuracy").second,
            Some(0.9812)
        );
        // Peak memory is ours only, so it is not a row; the unknown workload is skipped.
        assert!(rows.iter().all(|row| row.metric != PEAK_RSS.label));
        assert!(rows
            .iter()
            .all(|row| row.workload != "some_future_workload"));
        // Our order first, then theirs.
        assert_eq!(rows[0].workload, "gemm");
        assert_eq!(rows.last().unwrap().workload, "cnn_epoch");
    }

    #[test]
    fn values_show_as_written() {
        assert_eq!(format_value(Some(6.5)), "6.5");
        assert_eq!(format_value(Some(1234.0)), "1234");
        assert_eq!(format_value(Some(0.9812)), "0.9812");
        assert_eq!(format_value(Some(2.0 / 3.0)), "0.6667");
        assert_eq!(format_value(None), "-");
    }

    #[test]
    fn peak_memory_is_compared_when_both_report_it() {
        let ours = parse_jsonl(OURS, "ours").unwrap();
        let rows = compare(&ours, &ours);
        let memory = rows
            .iter()
            .find(|row| row.metric == PEAK_RSS.label)
            .unwrap();
        assert_eq!(memory.ratio(), Some(1.0));
    }

    #[test]
    fn the_table_lines_up_and_names_both_runs() {
        let ours = parse_jsonl(OURS, "ours").unwrap();
        let theirs = parse_jsonl(TORCH, "torch").unwrap();
        let text = side_by_side(&ours, &theirs);
        assert!(
            text.starts_with("candle: candle 0.11.1, 2 threads, release, mnist (medians of 2 runs, [smallest, largest])\npytorch: pytorch 2.5.1+cpu, 2 threads\n"),
            "{text}"
        );
        let table: Vec<&str> = text
            .lines()
            .skip_while(|line| !line.starts_with("workload"))
            .collect();
        assert!(table[0].ends_with("candle/pytorch"), "{}", table[0]);
        let gemm = table
            .iter()
            .find(|line| line.contains("1024x1024x1024"))
            .unwrap();
        assert!(gemm.contains("GFLOP/s (higher better)"), "{gemm}");
        assert!(gemm.ends_with("0.50"), "{gemm}");
        // Two runs of cnn_train at batch 32: the median, then the smallest and largest.
        let train = table
            .iter()
            .find(|line| line.contains("batch 32") && line.contains("images/s"))
            .unwrap();
        assert!(train.contains("1250 [1000, 1500]"), "{train}");
        // Every row is as wide as the header up to its last column.
        let ratio_column = table[0].len();
        assert!(
            table.iter().all(|line| line.len() == ratio_column),
            "{text}"
        );
    }
}
