//! The program as a user runs it, on a small synthetic MNIST-format dataset written here: a
//! resumed run equals the uninterrupted one bit for bit, the same seed gives the same samples,
//! the IDX output reads back through dl-data, `score` prints its table, and bad input gets a
//! clear error.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use dl_data::{read_idx, IdxArray, ImageDataset};
use dl_models::{ImageModel, ImageRecipe, Recipe};
use dl_nn::{Checkpoint, VarStore};
use dl_tensor::{DType, Device};

const BINARY: &str = env!("CARGO_BIN_EXE_mnist-gan");

/// A 28 x 28 "digit" of class `class`: a bar whose angle and place depend on the class, with
/// seeded noise so that no two images are equal.
fn synthetic_image(class: usize, variant: usize) -> Vec<u8> {
    let mut pixels = vec![0u8; 28 * 28];
    let angle = class as f32 * 0.314;
    for step in 0..16 {
        let t = step as f32 - 8.0;
        let x = (14.0 + t * angle.cos()).round() as usize;
        let y = (14.0 + t * angle.sin() + (class % 3) as f32).round() as usize;
        if x < 28 && y < 28 {
            pixels[y * 28 + x] = 255;
        }
    }
    for (index, pixel) in pixels.iter_mut().enumerate() {
        let noise = ((index * 7919 + variant * 104_729) % 31) as u8;
        *pixel = pixel.saturating_sub(noise).max(noise / 3);
    }
    pixels
}

/// Writes `count` images and labels as `PREFIX-images-idx3-ubyte` and `PREFIX-labels-idx1-ubyte`.
fn write_set(directory: &Path, prefix: &str, count: usize) {
    let images = IdxArray {
        dims: vec![count, 28, 28],
        data: (0..count)
            .flat_map(|i| synthetic_image(i % 10, i))
            .collect(),
    };
    let labels = IdxArray {
        dims: vec![count],
        data: (0..count).map(|i| (i % 10) as u8).collect(),
    };
    std::fs::write(
        directory.join(format!("{prefix}-images-idx3-ubyte")),
        images.to_bytes(),
    )
    .unwrap();
    std::fs::write(
        directory.join(format!("{prefix}-labels-idx1-ubyte")),
        labels.to_bytes(),
    )
    .unwrap();
}

/// A data directory holding a small MNIST-format dataset.
fn synthetic_data(root: &Path) -> PathBuf {
    let data = root.join("data");
    let mnist = data.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_set(&mnist, "train", 192);
    write_set(&mnist, "t10k", 64);
    data
}

fn run(arguments: &[&str]) -> Output {
    Command::new(BINARY)
        .args(arguments)
        .env_remove("DL_DATA_DIR")
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
}

/// Fails unless the command failed with status 1 (not a panic), printing each of `expected`.
fn assert_clear_failure(output: &Output, expected: &[&str]) {
    let log = text(output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    for part in expected {
        assert!(log.contains(part), "{part}: {log}");
    }
}

/// Trains a tiny DCGAN on `data` into `out`, plus `extra` flags.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut arguments = vec![
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--offline",
        "--out",
        out.to_str().unwrap(),
        "--width",
        "4",
        "--latent-dim",
        "8",
        "--batch-size",
        "32",
        "--score-samples",
        "0",
    ];
    arguments.extend_from_slice(extra);
    run(&arguments)
}

