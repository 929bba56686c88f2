//! `mnist-classifier train`: the course's `model.fit(x_train, y_train, epochs=5)` as a real
//! tool — seeded, with validation, early stopping, augmentation, resumable checkpoints, a CSV
//! history and a plot of the learning curves. In three parts: plan (check the flags, find what
//! is resumed), build (data, model, trainer), report (test the model, save the run, say where
//! it is).

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{bail, Context, Result};
use dl_data::{split_validation, AugmentConfig, Augmenter, BatchLoader, ImageSet};
use dl_models::{checkpoint_file, ImageRecipe, Recipe};
use dl_nn::{Loss, Sequential, VarStore};
use dl_optim::{
    Adam, AdamConfig, AdamW, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig, SCHEDULE_KEY,
};
use dl_tensor::{DType, Device, SeededRng, Tensor};
use dl_train::{
    evaluate, EarlyStopping, History, ModelCheckpoint, Run, RunFlags, RunPlan, Trainer,
    OPTIMIZER_NAME,
};

use crate::{
    cli::{OptimizerChoice, TrainArgs},
    data::load_images,
    settings::TrainingSettings,
};

/// Batch size used to evaluate (no gradients are kept). 250 images at a time hold a quarter of
/// the activations of 1,000: the two-block CNN's 15-epoch run peaked at 1,282 MiB with 1,000
/// and its 20-epoch run at 487 MiB with 250.
pub(crate) const EVALUATION_BATCH: usize = 250;

/// The random stream of `--shuffle-labels`, apart from those of initialisation and batching.
const LABEL_STREAM: u64 = 0x1abe1;

