//! Learning-rate schedules: values against their formulas computed by hand, PyTorch's
//! reduce-on-plateau behaviour, and parsing of `--schedule` strings.

use std::f64::consts::PI;

use dl_optim::{
    CosineWithWarmup, ExponentialDecay, LearningRateSchedule, OptimError, Optimizer, PlateauConfig,
    PlateauMode, ReduceOnPlateau, ScheduleSpec, Sgd, SgdConfig, StepDecay, ThresholdMode,
};

/// Whether `actual` is within 1e-12 · max(1, |expected|) of `expected`.
fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0)
}

/// Records each metric in turn and asserts the learning rate `record` returns for it.
fn assert_records(schedule: &mut ReduceOnPlateau, metrics_and_rates: &[(f64, f64)]) {
    for (epoch, &(metric, expected)) in metrics_and_rates.iter().enumerate() {
        assert_eq!(schedule.record(metric), expected, "epoch {epoch}");
    }
}

#[test]
fn step_decay_values() -> Result<(), OptimError> {
    // η₀ = 0.1, γ = 0.5 every 3 epochs: epochs 0–2 → 0.1, 3–5 → 0.05, 6–8 → 0.025, 9 → 0.0125.
    let schedule = StepDecay::new(0.1, 3, 0.5)?;
    let expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125];
    for (epoch, expected) in expected.into_iter().enumerate() {
        assert!(
            close(schedule.learning_rate_at(epoch), expected),
            "epoch {epoch}"
        );
    }
    Ok(())
}

#[test]
fn exponential_decay_values() -> Result<(), OptimError> {
    // η₀ = 2, γ = 0.9: η_e = 2 · 0.9^e; e = 2 → 1.62, e = 10 → 0.6973568802.
    let schedule = ExponentialDecay::new(2.0, 0.9)?;
    assert_eq!(schedule.learning_rate_at(0), 2.0);
    assert!(close(schedule.learning_rate_at(2), 1.62));
    assert!(close(schedule.learning_rate_at(10), 0.697_356_880_2));
    Ok(())
}

#[test]
fn cosine_with_warmup_values() -> Result<(), OptimError> {
    // η₀ = 0.1, η_min = 0.01, W = 4, T = 24 (20 annealing steps).
    let schedule = CosineWithWarmup::new(0.1, 24, 4, 0.01)?;
    // Warm-up: 0.1 · (s + 1) / 4.
    for (step, expected) in [(0, 0.025), (1, 0.05), (2, 0.075), (3, 0.1)] {
        assert!(
            close(schedule.learning_rate_at(step), expected),
            "step {step}"
        );
    }
    // Annealing: 0.01 + 0.09 · (1 + cos(π (s − 4) / 20)) / 2.
    assert!(close(schedule.learning_rate_at(4), 0.1));
    assert!(close(
        schedule.learning_rate_at(9),
        0.01 + 0.045 * (1.0 + (PI / 4.0).cos())
    ));
    assert!(close(schedule.learning_rate_at(14), 0.055));
    assert!(close(schedule.learning_rate_at(24), 0.01));
    assert!(
        close(schedule.learning_rate_at(1000), 0.01),
        "stays at the minimum"
    );
    // Monotone after warm-up.
    for step in 4..30 {
        assert!(schedule.learning_rate_at(step + 1) <= schedule.learning_rate_at(step));
    }
    // Without warm-up it starts at η₀.
    assert_eq!(
        CosineWithWarmup::new(0.1, 10, 0, 0.0)?.learning_rate_at(0),
        0.1
    );
    Ok(())
}

#[test]
fn cosine_counts_optimizer_steps_not_epochs() -> Result<(), OptimError> {
    let mut schedule = CosineWithWarmup::new(1.0, 10, 2, 0.0)?;
    assert_eq!(schedule.learning_rate(), 0.5);
    schedule.after_epoch(None)?;
    assert_eq!(schedule.learning_rate(), 0.5, "epochs do not advance it");
    schedule.after_step();
    assert_eq!(schedule.learning_rate(), 1.0);
    Ok(())
}

#[test]
fn plateau_reduces_after_patience() -> Result<(), OptimError> {
    // patience 2: the third bad epoch in a row multiplies η by 0.5.
    let config = PlateauConfig {
        patience: 2,
        factor: 0.5,
        ..PlateauConfig::default()
    };
    let mut schedule = ReduceOnPlateau::new(1.0, config)?;
    assert_records(
        &mut schedule,
        &[
            (5.0, 1.0),
            (4.0, 1.0),
            (4.0, 1.0),
            (4.0, 1.0),
            (4.0, 0.5),
            (3.0, 0.5),
            (3.5, 0.5),
            (3.5, 0.5),
            (3.5, 0.25),
            (3.5, 0.25),
        ],
    );
    assert_eq!(schedule.best(), 3.0);
    Ok(())
}

