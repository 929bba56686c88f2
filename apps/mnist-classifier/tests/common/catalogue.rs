//! The catalogue of bad inputs: each case runs a program that must fail — a non-zero status, a
//! message holding every expected part (the thing and the trouble), no panic. Shared by both
//! apps' catalogue tests.

#![allow(dead_code)]

/// One bad input: what to run and what the message must say.
pub struct Case {
    name: &'static str,
    arguments: Vec<String>,
    expected: Vec<String>,
}

impl Case {
    /// A case: `arguments` must fail printing each of `expected`.
    pub fn new(name: &'static str, arguments: Vec<String>, expected: &[&str]) -> Self {
        Self {
            name,
            arguments,
            expected: expected.iter().map(|part| part.to_string()).collect(),
        }
    }
}

/// Runs every case with `binary`; all failures are reported together.
pub fn check(binary: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let arguments: Vec<&str> = case.arguments.iter().map(String::as_str).collect();
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
            && case.expected.iter().all(|part| log.contains(part.as_str()));
        if !clear {
            failures.push(format!(
                "{} ({:?}): status {:?}, expected {:?} in:\n{log}",
                case.name,
                case.arguments,
                output.status.code(),
                case.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A case: `arguments` (words) must fail printing each of `expected`.
pub fn case(name: &'static str, arguments: &[&str], expected: &[&str]) -> Case {
    Case {
        name,
        arguments: arguments.iter().map(|word| word.to_string()).collect(),
        expected: expected.iter().map(|part| part.to_string()).collect(),
    }
}
