//! Every method against a case worked by hand: a linear model (a Dense layer on a 2 x 2 image),
//! where the gradient is the weight row and Integrated Gradients is exactly gradient × input,
//! and a 1 x 1 convolution under a Dense layer for Grad-CAM; then properties that hold for any
//! model (batching changes nothing, completeness of Integrated Gradients), and bad settings.

use dl_explain::{
    class_score_gradient, grad_cam, gradient_times_input, vanilla_gradient, ExplainError,
    IntegratedGradients, Occlusion, SmoothGrad,
};
use dl_nn::{Activation, Conv2dConfig, Sequential, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const W: [[f32; 4]; 3] = [
    [0.5, -1.0, 2.0, 0.0],
    [1.5, 0.25, -0.5, 1.0],
    [-2.0, 0.75, 1.0, -0.25],
];
const B: [f32; 3] = [0.1, -0.2, 0.3];
const X: [f32; 4] = [0.2, 0.9, 0.4, 0.6];

/// Dense(4 → 3) on a flattened 1 x 2 x 2 image, with the weights above.
fn linear_model() -> Result<(VarStore, Sequential), Box<dyn std::error::Error>> {
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let model = Sequential::builder(&store.root(), &[1, 2, 2])
        .flatten()?
        .dense(3, Activation::Softmax)?
        .build();
    store
        .get("dense.weight")
        .unwrap()
        .set(&Tensor::new(&W, &Device::Cpu)?)?;
    store
        .get("dense.bias")
        .unwrap()
        .set(&Tensor::new(&B, &Device::Cpu)?)?;
    Ok((store, model))
}

fn image(values: &[f32]) -> Tensor {
    Tensor::from_vec(values.to_vec(), (1, 1, 2, 2), &Device::Cpu).unwrap()
}

fn flat(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().unwrap().to_vec1().unwrap()
}

fn close(a: &[f32], b: &[f32], tolerance: f32) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert!((a - b).abs() <= tolerance, "{a} vs {b} in {a:?}");
    }
}

#[test]
fn linear_model_gradients_are_the_weight_row() -> TestResult {
    let (_store, model) = linear_model()?;
    for class in 0..3u32 {
        let row = W[class as usize];
        // ∂(w·x + b)/∂x = w, so |∂S/∂x| = |w| and x ⊙ ∂S/∂x = w ⊙ x
        let saliency = vanilla_gradient(&model, &image(&X), &[class])?;
        close(&flat(&saliency), &row.map(f32::abs), 1e-6);
        let gxi = gradient_times_input(&model, &image(&X), &[class])?;
        let expected: Vec<f32> = row.iter().zip(X).map(|(w, x)| w * x).collect();
        close(&flat(&gxi), &expected, 1e-6);
        // the gradient is the same at every noisy copy, so SmoothGrad returns w itself
        let smooth = SmoothGrad::default().attribute(&model, &image(&X), &[class])?;
        close(&flat(&smooth), &row, 1e-6);
        // from a black image, the path integral of a constant gradient is w ⊙ x, and
        // Σ IG = S(x) − S(0) = w·x
        let ig = IntegratedGradients {
            steps: 3,
            baseline: 0.0,
        }
        .attribute(&model, &image(&X), &[class])?;
        close(&flat(&ig.attributions), &expected, 1e-6);
        let dot: f32 = expected.iter().sum();
        assert!((ig.score_difference[0] - dot).abs() < 1e-6);
        assert!(ig.completeness_error[0] < 1e-5);
    }
    Ok(())
}

/// softmax(W x + B)[class], in f64 by hand.
fn probability(x: &[f32; 4], class: usize) -> f64 {
    let scores: Vec<f64> = W
        .iter()
        .zip(B)
        .map(|(row, b)| {
            row.iter()
                .zip(x)
                .map(|(w, x)| f64::from(w * x))
                .sum::<f64>()
                + f64::from(b)
        })
        .collect();
    let total: f64 = scores.iter().map(|s| s.exp()).sum();
    scores[class].exp() / total
}

#[test]
fn occlusion_measures_the_probability_drop_of_each_pixel() -> TestResult {
    let (_store, model) = linear_model()?;
    let class = 1;
    let map = Occlusion {
        patch: 1,
        stride: 1,
        fill: 0.0,
    }
    .attribute(&model, &image(&X), &[class as u32])?;
    let expected: Vec<f32> = (0..4)
        .map(|pixel| {
            let mut occluded = X;
            occluded[pixel] = 0.0;
            (probability(&X, class) - probability(&occluded, class)) as f32
        })
        .collect();
    close(&flat(&map), &expected, 1e-6);
    // a 2 x 2 patch covers everything at once: every pixel gets the same drop
    let whole = Occlusion {
        patch: 2,
        stride: 1,
        fill: 0.0,
    }
    .attribute(&model, &image(&X), &[class as u32])?;
    let drop = (probability(&X, class) - probability(&[0.0; 4], class)) as f32;
    close(&flat(&whole), &[drop; 4], 1e-6);
    Ok(())
}

