//! The real MNIST files from `../shared/datasets`, when present: sizes, the standard label
//! counts and the pixel range, and how long loading takes (printed, not asserted).
//! Skips, saying so, when the folder is absent.

use std::path::PathBuf;
use std::time::Instant;

use dl_data::Mnist;
use dl_tensor::DType;

fn shared_datasets() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets"
    ));
    path.join("mnist").is_dir().then_some(path)
}

#[test]
fn real_mnist_has_the_standard_sizes_and_label_counts() {
    let Some(data_dir) = shared_datasets() else {
        println!("skipping: ../shared/datasets not found");
        return;
    };
    let started = Instant::now();
    let mnist = Mnist::load(&data_dir).unwrap();
    println!(
        "loaded 70,000 MNIST images in {:.3} s",
        started.elapsed().as_secs_f64()
    );

    assert_eq!(mnist.train.images.dims(), &[60_000, 1, 28, 28]);
    assert_eq!(mnist.test.images.dims(), &[10_000, 1, 28, 28]);
    // The standard MNIST counts per digit 0–9, as widely quoted (e.g. a bincount of
    // torchvision's MNIST targets); these files give exactly these.
    let train_counts = mnist.train.label_counts().unwrap();
    let test_counts = mnist.test.label_counts().unwrap();
    println!("train label counts: {train_counts:?}");
    println!("test label counts: {test_counts:?}");
    assert_eq!(
        train_counts,
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        test_counts,
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );

    for set in [&mnist.train, &mnist.test] {
        let minimum = set.images.min_all().unwrap().to_scalar::<f32>().unwrap();
        let maximum = set.images.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!((minimum, maximum), (0.0, 1.0));
    }
    // The mean pixel of the training set is the usual normalisation constant (summed in f64:
    // 47 million f32 additions would drift).
    let mean = mnist
        .train
        .images
        .to_dtype(DType::F64)
        .unwrap()
        .mean_all()
        .unwrap();
    let mean = mean.to_scalar::<f64>().unwrap();
    println!("train pixel mean: {mean:.5}");
    assert!(
        (mean - f64::from(dl_data::MNIST_MEAN)).abs() < 1e-4,
        "mean {mean}"
    );
}
