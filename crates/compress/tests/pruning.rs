//! Magnitude pruning and masked fine-tuning: exact sparsity, the right weights removed, masks
//! kept through optimizer steps (weights and Adam's moments stay exactly zero) and through a
//! saved and resumed run.

use dl_autograd::Gradients;
use dl_compress::{
    magnitude_masks, measured_sparsity, prunable_weights, prune_by_magnitude, CompressError,
    MaskedOptimizer, PrunableSelection, PrunableWeight, PruneAmount, PruneScope, PruningMasks,
    PruningSchedule, Sparsity,
};
use dl_nn::{Activation, Layer, Mode, Sequential, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer, OptimizerState};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn small_model(seed: u64) -> dl_nn::Result<(VarStore, Sequential)> {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    let model = Sequential::builder(&store.root(), &[1, 6, 6])
        .conv2d(4, 3, Activation::Relu)?
        .flatten()?
        .dense(12, Activation::Relu)?
        .dense(3, Activation::Softmax)?
        .build();
    Ok((store, model))
}

fn weight(name: &str, values: &[f32]) -> PrunableWeight {
    PrunableWeight {
        name: name.into(),
        layer: name.into(),
        var: Var::new(values, &Device::Cpu).unwrap(),
    }
}

fn values(weight: &PrunableWeight) -> Vec<f32> {
    weight.var.as_tensor().to_vec1::<f32>().unwrap()
}

#[test]
fn sparsity_outside_zero_to_one_is_refused() {
    for bad in [1.0, 1.5, -0.01, f64::NAN, f64::INFINITY] {
        let error = Sparsity::new(bad).unwrap_err();
        assert!(matches!(error, CompressError::BadSparsity { .. }), "{bad}");
        assert!(error.to_string().contains("[0, 1)"), "{error}");
    }
}

#[test]
fn layer_scope_removes_the_smallest_of_each_layer() -> TestResult {
    // Worked by hand: a = |.9 .1 .5 .3| keeps .9 .5; b = |.05 2 .04 1| keeps 2 1.
    let weights = [
        weight("a", &[0.9, -0.1, 0.5, 0.3]),
        weight("b", &[0.05, 2.0, -0.04, 1.0]),
    ];
    prune_by_magnitude(&weights, Sparsity::new(0.5)?.into(), PruneScope::Layer)?;
    assert_eq!(values(&weights[0]), [0.9, 0.0, 0.5, 0.0]);
    assert_eq!(values(&weights[1]), [0.0, 2.0, 0.0, 1.0]);
    Ok(())
}

#[test]
fn global_scope_shares_one_threshold() -> TestResult {
    // The four smallest magnitudes overall are .04 .05 .1 .3: layer a loses two, b loses two.
    // With a 5/8 sparsity, .5 (the next) goes as well.
    let weights = [
        weight("a", &[0.9, -0.1, 0.5, 0.3]),
        weight("b", &[0.05, 2.0, -0.04, 1.0]),
    ];
    prune_by_magnitude(&weights, PruneAmount::Count(5), PruneScope::Global)?;
    assert_eq!(values(&weights[0]), [0.9, 0.0, 0.0, 0.0]);
    assert_eq!(values(&weights[1]), [0.0, 2.0, 0.0, 1.0]);
    Ok(())
}

