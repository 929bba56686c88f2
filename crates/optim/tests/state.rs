//! Saving and resuming optimizer state: an interrupted run continues bit for bit, and every
//! kind of bad state file is a clear error, never a panic.

mod common;

use std::path::Path;

use common::{gradient_at, gradients, initial_weights, values, TestResult};
use dl_optim::{
    Adam, AdamConfig, AdamW, OptimError, Optimizer, OptimizerState, RmsProp, RmsPropConfig, Sgd,
    SgdConfig,
};
use dl_tensor::{DType, Device, Tensor, Var};

/// Two variables of different shapes and a fixed gradient sequence; "bias" gets no gradient
/// at step 2, so per-variable counters differ.
struct Model {
    weight: Var,
    bias: Var,
}

impl Model {
    fn new(dtype: DType) -> Self {
        let weight = Tensor::new(initial_weights().as_slice(), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let bias = Tensor::new(&[0.25f64, -0.75], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        Self {
            weight: Var::from_tensor(&weight).unwrap(),
            bias: Var::from_tensor(&bias).unwrap(),
        }
    }

    fn step(&self, optimizer: &mut dyn Optimizer, step: usize) {
        let weight_gradient = gradient_at(step, 5);
        let bias_gradient = gradient_at(step + 7, 2);
        let listed = [
            (
                "layer.weight",
                &self.weight,
                Some(weight_gradient.as_slice()),
            ),
            (
                "layer.bias",
                &self.bias,
                (step != 2).then_some(bias_gradient.as_slice()),
            ),
        ];
        optimizer.step(&gradients(&listed)).unwrap();
    }

    fn bits(&self) -> Vec<u64> {
        values(&self.weight)
            .into_iter()
            .chain(values(&self.bias))
            .map(f64::to_bits)
            .collect()
    }
}

/// Runs 7 steps straight through, and 3 steps + save + load into `fresh` + 4 steps, and
/// requires bit-identical weights.
fn resume_is_exact(
    make: &dyn Fn() -> Box<dyn Optimizer>,
    mut fresh: Box<dyn Optimizer>,
    dtype: DType,
    context: &str,
) -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("optimizer.safetensors");

    let uninterrupted = Model::new(dtype);
    let mut optimizer = make();
    for step in 1..=7 {
        uninterrupted.step(optimizer.as_mut(), step);
    }

    let interrupted = Model::new(dtype);
    let mut first_half = make();
    for step in 1..=3 {
        interrupted.step(first_half.as_mut(), step);
    }
    first_half.save_state_file(&path)?;
    drop(first_half);
    fresh.load_state_file(&path)?;
    assert_eq!(
        fresh.learning_rate(),
        optimizer.learning_rate(),
        "{context}: learning rate restored"
    );
    for step in 4..=7 {
        interrupted.step(fresh.as_mut(), step);
    }
    assert_eq!(
        interrupted.bits(),
        uninterrupted.bits(),
        "{context}: weights differ after resuming"
    );
    assert_eq!(
        fresh.state()?.values,
        optimizer.state()?.values,
        "{context}: counters differ"
    );
    assert_only_file(directory.path(), "optimizer.safetensors");
    Ok(())
}

/// Fails unless `directory` holds exactly the file `name` (no temporary files left behind).
fn assert_only_file(directory: &Path, name: &str) {
    let names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![name.to_string()], "files left in the directory");
}

#[test]
fn sgd_resumes_exactly() -> TestResult {
    let config = SgdConfig::new(0.05)
        .momentum(0.9)
        .nesterov(true)
        .weight_decay(0.01);
    let make = || Box::new(Sgd::new(config).unwrap()) as Box<dyn Optimizer>;
    resume_is_exact(
        &make,
        Box::new(Sgd::new(SgdConfig::new(1.0))?),
        DType::F64,
        "sgd",
    )?;
    resume_is_exact(
        &make,
        Box::new(Sgd::new(SgdConfig::new(1.0))?),
        DType::F32,
        "sgd f32",
    )
}

#[test]
fn adam_and_adamw_resume_exactly() -> TestResult {
    let adam = || {
        Box::new(Adam::new(AdamConfig::default().learning_rate(0.01).weight_decay(0.1)).unwrap())
            as Box<dyn Optimizer>
    };
    resume_is_exact(
        &adam,
        Box::new(Adam::new(AdamConfig::default())?),
        DType::F64,
        "adam",
    )?;
    let adamw = || {
        Box::new(AdamW::new(AdamConfig::adamw().learning_rate(0.01)).unwrap()) as Box<dyn Optimizer>
    };
    resume_is_exact(
        &adamw,
        Box::new(AdamW::new(AdamConfig::adamw())?),
        DType::F64,
        "adamw",
    )?;
    resume_is_exact(
        &adamw,
        Box::new(AdamW::new(AdamConfig::adamw())?),
        DType::F32,
        "adamw f32",
    )
}

