//! Helpers shared by the optimizer tests: gradients of a chosen value, a fixed varying gradient
//! sequence, element-wise comparison, and a driver that runs an optimizer next to a scalar
//! reference implementation.

#![allow(dead_code)]

use dl_autograd::Gradients;
use dl_optim::Optimizer;
use dl_tensor::{Device, Tensor, Var};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Gradients in which each listed variable with `Some(g)` has gradient exactly `g` and each
/// with `None` has no gradient: the loss is Σ sum(w ⊙ g) over the variables with a gradient.
pub fn gradients(listed: &[(&str, &Var, Option<&[f64]>)]) -> Gradients {
    let mut loss: Option<Tensor> = None;
    for (_, variable, gradient) in listed {
        let Some(gradient) = gradient else { continue };
        let gradient = Tensor::from_slice(gradient, variable.dims(), variable.device())
            .unwrap()
            .to_dtype(variable.dtype())
            .unwrap();
        let term = variable
            .as_tensor()
            .mul(&gradient)
            .unwrap()
            .sum_all()
            .unwrap();
        loss = Some(match loss {
            None => term,
            Some(sum) => (sum + term).unwrap(),
        });
    }
    Gradients::compute(
        &loss.expect("at least one gradient"),
        listed.iter().map(|(name, variable, _)| (*name, *variable)),
    )
    .unwrap()
}

/// A fixed gradient for step `step` (1-based) of a vector of `length` elements: varies in sign
/// and size across elements and steps.
pub fn gradient_at(step: usize, length: usize) -> Vec<f64> {
    (0..length)
        .map(|index| (1.3 * step as f64 + 0.7 * index as f64).sin() * (1.0 + 0.5 * index as f64))
        .collect()
}

/// The starting weights of the reference runs.
pub fn initial_weights() -> Vec<f64> {
    vec![0.5, -1.5, 2.0, 0.0, -0.25]
}

/// A variable's values as `f64`.
pub fn values(variable: &Var) -> Vec<f64> {
    variable
        .as_tensor()
        .to_dtype(dl_tensor::DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Asserts `|actual − expected| <= tolerance · max(1, |expected|)` element-wise.
pub fn assert_close(actual: &[f64], expected: &[f64], tolerance: f64, context: &str) {
    assert_eq!(actual.len(), expected.len(), "{context}: lengths differ");
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "{context}: element {index} is {a}, reference {e}\nactual    {actual:?}\nreference {expected:?}"
        );
    }
}

/// Runs `steps` steps of `optimizer` on an `f64` variable and of `reference` (a scalar
/// implementation updating `&mut [f64]` in place) from the same weights with the same
/// gradients, comparing after every step to 1e-6.
pub fn compare_with_reference(
    optimizer: &mut dyn Optimizer,
    mut reference: impl FnMut(&mut [f64], &[f64]),
    steps: usize,
    context: &str,
) {
    let mut expected = initial_weights();
    let weight = Var::new(expected.as_slice(), &Device::Cpu).unwrap();
    for step in 1..=steps {
        let gradient = gradient_at(step, expected.len());
        optimizer
            .step(&gradients(&[("w", &weight, Some(&gradient))]))
            .unwrap();
        reference(&mut expected, &gradient);
        assert_close(
            &values(&weight),
            &expected,
            1e-6,
            &format!("{context}, step {step}"),
        );
    }
}
