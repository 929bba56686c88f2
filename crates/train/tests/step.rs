//! The step hook: a step with two optimizers (each with its own schedule) and its own metrics
//! trains through `Trainer::fit_step` with the trainer's history, NaN stop and checkpoints, and
//! a `Run` saved halfway resumes to the uninterrupted run's weights.

mod common;

use std::path::Path;

use dl_autograd::Gradients;
use dl_nn::{mse, Dense, Layer, Mode, VarStore};
use dl_optim::{
    Adam, AdamConfig, LearningRateSchedule, Optimizer, ScheduleSpec, Sgd, SgdConfig, SCHEDULE_KEY,
};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};
use dl_train::{
    History, ProgressMode, Run, StepOptimizer, StepOptimizerMut, StepOutput, TrainStep, Trainer,
    TrainingError, TrainingResult,
};

/// Two regressions trained side by side, each by its own optimizer: `first` fits y, `second`
/// fits 2y. (A GAN's step has this shape: two networks, two optimizers, two losses.)
struct Pair {
    first: Dense,
    second: Dense,
}

impl Layer for Pair {
    fn forward(&self, input: &Tensor, mode: Mode) -> dl_nn::Result<Tensor> {
        self.first.forward(input, mode)
    }

    fn kind(&self) -> &'static str {
        "Pair"
    }
}

struct PairStep<'a> {
    pair: &'a Pair,
    first_variables: Vec<(String, Var)>,
    second_variables: Vec<(String, Var)>,
    first_optimizer: Adam,
    second_optimizer: Sgd,
    second_schedule: Box<dyn LearningRateSchedule>,
    /// Multiplies the first loss, to make it diverge on purpose.
    blow_up: f64,
}

/// The variables of `store` whose names start with `prefix`.
fn variables(store: &VarStore, prefix: &str) -> Vec<(String, Var)> {
    store
        .trainable_variables()
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect()
}

fn gradients(loss: &Tensor, variables: &[(String, Var)]) -> Gradients {
    Gradients::compute(
        loss,
        variables.iter().map(|(name, var)| (name.as_str(), var)),
    )
    .unwrap()
}

fn scalar(loss: &Tensor) -> f64 {
    f64::from(loss.to_scalar::<f32>().unwrap())
}

impl TrainStep for PairStep<'_> {
    fn train(&mut self, inputs: &Tensor, targets: &Tensor) -> TrainingResult<StepOutput> {
        let first_loss =
            (mse(&self.pair.first.forward(inputs, Mode::Train)?, targets)? * self.blow_up)?;
        let doubled = (targets * 2.0)?;
        let second_loss = mse(&self.pair.second.forward(inputs, Mode::Train)?, &doubled)?;
        let (first, second) = (scalar(&first_loss), scalar(&second_loss));
        if !first.is_finite() {
            return Ok(StepOutput {
                loss: first,
                ..StepOutput::default()
            });
        }
        self.first_optimizer
            .step(&gradients(&first_loss, &self.first_variables))?;
        self.second_optimizer
            .set_learning_rate(self.second_schedule.learning_rate());
        self.second_optimizer
            .step(&gradients(&second_loss, &self.second_variables))?;
        self.second_schedule.after_step();
        Ok(StepOutput {
            loss: first + second,
            targets: targets.dim(0)?,
            examples: targets.dim(0)?,
            correct: None,
            metrics: vec![("first_loss", first), ("second_loss", second)],
        })
    }

    fn end_epoch(&mut self, _monitored_loss: f64) -> TrainingResult<()> {
        self.second_schedule.after_epoch(None)?;
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.first_optimizer.learning_rate()
    }

    fn optimizers(&self) -> Vec<StepOptimizer<'_>> {
        vec![
            StepOptimizer {
                name: "first",
                optimizer: &self.first_optimizer,
                schedule: None,
            },
            StepOptimizer {
                name: "second",
                optimizer: &self.second_optimizer,
                schedule: Some(self.second_schedule.as_ref()),
            },
        ]
    }

    fn optimizers_mut(&mut self) -> Vec<StepOptimizerMut<'_>> {
        vec![
            StepOptimizerMut {
                name: "first",
                optimizer: &mut self.first_optimizer,
                schedule: None,
            },
            StepOptimizerMut {
                name: "second",
                optimizer: &mut self.second_optimizer,
                schedule: Some(self.second_schedule.as_mut()),
            },
        ]
    }
}