#[test]
fn grad_cam_weighs_feature_maps_by_their_mean_gradient() -> TestResult {
    // conv 1x1 with 2 filters (A_k = a_k x + c_k) → flatten (2 x 4) → Dense(3).
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let model = Sequential::builder(&store.root(), &[1, 2, 2])
        .conv2d_with(2, Conv2dConfig::new(1), Activation::Identity)?
        .flatten()?
        .dense(3, Activation::Softmax)?
        .build();
    let (a, c) = ([1.5f32, -0.5], [0.2f32, 0.1]);
    store.get("conv2d.weight").unwrap().set(&Tensor::from_vec(
        a.to_vec(),
        (2, 1, 1, 1),
        &Device::Cpu,
    )?)?;
    store
        .get("conv2d.bias")
        .unwrap()
        .set(&Tensor::new(&c, &Device::Cpu)?)?;
    let mut rng = SeededRng::new(9);
    let dense: Vec<f32> = (0..24).map(|_| rng.normal()).collect();
    store.get("dense.weight").unwrap().set(&Tensor::from_vec(
        dense.clone(),
        (3, 8),
        &Device::Cpu,
    )?)?;
    for class in 0..3usize {
        let map = grad_cam(&model, &image(&X), &[class as u32])?;
        // ∂S/∂A_k[p] = V[class][4k + p]; α_k is its mean over the four positions
        let alpha: Vec<f32> = (0..2)
            .map(|k| {
                dense[class * 8 + 4 * k..class * 8 + 4 * k + 4]
                    .iter()
                    .sum::<f32>()
                    / 4.0
            })
            .collect();
        let expected: Vec<f32> = X
            .iter()
            .map(|x| {
                (0..2)
                    .map(|k| alpha[k] * (a[k] * x + c[k]))
                    .sum::<f32>()
                    .max(0.0)
            })
            .collect();
        close(&flat(&map), &expected, 1e-5);
    }
    // a model without a convolution is refused, with the alternative named
    let (_linear_store, linear) = linear_model()?;
    let error = grad_cam(&linear, &image(&X), &[0]).unwrap_err();
    assert!(matches!(error, ExplainError::UnsupportedModel { .. }));
    assert!(
        error.to_string().contains("Integrated Gradients"),
        "{error}"
    );
    Ok(())
}

fn small_cnn(seed: u64) -> dl_nn::Result<(VarStore, Sequential)> {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    let model = Sequential::builder(&store.root(), &[1, 10, 10])
        .conv2d(4, 3, Activation::Relu)?
        .max_pool2d(2)?
        .flatten()?
        .dense(16, Activation::Tanh)?
        .dense(5, Activation::Softmax)?
        .build();
    Ok((store, model))
}

fn random_images(count: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let values: Vec<f32> = (0..count * 100).map(|_| rng.uniform()).collect();
    Tensor::from_vec(values, (count, 1, 10, 10), &Device::Cpu).unwrap()
}

#[test]
fn one_batch_gives_each_example_its_own_gradient() -> TestResult {
    let (_store, model) = small_cnn(1)?;
    let images = random_images(3, 2);
    let classes = [4u32, 0, 2];
    let (together, _) = class_score_gradient(&model, &images, &classes)?;
    for (index, class) in classes.iter().enumerate() {
        let (alone, _) = class_score_gradient(&model, &images.narrow(0, index, 1)?, &[*class])?;
        close(&flat(&together.narrow(0, index, 1)?), &flat(&alone), 1e-6);
    }
    Ok(())
}

#[test]
fn integrated_gradients_are_complete_on_a_nonlinear_model() -> TestResult {
    let (_store, model) = small_cnn(3)?;
    let images = random_images(4, 5);
    for (steps, bound) in [(256, 0.01f32), (32, 0.05)] {
        let ig = IntegratedGradients {
            steps,
            baseline: 0.0,
        }
        .attribute(&model, &images, &[0, 1, 2, 3])?;
        for (error, difference) in ig.completeness_error.iter().zip(&ig.score_difference) {
            assert!(
                *error <= bound * difference.abs() + 1e-6,
                "{steps} steps: error {error} against a score change of {difference}"
            );
        }
    }
    Ok(())
}

#[test]
fn bad_settings_are_refused_by_name() -> TestResult {
    let (_store, model) = linear_model()?;
    let x = image(&X);
    let message = |error: ExplainError| error.to_string();
    assert!(
        message(vanilla_gradient(&model, &x, &[3]).unwrap_err()).contains("class 3 does not exist")
    );
    assert!(message(vanilla_gradient(&model, &x, &[0, 1]).unwrap_err())
        .contains("2 classes for a batch of 1"));
    let none = IntegratedGradients {
        steps: 0,
        baseline: 0.0,
    };
    assert!(message(none.attribute(&model, &x, &[0]).unwrap_err()).contains("0 steps"));
    let two = SmoothGrad::default()
        .attribute(&model, &x, &[0, 1])
        .unwrap_err();
    assert!(message(two).contains("2 classes for a batch of 1"));
    let silent = SmoothGrad {
        samples: 0,
        ..SmoothGrad::default()
    };
    assert!(message(silent.attribute(&model, &x, &[0]).unwrap_err()).contains("0 samples"));
    let huge = Occlusion {
        patch: 3,
        stride: 1,
        fill: 0.0,
    };
    assert!(message(huge.attribute(&model, &x, &[0]).unwrap_err()).contains("3x3 patch"));
    Ok(())
}
