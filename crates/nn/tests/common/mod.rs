//! What the kernel and layer tests share: comparing a tensor with a reference, element by
//! element, casting variables, gradients of a weighted sum, and gradient checks.

#![allow(dead_code)] // each test binary uses a different part

use dl_autograd::{check_gradients, weighted_sum, GradientCheck};
use dl_tensor::{candle_core, DType, Device, SeededRng, Tensor, Var};

/// The tests' error type (`Send + Sync`, so that results can cross a Rayon pool).
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The elements of `tensor` as f64, in row-major order.
pub fn flat(tensor: &Tensor) -> Result<Vec<f64>> {
    Ok(tensor.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
}

/// The elements of `tensor` as f64, in row-major order; panics if they cannot be read.
pub fn f64_values(tensor: &Tensor) -> Vec<f64> {
    flat(tensor).expect("the tensor's values as f64")
}

/// The batch counter `{layer}.num_batches_tracked` of a batch norm layer in `store`.
pub fn batches_tracked(store: &dl_nn::VarStore, layer: &str) -> i64 {
    store
        .get(&format!("{layer}.num_batches_tracked"))
        .expect("a batch counter")
        .as_tensor()
        .to_scalar::<i64>()
        .unwrap()
}

/// A dl-nn result as a Candle result, for closures that Candle-based checks call.
pub fn candle<T>(result: dl_nn::Result<T>) -> candle_core::Result<T> {
    result.map_err(candle_core::Error::wrap)
}

/// An f64 variable of `shape` with N(0, `std_dev`²) values drawn from `seed`.
pub fn normal_f64_var(shape: &[usize], seed: u64, std_dev: f32) -> Var {
    let tensor = SeededRng::new(seed)
        .normal_tensor(shape, 0.0, std_dev, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    Var::from_tensor(&tensor).unwrap()
}

/// `count` values drawn from `seed` with magnitudes uniform in [`smallest`, 3) and random
/// signs: far enough from 0 that a small perturbation never crosses a kink at 0.
pub fn values_away_from_zero(count: usize, seed: u64, smallest: f64) -> Vec<f64> {
    let mut rng = SeededRng::new(seed);
    (0..count)
        .map(|_| {
            let magnitude = smallest + (3.0 - smallest) * rng.uniform_f64();
            if rng.uniform() < 0.5 {
                -magnitude
            } else {
                magnitude
            }
        })
        .collect()
}

/// Every element within `tolerance` · max(1, |expected|), shapes equal.
pub fn assert_close(actual: &Tensor, expected: &Tensor, tolerance: f64, what: &str) -> Result {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    for (index, (a, e)) in flat(actual)?.iter().zip(flat(expected)?).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "{what}: element {index} is {a}, expected {e}"
        );
    }
    Ok(())
}

/// Asserts `|actual − expected| <= tolerance` for two scalars.
pub fn assert_scalar_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} (tolerance {tolerance})"
    );
}

/// A fresh variable holding `variable`'s values converted to `dtype`.
pub fn cast_var(variable: &Var, dtype: DType) -> Result<Var> {
    Ok(Var::from_tensor(&variable.as_tensor().to_dtype(dtype)?)?)
}

/// The gradients of `Σ output ⊙ R` (R fixed random, drawn from `seed`) with respect to
/// `variables`, in their order.
pub fn gradients_of(output: &Tensor, variables: &[&Var], seed: u64) -> Result<Vec<Tensor>> {
    let store = weighted_sum(output, seed)?.backward()?;
    Ok(variables
        .iter()
        .map(|variable| {
            store
                .get(variable.as_tensor())
                .cloned()
                .expect("every variable gets a gradient")
        })
        .collect())
}

/// Asserts that each gradient in `actual` is close to the one at the same place in
/// `expected`; `names` name the variables in the messages (`"{what} ∂L/∂{name}"`).
pub fn assert_gradients_close(
    what: &str,
    names: &[&str],
    actual: &[Tensor],
    expected: &[Tensor],
    tolerance: f64,
) -> Result {
    assert_eq!(actual.len(), names.len(), "{what}: one gradient per name");
    assert_eq!(
        expected.len(),
        names.len(),
        "{what}: one reference per name"
    );
    for ((name, actual), expected) in names.iter().zip(actual).zip(expected) {
        assert_close(actual, expected, tolerance, &format!("{what} ∂L/∂{name}"))?;
    }
    Ok(())
}

/// Checks `loss`'s gradients with respect to `variables` against finite differences with the
/// given options: at least one element checked, worst relative error below 1e-6.
pub fn assert_finite_differences_with<F>(
    what: &str,
    variables: &[(&str, &Var)],
    loss: F,
    options: &GradientCheck,
) -> Result
where
    F: FnMut() -> candle_core::Result<Tensor>,
{
    let report = check_gradients(variables, loss, options)?;
    assert!(report.elements_checked > 0, "{what}");
    assert!(report.worst_relative_error < 1e-6, "{what}: {report}");
    Ok(())
}

/// [`assert_finite_differences`] for tests that return `()`: panics if the check cannot run.
pub fn assert_gradients<F>(what: &str, variables: &[(&str, &Var)], loss: F)
where
    F: FnMut() -> candle_core::Result<Tensor>,
{
    assert_finite_differences(what, variables, loss)
        .unwrap_or_else(|error| panic!("{what}: the gradient check failed to run: {error}"));
}

/// [`assert_finite_differences_with`] with the default options.
pub fn assert_finite_differences<F>(what: &str, variables: &[(&str, &Var)], loss: F) -> Result
where
    F: FnMut() -> candle_core::Result<Tensor>,
{
    assert_finite_differences_with(what, variables, loss, &GradientCheck::default())
}
