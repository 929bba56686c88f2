//! Behaviour of the activation functions: Candle's backward pass and the closed-form
//! derivatives against finite differences, hand-derived values, parsing, and the numerical
//! stability of softmax and log-softmax.

mod common;

use common::{assert_scalar_close as assert_close, candle, f64_values as to_vec};
use dl_autograd::{check_gradients, weighted_sum, GradientCheck};
use dl_nn::{log_softmax, softmax, Activation, NnError};
use dl_tensor::{DType, Device, Tensor, Var};

/// Every variant, as the brief lists them: the elementwise ones, then softmax.
fn all_activations() -> impl Iterator<Item = Activation> {
    ELEMENTWISE.into_iter().chain([Activation::Softmax])
}

/// The variants whose derivative is elementwise (all but softmax).
const ELEMENTWISE: [Activation; 6] = [
    Activation::Identity,
    Activation::Sigmoid,
    Activation::Relu,
    Activation::Tanh,
    Activation::LeakyRelu(0.1),
    Activation::Gelu,
];

/// The bound on the worst relative error of an f64 gradient check (ε = 1e-6 leaves about ten
/// significant digits, so a correct gradient lands near 1e-9).
const GRADIENT_TOLERANCE: f64 = 1e-6;

/// GELU alone gets a looser bound. Its forward pass in candle-core 0.11.1 uses sqrt(2/π) and
/// 0.044715 exactly, but its backward pass (`backprop.rs`, `UnaryOp::Gelu`) uses constants
/// rounded to six digits (0.797885, 0.0356774, 0.398942, 0.0535161), so Candle's gradient
/// differs from the true derivative by a few parts in a million (3.3e-6 measured here). That is
/// harmless for training but above 1e-6; `gelu_backward_is_close_to_the_closed_form` pins the
/// size of the discrepancy.
const GELU_GRADIENT_TOLERANCE: f64 = 1e-5;

fn gradient_tolerance(activation: Activation) -> f64 {
    if activation == Activation::Gelu {
        GELU_GRADIENT_TOLERANCE
    } else {
        GRADIENT_TOLERANCE
    }
}

/// `count` random values with magnitudes in [0.1, 3): far enough from 0 that a perturbation of
/// 1e-6 never crosses the kink of ReLU or LeakyReLU.
fn values_away_from_zero(count: usize, seed: u64) -> Vec<f64> {
    common::values_away_from_zero(count, seed, 0.1)
}

fn f64_tensor(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
}

fn scalar_apply(activation: Activation, x: f64) -> f64 {
    activation
        .apply(&f64_tensor(&[x], &[1]))
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0]
}

#[test]
fn backward_matches_finite_differences_for_every_activation() {
    for (index, activation) in all_activations().enumerate() {
        let x = Var::from_tensor(&f64_tensor(
            &values_away_from_zero(24, 100 + index as u64),
            &[4, 6],
        ))
        .unwrap();
        let report = check_gradients(
            &[("x", &x)],
            || weighted_sum(&candle(activation.apply(x.as_tensor()))?, 7),
            &GradientCheck::default(),
        )
        .unwrap_or_else(|error| panic!("{activation}: {error}"));
        assert_eq!(report.elements_checked, 24, "{activation}");
        assert!(
            report.worst_relative_error < gradient_tolerance(activation),
            "{activation}: {report}"
        );
    }
}

#[test]
fn gelu_backward_is_close_to_the_closed_form() {
    // Candle's backward for GELU against `Activation::derivative` (exact constants): they agree
    // to better than 1e-5 relative, not to machine precision (see GELU_GRADIENT_TOLERANCE).
    let values = values_away_from_zero(64, 5);
    let x = Var::from_tensor(&f64_tensor(&values, &[values.len()])).unwrap();
    let output = Activation::Gelu.apply(x.as_tensor()).unwrap();
    let gradients = output.sum_all().unwrap().backward().unwrap();
    let backward = to_vec(gradients.get(x.as_tensor()).unwrap());
    let closed_form = to_vec(&Activation::Gelu.derivative(x.as_tensor()).unwrap());
    for (index, &point) in values.iter().enumerate() {
        let error =
            (backward[index] - closed_form[index]).abs() / closed_form[index].abs().max(1e-4);
        assert!(
            error < GELU_GRADIENT_TOLERANCE,
            "GELU'({point}): backward {}, closed form {}",
            backward[index],
            closed_form[index]
        );
    }
}

