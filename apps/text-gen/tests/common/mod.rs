//! Helpers shared by the binary's tests: running it, reading what it printed, small corpora.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The program under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_text-gen");

/// 45 characters, 28 distinct (a pangram, a space and a full stop): repeated, it is perfectly predictable after a few characters.
pub const SENTENCE: &str = "the quick brown fox jumps over the lazy dog. ";

/// A small model and a high learning rate: a repeated sentence is learned in about 150 steps.
pub const SMALL_MODEL: &[&str] = &[
    "--embedding",
    "16",
    "--hidden",
    "48",
    "--seq-len",
    "24",
    "--batch-size",
    "16",
    "--learning-rate",
    "0.01",
    "--eval-every",
    "50",
    "--sample-length",
    "0",
];

/// Runs the program with `arguments`, outside any `DL_DATA_DIR` and thread setting.
pub fn run(arguments: &[&str]) -> Output {
    Command::new(BINARY)
        .args(arguments)
        .env_remove("DL_DATA_DIR")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .expect("the binary runs")
}

/// What the program printed on standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the program printed, standard output then standard error.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Fails, showing the output, unless the command succeeded.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "the command failed:\n{}",
        text(output)
    );
}

/// The command failed cleanly (exit code 1, an `error:` line, no panic) with `expected` in its
/// message.
pub fn assert_failure(output: &Output, expected: &str) {
    let all = text(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit code 1:\n{all}"
    );
    assert!(
        !all.contains("panicked"),
        "a panic instead of an error:\n{all}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: "), "no error line:\n{all}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in:\n{all}"
    );
}

/// Writes `bytes` to `directory/name` and returns the path.
pub fn write(directory: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `path` as text.
pub fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `train` with the small model on `corpus`, saving to `out`; flags in `extra` replace those of
/// [`SMALL_MODEL`].
pub fn train(corpus: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut arguments = vec![
        "train",
        "--offline",
        "--corpus",
        path(corpus),
        "--out",
        path(out),
    ];
    for pair in SMALL_MODEL.chunks(2) {
        if !extra.contains(&pair[0]) {
            arguments.extend_from_slice(pair);
        }
    }
    arguments.extend_from_slice(extra);
    run(&arguments)
}
