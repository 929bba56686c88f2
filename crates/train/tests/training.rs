//! Behaviour of the training loop: it learns (XOR, two moons), stops early, keeps checkpoints,
//! stops cleanly on a NaN loss, writes its history and resumes exactly.

mod common;

use std::collections::BTreeMap;

use common::assert_same_weights;

use dl_nn::{Activation, Layer, Loss, Sequential, VarStore};
use dl_optim::{
    restore_schedule, Adam, AdamConfig, Optimizer, ScheduleResume, ScheduleSpec, Sgd, SgdConfig,
    SCHEDULE_KEY,
};
use dl_tensor::{DType, Device, SeededRng, Tensor};
use dl_train::{
    evaluate, Callback, Control, EarlyStopping, EpochRecord, History, ModelCheckpoint,
    ProgressMode, Trainer, TrainingContext, TrainingError, TrainingResult,
};

fn mlp(store: &VarStore, hidden: usize) -> Sequential {
    Sequential::builder(&store.root(), &[2])
        .dense(hidden, Activation::Tanh)
        .unwrap()
        .dense(hidden, Activation::Tanh)
        .unwrap()
        .dense(2, Activation::Softmax)
        .unwrap()
        .build()
}

fn adam(learning_rate: f64) -> Box<dyn Optimizer> {
    Box::new(Adam::new(AdamConfig::default().learning_rate(learning_rate)).unwrap())
}

/// Two interleaving half circles (the "two moons" set): class 0 on (cos t, sin t), class 1 on
/// (1 − cos t, 0.5 − sin t), t uniform in [0, π], plus Gaussian noise.
fn two_moons(count: usize, noise: f32, seed: u64) -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(seed);
    let mut points = Vec::with_capacity(count * 2);
    let mut labels = Vec::with_capacity(count);
    for index in 0..count {
        let angle = std::f32::consts::PI * rng.uniform();
        let class = (index % 2) as u32;
        let (x, y) = if class == 0 {
            (angle.cos(), angle.sin())
        } else {
            (1.0 - angle.cos(), 0.5 - angle.sin())
        };
        points.push(x + noise * rng.normal());
        points.push(y + noise * rng.normal());
        labels.push(class);
    }
    (
        Tensor::from_vec(points, (count, 2), &Device::Cpu).unwrap(),
        Tensor::from_vec(labels, count, &Device::Cpu).unwrap(),
    )
}

fn batches(inputs: &Tensor, labels: &Tensor, batch_size: usize) -> Vec<(Tensor, Tensor)> {
    let count = inputs.dim(0).unwrap();
    (0..count)
        .step_by(batch_size)
        .map(|start| {
            let length = batch_size.min(count - start);
            (
                inputs.narrow(0, start, length).unwrap(),
                labels.narrow(0, start, length).unwrap(),
            )
        })
        .collect()
}

fn xor_data() -> (Tensor, Tensor) {
    let inputs = Tensor::new(
        &[[0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
        &Device::Cpu,
    )
    .unwrap();
    let labels = Tensor::new(&[0u32, 1, 1, 0], &Device::Cpu).unwrap();
    (inputs, labels)
}

#[test]
fn mlp_learns_xor_perfectly() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 3);
    let model = mlp(&store, 8);
    let (inputs, labels) = xor_data();
    let mut trainer = Trainer::new(adam(0.05))
        .epochs(300)
        .progress(ProgressMode::Quiet);
    let history = trainer
        .fit(&model, &store, |_| vec![(inputs.clone(), labels.clone())])
        .unwrap();
    assert_eq!(history.epochs.len(), 300);
    let result = evaluate(&model, Loss::CrossEntropy, vec![(inputs, labels)]).unwrap();
    assert_eq!(
        result.accuracy,
        Some(1.0),
        "XOR accuracy {:?}",
        result.accuracy
    );
    assert!(result.loss < 0.05, "XOR loss {}", result.loss);
}