#[test]
fn log_softmax_backward_matches_finite_differences() {
    let x = Var::from_tensor(&f64_tensor(&values_away_from_zero(15, 3), &[3, 5])).unwrap();
    let report = check_gradients(
        &[("x", &x)],
        || weighted_sum(&candle(log_softmax(x.as_tensor()))?, 11),
        &GradientCheck::default(),
    )
    .unwrap();
    assert!(report.worst_relative_error < GRADIENT_TOLERANCE, "{report}");
}

#[test]
fn closed_form_derivatives_match_central_differences() {
    // f'(x) ≈ (f(x + h) − f(x − h)) / 2h with error O(h²·f''') + O(ε_machine / h): with
    // h = 1e-5 in f64 both terms are below 1e-9, far inside the 1e-7 tolerance.
    let step = 1e-5;
    let points = values_away_from_zero(40, 9);
    for activation in ELEMENTWISE {
        let x = f64_tensor(&points, &[points.len()]);
        let closed_form = to_vec(&activation.derivative(&x).unwrap());
        let plus = to_vec(&activation.apply(&x.affine(1.0, step).unwrap()).unwrap());
        let minus = to_vec(&activation.apply(&x.affine(1.0, -step).unwrap()).unwrap());
        for (index, &point) in points.iter().enumerate() {
            let numeric = (plus[index] - minus[index]) / (2.0 * step);
            let error = (closed_form[index] - numeric).abs() / numeric.abs().max(1.0);
            assert!(
                error < 1e-7,
                "{activation} at x = {point}: closed form {}, central difference {numeric}",
                closed_form[index]
            );
        }
    }
}

#[test]
fn softmax_derivative_is_refused() {
    let x = f64_tensor(&[0.5, 1.0], &[1, 2]);
    let error = Activation::Softmax.derivative(&x).unwrap_err();
    assert!(matches!(error, NnError::Config { .. }), "{error:?}");
    assert!(error.to_string().contains("Jacobian"), "{error}");
}

