//! The zoo: every architecture builds with the parameter count derived by hand, a recipe goes
//! into checkpoint metadata and back, checkpoints of the previous format (one metadata entry per
//! field, as mnist-classifier and text-gen wrote them before the `recipe` entry) still load, and
//! a checkpoint of another kind is refused with a message that says what it holds.

use std::collections::BTreeMap;
use std::path::Path;

use dl_data::{ImageDataset, Tokenizer};
use dl_models::{
    load, load_image_classifier, load_language_model, ImageModel, ImageRecipe, LoadedModel, Recipe,
    TextModel, TextModelConfig, TextRecipe, RECIPE_KEY,
};
use dl_nn::{Layer, Mode, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

#[test]
fn every_architecture_has_its_hand_counted_parameters() {
    // (weights + biases) per layer:
    let expected = [
        // 784·10 + 10
        (ImageModel::Logreg, 7_850),
        // 784·512 + 512 + 512·256 + 256 + 256·10 + 10
        (ImageModel::Mlp, 535_818),
        // 32·9 + 32 + 5408·128 + 128 + 128·10 + 10 (Keras' summary of the course's CNN)
        (ImageModel::CourseCnn, 693_962),
        // 6·25 + 6 + 16·6·25 + 16 + 400·120 + 120 + 120·84 + 84 + 84·10 + 10
        (ImageModel::Lenet5, 61_706),
        // 32·9 + 32, γ β 64, 64·32·9 + 64, γ β 128, 3136·128 + 128, 128·10 + 10
        (ImageModel::Cnn, 421_834),
    ];
    for (model, parameters) in expected {
        let store = VarStore::new(&Device::Cpu, DType::F32, 0);
        let network = ImageRecipe::new(model, ImageDataset::Mnist)
            .build(&store)
            .unwrap();
        assert_eq!(store.parameter_count(), parameters, "{model}");
        let logits = network
            .forward(
                &Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap(),
                Mode::Eval,
            )
            .unwrap();
        assert_eq!(logits.dims(), &[2, 10], "{model}");
        assert_eq!(model.name().parse::<ImageModel>().unwrap(), model);
    }
    let error = "resnet".parse::<ImageModel>().unwrap_err().to_string();
    assert!(
        error.contains("unknown model 'resnet'") && error.contains("course-cnn"),
        "{error}"
    );
}

/// Saves the weights of `store` with `metadata` at `path`.
fn save(path: &Path, store: &VarStore, metadata: &BTreeMap<String, String>) {
    dl_nn::save_checkpoint(path, store, metadata).unwrap();
}

fn images() -> Tensor {
    SeededRng::new(3)
        .uniform_tensor((4, 1, 28, 28), 0.0, 1.0, &Device::Cpu)
        .unwrap()
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn an_image_classifier_comes_back_from_its_checkpoint() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("lenet.safetensors");
    let recipe = ImageRecipe {
        model: ImageModel::Lenet5,
        dropout: 0.0,
        dataset: ImageDataset::FashionMnist,
        widths: None,
    };
    let store = VarStore::new(&Device::Cpu, DType::F32, 5);
    let trained = recipe.build(&store).unwrap();
    let metadata = Recipe::ImageClassifier(recipe).metadata().unwrap();
    assert_eq!(
        metadata[RECIPE_KEY],
        r#"{"task":"image-classifier","model":"lenet5","dropout":0.0,"dataset":"fashion-mnist"}"#
    );
    save(&path, &store, &metadata);

    let loaded = load_image_classifier(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.recipe, recipe);
    let expected = trained.forward(&images(), Mode::Eval).unwrap();
    let actual = loaded.model.forward(&images(), Mode::Eval).unwrap();
    assert_eq!(
        expected.to_vec2::<f32>().unwrap(),
        actual.to_vec2::<f32>().unwrap()
    );
    assert!(matches!(
        load(&path, &Device::Cpu).unwrap(),
        LoadedModel::ImageClassifier(_)
    ));
}

#[test]
fn a_classifier_checkpoint_of_the_previous_format_still_loads() {
    // The metadata `mnist-classifier train` wrote before the recipe entry (its saved_model.rs and
    // train.rs): one entry per field, numbers as Rust prints them. These are the keys of a
    // checkpoint that version wrote (seed 42, course-cnn), with this test's model.
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("old.safetensors");
    let store = VarStore::new(&Device::Cpu, DType::F32, 42);
    let trained = ImageModel::Mlp.build(&store, 0.2).unwrap();
    let old = strings(&[
        ("app", "mnist-classifier"),
        ("model", "mlp"),
        ("dropout", "0.2"),
        ("dataset", "mnist"),
        ("seed", "42"),
        ("batch_size", "32"),
        ("learning_rate", "0.001"),
        ("optimizer", "adam"),
        ("schedule", "cosine:warmup=0:min_lr=0"),
        ("augment", "false"),
        ("epoch", "5"),
        ("global_step", "9375"),
        ("test_accuracy", "0.984300"),
        ("test_loss", "0.051500"),
        ("schedule.step", "9375"),
    ]);
    save(&path, &store, &old);
    let loaded = load_image_classifier(&path, &Device::Cpu).unwrap();
    assert_eq!(
        loaded.recipe,
        ImageRecipe {
            model: ImageModel::Mlp,
            dropout: 0.2,
            dataset: ImageDataset::Mnist,
            widths: None,
        }
    );
    assert_eq!(loaded.metadata["test_accuracy"], "0.984300");
    let expected = trained.forward(&images(), Mode::Eval).unwrap();
    let actual = loaded.model.forward(&images(), Mode::Eval).unwrap();
    assert_eq!(
        expected.to_vec2::<f32>().unwrap(),
        actual.to_vec2::<f32>().unwrap()
    );
}

fn text_recipe() -> TextRecipe {
    let tokenizer = Tokenizer::char_level("to be or not to be").unwrap();
    TextRecipe {
        config: TextModelConfig {
            vocab_size: tokenizer.vocab_size(),
            embedding: 4,
            hidden: 6,
            layers: 2,
            dropout: 0.1,
        },
        tokenizer,
    }
}

fn logits(model: &TextModel) -> Vec<Vec<Vec<f32>>> {
    let ids = Tensor::new(&[[0u32, 3, 1, 2]], &Device::Cpu).unwrap();
    model.forward(&ids, Mode::Eval).unwrap().to_vec3().unwrap()
}

#[test]
fn a_language_model_comes_back_with_its_tokenizer_in_both_formats() {
    let directory = tempfile::tempdir().unwrap();
    let recipe = text_recipe();
    let store = VarStore::new(&Device::Cpu, DType::F32, 8);
    let trained = recipe.build(&store).unwrap();

    let new = directory.path().join("new.safetensors");
    let metadata = Recipe::LanguageModel(recipe.clone()).metadata().unwrap();
    save(&new, &store, &metadata);
    // The previous format (text-gen's saved_model.rs): one entry per size.
    let old = directory.path().join("old.safetensors");
    let mut old_metadata = strings(&[
        ("app", "text-gen"),
        ("model", "embedding-lstm-dense"),
        ("embedding", "4"),
        ("hidden", "6"),
        ("layers", "2"),
        ("dropout", "0.1"),
        ("tokenizer_kind", "char"),
    ]);
    old_metadata.insert("vocab_size".into(), recipe.config.vocab_size.to_string());
    old_metadata.insert("tokenizer".into(), recipe.tokenizer.to_json().unwrap());
    save(&old, &store, &old_metadata);

    for path in [&new, &old] {
        let loaded = load_language_model(path, &Device::Cpu).unwrap();
        assert_eq!(loaded.recipe.config, recipe.config, "{}", path.display());
        assert_eq!(
            loaded.recipe.tokenizer.encode("not to be").unwrap(),
            recipe.tokenizer.encode("not to be").unwrap()
        );
        assert_eq!(
            logits(&loaded.model),
            logits(&trained),
            "{}",
            path.display()
        );
    }
}

/// Fails unless `result` is an error whose message contains `expected`.
fn assert_error<T>(result: dl_models::Result<T>, expected: &str) {
    let message = result.err().expect("an error").to_string();
    assert!(message.contains(expected), "{message}");
}

#[test]
fn a_checkpoint_of_another_kind_is_refused_with_what_it_holds() {
    let directory = tempfile::tempdir().unwrap();
    let text = directory.path().join("text.safetensors");
    let recipe = text_recipe();
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    recipe.build(&store).unwrap();
    let metadata = Recipe::LanguageModel(recipe).metadata().unwrap();
    save(&text, &store, &metadata);
    assert_error(
        load_image_classifier(&text, &Device::Cpu),
        "is not a mnist-classifier checkpoint (it holds a language model)",
    );

    let foreign = directory.path().join("foreign.safetensors");
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    dl_nn::Dense::new(&store.root().sub("dense"), 2, 2).unwrap();
    save(&foreign, &store, &strings(&[("architecture", "dense-2-2")]));
    assert_error(
        load_language_model(&foreign, &Device::Cpu),
        "is not a text-gen checkpoint",
    );
    assert_error(load(&foreign, &Device::Cpu), "not a model of this project");

    // A recipe whose sizes do not match the stored tensors is refused, naming the file.
    let mismatched = directory.path().join("mismatched.safetensors");
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    ImageModel::Logreg.build(&store, 0.0).unwrap();
    let recipe = ImageRecipe::new(ImageModel::Mlp, ImageDataset::Mnist);
    save(
        &mismatched,
        &store,
        &Recipe::ImageClassifier(recipe).metadata().unwrap(),
    );
    assert_error(
        load_image_classifier(&mismatched, &Device::Cpu),
        "mismatched.safetensors",
    );
}

#[test]
fn a_narrowed_classifier_comes_back_from_its_checkpoint() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("narrow.safetensors");
    let recipe = ImageRecipe {
        widths: Some(dl_models::LayerWidths::new(&[5, 11, 70, 33]).unwrap()),
        ..ImageRecipe::new(ImageModel::Lenet5, ImageDataset::Mnist)
    };
    let store = VarStore::new(&Device::Cpu, DType::F32, 3);
    let model = recipe.build(&store).unwrap();
    // conv 1→5 (5x5), conv 5→11 (5x5), 11·5·5 → 70 → 33 → 10, with biases
    let expected =
        (25 + 1) * 5 + (5 * 25 + 1) * 11 + (275 + 1) * 70 + (70 + 1) * 33 + (33 + 1) * 10;
    assert_eq!(model.parameter_count(), expected);
    dl_nn::save_checkpoint(
        &path,
        &store,
        &Recipe::ImageClassifier(recipe).metadata().unwrap(),
    )
    .unwrap();
    let loaded = load_image_classifier(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.recipe, recipe);
    assert_eq!(loaded.model.parameter_count(), expected);
    let wrong = ImageModel::CourseCnn
        .build_with_widths(&VarStore::new(&Device::Cpu, DType::F32, 0), 0.0, &[4])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("2 positive widths"), "{wrong}");
    let wider = ImageModel::Mlp
        .build_with_widths(
            &VarStore::new(&Device::Cpu, DType::F32, 0),
            0.0,
            &[4097, 256],
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        wider.contains("none above 8 times the default ([512, 256])"),
        "{wider}"
    );
    let widest_allowed = ImageModel::Mlp
        .build_with_widths(&VarStore::new(&Device::Cpu, DType::F32, 0), 0.0, &[4096, 8])
        .unwrap();
    assert_eq!(
        widest_allowed.parameter_count(),
        784 * 4096 + 4096 + 4096 * 8 + 8 + 8 * 10 + 10
    );
}
