//! Adam and AdamW against a scalar transcription of the torch.optim.Adam / AdamW pseudo-code
//! (amsgrad = false), on hand-derived numbers, and on a problem they must solve.

mod common;

use common::{
    assert_close, compare_with_reference, gradient_at, gradients, initial_weights, values,
    TestResult,
};
use dl_autograd::Gradients;
use dl_optim::{Adam, AdamConfig, AdamW, OptimError, Optimizer};
use dl_tensor::{DType, Device, Tensor, Var};

/// torch.optim.Adam (`decoupled = false`) or AdamW (`decoupled = true`), straight from the
/// documentation, on plain `f64` vectors.
struct ReferenceAdam {
    config: AdamConfig,
    decoupled: bool,
    step: i32,
    first_moment: Vec<f64>,
    second_moment: Vec<f64>,
}

impl ReferenceAdam {
    fn new(config: AdamConfig, decoupled: bool, length: usize) -> Self {
        Self {
            config,
            decoupled,
            step: 0,
            first_moment: vec![0.0; length],
            second_moment: vec![0.0; length],
        }
    }

    fn step(&mut self, weights: &mut [f64], gradient: &[f64]) {
        let AdamConfig {
            learning_rate: lr,
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } = self.config;
        self.step += 1;
        let t = self.step;
        for i in 0..weights.len() {
            let mut g = gradient[i];
            if self.decoupled {
                weights[i] -= lr * weight_decay * weights[i];
            } else if weight_decay != 0.0 {
                g += weight_decay * weights[i];
            }
            self.first_moment[i] = beta1 * self.first_moment[i] + (1.0 - beta1) * g;
            self.second_moment[i] = beta2 * self.second_moment[i] + (1.0 - beta2) * g * g;
            let m_hat = self.first_moment[i] / (1.0 - beta1.powi(t));
            let v_hat = self.second_moment[i] / (1.0 - beta2.powi(t));
            weights[i] -= lr * m_hat / (v_hat.sqrt() + epsilon);
        }
    }
}

fn check_adam(config: AdamConfig, context: &str) {
    let mut optimizer = Adam::new(config).unwrap();
    let mut reference = ReferenceAdam::new(config, false, initial_weights().len());
    compare_with_reference(&mut optimizer, |w, g| reference.step(w, g), 8, context);
}

fn check_adamw(config: AdamConfig, context: &str) {
    let mut optimizer = AdamW::new(config).unwrap();
    let mut reference = ReferenceAdam::new(config, true, initial_weights().len());
    compare_with_reference(&mut optimizer, |w, g| reference.step(w, g), 8, context);
}

#[test]
fn adam_matches_reference() {
    check_adam(AdamConfig::default().learning_rate(0.05), "adam");
    check_adam(
        AdamConfig::default()
            .learning_rate(0.1)
            .betas(0.5, 0.9)
            .epsilon(1e-3),
        "adam, other betas and epsilon",
    );
    check_adam(AdamConfig::default().betas(0.0, 0.5), "adam, beta1 = 0");
}

#[test]
fn adam_l2_weight_decay_matches_reference() {
    check_adam(
        AdamConfig::default().learning_rate(0.05).weight_decay(0.1),
        "adam + L2",
    );
}

#[test]
fn adamw_matches_reference() {
    check_adamw(
        AdamConfig::adamw().learning_rate(0.05),
        "adamw, default decay",
    );
    check_adamw(
        AdamConfig::adamw()
            .learning_rate(0.05)
            .weight_decay(0.3)
            .betas(0.8, 0.99),
        "adamw, strong decay",
    );
}

#[test]
fn defaults_are_pytorch_defaults() {
    let adam = AdamConfig::default();
    assert_eq!(
        (
            adam.learning_rate,
            adam.beta1,
            adam.beta2,
            adam.epsilon,
            adam.weight_decay
        ),
        (1e-3, 0.9, 0.999, 1e-8, 0.0)
    );
    assert_eq!(AdamConfig::adamw().weight_decay, 1e-2);
    assert_eq!(AdamConfig::adamw().learning_rate, 1e-3);
}

#[test]
fn first_step_moves_each_weight_by_the_learning_rate() -> TestResult {
    // Step 1: m̂ = g, v̂ = g², so Δw = −η g / (|g| + ε) ≈ −η sign(g) for any gradient size:
    // with η = 0.01, w = [1, 1, 1] and g = [300, −0.2, 4]: w ≈ [0.99, 1.01, 0.99].
    let weight = Var::new(&[1.0f64, 1.0, 1.0], &Device::Cpu)?;
    let mut optimizer = Adam::new(AdamConfig::default().learning_rate(0.01))?;
    optimizer.step(&gradients(&[("w", &weight, Some(&[300.0, -0.2, 4.0]))]))?;
    assert_close(
        &values(&weight),
        &[0.99, 1.01, 0.99],
        1e-8,
        "first Adam step",
    );
    Ok(())
}

