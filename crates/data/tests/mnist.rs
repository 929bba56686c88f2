//! MNIST and Fashion-MNIST loading on a small synthetic data directory made by the test.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::idx_bytes;
use dl_data::{DataError, FashionMnist, ImageDataset, ImageSet, Mnist, MNIST_MEAN, MNIST_STD};
use dl_tensor::DType;
use flate2::Compression;

/// `bytes` compressed with gzip, fast.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    common::gzip(bytes, Compression::fast())
}

/// The images of `set` as f32 values, in row-major order.
fn pixels(set: &ImageSet) -> Vec<f32> {
    set.images.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Image `i` has every pixel equal to `(i * 40 + pixel) % 256`; label `i` is `(i * 3) % 10`.
fn synthetic_part(count: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..count)
        .flat_map(|image| (0..784).map(move |pixel| ((image * 40 + pixel) % 256) as u8))
        .collect();
    let labels: Vec<u8> = (0..count).map(|image| (image * 3 % 10) as u8).collect();
    (
        idx_bytes(&[count as u32, 28, 28], &pixels),
        idx_bytes(&[count as u32], &labels),
    )
}

/// Writes a dataset directory with 7 training and 3 test images; gzip or raw file names.
fn write_dataset(directory: &Path, compressed: bool) {
    std::fs::create_dir_all(directory).unwrap();
    let (train_images, train_labels) = synthetic_part(7);
    let (test_images, test_labels) = synthetic_part(3);
    for (name, bytes) in [
        ("train-images-idx3-ubyte", train_images),
        ("train-labels-idx1-ubyte", train_labels),
        ("t10k-images-idx3-ubyte", test_images),
        ("t10k-labels-idx1-ubyte", test_labels),
    ] {
        if compressed {
            std::fs::write(directory.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(directory.join(name), bytes).unwrap();
        }
    }
}

fn directory_listing(directory: &Path) -> BTreeSet<String> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn check_synthetic(mnist: &Mnist) {
    assert_eq!(mnist.train.images.dims(), &[7, 1, 28, 28]);
    assert_eq!(mnist.train.images.dtype(), DType::F32);
    assert_eq!(mnist.train.labels.dims(), &[7]);
    assert_eq!(mnist.train.labels.dtype(), DType::U32);
    assert_eq!(mnist.train.len(), 7);
    assert!(!mnist.train.is_empty());
    assert_eq!(mnist.test.images.dims(), &[3, 1, 28, 28]);
    assert_eq!(mnist.test.len(), 3);

    let labels = mnist.train.labels.to_vec1::<u32>().unwrap();
    assert_eq!(labels, vec![0, 3, 6, 9, 2, 5, 8]);
    // Labels 0, 3, 6, 9, 2, 5, 8: one each of those, none of 1, 4, 7.
    assert_eq!(
        mnist.train.label_counts().unwrap(),
        vec![1, 0, 1, 1, 0, 1, 1, 0, 1, 1]
    );

    let pixels = pixels(&mnist.train);
    for (image, pixel) in [(0usize, 0usize), (0, 255), (1, 0), (2, 100), (6, 783)] {
        let byte = (image * 40 + pixel) % 256;
        // Image 2, pixel 100 is row 3, column 16; its byte is (80 + 100) % 256 = 180.
        assert_eq!(
            pixels[image * 784 + pixel],
            byte as f32 / 255.0,
            "image {image}, pixel {pixel}"
        );
    }
    assert_eq!(pixels.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
    assert_eq!(
        pixels.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        1.0
    );
}

#[test]
fn synthetic_gzip_directory_loads() {
    let root = tempfile::tempdir().unwrap();
    write_dataset(&root.path().join("mnist"), true);
    check_synthetic(&Mnist::load(root.path()).unwrap());
}

#[test]
fn uncompressed_file_names_are_accepted() {
    let root = tempfile::tempdir().unwrap();
    write_dataset(&root.path().join("mnist"), false);
    check_synthetic(&Mnist::load(root.path()).unwrap());
}

#[test]
fn fashion_mnist_reads_its_own_directory() {
    let root = tempfile::tempdir().unwrap();
    write_dataset(&root.path().join("fashion-mnist"), true);
    check_synthetic(&FashionMnist::load(root.path()).unwrap());
    let text = Mnist::load(root.path()).unwrap_err().to_string();
    assert!(text.contains("MNIST not found"), "{text}");
    assert_eq!(ImageDataset::FashionMnist.key(), "fashion-mnist");
    assert_eq!(ImageDataset::FashionMnist.name(), "Fashion-MNIST");
    assert_eq!(ImageDataset::FashionMnist.class_names()[9], "Ankle boot");
    assert_eq!(ImageDataset::Mnist.class_names()[7], "7");
}

#[test]
fn read_only_directory_loads_and_gains_no_files() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("mnist");
    write_dataset(&directory, true);
    let before = directory_listing(&directory);
    let root_before = directory_listing(root.path());
    std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o555)).unwrap();
    let loaded = Mnist::load(root.path());
    // Restore write permission so the temporary directory can be removed, then check.
    std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o755)).unwrap();
    check_synthetic(&loaded.unwrap());
    // Tests run as root, whom permissions do not stop: check that nothing was written.
    assert_eq!(directory_listing(&directory), before);
    assert_eq!(directory_listing(root.path()), root_before);
}

#[test]
fn missing_directory_says_how_to_get_the_data() {
    let root = tempfile::tempdir().unwrap();
    let error = Mnist::load(root.path()).unwrap_err();
    let DataError::Missing {
        dataset,
        key,
        directory,
        file,
    } = &error
    else {
        panic!("expected Missing, got {error:?}");
    };
    assert_eq!((dataset.as_str(), key.as_str()), ("MNIST", "mnist"));
    assert_eq!(directory, &root.path().join("mnist"));
    assert_eq!(file, "train-images-idx3-ubyte.gz");
    let text = error.to_string();
    assert!(
        text.contains(&root.path().join("mnist").display().to_string()),
        "{text}"
    );
    assert!(text.contains("cargo xtask download-data"), "{text}");
    assert!(text.contains("--dataset mnist"), "{text}");
}

#[test]
fn one_missing_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("mnist");
    write_dataset(&directory, true);
    std::fs::remove_file(directory.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let text = Mnist::load(root.path()).unwrap_err().to_string();
    assert!(
        text.contains("(t10k-labels-idx1-ubyte.gz missing)"),
        "{text}"
    );
}

#[test]
fn normalisation_uses_mean_and_std() {
    let root = tempfile::tempdir().unwrap();
    write_dataset(&root.path().join("mnist"), true);
    let mnist = Mnist::load(root.path()).unwrap();
    let normalised = mnist.train.normalised(MNIST_MEAN, MNIST_STD).unwrap();
    let raw = pixels(&mnist.train);
    let standard = pixels(&normalised);
    for (x, z) in raw.iter().zip(&standard) {
        assert!((z - (x - 0.1307) / 0.3081).abs() < 1e-5);
    }
    assert!(mnist.train.normalised(0.0, 0.0).is_err());
    assert!(mnist.train.normalised(f32::NAN, 1.0).is_err());
}

#[test]
fn select_gathers_examples_in_order() {
    let root = tempfile::tempdir().unwrap();
    write_dataset(&root.path().join("mnist"), true);
    let mnist = Mnist::load(root.path()).unwrap();
    let subset = mnist.train.select(&[6, 0, 3]).unwrap();
    assert_eq!(subset.labels.to_vec1::<u32>().unwrap(), vec![8, 0, 9]);
    assert_eq!(subset.images.dims(), &[3, 1, 28, 28]);
}
