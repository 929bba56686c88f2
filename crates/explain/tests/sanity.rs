//! Adebayo et al.'s sanity checks on a small CNN trained here on a synthetic task (where a
//! bright blob sits tells the class): the maps of the gradient methods must change when the
//! top layers are re-initialised and when the labels the model learned were random, and
//! deleting pixels in the order a map ranks them must hurt the prediction faster than deleting
//! them at random.

use dl_autograd::Gradients;
use dl_explain::{
    area_under_curve, cascading_randomization, deletion_curve, grad_cam, gradient_times_input,
    mean_rank_correlation, spearman, vanilla_gradient, IntegratedGradients, SmoothGrad,
};
use dl_nn::{Activation, Layer, Mode, Sequential, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer};
use dl_tensor::{DType, Device, SeededRng, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SIDE: usize = 12;

/// `count` noisy 12 x 12 images: class 0 has a bright 3 x 3 blob in the top-left quarter, class
/// 1 in the bottom-right quarter, class 2 a horizontal bar across the middle.
fn synthetic(count: usize, seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = SeededRng::new(seed);
    let mut pixels = Vec::with_capacity(count * SIDE * SIDE);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let class = rng.below(3);
        let mut image: Vec<f32> = (0..SIDE * SIDE).map(|_| 0.1 * rng.uniform()).collect();
        let (y, x) = match class {
            0 => (rng.below(3) + 1, rng.below(3) + 1),
            1 => (rng.below(3) + 7, rng.below(3) + 7),
            _ => (5, 0),
        };
        let (height, width) = if class == 2 { (2, SIDE) } else { (3, 3) };
        for dy in 0..height {
            for dx in 0..width {
                image[(y + dy) * SIDE + x + dx] = 0.8 + 0.2 * rng.uniform();
            }
        }
        pixels.extend(image);
        labels.push(class as u32);
    }
    (
        Tensor::from_vec(pixels, (count, 1, SIDE, SIDE), &Device::Cpu).unwrap(),
        labels,
    )
}

/// A small CNN trained with Adam on `labels` (300 steps of 32).
fn trained(labels_seed: Option<u64>) -> Result<(VarStore, Sequential), Box<dyn std::error::Error>> {
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    let model = Sequential::builder(&store.root(), &[1, SIDE, SIDE])
        .conv2d(6, 3, Activation::Relu)?
        .max_pool2d(2)?
        .flatten()?
        .dense(24, Activation::Relu)?
        .dense(3, Activation::Softmax)?
        .build();
    let (images, mut labels) = synthetic(960, 7);
    if let Some(seed) = labels_seed {
        // Adebayo's data randomization: the same images with labels in a random order
        let mut rng = SeededRng::new(seed);
        for index in (1..labels.len()).rev() {
            labels.swap(index, rng.below(index + 1));
        }
    }
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu)?;
    let mut optimizer = Adam::new(AdamConfig::default().learning_rate(3e-3))?;
    let variables = store.trainable_variables();
    for step in 0..300 {
        let start = (step * 32) % (960 - 32);
        let logits = model.forward(&images.narrow(0, start, 32)?, Mode::Train)?;
        let loss = dl_nn::cross_entropy(&logits, &labels.narrow(0, start, 32)?)?;
        let gradients = Gradients::compute(
            &loss,
            variables.iter().map(|(name, var)| (name.as_str(), var)),
        )?;
        optimizer.step(&gradients)?;
    }
    Ok((store, model))
}

fn accuracy(model: &Sequential, images: &Tensor, labels: &[u32]) -> f64 {
    let predicted = model
        .forward(images, Mode::Eval)
        .unwrap()
        .argmax(1)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
}

#[test]
fn spearman_matches_a_hand_computation() -> TestResult {
    assert_eq!(
        spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0])?,
        1.0
    );
    assert_eq!(
        spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0])?,
        -1.0
    );
    // ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): 4.5 / sqrt(4.5 · 5) (scipy.stats.spearmanr: 0.9486832980505138)
    let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0])?;
    assert!((rho - 0.948_683_298_050_513_8).abs() < 1e-12, "{rho}");
    assert!(spearman(&[1.0], &[1.0, 2.0]).is_err());
    Ok(())
}