#[test]
fn hand_derived_values() {
    // σ(0) = 1 / (1 + e⁰) = 1/2; σ'(0) = σ(0)(1 − σ(0)) = 1/4.
    assert_close(scalar_apply(Activation::Sigmoid, 0.0), 0.5, 1e-15, "σ(0)");
    let derivative = |activation: Activation, x: f64| {
        to_vec(&activation.derivative(&f64_tensor(&[x], &[1])).unwrap())[0]
    };
    assert_close(derivative(Activation::Sigmoid, 0.0), 0.25, 1e-15, "σ'(0)");
    // σ(2) = 1 / (1 + e^(−2)).
    assert_close(
        scalar_apply(Activation::Sigmoid, 2.0),
        1.0 / (1.0 + (-2f64).exp()),
        1e-15,
        "σ(2)",
    );
    // tanh(0) = 0; tanh'(0) = 1 − tanh²(0) = 1.
    assert_close(scalar_apply(Activation::Tanh, 0.0), 0.0, 1e-15, "tanh(0)");
    assert_close(derivative(Activation::Tanh, 0.0), 1.0, 1e-15, "tanh'(0)");
    // ReLU: max(0, −2) = 0, max(0, 3) = 3; slopes 0 and 1.
    assert_eq!(scalar_apply(Activation::Relu, -2.0), 0.0);
    assert_eq!(scalar_apply(Activation::Relu, 3.0), 3.0);
    assert_eq!(derivative(Activation::Relu, -2.0), 0.0);
    assert_eq!(derivative(Activation::Relu, 3.0), 1.0);
    // LeakyReLU(0.1): −2 → 0.1·(−2) = −0.2 (slope 0.1); 3 → 3 (slope 1).
    assert_close(
        scalar_apply(Activation::LeakyRelu(0.1), -2.0),
        -0.2,
        1e-7,
        "leaky(−2)",
    );
    assert_eq!(scalar_apply(Activation::LeakyRelu(0.1), 3.0), 3.0);
    assert_close(
        derivative(Activation::LeakyRelu(0.1), -2.0),
        0.1,
        1e-7,
        "leaky'(−2)",
    );
    assert_eq!(derivative(Activation::LeakyRelu(0.1), 3.0), 1.0);
    // Identity: f(x) = x, f'(x) = 1.
    assert_eq!(scalar_apply(Activation::Identity, -1.25), -1.25);
    assert_eq!(derivative(Activation::Identity, -1.25), 1.0);
    // GELU (tanh approximation): GELU(1) = 0.5·(1 + tanh(sqrt(2/π)·(1 + 0.044715)))
    // = 0.5·(1 + tanh(0.8335619689)) = 0.5·(1 + 0.6823839812) = 0.8411919906.
    let expected_gelu_one =
        0.5 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (1.0 + 0.044_715)).tanh());
    assert_close(expected_gelu_one, 0.841_192_0, 1e-7, "GELU(1) formula");
    assert_close(
        scalar_apply(Activation::Gelu, 1.0),
        expected_gelu_one,
        1e-9,
        "GELU(1)",
    );
    // GELU(0) = 0 and GELU'(0) = 0.5·(1 + tanh 0) + 0 = 1/2.
    assert_close(scalar_apply(Activation::Gelu, 0.0), 0.0, 1e-15, "GELU(0)");
    assert_close(derivative(Activation::Gelu, 0.0), 0.5, 1e-15, "GELU'(0)");
    // softmax([0, ln 3]) = [e⁰, 3] / (1 + 3) = [1/4, 3/4].
    let probabilities = to_vec(
        &Activation::Softmax
            .apply(&f64_tensor(&[0.0, 3f64.ln()], &[1, 2]))
            .unwrap(),
    );
    assert_close(probabilities[0], 0.25, 1e-15, "softmax[0]");
    assert_close(probabilities[1], 0.75, 1e-15, "softmax[1]");
}

#[test]
fn hand_derived_values_hold_in_f32_too() {
    let x = Tensor::new(&[0f32, -2.0, 1.0], &Device::Cpu).unwrap();
    let apply = |activation: Activation| -> Vec<f32> {
        activation.apply(&x).unwrap().to_vec1::<f32>().unwrap()
    };
    let sigmoid = apply(Activation::Sigmoid);
    assert!((sigmoid[0] - 0.5).abs() < 1e-7, "{sigmoid:?}");
    let relu = apply(Activation::Relu);
    assert_eq!(relu, vec![0.0, 0.0, 1.0]);
    let gelu = apply(Activation::Gelu);
    // GELU(1) = 0.8411920 (see `hand_derived_values`).
    assert!((gelu[2] - 0.841_192).abs() < 1e-6, "{gelu:?}");
}

#[test]
fn softmax_is_over_the_last_dimension() {
    // Each row of a (2, 3, 4) tensor sums to 1 and is e^x / Σ e^x computed by hand.
    let values = values_away_from_zero(24, 21);
    let x = f64_tensor(&values, &[2, 3, 4]);
    let probabilities = to_vec(&softmax(&x).unwrap());
    for row in 0..6 {
        let logits = &values[row * 4..row * 4 + 4];
        let total: f64 = logits.iter().map(|value| value.exp()).sum();
        for column in 0..4 {
            assert_close(
                probabilities[row * 4 + column],
                logits[column].exp() / total,
                1e-14,
                "softmax element",
            );
        }
        let sum: f64 = probabilities[row * 4..row * 4 + 4].iter().sum();
        assert_close(sum, 1.0, 1e-14, "row sum");
    }
}

