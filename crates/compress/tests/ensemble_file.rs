//! The ensemble bundle: members of any precision in one file, read back by `load_classifier` as
//! one model whose output is the log of the members' mean (or voted) probabilities, computed
//! here from the members loaded one by one; and the errors bad bundles get.

use std::{collections::BTreeMap, path::Path};

use dl_compress::{
    encode_int8, load_classifier, save_ensemble, Calibration, ClassifierFile, CompressError,
    QuantizedModel,
};
use dl_data::ImageDataset;
use dl_models::{ImageModel, ImageRecipe, Recipe};
use dl_nn::{save_checkpoint, softmax, EnsembleMethod, Mode, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn images(count: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let values: Vec<f32> = (0..count * 784).map(|_| rng.uniform()).collect();
    Tensor::from_vec(values, (count, 1, 28, 28), &Device::Cpu).unwrap()
}

/// The bytes of a float checkpoint of `model` on `dataset`, initialised from `seed`.
fn float_checkpoint(
    directory: &Path,
    model: ImageModel,
    dataset: ImageDataset,
    seed: u64,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let recipe = ImageRecipe::new(model, dataset);
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    recipe.build(&store)?;
    let path = directory.join(format!("{model}-{seed}.safetensors"));
    let mut metadata = Recipe::ImageClassifier(recipe).metadata()?;
    metadata.insert("epoch".into(), "3".into());
    save_checkpoint(&path, &store, &metadata)?;
    Ok(std::fs::read(path)?)
}

/// The bytes of an int8 checkpoint of a `logreg` initialised from `seed`.
fn int8_checkpoint(seed: u64) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let recipe = ImageRecipe::new(ImageModel::Logreg, ImageDataset::Mnist);
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    let model = recipe.build(&store)?;
    let quantized = QuantizedModel::calibrate(&model, &images(16, seed), Calibration::MinMax)?;
    let mut metadata = Recipe::ImageClassifier(recipe).metadata()?;
    metadata.insert("quantization".into(), "{\"precision\":\"int8\"}".into());
    Ok(encode_int8(&quantized, &metadata)?)
}

/// Each member read alone from its own bytes: the probabilities it gives `input`.
fn member_probabilities(
    directory: &Path,
    members: &[(String, Vec<u8>)],
    input: &Tensor,
) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    let mut all = Vec::new();
    for (name, bytes) in members {
        let path = directory.join(format!("alone-{name}"));
        std::fs::write(&path, bytes)?;
        let member = load_classifier(&path, &Device::Cpu)?;
        let probabilities = softmax(&member.layer().forward(input, Mode::Eval)?)?;
        all.push(probabilities.flatten_all()?.to_vec1()?);
    }
    Ok(all)
}

#[test]
fn a_bundle_of_float_and_int8_members_is_their_mean() -> TestResult {
    let directory = tempfile::tempdir()?;
    let members = vec![
        (
            "a.safetensors".to_string(),
            float_checkpoint(directory.path(), ImageModel::Mlp, ImageDataset::Mnist, 1)?,
        ),
        (
            "b.safetensors".to_string(),
            float_checkpoint(directory.path(), ImageModel::Cnn, ImageDataset::Mnist, 2)?,
        ),
        ("c.int8.safetensors".to_string(), int8_checkpoint(3)?),
    ];
    let bundle = directory.path().join("ensemble.safetensors");
    save_ensemble(&bundle, &members, EnsembleMethod::Mean)?;

    let loaded = load_classifier(&bundle, &Device::Cpu)?;
    let ClassifierFile::Ensemble(ensemble) = &loaded else {
        panic!("the bundle was read as a {} model", loaded.precision());
    };
    let names: Vec<&str> = ensemble.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["a.safetensors", "b.safetensors", "c.int8.safetensors"]
    );
    let precisions: Vec<&str> = ensemble.members.iter().map(|m| m.precision).collect();
    assert_eq!(precisions, ["float", "float", "int8"]);
    assert_eq!(loaded.precision(), "mixed");
    assert_eq!(ensemble.members[0].metadata["epoch"], "3");
    assert_eq!(
        loaded.description(),
        "ensemble, mean of 3: mlp, cnn, logreg"
    );

    let input = images(5, 11);
    let separate = member_probabilities(directory.path(), &members, &input)?;
    let combined: Vec<f32> = loaded
        .layer()
        .forward(&input, Mode::Eval)?
        .exp()?
        .flatten_all()?
        .to_vec1()?;
    for (index, value) in combined.iter().enumerate() {
        let mean = separate.iter().map(|member| member[index]).sum::<f32>() / 3.0;
        assert!(
            (value - mean).abs() < 1e-5,
            "value {index}: {value} vs mean {mean}"
        );
    }
    Ok(())
}

