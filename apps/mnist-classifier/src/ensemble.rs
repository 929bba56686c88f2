//! `mnist-classifier ensemble`: several trained classifiers voting together (course appendix,
//! "how to improve a model": 集成). For each member and for the ensemble: test accuracy, negative
//! log-likelihood and expected calibration error (15 bins); then how often the members disagree,
//! the oracle accuracy (some member is right), and what the ensemble costs per 1,000 images.
//! With `--out`, the members are also saved as one checkpoint (`dl_compress::save_ensemble`).

use std::{path::Path, time::Instant};

use anyhow::{bail, Context, Result};
use dl_compress::{load_classifier, save_ensemble, ClassifierFile};
use dl_data::BatchLoader;
use dl_models::checkpoint_file;
use dl_nn::{
    combine, expected_calibration_error, negative_log_likelihood, oracle_accuracy,
    pairwise_disagreement, EnsembleMethod, Mode,
};
use dl_tensor::{DeviceChoice, Tensor};

use crate::{
    cli::{EnsembleArgs, EnsembleChoice},
    data::load_images,
};

/// The calibration bins (Guo et al. 2017 use 15).
const BINS: usize = 15;

/// One model's test probabilities, and the seconds its forward passes took.
struct MemberRun {
    name: String,
    probabilities: Tensor,
    seconds: f64,
}