#[test]
fn mlp_separates_two_moons() {
    let (train_inputs, train_labels) = two_moons(1000, 0.1, 1);
    let (test_inputs, test_labels) = two_moons(500, 0.1, 2);
    let store = VarStore::new(&Device::Cpu, DType::F32, 4);
    let model = mlp(&store, 16);
    let train = batches(&train_inputs, &train_labels, 50);
    let test = batches(&test_inputs, &test_labels, 100);
    let mut trainer = Trainer::new(adam(0.01))
        .epochs(40)
        .progress(ProgressMode::Quiet);
    let history = trainer
        .fit_with_validation(&model, &store, |_| train.clone(), |_| test.clone())
        .unwrap();
    let last = history.last().unwrap();
    let accuracy = last.validation_accuracy.unwrap();
    assert!(accuracy >= 0.97, "two-moons test accuracy {accuracy}");
    assert!(last.train_loss < history.epochs[0].train_loss);
}

#[test]
fn early_stopping_stops_and_restores_the_best_weights() {
    let (inputs, labels) = two_moons(200, 0.1, 5);
    let store = VarStore::new(&Device::Cpu, DType::F32, 6);
    let model = mlp(&store, 8);
    let train = batches(&inputs, &labels, 50);
    // The validation loss follows a script: it improves until epoch 3, then only worsens.
    let scripted = [0.9f32, 0.5, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9];
    let mut trainer = Trainer::new(adam(0.01))
        .epochs(8)
        .progress(ProgressMode::Quiet)
        .loss(Loss::MeanSquaredError)
        .callback(Box::new(EarlyStopping::new(2).restore_best_weights(true)));
    let snapshot_after_epoch_3 = std::cell::RefCell::new(None);
    let train_regression: Vec<(Tensor, Tensor)> = train
        .iter()
        .map(|(x, _)| {
            (
                x.clone(),
                Tensor::zeros((x.dim(0).unwrap(), 2), DType::F32, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let history = trainer
        .fit_with_validation(
            &model,
            &store,
            |epoch| {
                if epoch == 4 {
                    *snapshot_after_epoch_3.borrow_mut() = Some(store.snapshot().unwrap());
                }
                train_regression.clone()
            },
            |epoch| {
                // Targets chosen so that the model's validation MSE is dominated by the script:
                // a constant offset whose square is the scripted loss.
                let offset = scripted[epoch - 1].sqrt();
                let x = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
                let prediction = model.forward(&x, dl_nn::Mode::Eval).unwrap();
                let target = (prediction + f64::from(offset)).unwrap();
                vec![(x, target)]
            },
        )
        .unwrap();
    assert_eq!(history.epochs.len(), 5, "stops at epoch 3 + patience 2");
    let best = snapshot_after_epoch_3.into_inner().unwrap();
    for ((name, expected), (_, actual)) in best.iter().zip(store.snapshot().unwrap()) {
        let difference = expected
            .sub(&actual)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(difference, 0.0, "{name} was not restored to the best epoch");
    }
}

#[test]
fn history_is_written_as_csv_and_reads_back() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("history.csv");
    let store = VarStore::new(&Device::Cpu, DType::F32, 7);
    let model = mlp(&store, 4);
    let (inputs, labels) = xor_data();
    let mut trainer = Trainer::new(adam(0.01))
        .epochs(3)
        .progress(ProgressMode::Quiet)
        .history_csv(&path);
    let history = trainer
        .fit_with_validation(
            &model,
            &store,
            |_| vec![(inputs.clone(), labels.clone())],
            |_| vec![(inputs.clone(), labels.clone())],
        )
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("epoch,train_loss,train_accuracy,validation_loss"));
    let read_back = History::read_csv(&path).unwrap();
    assert_eq!(read_back.epochs.len(), 3);
    for (written, read) in history.epochs.iter().zip(&read_back.epochs) {
        assert_eq!(written.epoch, read.epoch);
        assert!((written.train_loss - read.train_loss).abs() < 1e-6);
        assert!(
            (written.validation_accuracy.unwrap() - read.validation_accuracy.unwrap()).abs() < 1e-6
        );
    }
    std::fs::write(&path, "not,a,history\n").unwrap();
    assert!(History::read_csv(&path).is_err());
}

#[test]
fn nan_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let directory = tempfile::tempdir().unwrap();
    let checkpoint = directory.path().join("model.safetensors");
    let store = VarStore::new(&Device::Cpu, DType::F32, 8);
    let model = Sequential::builder(&store.root(), &[2])
        .dense(1, Activation::Identity)
        .unwrap()
        .build();
    let inputs = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
    let good = Tensor::new(&[[1f32], [2.0]], &Device::Cpu).unwrap();
    let poisoned = Tensor::new(&[[1f32], [f32::NAN]], &Device::Cpu).unwrap();
    let mut trainer = Trainer::new(Box::new(Sgd::new(SgdConfig::new(0.01)).unwrap()))
        .loss(Loss::MeanSquaredError)
        .epochs(5)
        .progress(ProgressMode::Quiet)
        .callback(Box::new(
            ModelCheckpoint::new(BTreeMap::new()).last(&checkpoint),
        ));
    let error = trainer
        .fit(&model, &store, |epoch| {
            let targets = if epoch == 3 {
                poisoned.clone()
            } else {
                good.clone()
            };
            vec![(inputs.clone(), targets)]
        })
        .unwrap_err();
    match &error {
        TrainingError::NonFiniteLoss {
            epoch,
            batch,
            value,
            last_good_checkpoint,
        } => {
            assert_eq!((*epoch, *batch), (3, 1));
            assert!(value.is_nan());
            assert_eq!(last_good_checkpoint.as_deref(), Some(checkpoint.as_path()));
        }
        other => panic!("expected a NaN-loss error, got {other}"),
    }
    assert!(
        error.to_string().contains("last good checkpoint"),
        "{error}"
    );
    let metadata = dl_nn::load_checkpoint(&checkpoint, &store).unwrap();
    assert_eq!(metadata["epoch"], "2");
}

#[test]
fn empty_epoch_and_bad_batches_are_errors() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 9);
    let model = mlp(&store, 4);
    let mut trainer = Trainer::new(adam(0.01)).progress(ProgressMode::Quiet);
    let empty = trainer.fit(&model, &store, |_| Vec::<(Tensor, Tensor)>::new());
    assert!(matches!(empty, Err(TrainingError::NoBatches { epoch: 1 })));
    let wrong_shape = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let labels = Tensor::zeros(4, DType::U32, &Device::Cpu).unwrap();
    let mut trainer = Trainer::new(adam(0.01)).progress(ProgressMode::Quiet);
    let error = trainer
        .fit(&model, &store, |_| {
            vec![(wrong_shape.clone(), labels.clone())]
        })
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("expected a batch of shape (N, 2)"),
        "{error}"
    );
    let failing = trainer
        .fit(&model, &store, |_| {
            vec![Err::<(Tensor, Tensor), _>(std::io::Error::other(
                "disk gone",
            ))]
        })
        .unwrap_err();
    assert!(failing.to_string().contains("disk gone"), "{failing}");
}