#[test]
fn softmax_and_log_softmax_are_stable_for_huge_logits() {
    // softmax([1000, 0]) = [1/(1 + e^−1000), e^−1000/(1 + e^−1000)] = [1, ~0]: a naive e^1000
    // overflows to infinity and gives NaN.
    for dtype in [DType::F32, DType::F64] {
        let x = Tensor::new(&[[1000f64, 0.0], [-1000.0, -1000.0]], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let probabilities = to_vec(&softmax(&x).unwrap());
        assert!(
            probabilities.iter().all(|p| p.is_finite()),
            "{probabilities:?}"
        );
        assert_close(probabilities[0], 1.0, 1e-7, "softmax(1000, 0)[0]");
        assert_close(probabilities[1], 0.0, 1e-7, "softmax(1000, 0)[1]");
        // Two equal huge negative logits: e^−1000 underflows to 0 without the shift; 1/2 each.
        assert_close(probabilities[2], 0.5, 1e-7, "softmax(−1000, −1000)");
        assert_close(probabilities[3], 0.5, 1e-7, "softmax(−1000, −1000)");
        // log softmax([1000, 0]) = [−log(1 + e^−1000), −1000 − log(1 + e^−1000)] = [0, −1000].
        let logs = to_vec(&log_softmax(&x).unwrap());
        assert!(logs.iter().all(|value| value.is_finite()), "{logs:?}");
        assert_close(logs[0], 0.0, 1e-6, "log softmax[0]");
        assert_close(logs[1], -1000.0, 1e-3, "log softmax[1]");
        assert_close(logs[2], -(2f64.ln()), 1e-6, "log softmax(−1000, −1000)");
        let via_activation = to_vec(&Activation::Softmax.apply(&x).unwrap());
        assert_eq!(via_activation, probabilities);
    }
}

#[test]
fn softmax_gradient_is_finite_for_huge_logits() {
    let x = Var::new(&[[1000f64, 0.0, -1000.0]], &Device::Cpu).unwrap();
    let loss = weighted_sum(&log_softmax(x.as_tensor()).unwrap(), 1).unwrap();
    let gradients = loss.backward().unwrap();
    let gradient = to_vec(gradients.get(x.as_tensor()).unwrap());
    assert!(gradient.iter().all(|g| g.is_finite()), "{gradient:?}");
}

#[test]
fn names_round_trip_through_display_and_from_str() {
    for activation in all_activations() {
        let text = activation.to_string();
        let parsed: Activation = text.parse().unwrap();
        assert_eq!(parsed, activation, "{text}");
    }
    assert_eq!(Activation::LeakyRelu(0.1).to_string(), "leaky_relu:0.1");
    assert_eq!("ReLU".parse::<Activation>().unwrap(), Activation::Relu);
    assert_eq!(
        " linear ".parse::<Activation>().unwrap(),
        Activation::Identity
    );
    assert_eq!(
        "leaky_relu".parse::<Activation>().unwrap(),
        Activation::LeakyRelu(0.01)
    );
    assert_eq!(
        "leaky_relu:0.2".parse::<Activation>().unwrap(),
        Activation::LeakyRelu(0.2)
    );
}

#[test]
fn bad_names_are_errors_that_name_the_input() {
    for bad in ["swish", "", "leaky_relu:abc", "relu:2", "soft max"] {
        let error = bad.parse::<Activation>().unwrap_err();
        assert!(matches!(error, NnError::Config { .. }), "{bad}: {error:?}");
    }
    let error = "swish".parse::<Activation>().unwrap_err().to_string();
    assert!(error.contains("swish"), "{error}");
    let error = "leaky_relu:abc"
        .parse::<Activation>()
        .unwrap_err()
        .to_string();
    assert!(error.contains("abc"), "{error}");
}