#[test]
fn plateau_threshold_cooldown_and_minimum() -> Result<(), OptimError> {
    // Relative threshold 0.1: 0.95 is not better than 1.0 (needs < 0.9).
    let config = PlateauConfig {
        patience: 0,
        factor: 0.1,
        threshold: 0.1,
        cooldown: 2,
        min_learning_rate: 0.005,
        ..PlateauConfig::default()
    };
    let mut schedule = ReduceOnPlateau::new(1.0, config)?;
    assert_eq!(schedule.record(1.0), 1.0);
    assert_eq!(
        schedule.record(0.95),
        0.1,
        "not better by 10%: reduce at once (patience 0)"
    );
    assert_eq!(schedule.record(0.95), 0.1, "cooldown 1 of 2");
    assert_eq!(schedule.record(0.95), 0.1, "cooldown 2 of 2");
    for _ in 0..3 {
        assert!(
            close(schedule.record(0.95), 0.01),
            "then one reduction per 3 epochs"
        );
    }
    assert_eq!(schedule.record(0.95), 0.005, "never below the minimum");
    for _ in 0..10 {
        assert_eq!(schedule.record(0.95), 0.005);
    }

    // Max mode with an absolute threshold: accuracy must rise by more than 0.01.
    let config = PlateauConfig {
        patience: 1,
        factor: 0.5,
        mode: PlateauMode::Max,
        threshold_mode: ThresholdMode::Absolute,
        threshold: 0.01,
        ..PlateauConfig::default()
    };
    let mut schedule = ReduceOnPlateau::new(0.2, config)?;
    assert_records(
        &mut schedule,
        &[(0.80, 0.2), (0.805, 0.2), (0.809, 0.1), (0.85, 0.1)],
    );
    assert_eq!(schedule.best(), 0.85);
    Ok(())
}

#[test]
fn plateau_needs_the_metric() -> Result<(), OptimError> {
    let mut schedule = ReduceOnPlateau::new(0.1, PlateauConfig::default())?;
    assert!(matches!(
        schedule.after_epoch(None),
        Err(OptimError::MissingMetric { .. })
    ));
    schedule.after_epoch(Some(1.0))?;
    Ok(())
}

#[test]
fn plateau_state_round_trip() -> Result<(), OptimError> {
    let config = PlateauConfig {
        patience: 1,
        factor: 0.5,
        cooldown: 1,
        ..PlateauConfig::default()
    };
    let mut original = ReduceOnPlateau::new(1.0, config)?;
    for metric in [3.0, 3.0, 3.0] {
        original.record(metric);
    }
    let mut resumed = ReduceOnPlateau::new(1.0, config)?;
    resumed.load_state(&original.state())?;
    assert_eq!(resumed, original);
    for metric in [3.0, 3.0, 2.0, 2.5, 2.5] {
        assert_eq!(resumed.record(metric), original.record(metric));
    }
    Ok(())
}

#[test]
fn drives_an_optimizer_through_the_trait() -> Result<(), OptimError> {
    let mut optimizer = Sgd::new(SgdConfig::new(0.4))?;
    let mut schedule = "exponential:0.5"
        .parse::<ScheduleSpec>()?
        .build(optimizer.learning_rate(), 100)?;
    let mut seen = Vec::new();
    for _epoch in 0..3 {
        optimizer.set_learning_rate(schedule.learning_rate());
        seen.push(optimizer.learning_rate());
        schedule.after_step();
        schedule.after_epoch(Some(0.0))?;
    }
    assert_eq!(seen, vec![0.4, 0.2, 0.1]);

    let mut resumed = "exponential:0.5".parse::<ScheduleSpec>()?.build(0.4, 100)?;
    resumed.load_state(&schedule.state())?;
    assert_eq!(resumed.learning_rate(), schedule.learning_rate());
    Ok(())
}

