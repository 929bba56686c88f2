//! `text-gen search` end to end on a small corpus: the results table ranked by validation loss,
//! the journal and the files beside it, the best configuration as a `train` command, resuming
//! with a larger budget, `--retrain`, and the spaces and settings it refuses.

mod common;

use common::{assert_failure, assert_success, path, run, stdout, write, SENTENCE};

/// Small models trained for 40 steps, validated every 10: four "epochs" per trial.
const SPACE: &str = r#"
[learning_rate]
type = "float"
low = 1e-3
high = 3e-2
log = true

[hidden]
type = "categorical"
choices = [8, 16]

[embedding]
type = "fixed"
value = 8

[seq_len]
type = "fixed"
value = 16

[batch_size]
type = "fixed"
value = 8

[steps]
type = "fixed"
value = 40

[eval_every]
type = "fixed"
value = 10
"#;

/// The validation losses of the results table, in its order.
fn table_losses(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter(|line| line.starts_with("| ") && line.contains("complete"))
        .map(|line| line.split('|').nth(4).unwrap().trim().parse().unwrap())
        .collect()
}

#[test]
fn search_ranks_trials_by_validation_loss_resumes_and_retrains() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "fox.txt", SENTENCE.repeat(200));
    let space = write(directory.path(), "space.toml", SPACE);
    let journal = directory.path().join("search").join("journal.jsonl");
    let base = [
        "search",
        "--offline",
        "--corpus",
        path(&corpus),
        "--space",
        path(&space),
        "--journal",
        path(&journal),
        "--pruner",
        "none",
        "--sampler",
        "random",
    ];

    let first = run(&[&base[..], &["--trials", "3"]].concat());
    assert_success(&first);
    let printed = stdout(&first);
    let losses = table_losses(&printed);
    assert_eq!(losses.len(), 3, "{printed}");
    assert!(
        losses.windows(2).all(|pair| pair[0] <= pair[1]),
        "{losses:?}: lowest loss first"
    );
    assert!(
        losses.iter().all(|loss| loss.is_finite() && *loss > 0.0),
        "{losses:?}"
    );
    assert!(
        printed.contains("cargo run --release -p text-gen -- train"),
        "{printed}"
    );
    for file in ["journal.csv", "journal.png", "journal-best.toml"] {
        assert!(
            journal.with_file_name(file).exists(),
            "{file} missing:\n{printed}"
        );
    }
    let best = std::fs::read_to_string(journal.with_file_name("journal-best.toml")).unwrap();
    let best: toml::Table = toml::from_str(&best).unwrap();
    assert!(
        best.contains_key("learning_rate") && best.contains_key("hidden"),
        "{best:?}"
    );

    // a larger budget continues the same journal: the three trials are kept, two more run
    let resumed = run(&[&base[..], &["--trials", "5", "--resume", "--retrain"]].concat());
    assert_success(&resumed);
    let printed = stdout(&resumed);
    assert!(printed.contains("3 finished trial(s) kept"), "{printed}");
    let all = table_losses(&printed);
    assert_eq!(all.len(), 5, "{printed}");
    for loss in &losses {
        assert!(
            all.contains(loss),
            "trial with loss {loss} lost on resuming: {all:?}"
        );
    }
    // --retrain trains the best configuration as `train` would: a checkpoint that generates
    let checkpoint = journal.with_file_name("best.safetensors");
    assert!(checkpoint.exists(), "{printed}");
    let generated = run(&[
        "generate",
        "--checkpoint",
        path(&checkpoint),
        "--prompt",
        "the ",
        "--length",
        "20",
    ]);
    assert_success(&generated);
}

#[test]
fn spaces_and_settings_that_cannot_be_searched_are_refused_before_training() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "fox.txt", SENTENCE.repeat(50));
    let cases = [
        (
            "[tokenizer]\ntype = \"fixed\"\nvalue = \"bpe\"\n",
            "search space: tokenizer",
        ),
        (
            "[seed]\ntype = \"fixed\"\nvalue = 3\n",
            "search space: seed",
        ),
        (
            "[colour]\ntype = \"categorical\"\nchoices = [\"red\"]\n",
            "--colour red",
        ),
        (
            "[hidden]\ntype = \"categorical\"\nchoices = [0]\n",
            "--hidden must be positive",
        ),
    ];
    for (space, expected) in cases {
        let space = write(directory.path(), "space.toml", space);
        let output = run(&[
            "search",
            "--offline",
            "--corpus",
            path(&corpus),
            "--space",
            path(&space),
            "--journal",
            path(&directory.path().join("journal.jsonl")),
        ]);
        assert_failure(&output, expected);
    }
    let output = run(&[
        "search",
        "--offline",
        "--corpus",
        path(&corpus),
        "--validation-fraction",
        "0",
    ]);
    assert_failure(&output, "--validation-fraction must be in (0, 0.5)");
}
