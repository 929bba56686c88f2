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
}
