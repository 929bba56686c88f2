//! The score on real MNIST (read from `../shared/datasets`; skipped, saying so, when it is
//! absent), with a classifier trained here: its figures for a fixed small set of real images
//! equal a hand computation from the classifier's own probabilities, real digits raise no
//! warning, and a constant generator and a noise generator are both flagged.

use std::path::PathBuf;

use dl_data::{BatchLoader, ImageDataset, Mnist};
use dl_models::{ImageModel, ImageRecipe};
use dl_nn::{Loss, Sequential, VarStore};
use dl_optim::{Adam, AdamConfig};
use dl_tensor::{DType, Device, SeededRng};
use dl_train::{ProgressMode, Trainer};
use mnist_gan::quality::{self, Reference};

fn real_mnist() -> Option<Mnist> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    match ImageDataset::Mnist.load(&data) {
        Ok(mnist) => Some(mnist),
        Err(error) => {
            eprintln!("skipped: real MNIST is not in {} ({error})", data.display());
            None
        }
    }
}

/// The zoo's MLP, one epoch on the real training set (~97%).
fn classifier(mnist: &Mnist) -> Sequential {
    let store = VarStore::new(&Device::Cpu, DType::F32, 7);
    let model = ImageRecipe::new(ImageModel::Mlp, ImageDataset::Mnist)
        .build(&store)
        .unwrap();
    let loader = BatchLoader::training(&mnist.train, 128, 7).unwrap();
    let mut trainer = Trainer::new(Box::new(Adam::new(AdamConfig::default()).unwrap()))
        .loss(Loss::CrossEntropy)
        .epochs(1)
        .progress(ProgressMode::Quiet);
    trainer
        .fit(&model, &store, |epoch| loader.epoch_batches(epoch))
        .unwrap();
    model
}

#[test]
fn the_score_of_real_digits_equals_a_hand_computation_and_failures_are_flagged() {
    let Some(mnist) = real_mnist() else {
        return;
    };
    let model = classifier(&mnist);
    let (train, test) = (&mnist.train.images, &mnist.test.images);
    let reference = Reference::new(&model, train, test).unwrap();

    // 20 fixed test images: IS, histogram and confident share by hand from p(y|x).
    let few = test.narrow(0, 100, 20).unwrap();
    let scored = reference.quality(&few, true).unwrap();
    let probabilities: Vec<Vec<f32>> = model.predict(&few).unwrap().to_vec2().unwrap();
    let mut marginal = [0f64; 10];
    for row in &probabilities {
        for (sum, &p) in marginal.iter_mut().zip(row) {
            *sum += f64::from(p) / 20.0;
        }
    }
    let mean_kl: f64 = probabilities
        .iter()
        .map(|row| {
            row.iter()
                .zip(marginal)
                .filter(|(&p, _)| p > 0.0)
                .map(|(&p, q)| f64::from(p) * (f64::from(p).ln() - q.ln()))
                .sum::<f64>()
        })
        .sum::<f64>()
        / 20.0;
    // Ten splits of two images each: the score is their mean, so check the one-split value.
    let one_split = dl_nn::inception_score(&model.predict(&few).unwrap(), 1).unwrap();
    assert!(
        (one_split.mean - mean_kl.exp()).abs() < 1e-4,
        "{} vs {}",
        one_split.mean,
        mean_kl.exp()
    );
    let argmax = |row: &Vec<f32>| (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
    let mut histogram = [0f64; 10];
    probabilities
        .iter()
        .for_each(|row| histogram[argmax(row)] += 0.05);
    for (ours, hand) in scored.histogram.iter().zip(histogram) {
        assert!(
            (ours - hand).abs() < 1e-9,
            "{:?} vs {histogram:?}",
            scored.histogram
        );
    }
    let confident = probabilities
        .iter()
        .filter(|row| row.iter().any(|&p| p > 0.9))
        .count();
    assert!((scored.confident - confident as f64 / 20.0).abs() < 1e-12);

    // Real digits: no warning. 1,000 of them against the test statistics.
    let real = reference
        .quality(&train.narrow(0, 0, 1000).unwrap(), false)
        .unwrap();
    assert!(
        quality::diagnose(&real).is_empty(),
        "{:?}",
        quality::diagnose(&real)
    );

    // A constant generator: one digit 1,000 times. A noise generator: uniform pixels.
    let constant = train
        .narrow(0, 0, 1)
        .unwrap()
        .repeat((1000, 1, 1, 1))
        .unwrap();
    let findings = quality::diagnose(&reference.quality(&constant, false).unwrap());
    assert!(
        findings.iter().any(|f| f.contains("nearly identical")),
        "{findings:?}"
    );
    assert!(
        findings.iter().any(|f| f.contains("100% of the samples")),
        "{findings:?}"
    );
    let noise = SeededRng::new(3)
        .uniform_tensor((1000, 1, 28, 28), 0.0, 1.0, &Device::Cpu)
        .unwrap();
    let noisy = reference.quality(&noise, false).unwrap();
    let findings = quality::diagnose(&noisy);
    assert!(
        findings
            .iter()
            .any(|f| f.contains("do not look like the data")),
        "{findings:?}"
    );
    assert!(noisy.frechet.unwrap() > 10.0 * real.frechet.unwrap());
    // Copies: a training image is its own nearest neighbour, at distance 0.
    let copied = reference
        .quality(&train.narrow(0, 5, 10).unwrap(), true)
        .unwrap();
    assert_eq!(copied.copies, Some(1.0));
}
