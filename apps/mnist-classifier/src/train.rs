//! `mnist-classifier train`: the course's `model.fit(x_train, y_train, epochs=5)` as a real
//! tool — seeded, with validation, early stopping, augmentation, resumable checkpoints, a CSV
//! history and a plot of the learning curves.

use anyhow::{bail, Context, Result};
use dl_data::{split_validation, AugmentConfig, Augmenter, BatchLoader};
use dl_nn::{Checkpoint, Loss, VarStore};
use dl_optim::{
    evaluate, optimizer_state_path, restore_schedule, schedule_state_metadata, Adam, AdamConfig,
    AdamW, EarlyStopping, History, ModelCheckpoint, Optimizer, RmsProp, RmsPropConfig,
    ScheduleSpec, Sgd, SgdConfig, Trainer, SCHEDULE_KEY,
};
use dl_tensor::{DType, DeviceChoice};

use crate::{
    cli::{OptimizerChoice, TrainArgs},
    data::load_images,
    saved_model::{local_checkpoint, Recipe},
};

/// Batch size used to evaluate (no gradients are kept). 250 images at a time hold a quarter of
/// the activations of 1,000: the two-block CNN's 15-epoch run peaked at 1,282 MiB with 1,000
/// and its 20-epoch run at 487 MiB with 250.
const EVALUATION_BATCH: usize = 250;

fn optimizer(arguments: &TrainArgs) -> Result<Box<dyn Optimizer>> {
    let learning_rate = arguments.learning_rate;
    let weight_decay = arguments.weight_decay;
    Ok(match arguments.optimizer {
        OptimizerChoice::Adam => Box::new(Adam::new(
            AdamConfig::default()
                .learning_rate(learning_rate)
                .weight_decay(weight_decay),
        )?),
        OptimizerChoice::Adamw => Box::new(AdamW::new(
            AdamConfig::adamw()
                .learning_rate(learning_rate)
                .weight_decay(weight_decay),
        )?),
        OptimizerChoice::Sgd => Box::new(Sgd::new(
            SgdConfig::new(learning_rate)
                .momentum(0.9)
                .weight_decay(weight_decay),
        )?),
        OptimizerChoice::Rmsprop => Box::new(RmsProp::new(
            RmsPropConfig::default()
                .learning_rate(learning_rate)
                .weight_decay(weight_decay),
        )?),
    })
}

