//! Behaviour of the losses: gradient checks, values against hand computations, stability for
//! huge logits, sequence-shaped inputs, and errors for targets that do not fit.

mod common;

use common::{
    assert_gradients, assert_scalar_close as assert_close, candle, f64_values as flat,
    normal_f64_var, values_away_from_zero,
};
use dl_nn::{binary_cross_entropy_with_logits, cross_entropy, mse, Loss, NnError};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

/// A variable of the given shape with N(0, 1.5²) values in f64.
fn random_var(shape: &[usize], seed: u64) -> Var {
    normal_f64_var(shape, seed, 1.5)
}

/// Values with magnitudes in [0.2, 3): the kinks of max(z, 0) and |z| at 0 stay out of reach.
fn away_from_zero_var(shape: &[usize], seed: u64) -> Var {
    let values = values_away_from_zero(shape.iter().product(), seed, 0.2);
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn scalar(tensor: &Tensor) -> f64 {
    tensor
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn assert_target_error(result: dl_nn::Result<Tensor>, what: &str) {
    match result {
        Err(NnError::Target { .. }) => {}
        other => panic!("{what}: expected a target error, got {other:?}"),
    }
}

fn labels(values: &[u32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Gradient checks
// ---------------------------------------------------------------------------------------------

#[test]
fn cross_entropy_gradients() {
    let logits = random_var(&[5, 4], 1);
    assert_cross_entropy_gradients(&logits, &labels(&[0, 3, 1, 1, 2], &[5]));
}

/// Checks cross-entropy's gradient with respect to `logits` against finite differences.
fn assert_cross_entropy_gradients(logits: &Var, targets: &Tensor) {
    assert_gradients(
        &format!("cross entropy on {:?}", logits.dims()),
        &[("logits", logits)],
        || candle(cross_entropy(logits.as_tensor(), targets)),
    );
}

#[test]
fn cross_entropy_gradient_is_softmax_minus_one_hot_over_n() {
    // ∂L/∂z_nc = (softmax(z_n)_c − [c = y_n]) / N, the classic result.
    let logits = random_var(&[3, 4], 2);
    let targets = [2u32, 0, 3];
    let loss = cross_entropy(logits.as_tensor(), &labels(&targets, &[3])).unwrap();
    let gradients = loss.backward().unwrap();
    let gradient = flat(gradients.get(logits.as_tensor()).unwrap());
    let values = flat(logits.as_tensor());
    for row in 0..3 {
        let exponentials: Vec<f64> = values[row * 4..row * 4 + 4]
            .iter()
            .map(|z| z.exp())
            .collect();
        let total: f64 = exponentials.iter().sum();
        for class in 0..4 {
            let one_hot = if class as u32 == targets[row] {
                1.0
            } else {
                0.0
            };
            let expected = (exponentials[class] / total - one_hot) / 3.0;
            assert_close(gradient[row * 4 + class], expected, 1e-14, "∂L/∂z");
        }
    }
}

#[test]
fn cross_entropy_gradients_for_sequences() {
    let logits = random_var(&[2, 3, 4], 3);
    assert_cross_entropy_gradients(&logits, &labels(&[0, 3, 1, 2, 2, 0], &[2, 3]));
}

#[test]
fn mse_gradients() {
    let predictions = random_var(&[4, 3], 4);
    let targets = random_var(&[4, 3], 5).as_tensor().detach();
    assert_gradients("mse", &[("predictions", &predictions)], || {
        candle(mse(predictions.as_tensor(), &targets))
    });
}

#[test]
fn binary_cross_entropy_gradients() {
    // ∂L/∂z = (σ(z) − y)/N; targets may be soft labels in [0, 1].
    let logits = away_from_zero_var(&[3, 4], 6);
    let mut rng = SeededRng::new(7);
    let targets = rng
        .uniform_tensor((3, 4), 0.0, 1.0, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    assert_gradients("binary cross entropy", &[("logits", &logits)], || {
        candle(binary_cross_entropy_with_logits(
            logits.as_tensor(),
            &targets,
        ))
    });
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

#[test]
fn cross_entropy_of_equal_logits_is_log_of_class_count() {
    // softmax of four equal scores is 1/4 each: L = −log(1/4) = ln 4 whatever the label.
    for dtype in [DType::F32, DType::F64] {
        let logits = Tensor::zeros((3, 4), dtype, &Device::Cpu).unwrap();
        let loss = cross_entropy(&logits, &labels(&[0, 3, 2], &[3])).unwrap();
        assert_eq!(loss.dtype(), dtype);
        assert_close(scalar(&loss), 4f64.ln(), 1e-6, "ln 4");
    }
}

#[test]
fn cross_entropy_matches_explicit_exp_and_log() {
    // Row 1: z = [1, 2, 0.5], y = 1: L₁ = −(2 − ln(e¹ + e² + e^0.5)).
    // Row 2: z = [−1, 0, 3], y = 0: L₂ = −(−1 − ln(e⁻¹ + e⁰ + e³)).
    // L = (L₁ + L₂)/2.
    let first = -(2.0 - (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln());
    let second = -(-1.0 - ((-1f64).exp() + 1.0 + 3f64.exp()).ln());
    let logits = Tensor::new(&[[1f64, 2.0, 0.5], [-1.0, 0.0, 3.0]], &Device::Cpu).unwrap();
    let loss = cross_entropy(&logits, &labels(&[1, 0], &[2])).unwrap();
    assert_close(
        scalar(&loss),
        (first + second) / 2.0,
        1e-14,
        "cross-entropy",
    );
    // The first row alone: about 0.4644 (ln(e + e² + e^0.5) = 2.4644).
    let single = cross_entropy(&logits.narrow(0, 0, 1).unwrap(), &labels(&[1], &[1])).unwrap();
    assert_close(scalar(&single), first, 1e-14, "one row");
    assert_close(first, 0.464_4, 1e-4, "hand value");
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    // z = [1000, 0]: label 0 → −log(1/(1 + e⁻¹⁰⁰⁰)) ≈ 0; label 1 → 1000 + log(1 + e⁻¹⁰⁰⁰) ≈ 1000.
    for dtype in [DType::F32, DType::F64] {
        let logits = Tensor::new(&[[1000f64, 0.0]], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let right = scalar(&cross_entropy(&logits, &labels(&[0], &[1])).unwrap());
        let wrong = scalar(&cross_entropy(&logits, &labels(&[1], &[1])).unwrap());
        assert_close(right, 0.0, 1e-6, "confident and right");
        assert_close(wrong, 1000.0, 1e-3, "confident and wrong");
    }
}

#[test]
fn cross_entropy_accepts_sequences_and_any_integer_labels() {
    // (N, T, C) = (2, 3, 4) logits with (N, T) labels: the mean over all N·T positions, the same
    // as the (N·T, C) reshape, and the mean of the per-position losses computed by hand.
    let logits = random_var(&[2, 3, 4], 8).as_tensor().detach();
    let targets = [0u32, 3, 1, 2, 2, 0];
    let loss = scalar(&cross_entropy(&logits, &labels(&targets, &[2, 3])).unwrap());
    let reshaped =
        scalar(&cross_entropy(&logits.reshape((6, 4)).unwrap(), &labels(&targets, &[6])).unwrap());
    assert_close(loss, reshaped, 1e-14, "3-D vs 2-D");
    let values = flat(&logits);
    let by_hand: f64 = (0..6)
        .map(|position| {
            let row = &values[position * 4..position * 4 + 4];
            let log_total = row.iter().map(|z| z.exp()).sum::<f64>().ln();
            log_total - row[targets[position] as usize]
        })
        .sum::<f64>()
        / 6.0;
    assert_close(loss, by_hand, 1e-13, "by hand");
    for dtype in [DType::U8, DType::I64] {
        let other = labels(&targets, &[2, 3]).to_dtype(dtype).unwrap();
        assert_close(
            scalar(&cross_entropy(&logits, &other).unwrap()),
            loss,
            0.0,
            "label dtype",
        );
    }
}

#[test]
fn cross_entropy_rejects_bad_labels() {
    let logits = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    // Out of range: class 4 of 4.
    let out_of_range = cross_entropy(&logits, &labels(&[0, 4], &[2]));
    let message = format!("{:?}", out_of_range.as_ref().unwrap_err());
    assert!(message.contains('4'), "{message}");
    assert_target_error(out_of_range, "label 4");
    // Negative.
    let negative = Tensor::new(&[-1i64, 0], &Device::Cpu).unwrap();
    assert_target_error(cross_entropy(&logits, &negative), "label −1");
    // Float labels.
    let floats = Tensor::new(&[0f32, 1.0], &Device::Cpu).unwrap();
    assert_target_error(cross_entropy(&logits, &floats), "float labels");
    // Shape mismatch: three labels for two rows, a (2, 1) label tensor, rank-1 logits.
    assert_target_error(
        cross_entropy(&logits, &labels(&[0, 1, 2], &[3])),
        "three labels",
    );
    assert_target_error(cross_entropy(&logits, &labels(&[0, 1], &[2, 1])), "(2, 1)");
    let vector = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
    assert_target_error(cross_entropy(&vector, &labels(&[0], &[1])), "rank-1 logits");
}

#[test]
fn mse_by_hand() {
    // ([1, 2, 3] − [1, 0, 0])² = [0, 4, 9]; mean 13/3.
    let predictions = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[1f32, 0.0, 0.0], &Device::Cpu).unwrap();
    assert_close(
        scalar(&mse(&predictions, &targets).unwrap()),
        13.0 / 3.0,
        1e-6,
        "mse",
    );
    // Targets in another float type are converted to the predictions' type.
    let f64_targets = targets.to_dtype(DType::F64).unwrap();
    let loss = mse(&predictions, &f64_targets).unwrap();
    assert_eq!(loss.dtype(), DType::F32);
    assert_target_error(
        mse(
            &predictions,
            &Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
        ),
        "mse shape",
    );
}

/// −[y log σ(z) + (1 − y) log(1 − σ(z))], the textbook formula (unstable for large |z|).
fn naive_binary_cross_entropy(z: f64, y: f64) -> f64 {
    let sigma = 1.0 / (1.0 + (-z).exp());
    -(y * sigma.ln() + (1.0 - y) * (1.0 - sigma).ln())
}

#[test]
fn binary_cross_entropy_matches_the_naive_formula_for_moderate_logits() {
    let z = [-3.0, -0.5, 0.0, 0.7, 2.5, 4.0];
    let y = [0.0, 1.0, 1.0, 0.0, 1.0, 0.3];
    let expected = z
        .iter()
        .zip(&y)
        .map(|(&z, &y)| naive_binary_cross_entropy(z, y))
        .sum::<f64>()
        / 6.0;
    let loss = binary_cross_entropy_with_logits(
        &Tensor::new(&z, &Device::Cpu).unwrap(),
        &Tensor::new(&y, &Device::Cpu).unwrap(),
    )
    .unwrap();
    assert_close(scalar(&loss), expected, 1e-14, "bce");
    // z = 0: σ = 1/2, so L = ln 2 whatever the target.
    let at_zero = binary_cross_entropy_with_logits(
        &Tensor::new(&[0f64], &Device::Cpu).unwrap(),
        &Tensor::new(&[1f64], &Device::Cpu).unwrap(),
    )
    .unwrap();
    assert_close(scalar(&at_zero), 2f64.ln(), 1e-15, "ln 2");
}

#[test]
fn binary_cross_entropy_is_finite_for_huge_logits() {
    // max(z, 0) − z·y + log(1 + e^(−|z|)): z = 1000, y = 1 → 0; z = 1000, y = 0 → 1000;
    // z = −1000, y = 0 → 0; z = −1000, y = 1 → 1000. The naive formula gives log 0 = −∞.
    for dtype in [DType::F32, DType::F64] {
        let z = Tensor::new(&[1000f64, 1000.0, -1000.0, -1000.0], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let y = Tensor::new(&[1f64, 0.0, 0.0, 1.0], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let each: Vec<f64> = (0..4)
            .map(|index| {
                scalar(
                    &binary_cross_entropy_with_logits(
                        &z.narrow(0, index, 1).unwrap(),
                        &y.narrow(0, index, 1).unwrap(),
                    )
                    .unwrap(),
                )
            })
            .collect();
        assert!(each.iter().all(|value| value.is_finite()), "{each:?}");
        assert_close(each[0], 0.0, 1e-6, "right, positive");
        assert_close(each[1], 1000.0, 1e-3, "wrong, positive");
        assert_close(each[2], 0.0, 1e-6, "right, negative");
        assert_close(each[3], 1000.0, 1e-3, "wrong, negative");
        let mean = scalar(&binary_cross_entropy_with_logits(&z, &y).unwrap());
        assert_close(mean, 500.0, 1e-3, "mean");
        assert!(naive_binary_cross_entropy(1000.0, 0.0).is_infinite());
    }
}

#[test]
fn binary_cross_entropy_rejects_shape_mismatch() {
    let z = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
    assert_target_error(binary_cross_entropy_with_logits(&z, &y), "bce shape");
}

// ---------------------------------------------------------------------------------------------
// Loss by name
// ---------------------------------------------------------------------------------------------

#[test]
fn loss_names_parse_and_round_trip() {
    for loss in [
        Loss::CrossEntropy,
        Loss::MeanSquaredError,
        Loss::BinaryCrossEntropyWithLogits,
    ] {
        assert_eq!(loss.to_string().parse::<Loss>().unwrap(), loss);
    }
    let aliases = [
        ("cross_entropy", Loss::CrossEntropy),
        ("Sparse_Categorical_Crossentropy", Loss::CrossEntropy),
        (" mse ", Loss::MeanSquaredError),
        ("mean_squared_error", Loss::MeanSquaredError),
        ("bce", Loss::BinaryCrossEntropyWithLogits),
        ("binary_crossentropy", Loss::BinaryCrossEntropyWithLogits),
    ];
    for (name, expected) in aliases {
        assert_eq!(name.parse::<Loss>().unwrap(), expected, "{name}");
    }
    let error = "hinge".parse::<Loss>().unwrap_err();
    assert!(matches!(error, NnError::Config { .. }), "{error:?}");
    assert!(error.to_string().contains("hinge"), "{error}");
    assert_eq!(Loss::default(), Loss::CrossEntropy);
}

#[test]
fn loss_compute_dispatches_to_the_functions() {
    let logits = random_var(&[3, 4], 9).as_tensor().detach();
    let targets = labels(&[1, 0, 3], &[3]);
    assert_eq!(
        scalar(&Loss::CrossEntropy.compute(&logits, &targets).unwrap()),
        scalar(&cross_entropy(&logits, &targets).unwrap())
    );
    let other = random_var(&[3, 4], 10).as_tensor().detach();
    assert_eq!(
        scalar(&Loss::MeanSquaredError.compute(&logits, &other).unwrap()),
        scalar(&mse(&logits, &other).unwrap())
    );
    let probabilities = other.abs().unwrap().tanh().unwrap();
    assert_eq!(
        scalar(
            &Loss::BinaryCrossEntropyWithLogits
                .compute(&logits, &probabilities)
                .unwrap()
        ),
        scalar(&binary_cross_entropy_with_logits(&logits, &probabilities).unwrap())
    );
}
