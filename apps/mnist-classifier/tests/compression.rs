//! `prune` and `quantize` end to end on a small synthetic MNIST: the files they write have the
//! sparsity and format they claim, `evaluate` and `predict` read them without flags, and a
//! sweep writes its table, CSV and plot.

mod common;

use common::{run, synthetic_data, text, train};
use dl_compress::{is_int8, read_metadata};

fn zeros_share(path: &std::path::Path, names: &[&str]) -> f64 {
    let checkpoint = dl_nn::Checkpoint::load(path).unwrap();
    let (mut zeros, mut total) = (0usize, 0usize);
    for name in names {
        let values: Vec<f32> = checkpoint.tensors[*name]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        zeros += values.iter().filter(|value| **value == 0.0).count();
        total += values.len();
    }
    zeros as f64 / total as f64
}

#[test]
fn prune_then_quantize_then_evaluate_and_predict() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let dense = dir.join("dense.safetensors");
    let output = train(&data, &dense, &["--model", "mlp", "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let data_dir = data.to_str().unwrap();

    let pruned = dir.join("pruned.safetensors");
    let output = run(&[
        "prune",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        dense.to_str().unwrap(),
        "--sparsity",
        "0.8",
        "--method",
        "layer",
        "--fine-tune-epochs",
        "1",
        "--out",
        pruned.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    // the layer method removes exactly 80% of each layer
    for name in ["dense.weight", "dense_1.weight", "dense_2.weight"] {
        let share = zeros_share(&pruned, &[name]);
        assert!((share - 0.8).abs() < 1e-3, "{name}: {share}");
    }
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        pruned.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("test accuracy"));

    let int8 = dir.join("pruned.int8.safetensors");
    let output = run(&[
        "quantize",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        pruned.to_str().unwrap(),
        "--calibration",
        "100",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("x smaller"), "{}", text(&output));
    let bytes = std::fs::read(&int8).unwrap();
    assert!(is_int8(&read_metadata(&int8, &bytes).unwrap()));
    assert!(bytes.len() * 3 < std::fs::metadata(&pruned).unwrap().len() as usize);
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        int8.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("int8"), "{}", text(&output));
    let output = run(&[
        "predict",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        int8.to_str().unwrap(),
        "--index",
        "0",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("\"predictions\""));

    let f16 = dir.join("half.safetensors");
    let output = run(&[
        "quantize",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        dense.to_str().unwrap(),
        "--precision",
        "f16",
        "--out",
        f16.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let half = std::fs::metadata(&f16).unwrap().len() as f64;
    let full = std::fs::metadata(&dense).unwrap().len() as f64;
    assert!(half < 0.55 * full, "{half} vs {full}");
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data_dir,
        "--checkpoint",
        f16.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn a_sweep_writes_its_table_csv_and_plot() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let dense = dir.join("dense.safetensors");
    let output = train(&data, &dense, &["--model", "logreg", "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let out = dir.join("sweep.safetensors");
    let output = run(&[
        "prune",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        dense.to_str().unwrap(),
        "--sweep",
        "0.5,0.9",
        "--fine-tune-epochs",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let csv = std::fs::read_to_string(dir.join("sweep-sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines().nth(2).unwrap().starts_with("0.9,0.9000"),
        "{csv}"
    );
    assert!(dir.join("sweep-sweep.png").exists());
    for sparsity in ["0.50", "0.90"] {
        let file = dir.join(format!("sweep-{sparsity}.safetensors"));
        let target: f64 = sparsity.parse().unwrap();
        assert!((zeros_share(&file, &["dense.weight"]) - target).abs() < 1e-3);
    }
}

#[test]
fn structured_pruning_writes_a_narrower_model_that_loads() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let dense = dir.join("dense.safetensors");
    let output = train(&data, &dense, &["--model", "course-cnn", "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let narrow = dir.join("narrow.safetensors");
    let output = run(&[
        "prune",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        dense.to_str().unwrap(),
        "--method",
        "structured",
        "--sparsity",
        "0.5",
        "--out",
        narrow.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let checkpoint = dl_nn::Checkpoint::load(&narrow).unwrap();
    assert_eq!(checkpoint.tensors["conv2d.weight"].dims(), [16, 1, 3, 3]);
    assert_eq!(
        checkpoint.tensors["dense.weight"].dims(),
        [64, 16 * 13 * 13]
    );
    assert_eq!(checkpoint.tensors["dense_1.weight"].dims(), [10, 64]);
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        narrow.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    // and it quantizes like any model
    let output = run(&[
        "quantize",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        narrow.to_str().unwrap(),
        "--compact",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let output = run(&[
        "evaluate",
        "--offline",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        dir.join("narrow.int8.dlc").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("int8"));
}