/// Every tensor of a checkpoint, by name, as raw values.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    Checkpoint::load(path)
        .unwrap()
        .tensors
        .into_iter()
        .filter(|(_, tensor)| tensor.dtype() == DType::F32)
        .map(|(name, tensor)| {
            (
                name,
                tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

/// A logistic-regression classifier checkpoint with the recipe mnist-classifier writes.
fn classifier_checkpoint(path: &Path) {
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    let recipe = ImageRecipe::new(ImageModel::Mlp, ImageDataset::Mnist);
    recipe.build(&store).unwrap();
    let metadata = Recipe::ImageClassifier(recipe).metadata().unwrap();
    dl_nn::save_checkpoint(path, &store, &metadata).unwrap();
}

#[test]
fn a_resumed_run_equals_the_uninterrupted_one_bit_for_bit() {
    let directory = tempfile::tempdir().unwrap();
    let data = synthetic_data(directory.path());
    let whole = directory.path().join("whole/gan.safetensors");
    let half = directory.path().join("half/gan.safetensors");
    let resumed = directory.path().join("resumed/gan.safetensors");
    assert_success(&train(&data, &whole, &["--epochs", "2"]));
    assert_success(&train(&data, &half, &["--epochs", "1"]));
    let output = train(
        &data,
        &resumed,
        &["--epochs", "2", "--resume", half.to_str().unwrap()],
    );
    assert_success(&output);
    assert!(text(&output).contains("after epoch 1"), "{}", text(&output));
    let (expected, actual) = (tensors(&whole), tensors(&resumed));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (name, values) in &expected {
        assert!(values == &actual[name], "{name} differs after resuming");
    }
    // Both optimizers' states lie beside the run, and the per-epoch grids and the GIF.
    for name in [
        "gan.generator.safetensors",
        "gan.discriminator.safetensors",
        "gan-samples/epoch-002.png",
        "gan-samples/epochs.gif",
    ] {
        assert!(whole.parent().unwrap().join(name).is_file(), "{name}");
    }
    // The history has the step's own columns.
    let history = std::fs::read_to_string(whole.with_extension("csv")).unwrap();
    let header = history.lines().next().unwrap();
    for column in ["d_loss", "g_loss", "d_real", "d_fake"] {
        assert!(header.contains(column), "{header}");
    }
}

#[test]
fn samples_are_seeded_read_back_as_idx_and_bad_requests_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let data = synthetic_data(directory.path());
    let gan = directory.path().join("gan.safetensors");
    assert_success(&train(&data, &gan, &["--epochs", "1"]));
    let gan_path = gan.to_str().unwrap();
    let file = |name: &str| directory.path().join(name).to_str().unwrap().to_string();

    // Same seed, same bytes; another seed, other images.
    for (name, seed) in [("a.idx", "5"), ("b.idx", "5"), ("c.idx", "6")] {
        assert_success(&run(&[
            "generate",
            "--checkpoint",
            gan_path,
            "--count",
            "7",
            "--seed",
            seed,
            "--out",
            &file(name),
        ]));
    }
    let read = |name: &str| read_idx(Path::new(&file(name))).unwrap();
    let (a, b, c) = (read("a.idx"), read("b.idx"), read("c.idx"));
    assert_eq!(a.dims, [7, 28, 28]);
    assert_eq!(a, b);
    assert_ne!(a.data, c.data);
    assert_success(&run(&[
        "generate",
        "--checkpoint",
        gan_path,
        "--out",
        &file("grid.png"),
    ]));
    let grid = image::open(file("grid.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (8 * 30 + 2, 8 * 30 + 2));
    assert_success(&run(&[
        "interpolate",
        "--checkpoint",
        gan_path,
        "--steps",
        "5",
        "--out",
        &file("walk.png"),
    ]));

    // Bad requests.
    assert_clear_failure(
        &run(&[
            "generate",
            "--checkpoint",
            gan_path,
            "--digit",
            "3",
            "--out",
            &file("x.png"),
        ]),
        &["--digit needs a conditional GAN", "--conditional"],
    );
    assert_clear_failure(
        &run(&[
            "generate",
            "--checkpoint",
            gan_path,
            "--count",
            "0",
            "--out",
            &file("x.png"),
        ]),
        &["--count must be at least 1"],
    );
    assert_clear_failure(
        &run(&[
            "generate",
            "--checkpoint",
            gan_path,
            "--out",
            &file("x.jpg"),
        ]),
        &[".png", ".idx"],
    );
    let classifier = file("classifier.safetensors");
    classifier_checkpoint(Path::new(&classifier));
    assert_clear_failure(
        &run(&[
            "generate",
            "--checkpoint",
            &classifier,
            "--out",
            &file("x.png"),
        ]),
        &["is not a GAN", "image classifier"],
    );
    let data_dir = data.to_str().unwrap();
    assert_clear_failure(
        &run(&[
            "score",
            "--checkpoint",
            gan_path,
            "--classifier",
            gan_path,
            "--data-dir",
            data_dir,
            "--offline",
        ]),
        &["must be an mnist-classifier checkpoint", "GAN"],
    );
    assert_clear_failure(
        &run(&[
            "score",
            "--checkpoint",
            gan_path,
            "--classifier",
            &file("missing.safetensors"),
        ]),
        &["cargo run --release -p mnist-classifier"],
    );
    assert_clear_failure(
        &run(&[
            "score",
            "--samples",
            &file("grid.png"),
            "--classifier",
            &classifier,
            "--data-dir",
            data_dir,
            "--offline",
        ]),
        &["--samples", "grid.png"],
    );
    assert_clear_failure(
        &train(&data, &gan, &["--real-target", "0.3"]),
        &["--real-target"],
    );

    // score reads a GAN or an IDX file and prints the table against the real references.
    let scored = run(&[
        "score",
        "--checkpoint",
        gan_path,
        "--classifier",
        &classifier,
        "--count",
        "40",
        "--data-dir",
        data_dir,
        "--offline",
    ]);
    assert_success(&scored);
    for row in [
        "generated",
        "real test (ceiling)",
        "train vs test (floor)",
        "class histogram",
    ] {
        assert!(text(&scored).contains(row), "{}", text(&scored));
    }
    let from_file = run(&[
        "score",
        "--samples",
        &file("a.idx"),
        "--classifier",
        &classifier,
        "--data-dir",
        data_dir,
        "--offline",
        "--json",
    ]);
    assert_success(&from_file);
    let json: serde_json::Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(json["generated"]["images"], 7);
}

#[test]
fn a_conditional_gan_generates_the_digit_asked_for() {
    let directory = tempfile::tempdir().unwrap();
    let data = synthetic_data(directory.path());
    let gan = directory.path().join("cgan.safetensors");
    assert_success(&train(&data, &gan, &["--epochs", "1", "--conditional"]));
    let gan_path = gan.to_str().unwrap();
    let out = directory.path().join("sevens.idx");
    assert_success(&run(&[
        "generate",
        "--checkpoint",
        gan_path,
        "--digit",
        "7",
        "--count",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(read_idx(&out).unwrap().dims, [4, 28, 28]);
    assert_clear_failure(
        &run(&[
            "generate",
            "--checkpoint",
            gan_path,
            "--digit",
            "12",
            "--out",
            out.to_str().unwrap(),
        ]),
        &["--digit must be 0 to 9"],
    );
}