/// A two-moons training run for [`train_for`].
struct Run<'a> {
    /// The epoch number to train up to.
    epochs: usize,
    /// The learning-rate schedule, built over all `epochs`.
    schedule: &'a str,
    /// Stop after this epoch, as an interrupted run would (the checkpoint stays).
    interrupted_after: Option<usize>,
    /// The checkpoint to resume from.
    resume: Option<&'a std::path::Path>,
}

/// Stops training after a given epoch, like a run killed there.
struct Interrupt(usize);

impl Callback for Interrupt {
    fn on_epoch_end(&mut self, context: &TrainingContext<'_>) -> TrainingResult<Control> {
        let record = context.record();
        Ok(if record.epoch >= self.0 {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

/// Trains the two-moons MLP as `run` says, keeping the latest checkpoint in `checkpoint`, and
/// returns the final weights.
fn train_for(run: Run<'_>, checkpoint: &std::path::Path) -> Vec<(String, Tensor)> {
    let (inputs, labels) = two_moons(200, 0.1, 10);
    let train = batches(&inputs, &labels, 32);
    let store = VarStore::new(
        &Device::Cpu,
        DType::F32,
        if run.resume.is_some() { 99 } else { 11 },
    );
    let model = mlp(&store, 8);
    let mut optimizer = Adam::new(AdamConfig::default().learning_rate(0.01)).unwrap();
    let spec: ScheduleSpec = run.schedule.parse().unwrap();
    let mut schedule = spec.build(0.01, run.epochs * train.len()).unwrap();
    let mut completed = History::default();
    let mut global_step = 0;
    if let Some(path) = run.resume {
        let metadata = dl_nn::load_checkpoint(path, &store).unwrap();
        optimizer
            .load_state_file(&dl_train::optimizer_state_path(path))
            .unwrap();
        assert_eq!(
            restore_schedule(schedule.as_mut(), &spec, &metadata).unwrap(),
            ScheduleResume::Continued
        );
        global_step = metadata["global_step"].parse().unwrap();
        let epochs_done: usize = metadata["epoch"].parse().unwrap();
        // Only the epoch numbers matter for resuming; a real app reads its history CSV.
        completed.epochs = (1..=epochs_done)
            .map(|epoch| EpochRecord {
                epoch,
                train_loss: 0.0,
                train_accuracy: None,
                validation_loss: None,
                validation_accuracy: None,
                learning_rate: 0.01,
                seconds: 0.0,
                examples_per_second: 0.0,
                metrics: Default::default(),
            })
            .collect();
    }
    let metadata = BTreeMap::from([(SCHEDULE_KEY.to_string(), spec.to_string())]);
    let mut trainer = Trainer::new(Box::new(optimizer))
        .epochs(run.epochs)
        .progress(ProgressMode::Quiet)
        .resume_from(completed, global_step)
        .schedule(schedule)
        .callback(Box::new(ModelCheckpoint::new(metadata).last(checkpoint)));
    if let Some(epoch) = run.interrupted_after {
        trainer = trainer.callback(Box::new(Interrupt(epoch)));
    }
    trainer
        .fit(&model, &store, |epoch| {
            let mut order = train.clone();
            SeededRng::new(epoch as u64).shuffle(&mut order);
            order
        })
        .unwrap();
    store.snapshot().unwrap()
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly() {
    // A per-epoch schedule: the resumed run must go on at the halved rate of epoch 3, not
    // restart at the base rate (nor would the weights match).
    let directory = tempfile::tempdir().unwrap();
    let run = |epochs, resume| Run {
        epochs,
        schedule: "step:1:0.5",
        interrupted_after: None,
        resume,
    };
    let straight = train_for(run(4, None), &directory.path().join("straight.safetensors"));
    let halfway = directory.path().join("halfway.safetensors");
    train_for(run(2, None), &halfway);
    let resumed = train_for(
        run(4, Some(&halfway)),
        &directory.path().join("resumed.safetensors"),
    );
    assert_same_weights(&straight, &resumed);
}

#[test]
fn an_interrupted_cosine_run_resumes_on_the_same_curve() {
    // Cosine annealing is counted in steps over the whole run: a run stopped after epoch 2 of 4
    // and resumed with the same 4 epochs ends with the uninterrupted run's weights.
    let directory = tempfile::tempdir().unwrap();
    let run = |interrupted_after, resume| Run {
        epochs: 4,
        schedule: "cosine",
        interrupted_after,
        resume,
    };
    let straight = train_for(
        run(None, None),
        &directory.path().join("straight.safetensors"),
    );
    let interrupted = directory.path().join("interrupted.safetensors");
    train_for(run(Some(2), None), &interrupted);
    let metadata = dl_nn::Checkpoint::load(&interrupted).unwrap().metadata;
    assert_eq!(metadata["epoch"], "2", "the run stopped after epoch 2");
    let resumed = train_for(
        run(None, Some(&interrupted)),
        &directory.path().join("resumed.safetensors"),
    );
    assert_same_weights(&straight, &resumed);
}

#[test]
fn learning_curves_are_drawn_as_png() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("curves.png");
    let history = History {
        epochs: (1..=5)
            .map(|epoch| EpochRecord {
                epoch,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: Some(0.5 + 0.08 * epoch as f64),
                validation_loss: Some(1.2 / epoch as f64 + 0.05),
                validation_accuracy: Some(0.45 + 0.08 * epoch as f64),
                learning_rate: 1e-3,
                seconds: 1.0,
                examples_per_second: 100.0,
                metrics: Default::default(),
            })
            .collect(),
    };
    history.plot_png(&path).unwrap();
    let image = image::open(&path).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (1200, 480));
    let coloured = image
        .pixels()
        .filter(|pixel| pixel.0[0] != pixel.0[2])
        .count();
    assert!(
        coloured > 500,
        "the curves should be drawn in colour ({coloured} coloured pixels)"
    );
    let leftovers: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}
