//! RMSprop against a scalar transcription of the torch.optim.RMSprop pseudo-code, on a
//! hand-derived number, and on a problem it must solve.

mod common;

use common::{
    assert_close, compare_with_reference, gradients, initial_weights, values, TestResult,
};
use dl_autograd::Gradients;
use dl_optim::{OptimError, Optimizer, RmsProp, RmsPropConfig};
use dl_tensor::{DType, Device, Tensor, Var};

/// torch.optim.RMSprop, straight from its documentation, on plain `f64` vectors.
struct ReferenceRmsProp {
    config: RmsPropConfig,
    square_average: Vec<f64>,
    gradient_average: Vec<f64>,
    buffer: Vec<f64>,
}

impl ReferenceRmsProp {
    fn new(config: RmsPropConfig, length: usize) -> Self {
        Self {
            config,
            square_average: vec![0.0; length],
            gradient_average: vec![0.0; length],
            buffer: vec![0.0; length],
        }
    }

    fn step(&mut self, weights: &mut [f64], gradient: &[f64]) {
        let RmsPropConfig {
            learning_rate: lr,
            alpha,
            epsilon,
            weight_decay,
            momentum,
            centered,
        } = self.config;
        for i in 0..weights.len() {
            let mut g = gradient[i];
            if weight_decay != 0.0 {
                g += weight_decay * weights[i];
            }
            self.square_average[i] = alpha * self.square_average[i] + (1.0 - alpha) * g * g;
            let mut v_tilde = self.square_average[i];
            if centered {
                self.gradient_average[i] = alpha * self.gradient_average[i] + (1.0 - alpha) * g;
                v_tilde -= self.gradient_average[i] * self.gradient_average[i];
            }
            if momentum > 0.0 {
                self.buffer[i] = momentum * self.buffer[i] + g / (v_tilde.sqrt() + epsilon);
                weights[i] -= lr * self.buffer[i];
            } else {
                weights[i] -= lr * g / (v_tilde.sqrt() + epsilon);
            }
        }
    }
}

fn check(config: RmsPropConfig, context: &str) {
    let mut optimizer = RmsProp::new(config).unwrap();
    let mut reference = ReferenceRmsProp::new(config, initial_weights().len());
    compare_with_reference(&mut optimizer, |w, g| reference.step(w, g), 8, context);
}

#[test]
fn plain_matches_reference() {
    check(RmsPropConfig::default(), "default");
    check(
        RmsPropConfig::default().alpha(0.9).epsilon(1e-4),
        "alpha 0.9",
    );
}

#[test]
fn centered_matches_reference() {
    check(
        RmsPropConfig::default().alpha(0.9).centered(true),
        "centered",
    );
}

#[test]
fn momentum_matches_reference() {
    check(RmsPropConfig::default().momentum(0.9), "momentum");
}

#[test]
fn everything_together_matches_reference() {
    check(
        RmsPropConfig::default()
            .learning_rate(0.005)
            .alpha(0.8)
            .momentum(0.5)
            .centered(true)
            .weight_decay(0.1),
        "centered + momentum + weight decay",
    );
    check(RmsPropConfig::default().weight_decay(0.2), "weight decay");
}

#[test]
fn first_step_size_is_learning_rate_over_root_of_one_minus_alpha() -> TestResult {
    // Step 1: v = (1 − α) g², so Δw = −η g / (√(1 − α)|g| + ε) ≈ −η/√(1 − α) · sign(g):
    // η = 0.01, α = 0.75: |Δw| = 0.01 / 0.5 = 0.02.
    let weight = Var::new(&[0.0f64, 0.0], &Device::Cpu)?;
    let mut optimizer = RmsProp::new(RmsPropConfig::default().alpha(0.75))?;
    optimizer.step(&gradients(&[("w", &weight, Some(&[7.0, -0.3]))]))?;
    assert_close(&values(&weight), &[-0.02, 0.02], 1e-8, "first RMSprop step");
    Ok(())
}

#[test]
fn minimises_a_quadratic_in_f32() -> TestResult {
    let target = Tensor::new(&[3.0f32, -1.0, 0.5], &Device::Cpu)?;
    let weight = Var::zeros(3, DType::F32, &Device::Cpu)?;
    let mut optimizer = RmsProp::new(RmsPropConfig::default().momentum(0.5).centered(true))?;
    for step in 0..2000 {
        if step == 1000 {
            optimizer.set_learning_rate(1e-3);
        }
        let loss = weight.as_tensor().sub(&target)?.sqr()?.sum_all()?;
        optimizer.step(&Gradients::compute(&loss, [("w", &weight)])?)?;
    }
    assert_close(&values(&weight), &[3.0, -1.0, 0.5], 1e-2, "quadratic");
    Ok(())
}

#[test]
fn skipped_variable_keeps_value_and_state() -> TestResult {
    let used = Var::new(&[1.0f64], &Device::Cpu)?;
    let unused = Var::new(&[4.0f64], &Device::Cpu)?;
    let mut optimizer = RmsProp::new(RmsPropConfig::default().momentum(0.9).centered(true))?;
    optimizer.step(&gradients(&[
        ("used", &used, Some(&[1.0])),
        ("unused", &unused, Some(&[1.0])),
    ]))?;
    let before = optimizer.state()?;
    let unused_before = values(&unused);
    optimizer.step(&gradients(&[
        ("used", &used, Some(&[2.0])),
        ("unused", &unused, None),
    ]))?;
    let after = optimizer.state()?;
    assert_eq!(values(&unused), unused_before);
    for buffer in ["square_avg", "grad_avg", "momentum_buffer"] {
        let name = format!("unused.{buffer}");
        assert_eq!(
            before.tensor(&name)?.to_vec1::<f64>()?,
            after.tensor(&name)?.to_vec1::<f64>()?,
            "{name} changed"
        );
    }
    Ok(())
}

#[test]
fn rejects_bad_hyper_parameters() {
    let name = |config: RmsPropConfig| match RmsProp::new(config) {
        Err(OptimError::BadHyperParameter { name, .. }) => name,
        other => panic!("expected a bad hyper-parameter, got {other:?}"),
    };
    assert_eq!(
        name(RmsPropConfig::default().learning_rate(-1.0)),
        "learning_rate"
    );
    assert_eq!(name(RmsPropConfig::default().alpha(1.0)), "alpha");
    assert_eq!(name(RmsPropConfig::default().epsilon(0.0)), "epsilon");
    assert_eq!(name(RmsPropConfig::default().momentum(-0.5)), "momentum");
    assert_eq!(
        name(RmsPropConfig::default().weight_decay(f64::INFINITY)),
        "weight_decay"
    );
}