/// The optimizer `--optimizer` names, with the run's learning rate and weight decay.
pub(crate) fn optimizer(arguments: &TrainArgs) -> Result<Box<dyn Optimizer>> {
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

/// What the flags ask for, checked: the run (device, schedule, resumed run, outputs) and the
/// recipe.
struct Plan {
    run: RunPlan,
    recipe: ImageRecipe,
}

impl Plan {
    /// Checks the flags and finds what is resumed; a resumed run without `--seed` takes its
    /// checkpoint's (filled into `arguments`).
    fn new(arguments: &mut TrainArgs) -> Result<Self> {
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
        let resume = arguments
            .resume
            .as_deref()
            .map(|argument| checkpoint_file(argument, arguments.data.data_dir.as_deref()))
            .transpose()?;
        if let Some(resume) = &resume {
            refuse_compressed(resume)?;
        }
        let out = arguments.out.clone();
        let flags = RunFlags {
            device: &arguments.data.device,
            schedule: &arguments.schedule,
            resume,
            out: &out,
            inputs: &[],
            optimizers: &[OPTIMIZER_NAME],
        };
        let run = RunPlan::new(flags, &mut arguments.seed)?;
        let recipe = match &run.resumed {
            Some((run, checkpoint)) => {
                Recipe::image_classifier(run.checkpoint_path(), &checkpoint.metadata)?
            }
            None => arguments.recipe()?,
        };
        Ok(Self { run, recipe })
    }

    /// The checkpoint metadata of the run: recipe, training settings, schedule.
    fn metadata(&self, arguments: &TrainArgs) -> Result<BTreeMap<String, String>> {
        let mut metadata = Recipe::ImageClassifier(self.recipe).metadata()?;
        metadata.extend(dl_train::training_metadata(&TrainingSettings::of(
            arguments,
        ))?);
        metadata.insert(SCHEDULE_KEY.into(), self.run.schedule_spec.to_string());
        Ok(metadata)
    }
}

/// The training and test images, on the device, with the validation part held out.
/// An error for a pruned or int8 checkpoint given to `--resume`: training it as a dense fp32
/// model would revive its removed weights or cannot run at all.
fn refuse_compressed(path: &std::path::Path) -> Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(()); // the run plan reports a missing file
    };
    let Ok(metadata) = dl_compress::read_metadata(path, &bytes) else {
        return Ok(());
    };
    if dl_compress::is_int8(&metadata) {
        bail!(
            "{} is an int8 model, which cannot be trained: resume the fp32 checkpoint it was quantized from, then quantize again",
            path.display()
        );
    }
    if metadata.contains_key(crate::prune::PRUNING_KEY) {
        bail!(
            "{} is a pruned model: `train --resume` would revive its removed weights; fine-tune it with `prune --checkpoint {} --sparsity S --fine-tune-epochs N`, which keeps them at zero",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

struct Images {
    train: ImageSet,
    validation: Option<ImageSet>,
    test: ImageSet,
}

impl Images {
    fn load(arguments: &TrainArgs, device: &Device) -> Result<Self> {
        let images = load_images(&arguments.data, arguments.offline)?;
        let (train, validation) = if arguments.validation_split > 0.0 {
            let (train, validation) =
                split_validation(&images.train, arguments.validation_split, arguments.seed())?;
            (train, Some(validation.to_device(device)?))
        } else {
            (images.train.clone(), None)
        };
        let train = if arguments.shuffle_labels {
            shuffle_labels(&train, arguments.seed())?
        } else {
            train
        };
        Ok(Self {
            train: train.to_device(device)?,
            validation,
            test: images.test.to_device(device)?,
        })
    }
}

/// `set` with its labels permuted by a seeded shuffle: the same label counts, no relation left
/// between an image and its label.
fn shuffle_labels(set: &ImageSet, seed: u64) -> Result<ImageSet> {
    let mut labels = set.labels.to_vec1::<u32>()?;
    SeededRng::new(seed).fork(LABEL_STREAM).shuffle(&mut labels);
    let count = labels.len();
    Ok(ImageSet {
        images: set.images.clone(),
        labels: Tensor::from_vec(labels, count, set.labels.device())?,
    })
}

/// Trains `--members K` models with consecutive seeds, each as a run of its own.
fn train_members(arguments: &TrainArgs) -> Result<()> {
    if arguments.resume.is_some() {
        bail!("--members cannot be combined with --resume: resume each member's checkpoint on its own");
    }
    let stem = arguments.out.with_extension("");
    let mut outs = Vec::new();
    for member in 1..=arguments.members {
        let mut one = arguments.clone();
        one.members = 1;
        one.seed = Some(arguments.seed().wrapping_add(member as u64 - 1));
        one.out = PathBuf::from(format!("{}-member-{member}.safetensors", stem.display()));
        println!(
            "member {member} of {} (seed {}): {}",
            arguments.members,
            one.seed(),
            one.out.display()
        );
        run(&one)?;
        outs.push(one.out);
    }
    let checkpoints: Vec<String> = outs
        .iter()
        .map(|out| format!("--checkpoint {}", out.display()))
        .collect();
    println!("combine them:");
    println!(
        "  cargo run --release -p mnist-classifier -- ensemble {}",
        checkpoints.join(" ")
    );
    Ok(())
}

/// Runs `train`.
pub fn run(arguments: &TrainArgs) -> Result<()> {
    if arguments.members == 0 {
        bail!("--members must be at least 1");
    }
    if arguments.members > 1 {
        return train_members(arguments);
    }
    let mut arguments = arguments.clone();
    let plan = Plan::new(&mut arguments)?;
    let arguments = &arguments;
    let images = Images::load(arguments, &plan.run.device)?;
    if images.train.len() < arguments.batch_size {
        bail!(
            "the training set has {} images{}, fewer than one batch of --batch-size {}: use more data or a smaller batch",
            images.train.len(),
            if arguments.validation_split > 0.0 { " left after the validation split" } else { "" },
            arguments.batch_size
        );
    }
    let store = VarStore::new(&plan.run.device, DType::F32, arguments.seed());
    let model = plan.recipe.build(&store)?;

    let mut train_loader =
        BatchLoader::training(&images.train, arguments.batch_size, arguments.seed())?;
    if arguments.augment {
        train_loader =
            train_loader.augmented(Augmenter::new(AugmentConfig::default(), arguments.seed())?);
    }
    let schedule = plan.run.schedule_spec.build(
        arguments.learning_rate,
        train_loader.batch_count() * arguments.epochs,
    )?;
    // ANCHOR: resume
    let out = Run::new(&arguments.out);
    let metadata = plan.metadata(arguments)?;
    let mut trainer = Trainer::new(optimizer(arguments)?)
        .loss(Loss::CrossEntropy)
        .epochs(arguments.epochs)
        .schedule(schedule)
        .callback(Box::new(
            ModelCheckpoint::new(metadata.clone()).last(out.checkpoint_path()),
        ));
    if let Some((run, checkpoint)) = &plan.run.resumed {
        let (resuming, resumed) = trainer.restore(
            run,
            checkpoint,
            &model,
            &store,
            Some(&plan.run.schedule_spec),
        )?;
        trainer = resuming;
        println!(
            "resuming {} from {} after epoch {}",
            plan.recipe.model,
            run.checkpoint_path().display(),
            resumed.epoch()
        );
        for notice in &resumed.notices {
            println!("{notice}");
        }
    }
    // ANCHOR_END: resume
    println!("{}", model.summary());
    if arguments.shuffle_labels {
        println!("training on randomly permuted labels (--shuffle-labels): the model can only memorise, so expect about 10% test accuracy");
    }
    if let Some(patience) = arguments.early_stopping {
        trainer = trainer.callback(Box::new(
            EarlyStopping::new(patience).restore_best_weights(true),
        ));
    }

    let started = std::time::Instant::now();
    let history = match &images.validation {
        Some(validation) => {
            let validation_loader = BatchLoader::evaluation(validation, EVALUATION_BATCH)?;
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
    report(
        &trainer,
        &model,
        &store,
        &images.test,
        &out,
        metadata,
        &history,
        training_seconds,
    )
}

/// Tests the trained model, saves the run with the test result, and says where it is.
#[allow(clippy::too_many_arguments)]
fn report(
    trainer: &Trainer,
    model: &Sequential,
    store: &VarStore,
    test_set: &ImageSet,
    out: &Run,
    mut metadata: BTreeMap<String, String>,
    history: &History,
    training_seconds: f64,
) -> Result<()> {
    let test = evaluate(
        model,
        Loss::CrossEntropy,
        BatchLoader::evaluation(test_set, EVALUATION_BATCH)?.epoch_batches(0),
    )?;
    let accuracy = test.accuracy.unwrap_or(0.0);
    metadata.insert("test_accuracy".into(), format!("{accuracy:.6}"));
    metadata.insert("test_loss".into(), format!("{:.6}", test.loss));
    out.save(&trainer.context(model, store), &metadata)?;
    history.plot_png(&out.plot_path())?;

    let path = out.checkpoint_path().display();
    println!(
        "test accuracy {:.2}% (loss {:.4}) on {} test images after {} epochs, {:.1}s of training",
        100.0 * accuracy,
        test.loss,
        test.targets,
        history.last().map_or(0, |record| record.epoch),
        training_seconds
    );
    println!("saved {path}");
    println!(
        "  history {}, learning curves {}",
        out.history_path().display(),
        out.plot_path().display()
    );
    println!("use it:");
    println!("  cargo run --release -p mnist-classifier -- evaluate --checkpoint {path}");
    println!("  cargo run --release -p mnist-classifier -- predict --checkpoint {path} digit.png");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_labels_keep_their_counts_and_lose_their_images() -> Result<()> {
        let labels: Vec<u32> = (0..200).map(|index| index % 10).collect();
        let set = ImageSet {
            images: Tensor::zeros((200, 1, 28, 28), DType::F32, &Device::Cpu)?,
            labels: Tensor::new(labels.as_slice(), &Device::Cpu)?,
        };
        let shuffled = shuffle_labels(&set, 7)?.labels.to_vec1::<u32>()?;
        let mut sorted = shuffled.clone();
        sorted.sort_unstable();
        let mut expected = labels.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        let unchanged = shuffled.iter().zip(&labels).filter(|(a, b)| a == b).count();
        // a random permutation keeps about 1 in 10 labels in place
        assert!(unchanged < 50, "{unchanged} of 200 labels unchanged");
        assert_eq!(shuffle_labels(&set, 7)?.labels.to_vec1::<u32>()?, shuffled);
        Ok(())
    }
}