/// y = 3x − 1 with noise, in batches of 8.
fn batches() -> Vec<(Tensor, Tensor)> {
    let mut rng = SeededRng::new(4);
    (0..6)
        .map(|_| {
            let x: Vec<f32> = (0..8).map(|_| rng.uniform() * 2.0 - 1.0).collect();
            let y: Vec<f32> = x
                .iter()
                .map(|x| 3.0 * x - 1.0 + 0.01 * rng.normal())
                .collect();
            (
                Tensor::from_vec(x, (8, 1), &Device::Cpu).unwrap(),
                Tensor::from_vec(y, (8, 1), &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

const SCHEDULE: &str = "step:1:0.5";

/// Trains `epochs` epochs (continuing `resume` when given) and saves the run at `out`; returns
/// the final weights and the history.
fn train(
    epochs: usize,
    resume: Option<&Path>,
    out: &Path,
    blow_up: f64,
) -> TrainingResult<(Vec<(String, Tensor)>, History)> {
    let store = VarStore::new(
        &Device::Cpu,
        DType::F32,
        if resume.is_some() { 9 } else { 1 },
    );
    let pair = Pair {
        first: Dense::new(&store.root().sub("first"), 1, 1)?,
        second: Dense::new(&store.root().sub("second"), 1, 1)?,
    };
    let spec: ScheduleSpec = SCHEDULE.parse().unwrap();
    let mut step = PairStep {
        pair: &pair,
        first_variables: variables(&store, "first."),
        second_variables: variables(&store, "second."),
        first_optimizer: Adam::new(AdamConfig::default().learning_rate(0.05))?,
        second_optimizer: Sgd::new(SgdConfig::new(0.2).momentum(0.5))?,
        second_schedule: spec.build(0.2, epochs * 6)?,
        blow_up,
    };
    let mut trainer = Trainer::default()
        .epochs(epochs)
        .progress(ProgressMode::Quiet);
    if let Some(path) = resume {
        let run = Run::new(path);
        let checkpoint = run.open()?;
        let resumed = run.restore(
            &checkpoint,
            &pair,
            &store,
            step.optimizers_mut(),
            Some(&spec),
        )?;
        assert!(resumed.notices.is_empty(), "{:?}", resumed.notices);
        trainer = trainer.resume(&resumed);
    }
    let data = batches();
    let history = trainer.fit_step(
        &mut step,
        &pair,
        &store,
        |_| data.clone(),
        None::<dl_train::NoValidation>,
    )?;
    let metadata =
        std::collections::BTreeMap::from([(format!("second.{SCHEDULE_KEY}"), spec.to_string())]);
    Run::new(out).save(&trainer.step_context(&step, &pair, &store), &metadata)?;
    Ok((store.snapshot()?, history))
}

#[test]
fn a_step_with_two_optimizers_learns_and_records_its_metrics() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("pair.safetensors");
    let (_, history) = train(8, None, &out, 1.0).unwrap();
    let first = &history.epochs[0];
    let last = history.last().unwrap();
    assert!(
        last.metrics["first_loss"] < 0.2 * first.metrics["first_loss"],
        "{history:?}"
    );
    assert!(last.metrics["second_loss"] < 0.2 * first.metrics["second_loss"]);
    // The epoch's loss is the two losses' sum, averaged the same way.
    let sum = last.metrics["first_loss"] + last.metrics["second_loss"];
    assert!(
        (last.train_loss - sum).abs() < 1e-9 * sum.max(1.0),
        "{last:?}"
    );

    // Both optimizers' states and the history with its metric columns lie beside the weights.
    let run = Run::new(&out);
    assert!(run.optimizer_state_path("first").is_file());
    assert!(run.optimizer_state_path("second").is_file());
    let csv = std::fs::read_to_string(run.history_path()).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",first_loss,second_loss"),
        "{csv}"
    );
    assert_eq!(History::read_csv(&run.history_path()).unwrap(), {
        let mut rounded = history.clone();
        // The CSV keeps 6 decimals of the losses; compare through a write and a read.
        std::fs::write(directory.path().join("again.csv"), rounded.to_csv()).unwrap();
        rounded = History::read_csv(&directory.path().join("again.csv")).unwrap();
        rounded
    });
    let metadata = dl_nn::Checkpoint::load(&out).unwrap().metadata;
    assert_eq!(metadata["epoch"], "8");
    assert_eq!(metadata["global_step"], "48");
    // The second optimizer's schedule is kept under its name.
    assert_eq!(metadata["second.schedule.epoch"], "8", "{metadata:?}");
}

#[test]
fn a_resumed_step_ends_with_the_uninterrupted_weights() {
    let directory = tempfile::tempdir().unwrap();
    let (straight, _) =
        train(4, None, &directory.path().join("straight.safetensors"), 1.0).unwrap();
    let halfway = directory.path().join("halfway.safetensors");
    train(2, None, &halfway, 1.0).unwrap();
    // The halfway run was planned for 2 epochs, the resumed one for 4: the step schedule depends
    // only on the epoch, so both follow the same rates.
    let (resumed, history) = train(
        4,
        Some(&halfway),
        &directory.path().join("resumed.safetensors"),
        1.0,
    )
    .unwrap();
    assert_eq!(history.epochs.len(), 4);
    common::assert_same_weights(&straight, &resumed);
}

#[test]
fn a_diverging_step_stops_the_run() {
    let directory = tempfile::tempdir().unwrap();
    let error = train(2, None, &directory.path().join("nan.safetensors"), f64::NAN).unwrap_err();
    assert!(
        matches!(
            error,
            TrainingError::NonFiniteLoss {
                epoch: 1,
                batch: 1,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn resuming_without_the_optimizer_state_names_the_missing_file() {
    let directory = tempfile::tempdir().unwrap();
    let halfway = directory.path().join("halfway.safetensors");
    train(1, None, &halfway, 1.0).unwrap();
    let missing = Run::new(&halfway).optimizer_state_path("second");
    std::fs::remove_file(&missing).unwrap();
    let error = train(
        2,
        Some(&halfway),
        &directory.path().join("again.safetensors"),
        1.0,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, TrainingError::TornRun { .. }), "{message}");
    assert!(message.contains("halfway.second.safetensors"), "{message}");
}
