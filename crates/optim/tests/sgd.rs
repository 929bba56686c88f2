//! SGD against a scalar transcription of the torch.optim.SGD pseudo-code, on hand-derived
//! numbers, and on problems gradient descent must solve.

mod common;

use common::{assert_close, compare_with_reference, gradients, values, TestResult};
use dl_autograd::Gradients;
use dl_optim::{OptimError, Optimizer, Sgd, SgdConfig};
use dl_tensor::{DType, Device, Tensor, Var};

/// torch.optim.SGD, straight from its documentation, on plain `f64` vectors.
struct ReferenceSgd {
    learning_rate: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    buffer: Option<Vec<f64>>,
}

impl ReferenceSgd {
    fn new(config: &SgdConfig) -> Self {
        Self {
            learning_rate: config.learning_rate,
            momentum: config.momentum,
            dampening: config.dampening,
            nesterov: config.nesterov,
            weight_decay: config.weight_decay,
            buffer: None,
        }
    }

    fn step(&mut self, weights: &mut [f64], gradient: &[f64]) {
        let mut g: Vec<f64> = gradient.to_vec();
        if self.weight_decay != 0.0 {
            for i in 0..g.len() {
                g[i] += self.weight_decay * weights[i];
            }
        }
        if self.momentum != 0.0 {
            match &mut self.buffer {
                None => self.buffer = Some(g.clone()),
                Some(buffer) => {
                    for i in 0..g.len() {
                        buffer[i] = self.momentum * buffer[i] + (1.0 - self.dampening) * g[i];
                    }
                }
            }
            let buffer = self.buffer.as_ref().unwrap();
            if self.nesterov {
                for i in 0..g.len() {
                    g[i] += self.momentum * buffer[i];
                }
            } else {
                g = buffer.clone();
            }
        }
        for i in 0..g.len() {
            weights[i] -= self.learning_rate * g[i];
        }
    }
}

fn check_against_reference(config: SgdConfig, context: &str) {
    let mut optimizer = Sgd::new(config).unwrap();
    let mut reference = ReferenceSgd::new(&config);
    compare_with_reference(&mut optimizer, |w, g| reference.step(w, g), 8, context);
}

#[test]
fn plain_gradient_descent_matches_reference() {
    check_against_reference(SgdConfig::new(0.1), "plain");
}

#[test]
fn momentum_matches_reference() {
    check_against_reference(SgdConfig::new(0.05).momentum(0.9), "momentum");
}

#[test]
fn momentum_with_dampening_matches_reference() {
    check_against_reference(
        SgdConfig::new(0.05).momentum(0.8).dampening(0.3),
        "dampening",
    );
}

#[test]
fn nesterov_matches_reference() {
    check_against_reference(
        SgdConfig::new(0.05).momentum(0.9).nesterov(true),
        "nesterov",
    );
}

#[test]
fn weight_decay_with_momentum_matches_reference() {
    check_against_reference(
        SgdConfig::new(0.1).momentum(0.5).weight_decay(0.01),
        "weight decay + momentum",
    );
    check_against_reference(SgdConfig::new(0.1).weight_decay(0.2), "weight decay alone");
    check_against_reference(
        SgdConfig::new(0.1)
            .momentum(0.7)
            .nesterov(true)
            .weight_decay(0.05),
        "weight decay + nesterov",
    );
}

#[test]
fn hand_derived_steps() -> TestResult {
    // Plain: w = [1, 2], g = [0.5, −1], η = 0.1: w − ηg = [0.95, 2.1].
    let weight = Var::new(&[1.0f64, 2.0], &Device::Cpu)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.1))?;
    optimizer.step(&gradients(&[("w", &weight, Some(&[0.5, -1.0]))]))?;
    assert_close(&values(&weight), &[0.95, 2.1], 1e-15, "plain");

    // Nesterov, μ = 0.5, η = 1, g = 1 twice, from w = 0:
    // step 1: b = 1, step direction g + μb = 1.5, w = −1.5;
    // step 2: b = 0.5 + 1 = 1.5, direction 1 + 0.75 = 1.75, w = −3.25.
    let weight = Var::new(&[0.0f64], &Device::Cpu)?;
    let mut optimizer = Sgd::new(SgdConfig::new(1.0).momentum(0.5).nesterov(true))?;
    for _ in 0..2 {
        optimizer.step(&gradients(&[("w", &weight, Some(&[1.0]))]))?;
    }
    assert_close(&values(&weight), &[-3.25], 1e-15, "nesterov");
    Ok(())
}

#[test]
fn minimises_a_quadratic_in_f32() -> TestResult {
    // L = Σ (w − t)², minimum at t; f32 variables on the CPU.
    let target = Tensor::new(&[3.0f32, -1.0, 0.5], &Device::Cpu)?;
    let weight = Var::zeros(3, DType::F32, &Device::Cpu)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.1).momentum(0.9))?;
    for _ in 0..300 {
        let loss = weight.as_tensor().sub(&target)?.sqr()?.sum_all()?;
        optimizer.step(&Gradients::compute(&loss, [("w", &weight)])?)?;
    }
    assert_eq!(weight.dtype(), DType::F32);
    assert_close(&values(&weight), &[3.0, -1.0, 0.5], 1e-4, "quadratic");
    Ok(())
}