#[test]
fn ties_are_broken_by_position_so_the_count_is_exact() -> TestResult {
    let weights = [weight("a", &[1.0; 10])];
    prune_by_magnitude(&weights, PruneAmount::Count(3), PruneScope::Layer)?;
    assert_eq!(
        values(&weights[0]),
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    let error =
        prune_by_magnitude(&weights, PruneAmount::Count(11), PruneScope::Global).unwrap_err();
    assert!(error.to_string().contains("only 10"), "{error}");
    Ok(())
}

#[test]
fn exact_sparsity_on_a_cnn_and_removed_weights_are_the_smallest() -> TestResult {
    for scope in [PruneScope::Layer, PruneScope::Global] {
        for sparsity in [0.5, 0.9, 0.95, 0.98] {
            let (_store, model) = small_model(7)?;
            let weights = prunable_weights(&model, PrunableSelection::default())?;
            let before: Vec<Vec<f32>> = weights
                .iter()
                .map(|w| w.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                .collect();
            prune_by_magnitude(&weights, Sparsity::new(sparsity)?.into(), scope)?;
            let (rows, overall) = measured_sparsity(&weights)?;
            let total: usize = rows.iter().map(|row| row.total).sum();
            match scope {
                PruneScope::Layer => {
                    for row in &rows {
                        let expected = (sparsity * row.total as f64).round() as usize;
                        assert_eq!(row.zeros, expected, "{} at {sparsity}", row.name);
                    }
                }
                PruneScope::Global => {
                    let expected = (sparsity * total as f64).round() as usize;
                    assert_eq!((overall * total as f64).round() as usize, expected);
                }
            }
            // Every removed weight was no larger than every kept one (within its layer for
            // the layer scope, across layers for the global one).
            let mut removed_max = Vec::new();
            let mut kept_min = Vec::new();
            for (weight, before) in weights.iter().zip(&before) {
                let after: Vec<f32> = weight.var.as_tensor().flatten_all()?.to_vec1()?;
                let removed = before
                    .iter()
                    .zip(&after)
                    .filter(|(_, a)| **a == 0.0)
                    .map(|(b, _)| b.abs())
                    .fold(0f32, f32::max);
                let kept = before
                    .iter()
                    .zip(&after)
                    .filter(|(_, a)| **a != 0.0)
                    .map(|(b, _)| b.abs())
                    .fold(f32::INFINITY, f32::min);
                // kept weights are unchanged
                for (b, a) in before.iter().zip(&after) {
                    assert!(*a == 0.0 || a == b);
                }
                if scope == PruneScope::Layer {
                    assert!(removed <= kept, "{}: {removed} > {kept}", weight.name);
                }
                removed_max.push(removed);
                kept_min.push(kept);
            }
            if scope == PruneScope::Global {
                let removed = removed_max.iter().copied().fold(0f32, f32::max);
                let kept = kept_min.iter().copied().fold(f32::INFINITY, f32::min);
                assert!(removed <= kept, "global: {removed} > {kept}");
            }
        }
    }
    Ok(())
}

#[test]
fn biases_are_pruned_only_when_asked() -> TestResult {
    let (_store, model) = small_model(1)?;
    let names = |selection| -> Vec<String> {
        prunable_weights(&model, selection)
            .unwrap()
            .into_iter()
            .map(|w| w.name)
            .collect()
    };
    assert_eq!(
        names(PrunableSelection::default()),
        ["conv2d.weight", "dense.weight", "dense_1.weight"]
    );
    assert_eq!(
        names(PrunableSelection { biases: true }).len(),
        6,
        "weights and biases of three layers"
    );
    Ok(())
}

#[test]
fn previous_masks_stay_removed_when_pruning_further() -> TestResult {
    let weights = [weight("a", &[0.0, 5.0, 0.2, 0.3, 4.0, 0.1])];
    // Position 0 is already pruned although a later, larger sparsity would rank it first
    // anyway; position 1 is pruned by a previous mask despite its magnitude.
    let mut previous = PruningMasks::new();
    previous.insert(
        "a",
        Tensor::new(&[0f32, 0.0, 1.0, 1.0, 1.0, 1.0], &Device::Cpu)?,
    );
    let masks = magnitude_masks(
        &weights,
        PruneAmount::Count(3),
        PruneScope::Layer,
        &previous,
    )?;
    assert_eq!(
        masks.get("a").unwrap().to_vec1::<f32>()?,
        [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    );
    // A smaller amount than already removed keeps the previous masks.
    let masks = magnitude_masks(
        &weights,
        PruneAmount::Count(1),
        PruneScope::Layer,
        &previous,
    )?;
    assert_eq!(
        masks.get("a").unwrap().to_vec1::<f32>()?,
        [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    );
    Ok(())
}

/// A fixed batch for the small model: inputs (8, 1, 6, 6) and labels (8).
fn batch(seed: u64) -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(seed);
    let inputs: Vec<f32> = (0..8 * 36).map(|_| rng.normal()).collect();
    let labels: Vec<u32> = (0..8).map(|_| rng.below(3) as u32).collect();
    (
        Tensor::from_vec(inputs, (8, 1, 6, 6), &Device::Cpu).unwrap(),
        Tensor::new(labels.as_slice(), &Device::Cpu).unwrap(),
    )
}

fn train_steps(
    model: &Sequential,
    store: &VarStore,
    optimizer: &mut dyn Optimizer,
    steps: std::ops::Range<u64>,
) -> TestResult {
    for step in steps {
        let (inputs, labels) = batch(step);
        let logits = model.forward(&inputs, Mode::Train)?;
        let loss = dl_nn::cross_entropy(&logits, &labels)?;
        let variables = store.trainable_variables();
        let gradients = Gradients::compute(
            &loss,
            variables.iter().map(|(name, var)| (name.as_str(), var)),
        )?;
        optimizer.step(&gradients)?;
    }
    Ok(())
}

fn adam() -> Box<dyn Optimizer> {
    Box::new(Adam::new(AdamConfig::default()).unwrap())
}

#[test]
fn masks_survive_adam_steps_weights_and_moments_stay_zero() -> TestResult {
    let (store, model) = small_model(3)?;
    let weights = prunable_weights(&model, PrunableSelection::default())?;
    // Train densely first so Adam has non-zero moments everywhere, then prune.
    let mut dense = adam();
    train_steps(&model, &store, dense.as_mut(), 0..3)?;
    let schedule = PruningSchedule::Polynomial {
        initial: 0.3,
        target: 0.8,
        begin_step: 0,
        end_step: 6,
        frequency: 2,
    };
    let mut optimizer =
        MaskedOptimizer::with_schedule(dense, weights.clone(), schedule, PruneScope::Global)?;
    train_steps(&model, &store, &mut optimizer, 0..12)?;
    let (_, sparsity) = measured_sparsity(&weights)?;
    let total: usize = weights.iter().map(|w| w.var.elem_count()).sum();
    assert_eq!(
        (sparsity * total as f64).round() as usize,
        (0.8 * total as f64).round() as usize
    );
    let state = optimizer.state()?;
    for weight in &weights {
        let mask = optimizer.masks().get(&weight.name).unwrap();
        let removed = mask.eq(0.0)?.to_dtype(DType::F32)?;
        let at_removed = |tensor: &Tensor| -> f32 {
            tensor
                .abs()
                .unwrap()
                .mul(&removed)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(at_removed(weight.var.as_tensor()), 0.0, "{}", weight.name);
        for buffer in ["exp_avg", "exp_avg_sq"] {
            let moments = state.tensor(&format!("{}.{buffer}", weight.name))?;
            assert_eq!(at_removed(moments), 0.0, "{} {buffer}", weight.name);
        }
        // and the kept weights did train
        assert!(mask.sum_all()?.to_scalar::<f32>()? > 0.0);
    }
    Ok(())
}

#[test]
fn a_resumed_pruning_run_equals_an_uninterrupted_one() -> TestResult {
    let schedule = PruningSchedule::Iterative {
        target: 0.9,
        rounds: 3,
        steps_per_round: 4,
    };
    let run = |stop_at: Option<u64>| -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
        let (store, model) = small_model(5)?;
        let weights = prunable_weights(&model, PrunableSelection::default())?;
        let mut optimizer =
            MaskedOptimizer::with_schedule(adam(), weights.clone(), schedule, PruneScope::Layer)?;
        match stop_at {
            None => train_steps(&model, &store, &mut optimizer, 0..14)?,
            Some(stop) => {
                train_steps(&model, &store, &mut optimizer, 0..stop)?;
                let directory = tempfile::tempdir()?;
                let path = directory.path().join("optimizer.safetensors");
                optimizer.save_state_file(&path)?;
                let snapshot = store.snapshot()?;
                // A new process: fresh model and optimizer, then the saved weights and state.
                let (store, model) = small_model(99)?;
                store.restore(&snapshot)?;
                let weights = prunable_weights(&model, PrunableSelection::default())?;
                let mut resumed = MaskedOptimizer::with_schedule(
                    adam(),
                    weights.clone(),
                    schedule,
                    PruneScope::Layer,
                )?;
                resumed.load_state_file(&path)?;
                assert_eq!(resumed.steps(), stop);
                train_steps(&model, &store, &mut resumed, stop..14)?;
                return Ok(weights
                    .iter()
                    .map(|w| w.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                    .collect());
            }
        }
        Ok(weights
            .iter()
            .map(|w| w.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect())
    };
    let uninterrupted = run(None)?;
    for stop in [3, 4, 9] {
        assert_eq!(
            run(Some(stop))?,
            uninterrupted,
            "stopped after {stop} steps"
        );
    }
    Ok(())
}

#[test]
fn a_state_without_masks_is_refused_by_name() -> TestResult {
    let (_store, model) = small_model(2)?;
    let weights = prunable_weights(&model, PrunableSelection::default())?;
    let mut optimizer = MaskedOptimizer::keeping_zeros(adam(), weights)?;
    let plain = adam().state()?;
    let error = optimizer.load_state(&plain).unwrap_err();
    assert!(
        error.to_string().contains("conv2d.weight.pruning_mask"),
        "{error}"
    );
    let mut state: OptimizerState = optimizer.state()?;
    state.tensors.insert(
        "dense.weight.pruning_mask".into(),
        Tensor::ones((2, 2), DType::F32, &Device::Cpu)?,
    );
    let error = optimizer.load_state(&state).unwrap_err();
    assert!(error.to_string().contains("shape"), "{error}");
    Ok(())
}

#[test]
fn schedules_follow_their_formulas() -> TestResult {
    let iterative = PruningSchedule::Iterative {
        target: 0.875,
        rounds: 3,
        steps_per_round: 10,
    };
    // Each round keeps half of what is left: 1/2, 1/4, 1/8.
    assert!((iterative.sparsity_at(0).unwrap() - 0.5).abs() < 1e-12);
    assert!((iterative.sparsity_at(10).unwrap() - 0.75).abs() < 1e-12);
    assert_eq!(iterative.sparsity_at(20), Some(0.875));
    assert_eq!(iterative.sparsity_at(5), None);
    assert_eq!(iterative.sparsity_at(30), None);
    let one_shot = PruningSchedule::OneShot { target: 0.9 };
    assert_eq!(one_shot.sparsity_at(0), Some(0.9));
    assert_eq!(one_shot.sparsity_at(1), None);
    let bad = PruningSchedule::Polynomial {
        initial: 0.5,
        target: 0.2,
        begin_step: 0,
        end_step: 10,
        frequency: 1,
    };
    assert!(bad.validate().unwrap_err().to_string().contains("exceeds"));
    Ok(())
}