#[test]
fn rmsprop_resumes_exactly() -> TestResult {
    let config = RmsPropConfig::default()
        .momentum(0.5)
        .centered(true)
        .weight_decay(0.01);
    let make = || Box::new(RmsProp::new(config).unwrap()) as Box<dyn Optimizer>;
    resume_is_exact(
        &make,
        Box::new(RmsProp::new(config)?),
        DType::F64,
        "rmsprop",
    )
}

#[test]
fn state_holds_kind_steps_and_hyper_parameters() -> TestResult {
    let model = Model::new(DType::F64);
    let mut optimizer = Adam::new(AdamConfig::default())?;
    model.step(&mut optimizer, 1);
    model.step(&mut optimizer, 2);
    let state = optimizer.state()?;
    assert_eq!(state.kind(), Some("adam"));
    assert_eq!(state.value::<u64>("steps")?, 2);
    assert_eq!(state.value::<f64>("beta2")?, 0.999);
    assert_eq!(state.value::<u64>("layer.weight.step")?, 2);
    assert_eq!(state.value::<u64>("layer.bias.step")?, 1);
    let names: Vec<&str> = state.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "layer.bias.exp_avg",
            "layer.bias.exp_avg_sq",
            "layer.weight.exp_avg",
            "layer.weight.exp_avg_sq"
        ]
    );
    Ok(())
}

#[test]
fn empty_state_round_trips() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("empty.safetensors");
    Sgd::new(SgdConfig::new(0.1))?.save_state_file(&path)?;
    let mut optimizer = Sgd::new(SgdConfig::new(0.5))?;
    optimizer.load_state_file(&path)?;
    assert_eq!(optimizer.learning_rate(), 0.1);
    assert_eq!(optimizer.steps(), 0);
    Ok(())
}

#[test]
fn a_state_saved_at_an_annealed_rate_of_zero_loads() -> TestResult {
    // Cosine annealing to min_lr = 0 leaves the rate at exactly 0 after the last step; the
    // checkpoint written then must resume. A negative rate is still refused.
    type Make = fn() -> Result<Box<dyn Optimizer>, OptimError>;
    let kinds: [Make; 4] = [
        || Ok(Box::new(Sgd::new(SgdConfig::new(0.1).momentum(0.9))?)),
        || Ok(Box::new(Adam::new(AdamConfig::default())?)),
        || Ok(Box::new(AdamW::new(AdamConfig::adamw())?)),
        || Ok(Box::new(RmsProp::new(RmsPropConfig::default())?)),
    ];
    for make in kinds {
        let mut optimizer = make()?;
        Model::new(DType::F32).step(optimizer.as_mut(), 1);
        optimizer.set_learning_rate(0.0);
        let state = optimizer.state()?;
        let mut resumed = make()?;
        resumed.load_state(&state)?;
        assert_eq!(resumed.learning_rate(), 0.0);

        let mut negative = state.clone();
        negative.set_value("learning_rate", -0.1);
        let error = make()?.load_state(&negative).unwrap_err();
        assert!(
            matches!(
                error,
                OptimError::BadHyperParameter {
                    name: "learning_rate",
                    ..
                }
            ),
            "{error:?}"
        );
    }
    Ok(())
}

#[test]
fn overwriting_leaves_no_temporary_files() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("state.safetensors");
    let model = Model::new(DType::F64);
    let mut optimizer = RmsProp::new(RmsPropConfig::default())?;
    for step in 1..=3 {
        model.step(&mut optimizer, step);
        optimizer.save_state_file(&path)?;
    }
    assert_only_file(directory.path(), "state.safetensors");
    assert_eq!(OptimizerState::load(&path)?.value::<u64>("steps")?, 3);
    Ok(())
}

#[test]
fn saving_creates_missing_directories_and_unwritable_paths_are_errors() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("no/such/dir/state.safetensors");
    Sgd::new(SgdConfig::new(0.1))?.save_state_file(&path)?;
    assert_eq!(OptimizerState::load(&path)?.kind(), Some("sgd"));
    // A directory that cannot exist: its parent is a regular file.
    let blocker = directory.path().join("a-file");
    std::fs::write(&blocker, b"not a directory")?;
    let impossible = blocker.join("state.safetensors");
    let error = Sgd::new(SgdConfig::new(0.1))?
        .save_state_file(&impossible)
        .unwrap_err();
    assert!(matches!(error, OptimError::StateFile { .. }), "{error}");
    assert!(error.to_string().contains("state.safetensors"), "{error}");
    Ok(())
}

