//! A short run on the real Tiny Shakespeare, when `../shared/datasets` is present (skipped,
//! saying so, when it is not): the default command's data path, tokenizer and validation split
//! must learn far beyond guessing in 150 steps.

use std::{path::PathBuf, process::Command};

fn shared_datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

#[test]
fn learns_tiny_shakespeare_beyond_character_frequencies() {
    let data = shared_datasets();
    if !data.join("tinyshakespeare/input.txt").is_file() {
        eprintln!(
            "skipped: {} has no tinyshakespeare/input.txt",
            data.display()
        );
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("shakespeare.safetensors");
    let output = Command::new(env!("CARGO_BIN_EXE_text-gen"))
        .args(["train", "--offline", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args([
            "--hidden",
            "128",
            "--steps",
            "150",
            "--eval-every",
            "150",
            "--validation-batches",
            "1",
            "--sample-length",
            "100",
        ])
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("1115394 characters, 1115394 tokens (char tokenizer, vocabulary of 65)"),
        "{printed}"
    );
    assert!(
        printed.contains("validating on the last 111539"),
        "{printed}"
    );
    // Guessing from character frequencies alone costs about 3.3 nats per character.
    let line = printed
        .lines()
        .find(|line| line.starts_with("validation ("))
        .unwrap();
    let loss: f64 = line
        .split("loss ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(loss < 2.5, "{line}");
    assert!(printed.contains("The meaning of life is"), "{printed}");
}
