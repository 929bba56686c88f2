//! The catalogue of bad inputs: each case, read from a TOML file beside the test, runs a program
//! that must fail — a non-zero status, a message holding every expected part (the thing and the
//! trouble), no panic. Shared by both apps' catalogue tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// One bad input: what to run and what the message must say.
#[derive(Debug, serde::Deserialize)]
pub struct Case {
    /// What it is.
    name: String,
    /// The words after the program's name, `{placeholders}` included.
    run: String,
    /// What the message must contain.
    says: Vec<String>,
}

/// The file's cases.
#[derive(Debug, serde::Deserialize)]
struct Catalogue {
    case: Vec<Case>,
}

/// The cases of the TOML catalogue `text`.
pub fn read(text: &str) -> Vec<Case> {
    toml::from_str::<Catalogue>(text)
        .expect("the catalogue is valid TOML")
        .case
}

/// Runs every case with `binary`, `{name}` in its words replaced by `places[name]`; all
/// failures are reported together.
pub fn check(binary: &str, cases: &[Case], places: &BTreeMap<&str, String>) {
    let mut failures = Vec::new();
    for case in cases {
        let arguments: Vec<String> = case
            .run
            .split_whitespace()
            .map(|word| {
                places.iter().fold(word.to_string(), |word, (name, value)| {
                    word.replace(&format!("{{{name}}}"), value)
                })
            })
            .collect();
        let output = std::process::Command::new(binary)
            .args(&arguments)
            .env_remove("DL_DATA_DIR")
            .output()
            .expect("the binary runs");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let clear = !output.status.success()
            && !log.contains("panicked")
            && case.says.iter().all(|part| log.contains(part.as_str()));
        if !clear {
            failures.push(format!(
                "{} ({arguments:?}): status {:?}, expected {:?} in:\n{log}",
                case.name,
                output.status.code(),
                case.says
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