#[test]
fn parses_good_strings() -> Result<(), OptimError> {
    let parse = |text: &str| text.parse::<ScheduleSpec>();
    assert_eq!(parse("constant")?, ScheduleSpec::Constant);
    assert_eq!(parse(" Constant ")?, ScheduleSpec::Constant);
    assert_eq!(
        parse("step:10:0.5")?,
        ScheduleSpec::Step {
            step_size: 10,
            gamma: 0.5
        }
    );
    assert_eq!(
        parse("step:10")?,
        ScheduleSpec::Step {
            step_size: 10,
            gamma: 0.1
        },
        "PyTorch's default γ"
    );
    assert_eq!(
        parse("step:gamma=0.2:step_size=5")?,
        ScheduleSpec::Step {
            step_size: 5,
            gamma: 0.2
        }
    );
    assert_eq!(
        parse("exponential:0.95")?,
        ScheduleSpec::Exponential { gamma: 0.95 }
    );
    assert_eq!(
        parse("cosine")?,
        ScheduleSpec::Cosine {
            warmup_steps: 0,
            min_learning_rate: 0.0
        }
    );
    assert_eq!(
        parse("cosine:warmup=500")?,
        ScheduleSpec::Cosine {
            warmup_steps: 500,
            min_learning_rate: 0.0
        }
    );
    assert_eq!(
        parse("cosine:warmup_steps=100:min_learning_rate=1e-5")?,
        ScheduleSpec::Cosine {
            warmup_steps: 100,
            min_learning_rate: 1e-5
        }
    );
    assert_eq!(
        parse("plateau")?,
        ScheduleSpec::Plateau(PlateauConfig::default())
    );
    assert_eq!(
        parse("plateau:patience=3:factor=0.5:mode=max:threshold_mode=abs:cooldown=1:min_lr=1e-6")?,
        ScheduleSpec::Plateau(PlateauConfig {
            mode: PlateauMode::Max,
            factor: 0.5,
            patience: 3,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Absolute,
            cooldown: 1,
            min_learning_rate: 1e-6,
        })
    );
    // Display is canonical and parses back.
    for text in [
        "constant",
        "step:7:0.3",
        "exponential:0.99",
        "cosine:warmup=10",
        "plateau:patience=4:mode=max",
    ] {
        let spec = parse(text)?;
        assert_eq!(parse(&spec.to_string())?, spec, "{text} → {spec}");
    }
    Ok(())
}

#[test]
fn rejects_bad_strings_with_clear_messages() {
    let cases = [
        ("", "no schedule"),
        ("linear", "unknown schedule 'linear'"),
        ("constant:0.1", "constant takes no parameters"),
        ("step", "step_size is required"),
        ("step:ten", "step_size = 'ten'"),
        ("step:0:0.5", "step_size"),
        ("step:10:1.5", "gamma"),
        ("step:10:0.5:3", "at most 2 parameters"),
        ("step:10:", "empty"),
        ("step:gamma=0.5:10", "positional"),
        ("step:10:gamma=0.5:gamma=0.2", "gamma is given twice"),
        ("exponential", "gamma is required"),
        ("exponential:-0.5", "gamma"),
        ("exponential:NaN", "gamma"),
        ("cosine:warmpu=5", "no parameter 'warmpu'"),
        ("cosine:warmup=-5", "warmup = '-5'"),
        ("cosine:min_lr=-1", "min_learning_rate"),
        ("plateau:factor=1", "factor"),
        ("plateau:mode=median", "mode = 'median'"),
        ("plateau:threshold_mode=log", "threshold_mode"),
        ("plateau:patience=2.5", "patience = '2.5'"),
    ];
    for (text, expected) in cases {
        match text.parse::<ScheduleSpec>() {
            Ok(spec) => panic!("'{text}' parsed as {spec:?}"),
            Err(error) => {
                assert!(
                    matches!(error, OptimError::BadSchedule { .. }),
                    "{text}: {error:?}"
                );
                let message = error.to_string();
                assert!(message.contains(expected), "'{text}': {message}");
                assert!(
                    message.contains(&format!("'{text}'")),
                    "quotes the input: {message}"
                );
            }
        }
    }
}

#[test]
fn build_checks_what_depends_on_the_run() -> Result<(), OptimError> {
    let cosine: ScheduleSpec = "cosine:warmup=500".parse()?;
    assert!(matches!(
        cosine.build(0.1, 100),
        Err(OptimError::BadHyperParameter {
            name: "warmup_steps",
            ..
        })
    ));
    assert!(cosine.build(0.1, 1000).is_ok());
    let minimum_too_high: ScheduleSpec = "cosine:min_lr=0.5".parse()?;
    assert!(matches!(
        minimum_too_high.build(0.1, 1000),
        Err(OptimError::BadHyperParameter {
            name: "min_learning_rate",
            ..
        })
    ));
    assert!(matches!(
        ScheduleSpec::Constant.build(-1.0, 10),
        Err(OptimError::BadHyperParameter {
            name: "learning_rate",
            ..
        })
    ));
    Ok(())
}
