//! `cargo xtask bench` as a user runs it, in smoke mode: every workload with tiny repeat counts
//! on random images, in this (dev) build. Checks that each result is one JSON line with the
//! baseline's workload and field names, that --json gets the same lines, and that `compare`
//! pairs our file with a PyTorch one.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;

fn xtask(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench")
        .args(arguments)
        .env("DL_DATA_DIR", "/nonexistent-dl-data")
        .output()
        .expect("run xtask")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stdout lines, each parsed as a JSON object.
fn json_lines(output: &Output) -> Vec<serde_json::Map<String, Value>> {
    let stdout = text(&output.stdout);
    stdout
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(object)) => object,
            _ => panic!("not a JSON object line: {line}\nstdout:\n{stdout}"),
        })
        .collect()
}

fn number(line: &serde_json::Map<String, Value>, field: &str) -> f64 {
    line.get(field)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number {field} in {line:?}"))
}

#[test]
fn quick_mode_measures_every_workload_with_the_baselines_names() {
    let directory = tempfile::tempdir().unwrap();
    let json_path = directory.path().join("ours.jsonl");
    let json_text = json_path.display().to_string();
    let output = xtask(&[
        "all",
        "--quick",
        "--synthetic",
        "--no-release",
        "--threads",
        "2",
        "--json",
        &json_text,
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("threads: 2 compute threads (--threads), 1 for Candle's element-wise"),
        "{stderr}"
    );

    let lines = json_lines(&output);
    let header = &lines[0];
    assert_eq!(header["framework"], "candle");
    assert_eq!(header["threads"], 2);
    assert_eq!(header["data"], "synthetic");
    let workloads: Vec<&str> = lines[1..]
        .iter()
        .map(|line| line["workload"].as_str().unwrap())
        .collect();
    assert_eq!(
        workloads,
        [
            "gemm",
            "gemm",
            "gemm",
            "cnn_train",
            "cnn_train",
            "cnn_infer",
            "lstm_train",
            "lstm_sample",
            "lstm_train",
            "lstm_sample"
        ]
    );
    // The fields of pytorch_baseline.py's emit() calls, plus our peak memory.
    let expected: [(&str, &[&str]); 5] = [
        ("gemm", &["m", "k", "n", "gflops"]),
        ("cnn_train", &["batch", "images_per_s", "seconds_per_epoch"]),
        ("cnn_infer", &["batch", "images_per_s"]),
        ("lstm_train", &["hidden", "tokens_per_s"]),
        ("lstm_sample", &["hidden", "tokens_per_s"]),
    ];
    for line in &lines[1..] {
        let workload = line["workload"].as_str().unwrap();
        let (_, fields) = expected.iter().find(|(name, _)| *name == workload).unwrap();
        let mut wanted: BTreeSet<&str> = fields.iter().copied().collect();
        wanted.extend(["framework", "workload", "peak_rss_mib"]);
        let found: BTreeSet<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(found, wanted, "{line:?}");
        for field in fields.iter().chain(&["peak_rss_mib"]) {
            assert!(number(line, field) > 0.0, "{field} of {line:?}");
        }
    }
    let settings: Vec<String> = lines[1..]
        .iter()
        .map(|line| {
            ["m", "k", "n", "batch", "hidden"]
                .iter()
                .filter_map(|field| line.get(*field).map(ToString::to_string))
                .collect::<Vec<_>>()
                .join("x")
        })
        .collect();
    assert_eq!(
        settings,
        [
            "1024x1024x1024",
            "32x5408x128",
            "128x5408x128",
            "32",
            "128",
            "1000",
            "128",
            "128",
            "256",
            "256"
        ]
    );
    // Peak memory is a high-water mark: it never goes down.
    let peaks: Vec<f64> = lines[1..]
        .iter()
        .map(|line| number(line, "peak_rss_mib"))
        .collect();
    assert!(peaks.windows(2).all(|pair| pair[0] <= pair[1]), "{peaks:?}");
    // --json gets exactly the stdout lines.
    assert_eq!(
        std::fs::read_to_string(&json_path).unwrap(),
        text(&output.stdout)
    );
    // The human summary comes at the end of stderr.
    assert!(
        stderr.contains("workload     setting         result"),
        "{stderr}"
    );
}

#[test]
fn epochs_report_seconds_and_test_accuracy() {
    let output = xtask(&["epochs", "2", "--quick", "--synthetic", "--no-release"]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3, "a header and two epochs");
    for (index, line) in lines[1..].iter().enumerate() {
        assert_eq!(line["workload"], "cnn_epoch");
        assert_eq!(line["epoch"], index + 1);
        assert!(number(line, "seconds") > 0.0);
        let accuracy = number(line, "test_accuracy");
        assert!((0.0..=1.0).contains(&accuracy), "{line:?}");
    }
}

#[test]
fn missing_mnist_falls_back_to_random_images_and_says_so() {
    // No --synthetic: $DL_DATA_DIR points nowhere; ../shared/datasets may or may not exist.
    let output = xtask(&["epochs", "1", "--quick", "--no-release"]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let header = &json_lines(&output)[0];
    if header["data"] == "synthetic" {
        assert!(
            stderr.contains("note: MNIST not found in /nonexistent-dl-data/mnist"),
            "{stderr}"
        );
    } else {
        assert_eq!(header["data"], "mnist");
        assert!(stderr.contains("shared/datasets/mnist"), "{stderr}");
    }
}

#[test]
fn an_explicit_data_dir_without_mnist_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let empty_text = empty.path().display().to_string();
    let output = xtask(&["cnn", "--quick", "--no-release", "--data-dir", &empty_text]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("MNIST not found in"), "{stderr}");
    assert!(stderr.contains("cargo xtask download-data"), "{stderr}");
    assert!(output.stdout.is_empty(), "no results were measured");
}

#[test]
fn compare_prints_both_runs_side_by_side() {
    let directory = tempfile::tempdir().unwrap();
    let ours = directory.path().join("ours.jsonl");
    let torch = directory.path().join("torch.jsonl");
    std::fs::write(
        &ours,
        concat!(
            r#"{"framework": "candle", "version": "0.11.1", "threads": 2, "profile": "release", "data": "mnist"}"#,
            "\n",
            r#"{"framework": "candle", "workload": "lstm_train", "hidden": 128, "tokens_per_s": 3000.0, "peak_rss_mib": 250.0}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &torch,
        concat!(
            r#"{"framework": "pytorch", "version": "2.5.1", "threads": 2}"#,
            "\n",
            r#"{"framework": "pytorch", "workload": "lstm_train", "hidden": 128, "tokens_per_s": 12000.0}"#,
            "\n"
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "compare"])
        .arg(&ours)
        .arg(&torch)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("pytorch: pytorch 2.5.1, 2 threads"),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("lstm_train"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // 3000 / 12000 tokens/s.
    assert!(row.contains("hidden 128"), "{row}");
    assert!(row.ends_with("0.25"), "{row}");

    let missing = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "compare"])
        .arg(&ours)
        .arg(directory.path().join("absent.jsonl"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("cannot read results file"));
}