#[test]
fn wrong_optimizer_kind_is_an_error_naming_the_file() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("sgd.safetensors");
    let model = Model::new(DType::F64);
    let mut sgd = Sgd::new(SgdConfig::new(0.1).momentum(0.9))?;
    model.step(&mut sgd, 1);
    sgd.save_state_file(&path)?;

    let mut adam = Adam::new(AdamConfig::default())?;
    let error = adam.load_state_file(&path).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("sgd.safetensors")
            && message.contains("'sgd'")
            && message.contains("'adam'"),
        "{message}"
    );
    match error {
        OptimError::InStateFile { source, .. } => {
            assert!(matches!(
                *source,
                OptimError::WrongOptimizerKind {
                    expected: "adam",
                    ..
                }
            ))
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Adam and AdamW states are not interchangeable either.
    let state = Adam::new(AdamConfig::default())?.state()?;
    assert!(matches!(
        AdamW::new(AdamConfig::adamw())?.load_state(&state),
        Err(OptimError::WrongOptimizerKind { .. })
    ));
    Ok(())
}

#[test]
fn wrong_shape_is_an_error_naming_the_tensor() -> TestResult {
    let original = Model::new(DType::F64);
    let mut optimizer = Adam::new(AdamConfig::default())?;
    original.step(&mut optimizer, 1);
    let state = optimizer.state()?;

    // The model changed: layer.weight now has 4 elements instead of 5.
    let mut resumed = Adam::new(AdamConfig::default())?;
    resumed.load_state(&state)?;
    let weight = Var::new(&[1.0f64, 2.0, 3.0, 4.0], &Device::Cpu)?;
    let error = resumed
        .step(&gradients(&[("layer.weight", &weight, Some(&[1.0; 4]))]))
        .unwrap_err();
    match &error {
        OptimError::StateShapeMismatch {
            tensor,
            expected,
            found,
        } => {
            assert_eq!(tensor, "layer.weight.exp_avg");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[4usize][..], &[5usize][..])
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(error.to_string().contains("layer.weight.exp_avg"));
    assert_eq!(
        values(&weight),
        vec![1.0, 2.0, 3.0, 4.0],
        "nothing was updated"
    );

    // Inconsistent buffers inside the state are caught when loading.
    let mut broken = state.clone();
    broken.tensors.insert(
        "layer.bias.exp_avg_sq".into(),
        Tensor::zeros(3, DType::F64, &Device::Cpu)?,
    );
    assert!(matches!(
        Adam::new(AdamConfig::default())?.load_state(&broken),
        Err(OptimError::StateShapeMismatch { ref tensor, .. }) if tensor == "layer.bias.exp_avg_sq"
    ));
    Ok(())
}

#[test]
fn missing_or_unexpected_content_is_an_error() -> TestResult {
    let model = Model::new(DType::F64);
    let mut optimizer = RmsProp::new(RmsPropConfig::default().centered(true))?;
    model.step(&mut optimizer, 1);
    let state = optimizer.state()?;

    let mut missing_tensor = state.clone();
    missing_tensor.tensors.remove("layer.weight.grad_avg");
    let error = RmsProp::new(RmsPropConfig::default())?
        .load_state(&missing_tensor)
        .unwrap_err();
    assert!(
        matches!(error, OptimError::MissingStateTensor { ref tensor } if tensor == "layer.weight.grad_avg"),
        "{error:?}"
    );

    let mut unexpected = state.clone();
    unexpected.tensors.insert(
        "layer.weight.exp_avg".into(),
        Tensor::zeros(5, DType::F64, &Device::Cpu)?,
    );
    assert!(matches!(
        RmsProp::new(RmsPropConfig::default())?.load_state(&unexpected),
        Err(OptimError::UnexpectedStateTensor { .. })
    ));

    let mut missing_value = state.clone();
    missing_value.remove_value("alpha");
    assert!(matches!(
        RmsProp::new(RmsPropConfig::default())?.load_state(&missing_value),
        Err(OptimError::MissingStateValue { ref key }) if key == "alpha"
    ));

    let mut bad_value = state.clone();
    bad_value.set_value("alpha", "lots");
    assert!(matches!(
        RmsProp::new(RmsPropConfig::default())?.load_state(&bad_value),
        Err(OptimError::BadStateValue { ref key, .. }) if key == "alpha"
    ));

    let mut out_of_range = state.clone();
    out_of_range.set_value("alpha", 1.5);
    assert!(matches!(
        RmsProp::new(RmsPropConfig::default())?.load_state(&out_of_range),
        Err(OptimError::BadHyperParameter { name: "alpha", .. })
    ));

    // A failed load leaves the optimizer as it was.
    let mut kept = RmsProp::new(RmsPropConfig::default().learning_rate(0.5))?;
    assert!(kept.load_state(&bad_value).is_err());
    assert_eq!(kept.learning_rate(), 0.5);
    Ok(())
}

fn load_error(path: &Path) -> String {
    match OptimizerState::load(path) {
        Ok(state) => panic!("{} loaded: {state:?}", path.display()),
        Err(error @ OptimError::StateFile { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "names the file: {message}"
            );
            message
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn broken_files_are_errors_not_panics() -> TestResult {
    let directory = tempfile::tempdir()?;
    let good = directory.path().join("good.safetensors");
    let model = Model::new(DType::F64);
    let mut optimizer = Adam::new(AdamConfig::default())?;
    model.step(&mut optimizer, 1);
    optimizer.save_state_file(&good)?;
    let bytes = std::fs::read(&good)?;

    let write = |name: &str, content: &[u8]| {
        let path = directory.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };

    let message = load_error(&directory.path().join("missing.safetensors"));
    assert!(message.contains("cannot read"), "{message}");

    let message = load_error(&write("tiny", &bytes[..5]));
    assert!(message.contains("truncated"), "{message}");

    let message = load_error(&write("cut-header", &bytes[..40]));
    assert!(message.contains("truncated"), "{message}");

    let message = load_error(&write("cut-data", &bytes[..bytes.len() - 8]));
    assert!(message.contains("truncated"), "{message}");

    let message = load_error(&write("text", b"this is not a safetensors file at all"));
    assert!(message.contains("not a safetensors file"), "{message}");

    let mut not_json = 16u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"{not json at all");
    let message = load_error(&write("not-json", &not_json));
    assert!(message.contains("not a safetensors file"), "{message}");

    let mut flipped = bytes.clone();
    flipped[10] ^= 0x55;
    load_error(&write("flipped", &flipped));

    // Model weights are safetensors, but not optimizer state.
    let weights = directory.path().join("weights.safetensors");
    Tensor::zeros(3, DType::F32, &Device::Cpu)?.save_safetensors("weight", &weights)?;
    let message = load_error(&weights);
    assert!(message.contains("not optimizer state"), "{message}");

    // Loading through an optimizer gives the same errors.
    let error = Adam::new(AdamConfig::default())?
        .load_state_file(&directory.path().join("cut-data"))
        .unwrap_err();
    assert!(matches!(error, OptimError::StateFile { .. }), "{error:?}");
    Ok(())
}

#[test]
fn a_state_of_the_first_format_still_resumes() -> TestResult {
    // The first format kept one text entry per hyper-parameter (format "dl-optim optimizer
    // state 1"); the second keeps them as one JSON entry. A file of the first format, written
    // here as that version wrote it, resumes as exactly as a new one.
    let directory = tempfile::tempdir()?;
    let old = directory.path().join("old.safetensors");
    let uninterrupted = Model::new(DType::F64);
    let mut optimizer = AdamW::new(AdamConfig::adamw().learning_rate(0.01).betas(0.8, 0.99))?;
    for step in 1..=5 {
        uninterrupted.step(&mut optimizer, step);
    }

    let interrupted = Model::new(DType::F64);
    let mut first_half = AdamW::new(AdamConfig::adamw().learning_rate(0.01).betas(0.8, 0.99))?;
    for step in 1..=2 {
        interrupted.step(&mut first_half, step);
    }
    let state = first_half.state()?;
    let mut metadata: std::collections::BTreeMap<String, String> = state
        .values
        .iter()
        .filter(|(key, _)| key.as_str() != OptimizerState::CONFIG_KEY)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for (key, value) in [
        ("learning_rate", "0.01"),
        ("beta1", "0.8"),
        ("beta2", "0.99"),
        ("epsilon", "0.00000001"),
        ("weight_decay", "0.01"),
        ("format", "dl-optim optimizer state 1"),
    ] {
        metadata.insert(key.to_string(), value.to_string());
    }
    let tensors: Vec<(String, Tensor)> = state
        .tensors
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.clone()))
        .collect();
    std::fs::write(&old, dl_tensor::encode_safetensors(&tensors, &metadata)?)?;

    let mut resumed = AdamW::new(AdamConfig::adamw())?;
    resumed.load_state_file(&old)?;
    assert_eq!(resumed.config(), optimizer.config());
    for step in 3..=5 {
        interrupted.step(&mut resumed, step);
    }
    assert_eq!(interrupted.bits(), uninterrupted.bits());

    // Saved again, it is written in the current format, with the hyper-parameters as JSON.
    let new = directory.path().join("new.safetensors");
    resumed.save_state_file(&new)?;
    let reread = OptimizerState::load(&new)?;
    assert_eq!(
        reread.values[OptimizerState::CONFIG_KEY],
        r#"{"learning_rate":0.01,"beta1":0.8,"beta2":0.99,"epsilon":1e-8,"weight_decay":0.01}"#
    );
    assert_eq!(reread.value::<f64>("beta1")?, 0.8);
    Ok(())
}
