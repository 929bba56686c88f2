//! `prune` and `quantize` end to end on a small synthetic MNIST: the files they write have the
//! sparsity, shapes and format they claim, `evaluate` and `predict` read them without flags, and
//! a sweep writes its table, CSV and plot.

mod common;

use std::path::{Path, PathBuf};

use common::{run, synthetic_data, text, train};
use dl_compress::{is_int8, read_metadata};

/// A temporary directory with the synthetic data and a `model` trained one epoch on it.
struct Trained {
    root: tempfile::TempDir,
    data: PathBuf,
    model: PathBuf,
}

fn trained(model: &str) -> Trained {
    let root = tempfile::tempdir().unwrap();
    let data = synthetic_data(root.path());
    let path = root.path().join("dense.safetensors");
    let output = train(&data, &path, &["--model", model, "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    Trained {
        root,
        data,
        model: path,
    }
}

impl Trained {
    fn at(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Runs `command --offline --data-dir DATA --checkpoint CHECKPOINT extra…`, which must succeed.
    fn succeed(&self, command: &str, checkpoint: &Path, extra: &[&str]) -> String {
        let mut arguments = vec![
            command,
            "--offline",
            "--data-dir",
            self.data.to_str().unwrap(),
        ];
        arguments.extend(["--checkpoint", checkpoint.to_str().unwrap()]);
        arguments.extend(extra);
        let output = run(&arguments);
        assert!(output.status.success(), "{arguments:?}: {}", text(&output));
        text(&output)
    }
}

fn zeros_share(path: &Path, names: &[&str]) -> f64 {
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
    let run = trained("mlp");
    let pruned = run.at("pruned.safetensors");
    let pruned_text = pruned.to_str().unwrap();
    run.succeed(
        "prune",
        &run.model,
        &[
            "--sparsity",
            "0.8",
            "--method",
            "layer",
            "--out",
            pruned_text,
        ],
    );
    // the layer method removes exactly 80% of each layer
    for name in ["dense.weight", "dense_1.weight", "dense_2.weight"] {
        let share = zeros_share(&pruned, &[name]);
        assert!((share - 0.8).abs() < 1e-3, "{name}: {share}");
    }
    assert!(run
        .succeed("evaluate", &pruned, &[])
        .contains("test accuracy"));

    let quantized = run.succeed("quantize", &pruned, &["--calibration", "100"]);
    assert!(quantized.contains("x smaller"), "{quantized}");
    let int8 = run.at("pruned.int8.safetensors");
    let bytes = std::fs::read(&int8).unwrap();
    assert!(is_int8(&read_metadata(&int8, &bytes).unwrap()));
    assert!(bytes.len() * 3 < std::fs::metadata(&pruned).unwrap().len() as usize);
    assert!(run.succeed("evaluate", &int8, &[]).contains("int8"));
    let predicted = run.succeed("predict", &int8, &["--index", "0", "--json"]);
    assert!(predicted.contains("\"predictions\""), "{predicted}");

    let half = run.at("half.safetensors");
    run.succeed(
        "quantize",
        &run.model,
        &["--precision", "f16", "--out", half.to_str().unwrap()],
    );
    let half_bytes = std::fs::metadata(&half).unwrap().len() as f64;
    let full_bytes = std::fs::metadata(&run.model).unwrap().len() as f64;
    assert!(
        half_bytes < 0.55 * full_bytes,
        "{half_bytes} vs {full_bytes}"
    );
    run.succeed("evaluate", &half, &[]);
}

#[test]
fn a_sweep_writes_its_table_csv_and_plot() {
    let run = trained("logreg");
    let out = run.at("sweep.safetensors");
    run.succeed(
        "prune",
        &run.model,
        &[
            "--sweep",
            "0.5,0.9",
            "--fine-tune-epochs",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let csv = std::fs::read_to_string(run.at("sweep-sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines().nth(2).unwrap().starts_with("0.9,0.9000"),
        "{csv}"
    );
    assert!(run.at("sweep-sweep.png").exists());
    for sparsity in ["0.50", "0.90"] {
        let file = run.at(&format!("sweep-{sparsity}.safetensors"));
        let target: f64 = sparsity.parse().unwrap();
        assert!((zeros_share(&file, &["dense.weight"]) - target).abs() < 1e-3);
    }
}

#[test]
fn structured_pruning_writes_a_narrower_model_that_loads() {
    let run = trained("course-cnn");
    let narrow = run.at("narrow.safetensors");
    run.succeed(
        "prune",
        &run.model,
        &[
            "--method",
            "structured",
            "--sparsity",
            "0.5",
            "--out",
            narrow.to_str().unwrap(),
        ],
    );
    let checkpoint = dl_nn::Checkpoint::load(&narrow).unwrap();
    assert_eq!(checkpoint.tensors["conv2d.weight"].dims(), [16, 1, 3, 3]);
    assert_eq!(
        checkpoint.tensors["dense.weight"].dims(),
        [64, 16 * 13 * 13]
    );
    assert_eq!(checkpoint.tensors["dense_1.weight"].dims(), [10, 64]);
    run.succeed("evaluate", &narrow, &[]);
    // and it quantizes like any model, here to the compact format
    run.succeed("quantize", &narrow, &["--compact"]);
    assert!(run
        .succeed("evaluate", &run.at("narrow.int8.dlc"), &[])
        .contains("int8"));
}