/// Runs `train`.
pub fn run(arguments: &TrainArgs) -> Result<()> {
    if arguments.batch_size == 0 || arguments.epochs == 0 {
        bail!("--batch-size and --epochs must be positive");
    }
    if !(0.0..1.0).contains(&arguments.validation_split) {
        bail!(
            "--validation-split must be in [0, 1), got {}",
            arguments.validation_split
        );
    }
    if arguments.early_stopping.is_some() && arguments.validation_split == 0.0 {
        bail!(
            "--early-stopping watches the validation loss: also pass --validation-split (e.g. 0.1)"
        );
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let schedule_spec: ScheduleSpec = arguments.schedule.parse()?;
    let images = load_images(&arguments.data, arguments.offline)?;
    let (train_set, validation_set) = if arguments.validation_split > 0.0 {
        let (train, validation) =
            split_validation(&images.train, arguments.validation_split, arguments.seed)?;
        (train, Some(validation))
    } else {
        (images.train.clone(), None)
    };
    let train_set = train_set.to_device(&device)?;
    let test_set = images.test.to_device(&device)?;

    let resume_file = arguments
        .resume
        .as_deref()
        .map(|argument| local_checkpoint(argument, arguments.data.data_dir.as_deref()))
        .transpose()?;
    let resumed = match &resume_file {
        Some(path) => {
            let checkpoint = Checkpoint::load(path)?;
            let recipe = Recipe::from_metadata(path, &checkpoint.metadata)?;
            Some((path, checkpoint, recipe))
        }
        None => None,
    };
    let recipe = match &resumed {
        Some((_, _, recipe)) => *recipe,
        None => Recipe {
            model: arguments.model,
            dropout: arguments
                .dropout
                .unwrap_or(arguments.model.default_dropout()),
            dataset: arguments.data.dataset,
        },
    };
    let store = VarStore::new(&device, DType::F32, arguments.seed);
    let model = recipe.model.build(&store, recipe.dropout)?;
    let mut optimizer = optimizer(arguments)?;
    let mut history = History::default();
    let mut global_step = 0;
    if let Some((path, checkpoint, _)) = &resumed {
        checkpoint.restore_into(path, &store)?;
        // Dropout continues with the masks the uninterrupted run would have drawn.
        dl_nn::restore_random_states(&model, &checkpoint.metadata)
            .with_context(|| format!("resuming from {}", path.display()))?;
        optimizer
            .load_state_file(&optimizer_state_path(path))
            .context("resuming needs the optimizer state saved beside the checkpoint")?;
        let history_path = path.with_extension("csv");
        history = History::read_csv(&history_path)
            .with_context(|| format!("resuming needs the history {}", history_path.display()))?;
        global_step = checkpoint
            .metadata
            .get("global_step")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        println!(
            "resuming {} from {} after epoch {}",
            recipe.model,
            path.display(),
            history.last().map_or(0, |record| record.epoch)
        );
    }
    println!("{}", model.summary());

    let mut train_loader = BatchLoader::training(&train_set, arguments.batch_size, arguments.seed)?;
    if arguments.augment {
        train_loader =
            train_loader.augmented(Augmenter::new(AugmentConfig::default(), arguments.seed)?);
    }
    let batches_per_epoch = train_loader.batch_count();
    let mut schedule = schedule_spec.build(
        arguments.learning_rate,
        batches_per_epoch * arguments.epochs,
    )?;
    if let Some((path, checkpoint, _)) = &resumed {
        let outcome = restore_schedule(schedule.as_mut(), &schedule_spec, &checkpoint.metadata)
            .with_context(|| format!("resuming the schedule of {}", path.display()))?;
        if let Some(notice) = outcome.notice(&schedule_spec) {
            println!("{} {notice}", path.display());
        }
    }

    let mut metadata = recipe.metadata();
    metadata.insert("seed".into(), arguments.seed.to_string());
    metadata.insert("batch_size".into(), arguments.batch_size.to_string());
    metadata.insert("learning_rate".into(), arguments.learning_rate.to_string());
    metadata.insert(
        "optimizer".into(),
        format!("{:?}", arguments.optimizer).to_lowercase(),
    );
    metadata.insert(SCHEDULE_KEY.into(), schedule_spec.to_string());
    metadata.insert("augment".into(), arguments.augment.to_string());

    let out = &arguments.out;
    let history_path = out.with_extension("csv");
    let mut trainer = Trainer::new(optimizer)
        .loss(Loss::CrossEntropy)
        .epochs(arguments.epochs)
        .resume_from(history, global_step)
        .schedule(schedule)
        .history_csv(&history_path)
        .callback(Box::new(ModelCheckpoint::new(metadata.clone()).last(out)));
    if let Some(patience) = arguments.early_stopping {
        trainer = trainer.callback(Box::new(
            EarlyStopping::new(patience).restore_best_weights(true),
        ));
    }
    let started = std::time::Instant::now();
    let history = match &validation_set {
        Some(validation) => {
            let validation_loader =
                BatchLoader::evaluation(&validation.to_device(&device)?, EVALUATION_BATCH)?;
            trainer.fit_with_validation(
                &model,
                &store,
                |epoch| train_loader.epoch_batches(epoch),
                |epoch| validation_loader.epoch_batches(epoch),
            )
        }
        None => trainer.fit(&model, &store, |epoch| train_loader.epoch_batches(epoch)),
    }
    .context("training failed")?;
    let training_seconds = started.elapsed().as_secs_f64();

    let test = evaluate(
        &model,
        Loss::CrossEntropy,
        BatchLoader::evaluation(&test_set, EVALUATION_BATCH)?.epoch_batches(0),
    )?;
    let accuracy = test.accuracy.unwrap_or(0.0);
    metadata.insert(
        "epoch".into(),
        history.last().map_or(0, |record| record.epoch).to_string(),
    );
    metadata.insert("global_step".into(), trainer.global_step().to_string());
    metadata.insert("test_accuracy".into(), format!("{accuracy:.6}"));
    metadata.insert("test_loss".into(), format!("{:.6}", test.loss));
    if let Some(schedule) = trainer.learning_rate_schedule() {
        metadata.extend(schedule_state_metadata(schedule));
    }
    metadata.extend(dl_nn::random_states_metadata(&model));
    dl_nn::save_checkpoint(out, &store, &metadata)?;
    trainer
        .optimizer()
        .save_state_file(&optimizer_state_path(out))?;
    let plot_path = out.with_extension("png");
    history.plot_png(&plot_path)?;

    println!(
        "test accuracy {:.2}% (loss {:.4}) on {} test images after {} epochs, {:.1}s of training",
        100.0 * accuracy,
        test.loss,
        test.targets,
        history.last().map_or(0, |record| record.epoch),
        training_seconds
    );
    println!("saved {}", out.display());
    println!(
        "  history {}, learning curves {}",
        history_path.display(),
        plot_path.display()
    );
    println!("use it:");
    println!(
        "  cargo run --release -p mnist-classifier -- evaluate --checkpoint {}",
        out.display()
    );
    println!(
        "  cargo run --release -p mnist-classifier -- predict --checkpoint {} digit.png",
        out.display()
    );
    Ok(())
}
