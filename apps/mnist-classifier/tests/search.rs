//! `search` end to end on a small synthetic MNIST: the results table, CSV, history plot and best
//! configuration; resuming with a larger budget; spaces that cannot be searched; `--retrain`.

mod common;

use common::{assert_clear_failure, run, synthetic_data, text};

const SPACE: &str = r#"
[model]
type = "fixed"
value = "logreg"

[learning_rate]
type = "float"
low = 1e-3
high = 1e-1
log = true

[batch_size]
type = "categorical"
choices = [20, 40]

[augment]
type = "categorical"
choices = [false, true]

[epochs]
type = "fixed"
value = 3
"#;

#[test]
fn search_writes_its_table_and_resumes_with_a_larger_budget() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let space = dir.join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let journal = dir.join("search").join("journal.jsonl");
    let base = [
        "search",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--space",
        space.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--sampler",
        "random",
    ];
    let mut arguments = base.to_vec();
    arguments.extend(["--trials", "4"]);
    let output = run(&arguments);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("| rank | trial | state | validation_accuracy | epochs | seconds | augment | batch_size | learning_rate |"), "{log}");
    assert!(
        log.contains("360 training and 40 validation images"),
        "{log}"
    );
    assert!(
        log.contains("train --augment") || log.contains("train --batch-size"),
        "{log}"
    );
    let csv = std::fs::read_to_string(dir.join("search").join("journal.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(dir.join("search").join("journal.png").exists());
    let best: toml::Table = std::fs::read_to_string(dir.join("search").join("journal-best.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(best["model"].as_str(), Some("logreg"));
    assert_eq!(best["epochs"].as_integer(), Some(3));

    // a new search may not overwrite the journal; --resume continues it to 6 trials
    let output = run(&arguments);
    assert_clear_failure(&output, &["already exists: pass --resume"]);
    let mut arguments = base.to_vec();
    arguments.extend(["--trials", "6", "--resume", "--retrain"]);
    let output = run(&arguments);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("4 finished trial(s) kept, 0 interrupted"),
        "{log}"
    );
    let csv = std::fs::read_to_string(dir.join("search").join("journal.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(
        log.contains("retraining the best configuration on all 400 training images"),
        "{log}"
    );
    assert!(log.contains("test accuracy"), "{log}");
    assert!(dir.join("search").join("best.safetensors").exists());
}

#[test]
fn spaces_that_cannot_be_searched_are_refused_before_any_training() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let cases = [
        (
            "[seed]\ntype = \"fixed\"\nvalue = 3\n",
            vec!["search space: seed", "the search sets it itself"],
        ),
        (
            "[colour]\ntype = \"categorical\"\nchoices = [\"red\"]\n",
            vec!["search space: colour", "--colour red"],
        ),
        (
            "[model]\ntype = \"categorical\"\nchoices = [\"transformer\"]\n",
            vec!["search space: model", "--model transformer"],
        ),
        (
            "[learning_rate]\ntype = \"float\"\nlow = 0.1\nhigh = 0.01\n",
            vec!["learning_rate: low 0.1 and high 0.01"],
        ),
    ];
    for (space, expected) in cases {
        let path = dir.join("space.toml");
        std::fs::write(&path, space).unwrap();
        let output = run(&[
            "search",
            "--offline",
            "--data-dir",
            data.to_str().unwrap(),
            "--space",
            path.to_str().unwrap(),
            "--journal",
            dir.join("never.jsonl").to_str().unwrap(),
        ]);
        assert_clear_failure(&output, &expected);
        assert!(!dir.join("never.jsonl").exists());
    }
}