#[test]
fn fits_a_line() -> TestResult {
    // y = 2x + 1 on x ∈ [−1, 1]: mean squared error, plain gradient descent.
    let device = Device::Cpu;
    let x: Vec<f64> = (0..21).map(|i| -1.0 + 0.1 * i as f64).collect();
    let y: Vec<f64> = x.iter().map(|x| 2.0 * x + 1.0).collect();
    let x = Tensor::new(x.as_slice(), &device)?;
    let y = Tensor::new(y.as_slice(), &device)?;
    let slope = Var::new(&[0.0f64], &device)?;
    let intercept = Var::new(&[0.0f64], &device)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.2))?;
    for _ in 0..500 {
        let prediction = x
            .broadcast_mul(slope.as_tensor())?
            .broadcast_add(intercept.as_tensor())?;
        let loss = prediction.sub(&y)?.sqr()?.mean_all()?;
        optimizer.step(&Gradients::compute(
            &loss,
            [("slope", &slope), ("intercept", &intercept)],
        )?)?;
    }
    assert_close(&values(&slope), &[2.0], 1e-6, "slope");
    assert_close(&values(&intercept), &[1.0], 1e-6, "intercept");
    Ok(())
}

#[test]
fn variable_without_gradient_is_skipped() -> TestResult {
    let used = Var::new(&[1.0f64, 2.0], &Device::Cpu)?;
    let unused = Var::new(&[5.0f64, 6.0], &Device::Cpu)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.1).momentum(0.9).weight_decay(0.1))?;
    for _ in 0..3 {
        let step = gradients(&[
            ("used", &used, Some(&[1.0, 1.0])),
            ("unused", &unused, None),
        ]);
        assert_eq!(step.missing(), vec!["unused"]);
        optimizer.step(&step)?;
    }
    assert_eq!(values(&unused), vec![5.0, 6.0]);
    let state = optimizer.state()?;
    assert!(state.tensors.contains_key("used.momentum_buffer"));
    assert!(!state.tensors.contains_key("unused.momentum_buffer"));
    assert_eq!(state.value::<u64>("steps")?, 3);
    Ok(())
}

fn bad_parameter(result: Result<Sgd, OptimError>) -> &'static str {
    match result {
        Err(OptimError::BadHyperParameter { name, .. }) => name,
        other => panic!("expected a bad hyper-parameter, got {other:?}"),
    }
}

#[test]
fn rejects_bad_hyper_parameters() {
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(0.0))),
        "learning_rate"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(-0.1))),
        "learning_rate"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(f64::NAN))),
        "learning_rate"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(f64::INFINITY))),
        "learning_rate"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(0.1).momentum(-0.1))),
        "momentum"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(0.1).momentum(1.0))),
        "momentum"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(0.1).dampening(1.5))),
        "dampening"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(0.1).weight_decay(-1e-4))),
        "weight_decay"
    );
    assert_eq!(
        bad_parameter(Sgd::new(SgdConfig::new(0.1).nesterov(true))),
        "nesterov"
    );
    assert_eq!(
        bad_parameter(Sgd::new(
            SgdConfig::new(0.1)
                .momentum(0.9)
                .dampening(0.1)
                .nesterov(true)
        )),
        "nesterov"
    );
    let message = Sgd::new(SgdConfig::new(0.1).momentum(2.0))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("momentum") && message.contains('2') && message.contains("[0, 1)"),
        "{message}"
    );
}

#[test]
fn learning_rate_set_at_run_time_is_checked_when_stepping() -> TestResult {
    let weight = Var::new(&[1.0f64], &Device::Cpu)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.1).momentum(0.9))?;
    optimizer.set_learning_rate(-1.0);
    let error = optimizer
        .step(&gradients(&[("w", &weight, Some(&[1.0]))]))
        .unwrap_err();
    assert!(matches!(
        error,
        OptimError::BadHyperParameter {
            name: "learning_rate",
            ..
        }
    ));
    assert_eq!(values(&weight), vec![1.0]);
    assert_eq!(
        optimizer.state()?.tensors.len(),
        0,
        "a failed step changes no state"
    );

    // A learning rate of exactly 0 (the end of a cosine schedule) leaves the weights alone.
    optimizer.set_learning_rate(0.0);
    optimizer.step(&gradients(&[("w", &weight, Some(&[1.0]))]))?;
    assert_eq!(values(&weight), vec![1.0]);
    assert_eq!(optimizer.learning_rate(), 0.0);
    Ok(())
}

#[test]
fn duplicate_names_and_misshapen_gradients_are_errors() -> TestResult {
    let first = Var::new(&[1.0f64], &Device::Cpu)?;
    let second = Var::new(&[2.0f64], &Device::Cpu)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.1))?;
    let error = optimizer
        .step(&gradients(&[
            ("w", &first, Some(&[1.0])),
            ("w", &second, Some(&[1.0])),
        ]))
        .unwrap_err();
    assert!(matches!(error, OptimError::DuplicateVariable { ref name } if name == "w"));

    let mut misshapen = gradients(&[("w", &first, Some(&[1.0]))]);
    misshapen.set(&first, Tensor::new(&[1.0f64, 2.0], &Device::Cpu)?);
    let error = optimizer.step(&misshapen).unwrap_err();
    assert!(
        matches!(error, OptimError::GradientShapeMismatch { .. }),
        "{error}"
    );
    assert_eq!(values(&first), vec![1.0]);
    Ok(())
}