#[test]
fn adamw_decay_differs_from_adam_l2_decay() -> TestResult {
    // The same gradient, the same λ: Adam's L2 term is normalised away by √v̂, AdamW's decay
    // is not, so the weights differ. With λ = 0 they are identical.
    let run = |decoupled: bool, weight_decay: f64| -> Vec<f64> {
        let config = AdamConfig::default()
            .learning_rate(0.1)
            .weight_decay(weight_decay);
        let mut optimizer: Box<dyn Optimizer> = if decoupled {
            Box::new(AdamW::new(config).unwrap())
        } else {
            Box::new(Adam::new(config).unwrap())
        };
        let weight = Var::new(initial_weights().as_slice(), &Device::Cpu).unwrap();
        for step in 1..=4 {
            let gradient = gradient_at(step, 5);
            optimizer
                .step(&gradients(&[("w", &weight, Some(&gradient))]))
                .unwrap();
        }
        values(&weight)
    };
    assert_eq!(run(false, 0.0), run(true, 0.0));
    let difference: f64 = run(false, 0.5)
        .iter()
        .zip(run(true, 0.5))
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(
        difference > 1e-3,
        "Adam and AdamW decay alike: {difference}"
    );
    Ok(())
}

#[test]
fn minimises_a_quadratic_in_f32() -> TestResult {
    let target = Tensor::new(&[[3.0f32, -1.0], [0.5, 2.0]], &Device::Cpu)?;
    let weight = Var::zeros((2, 2), DType::F32, &Device::Cpu)?;
    let mut optimizer = AdamW::new(AdamConfig::default().learning_rate(0.05))?;
    for _ in 0..1000 {
        let loss = weight.as_tensor().sub(&target)?.sqr()?.sum_all()?;
        optimizer.step(&Gradients::compute(&loss, [("w", &weight)])?)?;
    }
    let found: Vec<f64> = weight
        .as_tensor()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    assert_close(&found, &[3.0, -1.0, 0.5, 2.0], 1e-3, "quadratic");
    Ok(())
}

#[test]
fn skipped_variable_keeps_value_and_step_count() -> TestResult {
    // "b" has no gradient at step 3: its value and moments stay, and its bias correction
    // continues from its own step count (PyTorch keeps `step` per parameter).
    let config = AdamConfig::default().learning_rate(0.05);
    let a = Var::new(initial_weights().as_slice(), &Device::Cpu)?;
    let b = Var::new(initial_weights().as_slice(), &Device::Cpu)?;
    let mut optimizer = Adam::new(config)?;
    let mut reference_a = ReferenceAdam::new(config, false, 5);
    let mut reference_b = ReferenceAdam::new(config, false, 5);
    let (mut expected_a, mut expected_b) = (initial_weights(), initial_weights());
    for step in 1..=5 {
        let gradient = gradient_at(step, 5);
        let b_has_gradient = step != 3;
        let before = values(&b);
        optimizer.step(&gradients(&[
            ("a", &a, Some(&gradient)),
            ("b", &b, b_has_gradient.then_some(gradient.as_slice())),
        ]))?;
        reference_a.step(&mut expected_a, &gradient);
        if b_has_gradient {
            reference_b.step(&mut expected_b, &gradient);
        } else {
            assert_eq!(values(&b), before, "b moved without a gradient");
            assert_eq!(optimizer.state()?.value::<u64>("b.step")?, 2);
        }
        assert_close(&values(&a), &expected_a, 1e-6, &format!("a, step {step}"));
        assert_close(&values(&b), &expected_b, 1e-6, &format!("b, step {step}"));
    }
    let state = optimizer.state()?;
    assert_eq!(state.value::<u64>("a.step")?, 5);
    assert_eq!(state.value::<u64>("b.step")?, 4);
    assert_eq!(state.value::<u64>("steps")?, 5);
    Ok(())
}

#[test]
fn rejects_bad_hyper_parameters() {
    let name = |config: AdamConfig| match Adam::new(config) {
        Err(OptimError::BadHyperParameter { name, .. }) => name,
        other => panic!("expected a bad hyper-parameter, got {other:?}"),
    };
    assert_eq!(
        name(AdamConfig::default().learning_rate(0.0)),
        "learning_rate"
    );
    assert_eq!(name(AdamConfig::default().betas(1.0, 0.999)), "beta1");
    assert_eq!(name(AdamConfig::default().betas(0.9, -0.1)), "beta2");
    assert_eq!(name(AdamConfig::default().betas(0.9, f64::NAN)), "beta2");
    assert_eq!(name(AdamConfig::default().epsilon(0.0)), "epsilon");
    assert_eq!(
        name(AdamConfig::default().weight_decay(-0.1)),
        "weight_decay"
    );
    assert!(matches!(
        AdamW::new(AdamConfig::adamw().epsilon(-1.0)),
        Err(OptimError::BadHyperParameter {
            name: "epsilon",
            ..
        })
    ));
}

#[test]
fn zero_learning_rate_updates_moments_but_not_weights() -> TestResult {
    let weight = Var::new(&[1.0f64, 2.0], &Device::Cpu)?;
    let mut optimizer = AdamW::new(AdamConfig::adamw())?;
    optimizer.set_learning_rate(0.0);
    optimizer.step(&gradients(&[("w", &weight, Some(&[1.0, 0.0]))]))?;
    assert_eq!(values(&weight), vec![1.0, 2.0]);
    let values_after: Vec<f64> = optimizer.state()?.tensor("w.exp_avg")?.to_vec1()?;
    assert_close(&values_after, &[0.1, 0.0], 1e-12, "exp_avg");
    Ok(())
}
