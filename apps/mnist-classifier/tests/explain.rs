//! `explain` end to end on a small synthetic MNIST: one PNG per image with a panel per method,
//! JSON with the maps and the Integrated Gradients completeness error, and the sanity table.

mod common;

use common::{run, synthetic_data, text, train};

#[test]
fn explain_writes_figures_json_and_the_sanity_table() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let model = dir.join("cnn.safetensors");
    let output = train(&data, &model, &["--model", "course-cnn", "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let out = dir.join("maps");
    let base = [
        "explain",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let mut arguments = base.to_vec();
    arguments.extend(["--index", "0", "--index", "3", "--json", "--target", "4"]);
    let output = run(&arguments);
    assert!(output.status.success(), "{}", text(&output));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["explained_class"], 4);
        assert_eq!(line["predictions"].as_array().unwrap().len(), 3);
        let maps = line["maps"].as_object().unwrap();
        assert_eq!(maps.len(), 6, "{maps:?}");
        for map in maps.values() {
            assert_eq!(map["attribution"].as_array().unwrap().len(), 784);
        }
        assert!(maps["integrated gradients"]["completeness_error"].is_number());
    }
    for name in ["test-0.png", "test-3.png"] {
        let figure = image::open(out.join(name)).unwrap();
        // the input and six panels side by side
        assert!(figure.width() > 7 * 224, "{}", figure.width());
    }
    let mut arguments = base.to_vec();
    arguments.extend(["--index", "1", "--sanity", "--method", "ig"]);
    let output = run(&arguments);
    assert!(output.status.success(), "{}", text(&output));
    let table = text(&output);
    assert!(
        table.contains("| integrated gradients | dense_1 "),
        "{table}"
    );
    assert!(table.contains("deletion AUC"), "{table}");
    assert!(table.contains("pass --random-labels-checkpoint"), "{table}");

    // data randomization: a model of the same architecture trained on permuted labels
    let random = dir.join("random.safetensors");
    let output = train(
        &data,
        &random,
        &["--model", "course-cnn", "--epochs", "1", "--shuffle-labels"],
    );
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("randomly permuted labels"), "{log}");
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        random.to_str().unwrap(),
    ]);
    assert!(
        text(&output).contains("on randomly permuted labels"),
        "{}",
        text(&output)
    );
    let mut arguments = base.to_vec();
    arguments.extend([
        "--index", "1", "--index", "2", "--sanity", "--method", "saliency",
    ]);
    arguments.extend(["--random-labels-checkpoint", random.to_str().unwrap()]);
    let output = run(&arguments);
    let table = text(&output);
    assert!(output.status.success(), "{table}");
    let row = table
        .lines()
        .find(|line| line.starts_with("| saliency |"))
        .unwrap_or_else(|| panic!("{table}"));
    let cell = row.split('|').nth(4).unwrap();
    let rhos: Vec<f64> = cell
        .split(" / ")
        .map(|rho| rho.trim().parse().unwrap_or_else(|_| panic!("{row}")))
        .collect();
    assert_eq!(rhos.len(), 2, "{row}");
    assert!(rhos.iter().all(|rho| (-1.0..=1.0).contains(rho)), "{row}");

    // the random-label model must be of the same architecture
    let mlp = dir.join("mlp.safetensors");
    let output = train(
        &data,
        &mlp,
        &["--model", "logreg", "--epochs", "1", "--shuffle-labels"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let mut arguments = base.to_vec();
    arguments.extend([
        "--index",
        "1",
        "--sanity",
        "--random-labels-checkpoint",
        mlp.to_str().unwrap(),
    ]);
    common::assert_clear_failure(
        &run(&arguments),
        &["is a logreg, the model a course-cnn", "--shuffle-labels"],
    );
}