#[test]
fn gradient_maps_fail_to_survive_randomization_as_they_should() -> TestResult {
    let (_store, model) = trained(None)?;
    let (images, labels) = synthetic(200, 99);
    let trained_accuracy = accuracy(&model, &images, &labels);
    assert!(
        trained_accuracy > 0.95,
        "the model learned the task: {trained_accuracy}"
    );
    let probe = images.narrow(0, 0, 12)?;
    let classes = &labels[..12];
    let before = model.store().snapshot()?;

    type Method = fn(&Sequential, &Tensor, &[u32]) -> dl_explain::Result<Tensor>;
    let methods: [(&str, Method); 2] = [
        ("gradient", |model, x, c| vanilla_gradient(model, x, c)),
        ("integrated gradients", |model, x, c| {
            Ok(IntegratedGradients {
                steps: 32,
                baseline: 0.0,
            }
            .attribute(model, x, c)?
            .attributions)
        }),
    ];
    for (name, method) in methods {
        let stages = cascading_randomization(&model, 5, |model| method(model, &probe, classes))?;
        let rhos: Vec<f64> = stages.iter().map(|stage| stage.rank_correlation).collect();
        let signed: Vec<f64> = stages
            .iter()
            .map(|stage| stage.signed_rank_correlation)
            .collect();
        eprintln!(
            "{name}: ρ of |map| per stage (top layer first) {rhos:?}, of the signed map {signed:?}"
        );
        assert_eq!(stages[0].layer, "dense_1");
        // once the top two layers are random the maps no longer resemble the trained model's
        assert!(
            signed[1] < 0.3 && signed[2] < 0.3,
            "{name}: signed ρ {signed:?}"
        );
        if name == "gradient" {
            assert!(rhos[1] < 0.3 && rhos[2] < 0.3, "{name}: ρ {rhos:?}");
        }
    }
    // the weights came back
    for ((name, a), (_, b)) in before.iter().zip(&model.store().snapshot()?) {
        assert_eq!(
            a.flatten_all()?.to_vec1::<f32>()?,
            b.flatten_all()?.to_vec1::<f32>()?,
            "{name}"
        );
    }

    // data randomization: a model that learned random labels explains differently
    let (_random_store, random_labels) = trained(Some(3))?;
    let real = vanilla_gradient(&model, &probe, classes)?;
    let shuffled = vanilla_gradient(&random_labels, &probe, classes)?;
    let rho = mean_rank_correlation(&real, &shuffled, true)?;
    eprintln!("gradient maps of the real and the random-label model: ρ {rho:.3}");
    assert!(rho < 0.5, "{rho}");
    Ok(())
}

#[test]
fn deleting_what_the_maps_rank_first_hurts_more_than_random_deletion() -> TestResult {
    let (_store, model) = trained(None)?;
    let (images, labels) = synthetic(24, 123);
    let classes = labels.as_slice();
    let maps: Vec<(&str, Tensor)> = vec![
        ("gradient", vanilla_gradient(&model, &images, classes)?),
        (
            "gradient x input",
            gradient_times_input(&model, &images, classes)?,
        ),
        (
            "smoothgrad",
            SmoothGrad {
                samples: 16,
                ..SmoothGrad::default()
            }
            .attribute(&model, &images, classes)?
            .abs()?,
        ),
        (
            "integrated gradients",
            IntegratedGradients::default()
                .attribute(&model, &images, classes)?
                .attributions,
        ),
        ("grad-cam", grad_cam(&model, &images, classes)?),
    ];
    let mut rng = SeededRng::new(8);
    for (name, map) in &maps {
        let (mut ranked, mut random) = (0.0, 0.0);
        for (index, &class) in classes.iter().enumerate() {
            let image = images.get(index)?;
            ranked += area_under_curve(&deletion_curve(
                &model,
                &image,
                class,
                &map.get(index)?,
                24,
                0.0,
            )?);
            let noise: Vec<f32> = (0..SIDE * SIDE).map(|_| rng.uniform()).collect();
            let order = Tensor::from_vec(noise, (SIDE, SIDE), &Device::Cpu)?;
            random += area_under_curve(&deletion_curve(&model, &image, class, &order, 24, 0.0)?);
        }
        eprintln!(
            "{name}: deletion AUC {:.3} against {:.3} at random",
            ranked / 24.0,
            random / 24.0
        );
        assert!(ranked < random, "{name}: {ranked} is not below {random}");
    }
    Ok(())
}
