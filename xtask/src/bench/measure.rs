//! The measuring method of `../shared/bench/pytorch_baseline.py`, and what one result looks like.
//!
//! A workload is run once to warm up (allocations, thread pools, caches), then timed `repeats`
//! times; the median time counts. Each result is one JSON object on one line, with the baseline's
//! field names and the layout of Python's `json.dumps` (`{"a": 1, "b": 2}`), so both files read
//! alike and `cargo xtask bench compare` can pair them.

use std::time::Instant;

use anyhow::Result;
use serde_json::Value;

/// The median wall-clock seconds of `repeats` calls of `run` (the mean of the two middle
/// times for an even count, as Python's `statistics.median`).
pub fn median_time<F>(repeats: usize, mut run: F) -> Result<f64>
where
    F: FnMut() -> Result<()>,
{
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        run()?;
        times.push(started.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

/// The median of `values` (sorted in place); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        length if length % 2 == 1 => values[length / 2],
        length => (values[length / 2 - 1] + values[length / 2]) / 2.0,
    }
}

/// `value` rounded to `digits` decimals, as the baseline's `round(x, 1)`.
pub fn round_to(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// The process's peak resident memory so far (`VmHWM` in `/proc/self/status`), in MiB; `None`
/// where there is no such file (not Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status).map(|kib| round_to(kib as f64 / 1024.0, 1))
}

/// The `VmHWM:   123456 kB` line of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// One result line: named values in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    fields: Vec<(String, Value)>,
}

impl Measurement {
    /// A result of `framework` (`candle` here, `pytorch` in the baseline) for `workload`.
    pub fn new(framework: &str, workload: &str) -> Self {
        Self {
            fields: vec![
                ("framework".into(), framework.into()),
                ("workload".into(), workload.into()),
            ],
        }
    }

    /// A line without a workload: the run's description (framework, version, threads).
    pub fn header(framework: &str) -> Self {
        Self {
            fields: vec![("framework".into(), framework.into())],
        }
    }

    /// Adds (or replaces) a field.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        match self.fields.iter_mut().find(|(known, _)| known == name) {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((name.to_string(), value)),
        }
        self
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value)
    }

    /// Field `name` as a number.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Value::as_f64)
    }

    /// Field `name` as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The workload's name (`gemm`, `cnn_train`, ...), `None` for a header line.
    pub fn workload(&self) -> Option<&str> {
        self.text("workload")
    }

    /// The line as Python's `json.dumps` writes it: `{"framework": "candle", "m": 1024}`.
    pub fn to_json_line(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(name, value)| format!("{}: {value}", Value::from(name.as_str())))
            .collect();
        format!("{{{}}}", fields.join(", "))
    }

    /// Reads one JSON object (keys then come in alphabetical order).
    pub fn parse(line: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(line)?;
        let Value::Object(object) = value else {
            anyhow::bail!("expected a JSON object, got {line}");
        };
        Ok(Self {
            fields: object.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_like_python_statistics() {
        // statistics.median([3, 1, 2]) == 2; statistics.median([4, 1, 3, 2]) == 2.5
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn rounds_like_python_round() {
        assert_eq!(round_to(1234.5678, 1), 1234.6);
        assert_eq!(round_to(0.126, 2), 0.13);
    }

    #[test]
    fn reads_vm_hwm() {
        let status = "Name:\txtask\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(204_800));
        assert_eq!(parse_vm_hwm("Name:\txtask\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_mib().is_some_and(|mib| mib > 0.0));
        }
    }

    #[test]
    fn writes_lines_like_json_dumps() {
        let line = Measurement::new("candle", "cnn_train")
            .with("batch", 32)
            .with("images_per_s", 1234.5)
            .to_json_line();
        // json.dumps({"framework": "candle", "workload": "cnn_train", "batch": 32,
        //             "images_per_s": 1234.5})
        assert_eq!(
            line,
            r#"{"framework": "candle", "workload": "cnn_train", "batch": 32, "images_per_s": 1234.5}"#
        );
        let parsed = Measurement::parse(&line).unwrap();
        assert_eq!(parsed.workload(), Some("cnn_train"));
        assert_eq!(parsed.number("images_per_s"), Some(1234.5));
    }
}
