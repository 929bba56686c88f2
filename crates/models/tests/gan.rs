//! The GAN of the zoo: the DCGAN's parameter counts are PyTorch's for the baseline's
//! definition (counted by hand below), a checkpoint rebuilds the same networks, and a file of
//! another kind, or one whose recipe lies about its sizes, is refused with a clear error.

use dl_models::{load, load_gan, load_image_classifier, GanModel, GanRecipe, LoadedModel, Recipe};
use dl_nn::{Mode, VarStore};
use dl_tensor::{DType, Device, Tensor};

fn recipe(model: GanModel, width: usize, conditional: bool) -> GanRecipe {
    GanRecipe {
        model,
        width,
        latent_dim: 100,
        conditional,
        dataset: dl_data::ImageDataset::Mnist,
        ema: false,
    }
}

fn parameters(gan: &dl_models::Gan, prefix: &str) -> usize {
    gan.variables(prefix)
        .iter()
        .map(|(_, var)| var.elem_count())
        .sum()
}

#[test]
fn the_dcgan_has_the_baselines_parameter_counts() {
    // W = 32, z = 100. G: Linear(100 → 3136, no bias) 313,600 + BatchNorm(64) 128
    // + ConvTranspose(64 → 32, 4x4, no bias) 32,768 + BatchNorm(32) 64
    // + ConvTranspose(32 → 1, 4x4) 512 + 1 = 347,073.
    // D: Conv(1 → 32, 4x4) 512 + 32 + Conv(32 → 64, 4x4, no bias) 32,768 + BatchNorm(64) 128
    // + Linear(3136 → 1) 3,137 = 36,577.
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let gan = recipe(GanModel::Dcgan, 32, false).build(&store).unwrap();
    assert_eq!(parameters(&gan, "generator"), 347_073);
    assert_eq!(parameters(&gan, "discriminator"), 36_577);
    // N(0, 0.02) weights: the sample standard deviation of the projection's 313,600 values.
    let weight = store.get("generator.project.weight").unwrap();
    let values = weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32).sqrt();
    assert!(
        mean.abs() < 1e-3 && (std - 0.02).abs() < 1e-3,
        "mean {mean}, std {std}"
    );
    // Shapes: noise → (N, 1, 28, 28) in [−1, 1] → one logit each.
    let noise = gan.noise(3).unwrap();
    let images = gan.generator().generate(&noise, None, Mode::Train).unwrap();
    assert_eq!(images.dims(), [3, 1, 28, 28]);
    let largest = images
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(largest <= 1.0);
    let logits = gan
        .discriminator()
        .score(&images, None, Mode::Train)
        .unwrap();
    assert_eq!(logits.dims(), [3, 1]);
}

#[test]
fn a_gan_checkpoint_rebuilds_the_same_generator_and_is_refused_as_a_classifier() {
    let directory = tempfile::tempdir().unwrap();
    for (model, conditional) in [(GanModel::Dcgan, true), (GanModel::Mlp, false)] {
        let path = directory
            .path()
            .join(format!("{model}-{conditional}.safetensors"));
        let store = VarStore::new(&Device::Cpu, DType::F32, 4);
        let original = recipe(model, 8, conditional);
        let gan = original.build(&store).unwrap();
        dl_nn::save_checkpoint(&path, &store, &Recipe::Gan(original).metadata().unwrap()).unwrap();

        let loaded = load_gan(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.recipe, original);
        let noise = Tensor::ones((2, 100), DType::F32, &Device::Cpu).unwrap();
        let labels = conditional.then(|| Tensor::new(&[3u32, 7], &Device::Cpu).unwrap());
        let generate = |gan: &dl_models::Gan| {
            gan.generator()
                .generate(&noise, labels.as_ref(), Mode::Eval)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(generate(&gan), generate(&loaded.model));
        assert!(matches!(
            load(&path, &Device::Cpu).unwrap(),
            LoadedModel::Gan(_)
        ));

        let message = load_image_classifier(&path, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            message.contains("GAN") && message.contains("mnist-classifier"),
            "{message}"
        );
        // Labels where none are expected, and none where they are: errors, not panics.
        let wrong_labels = if conditional {
            None
        } else {
            Some(Tensor::new(&[1u32, 2], &Device::Cpu).unwrap())
        };
        assert!(loaded
            .model
            .generator()
            .generate(&noise, wrong_labels.as_ref(), Mode::Eval)
            .is_err());
    }
}

#[test]
fn a_recipe_that_lies_about_its_sizes_is_refused_before_building() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("liar.safetensors");
    let store = VarStore::new(&Device::Cpu, DType::F32, 4);
    recipe(GanModel::Mlp, 2, false).build(&store).unwrap();
    // The file holds width-2 tensors, its recipe claims width 1000.
    let claimed = recipe(GanModel::Mlp, 1000, false);
    dl_nn::save_checkpoint(&path, &store, &Recipe::Gan(claimed).metadata().unwrap()).unwrap();
    let message = load_gan(&path, &Device::Cpu).err().unwrap().to_string();
    assert!(
        message.contains("does not describe these weights"),
        "{message}"
    );
    // A width beyond the limit is refused by the recipe itself.
    let too_wide = recipe(GanModel::Mlp, 100_000, false);
    dl_nn::save_checkpoint(&path, &store, &Recipe::Gan(too_wide).metadata().unwrap()).unwrap();
    let message = load_gan(&path, &Device::Cpu).err().unwrap().to_string();
    assert!(message.contains("width must be in"), "{message}");
}