/// The share of `predictions` equal to `labels`.
fn accuracy(predictions: &[u32], labels: &[u32]) -> f64 {
    let right = predictions
        .iter()
        .zip(labels)
        .filter(|(a, b)| a == b)
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// The argmax of each row.
fn argmax_rows(probabilities: &Tensor) -> Result<Vec<u32>> {
    Ok(probabilities.argmax(1)?.to_vec1::<u32>()?)
}

/// Runs `ensemble`.
pub fn run(arguments: &EnsembleArgs) -> Result<()> {
    if arguments.checkpoint.len() < 2 {
        bail!("an ensemble needs at least two --checkpoint (train several with train --members K)");
    }
    let device = arguments.data.device.parse::<DeviceChoice>()?.resolve()?;
    let mut members: Vec<(String, ClassifierFile)> = Vec::new();
    for argument in &arguments.checkpoint {
        let path = checkpoint_file(argument, arguments.data.data_dir.as_deref())?;
        let loaded = load_classifier(&path, &device)
            .with_context(|| format!("member {}", path.display()))?;
        members.push((path.display().to_string(), loaded));
    }
    let dataset = members[0].1.recipe().dataset;
    if let Some((name, _)) = members
        .iter()
        .find(|(_, member)| member.recipe().dataset != dataset)
    {
        bail!(
            "{name} was trained on another dataset than {}: ensemble models of one dataset",
            members[0].0
        );
    }
    let data = crate::cli::DataArgs {
        dataset: dataset.into(),
        ..arguments.data.clone()
    };
    let test = load_images(&data, arguments.offline)?
        .test
        .to_device(&device)?;
    if test.is_empty() {
        bail!("the test set is empty: nothing to evaluate");
    }
    let labels_tensor = test.labels.clone();
    let labels = labels_tensor.to_vec1::<u32>()?;
    let loader = BatchLoader::evaluation(&test, arguments.batch_size.max(1))?;
    let mut runs = Vec::new();
    for (name, member) in &members {
        // one batch first, untimed: thread pools and allocations warm up outside the timing
        if let Some(batch) = loader.epoch_batches(0).next() {
            member.layer().forward(&batch?.0, Mode::Eval)?;
        }
        let begun = Instant::now();
        let mut parts = Vec::new();
        for batch in loader.epoch_batches(0) {
            let (images, _) = batch?;
            // detached: a kept output would keep the batch's whole forward graph alive (about
            // 1 GB per 1,000 images for the `cnn`)
            parts.push(dl_nn::softmax(&member.layer().forward(&images, Mode::Eval)?)?.detach());
        }
        runs.push(MemberRun {
            name: name.clone(),
            probabilities: Tensor::cat(&parts, 0)?,
            seconds: begun.elapsed().as_secs_f64(),
        });
    }
    let method = method_of(arguments.method);
    let probabilities: Vec<Tensor> = runs.iter().map(|run| run.probabilities.clone()).collect();
    let combined = combine(&probabilities, method)?;
    let per_thousand = |seconds: f64| 1000.0 * seconds / labels.len() as f64 * 1000.0;

    println!(
        "{} members on the {} test images of {}, combined by {}",
        runs.len(),
        labels.len(),
        dataset.name(),
        match method {
            EnsembleMethod::Mean => "the mean of their probabilities",
            EnsembleMethod::Vote => "majority vote",
        }
    );
    println!("| model | accuracy | NLL | ECE ({BINS} bins) | ms per 1,000 images |");
    println!("|---|---|---|---|---|");
    let (mut accuracy_sum, mut nll_sum, mut ece_sum, mut seconds) = (0.0, 0.0, 0.0, 0.0);
    for run in &runs {
        let member_accuracy = accuracy(&argmax_rows(&run.probabilities)?, &labels);
        let nll = negative_log_likelihood(&run.probabilities, &labels_tensor)?;
        let ece = expected_calibration_error(&run.probabilities, &labels_tensor, BINS)?;
        accuracy_sum += member_accuracy;
        nll_sum += nll;
        ece_sum += ece;
        seconds += run.seconds;
        println!(
            "| {} | {:.2}% | {nll:.4} | {ece:.4} | {:.1} |",
            run.name,
            100.0 * member_accuracy,
            per_thousand(run.seconds)
        );
    }
    let count = runs.len() as f64;
    println!(
        "| mean member | {:.2}% | {:.4} | {:.4} | {:.1} |",
        100.0 * accuracy_sum / count,
        nll_sum / count,
        ece_sum / count,
        per_thousand(seconds / count)
    );
    let ensemble_accuracy = accuracy(&combined.predictions, &labels);
    println!(
        "| **ensemble** | **{:.2}%** | {:.4} | {:.4} | {:.1} |",
        100.0 * ensemble_accuracy,
        negative_log_likelihood(&combined.probabilities, &labels_tensor)?,
        expected_calibration_error(&combined.probabilities, &labels_tensor, BINS)?,
        per_thousand(seconds)
    );
    let disagreement = pairwise_disagreement(&probabilities)?;
    let mean_disagreement =
        disagreement.iter().map(|(_, share)| share).sum::<f64>() / disagreement.len().max(1) as f64;
    println!(
        "the members disagree on {:.2}% of the test images (mean over {} pairs); oracle accuracy (some member right) {:.2}%",
        100.0 * mean_disagreement,
        disagreement.len(),
        100.0 * oracle_accuracy(&probabilities, &labels_tensor)?
    );
    if let Some(out) = &arguments.out {
        save_bundle(arguments, out)?;
    }
    Ok(())
}

/// The library's method for the command line's choice.
fn method_of(choice: EnsembleChoice) -> EnsembleMethod {
    match choice {
        EnsembleChoice::Mean => EnsembleMethod::Mean,
        EnsembleChoice::Vote => EnsembleMethod::Vote,
    }
}

/// Saves the members' checkpoints, byte for byte, as one ensemble checkpoint at `out`.
fn save_bundle(arguments: &EnsembleArgs, out: &Path) -> Result<()> {
    let mut members = Vec::new();
    for argument in &arguments.checkpoint {
        let path = checkpoint_file(argument, arguments.data.data_dir.as_deref())?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        members.push((name, bytes));
    }
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the directory {}", parent.display()))?;
    }
    save_ensemble(out, &members, method_of(arguments.method))
        .with_context(|| format!("saving the ensemble to {}", out.display()))?;
    println!(
        "saved the {} members as one checkpoint: {} (evaluate, predict and serve take it with --checkpoint)",
        members.len(),
        out.display()
    );
    Ok(())
}