#[test]
fn a_vote_bundle_predicts_the_majority() -> TestResult {
    let directory = tempfile::tempdir()?;
    let members: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|seed| {
            Ok((
                format!("m{seed}.safetensors"),
                float_checkpoint(directory.path(), ImageModel::Mlp, ImageDataset::Mnist, seed)?,
            ))
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    let bundle = directory.path().join("vote.safetensors");
    save_ensemble(&bundle, &members, EnsembleMethod::Vote)?;
    let loaded = load_classifier(&bundle, &Device::Cpu)?;
    let input = images(40, 5);
    let separate = member_probabilities(directory.path(), &members, &input)?;
    let predicted: Vec<u32> = loaded
        .layer()
        .forward(&input, Mode::Eval)?
        .argmax(1)?
        .to_vec1()?;
    let argmax = |row: &[f32]| {
        (0..row.len()).fold(
            0,
            |best, class| if row[class] > row[best] { class } else { best },
        )
    };
    for (example, prediction) in predicted.iter().enumerate() {
        let mut votes = [0usize; 10];
        for member in &separate {
            votes[argmax(&member[example * 10..(example + 1) * 10])] += 1;
        }
        let most = *votes.iter().max().unwrap();
        // the prediction has the most votes (ties are settled by the mean; see dl-nn's tests)
        assert_eq!(
            votes[*prediction as usize], most,
            "example {example}: {votes:?}"
        );
    }
    Ok(())
}

#[test]
fn bad_bundles_are_refused_by_name() -> TestResult {
    let directory = tempfile::tempdir()?;
    let mnist = float_checkpoint(directory.path(), ImageModel::Mlp, ImageDataset::Mnist, 1)?;
    let fashion = float_checkpoint(
        directory.path(),
        ImageModel::Mlp,
        ImageDataset::FashionMnist,
        2,
    )?;
    let bundle = directory.path().join("bundle.safetensors");

    // one member is no ensemble
    let error = save_ensemble(
        &bundle,
        &[("a".into(), mnist.clone())],
        EnsembleMethod::Mean,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("at least two"), "{error}");
    // two datasets
    let error = save_ensemble(
        &bundle,
        &[
            ("digits".into(), mnist.clone()),
            ("clothes".into(), fashion),
        ],
        EnsembleMethod::Mean,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("clothes") && error.contains("one dataset"),
        "{error}"
    );
    // a member that is not a checkpoint
    let error = save_ensemble(
        &bundle,
        &[
            ("a".into(), mnist.clone()),
            ("notes.txt".into(), b"hello".to_vec()),
        ],
        EnsembleMethod::Mean,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("notes.txt"), "{error}");
    assert!(!bundle.exists(), "nothing is written when a member is bad");

    // a bundle inside a bundle
    save_ensemble(
        &bundle,
        &[("a".into(), mnist.clone()), ("b".into(), mnist.clone())],
        EnsembleMethod::Mean,
    )?;
    let nested = std::fs::read(&bundle)?;
    let error = save_ensemble(
        &directory.path().join("nested.safetensors"),
        &[
            ("a".into(), mnist.clone()),
            ("inner".into(), nested.clone()),
        ],
        EnsembleMethod::Mean,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("inner") && error.contains("itself an ensemble"),
        "{error}"
    );

    // a truncated bundle
    let truncated = directory.path().join("truncated.safetensors");
    std::fs::write(&truncated, &nested[..nested.len() - 10])?;
    let error = load_classifier(&truncated, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("truncated.safetensors"), "{error}");

    // the single-model loaders say what the file is and what takes it
    let error = dl_models::load_image_classifier(&bundle, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("ensemble bundle"), "{error}");
    Ok(())
}

#[test]
fn a_forged_header_is_refused() -> TestResult {
    let directory = tempfile::tempdir()?;
    let mnist = float_checkpoint(directory.path(), ImageModel::Mlp, ImageDataset::Mnist, 1)?;
    let tensors = vec![(
        "member_1".to_string(),
        Tensor::from_slice(&mnist, mnist.len(), &Device::Cpu)?,
    )];
    let cases = [
        (
            r#"{"version":1,"method":"mean","members":["a","b"]}"#,
            "member_2",
        ),
        (
            r#"{"version":2,"method":"mean","members":["a","b"]}"#,
            "version 2",
        ),
        (
            r#"{"version":1,"method":"median","members":["a","b"]}"#,
            "median",
        ),
        (
            r#"{"version":1,"method":"mean","members":["a"]}"#,
            "1 members",
        ),
        ("not json", "cannot be read"),
    ];
    for (header, expected) in cases {
        let metadata = BTreeMap::from([("ensemble".to_string(), header.to_string())]);
        let path = directory.path().join("forged.safetensors");
        dl_nn::save_tensors(&path, &tensors, &metadata)?;
        let error = load_classifier(&path, &Device::Cpu).err().unwrap();
        assert!(matches!(error, CompressError::BadFile { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(expected), "{header}: {message}");
    }
    Ok(())
}
