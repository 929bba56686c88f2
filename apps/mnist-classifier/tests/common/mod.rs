//! Helpers shared by the binary's tests: a small synthetic MNIST-format dataset and running the
//! program.

#![allow(dead_code)]

pub mod catalogue;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use flate2::{write::GzEncoder, Compression};

/// The program under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_mnist-classifier");

/// A 28 x 28 image of class `class`: a bright 4 x 4 square at a position fixed by the class,
/// with a little seeded noise so that no two images are equal.
pub fn synthetic_image(class: usize, variant: usize) -> Vec<u8> {
    let mut pixels = vec![0u8; 28 * 28];
    let (row, column) = (4 + (class / 5) * 12, 2 + (class % 5) * 5);
    for y in row..row + 4 {
        for x in column..column + 4 {
            pixels[y * 28 + x] = 255;
        }
    }
    for (index, pixel) in pixels.iter_mut().enumerate() {
        let noise = ((index * 7919 + variant * 104_729) % 23) as u8;
        *pixel = pixel.saturating_sub(noise).max(noise / 2);
    }
    pixels
}

/// Writes `bytes`, gzip-compressed, to `path`.
pub fn write_gz(path: &Path, bytes: &[u8]) {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

/// Writes `count` synthetic images and labels as `PREFIX-images-idx3-ubyte.gz` and
/// `PREFIX-labels-idx1-ubyte.gz`.
pub fn write_set(directory: &Path, prefix: &str, count: usize) {
    let mut images = vec![0, 0, 8, 3];
    images.extend((count as u32).to_be_bytes());
    images.extend(28u32.to_be_bytes());
    images.extend(28u32.to_be_bytes());
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((count as u32).to_be_bytes());
    for index in 0..count {
        let class = index % 10;
        images.extend(synthetic_image(class, index));
        labels.push(class as u8);
    }
    write_gz(
        &directory.join(format!("{prefix}-images-idx3-ubyte.gz")),
        &images,
    );
    write_gz(
        &directory.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        &labels,
    );
}

/// A data directory holding a small MNIST-format dataset.
pub fn synthetic_data(root: &Path) -> PathBuf {
    let data = root.join("data");
    let mnist = data.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_set(&mnist, "train", 400);
    write_set(&mnist, "t10k", 100);
    data
}

/// Runs the program with `arguments`, outside any `DL_DATA_DIR`.
pub fn run(arguments: &[&str]) -> Output {
    Command::new(BINARY)
        .args(arguments)
        .env_remove("DL_DATA_DIR")
        .output()
        .expect("the binary runs")
}

/// What the program printed, standard output then standard error.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The command of `train` on the data in `data`, offline, writing `out`, in batches of 20, plus
/// `extra`.
pub fn train_command(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(["train", "--data-dir", data.to_str().unwrap(), "--offline"])
        .args(["--out", out.to_str().unwrap(), "--batch-size", "20"])
        .args(extra)
        .env_remove("DL_DATA_DIR");
    command
}

/// Runs `train` (see [`train_command`]).
pub fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    train_command(data, out, extra)
        .output()
        .expect("the binary runs")
}

/// Runs `evaluate` of `checkpoint` on the data in `data`.
pub fn evaluate(checkpoint: &Path, data: &Path) -> Output {
    run(&[
        "evaluate",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

/// Fails unless the command failed with status 1, printing every one of `expected`, and
/// nothing panicked.
pub fn assert_clear_failure(output: &Output, expected: &[&str]) {
    let log = text(output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    for part in expected {
        assert!(log.contains(part), "{part}: {log}");
    }
    assert!(!log.contains("panicked"), "{log}");
}
