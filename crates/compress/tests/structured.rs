//! Structured pruning: the narrow model computes exactly what the original computes once the
//! removed filters and units are silenced, the weakest (smallest L2 norm) are the ones removed,
//! and models with batch normalisation and two convolutions transfer too.

use dl_compress::{Sparsity, StructuredPlan};
use dl_models::{ImageModel, ImageRecipe, LayerWidths};
use dl_nn::{Layer, Mode, Sequential, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn images(count: usize) -> Tensor {
    let mut rng = SeededRng::new(11);
    let values: Vec<f32> = (0..count * 784).map(|_| rng.uniform()).collect();
    Tensor::from_vec(values, (count, 1, 28, 28), &Device::Cpu).unwrap()
}

fn narrow(
    model: ImageModel,
    source: &Sequential,
    plan: &StructuredPlan,
) -> dl_models::Result<(VarStore, Sequential)> {
    let recipe = ImageRecipe {
        widths: Some(LayerWidths::new(&plan.widths()).unwrap()),
        ..ImageRecipe::new(model, dl_data::ImageDataset::Mnist)
    };
    let store = VarStore::new(&Device::Cpu, DType::F32, 123);
    let narrow = recipe.build(&store)?;
    plan.transfer(source, &narrow).unwrap();
    Ok((store, narrow))
}

/// Zeroes the rows (and biases) of `source` that `plan` removes.
fn silence_removed(source: &Sequential, plan: &StructuredPlan) -> TestResult {
    for (layer, kept) in &plan.kept {
        for leaf in ["weight", "bias"] {
            let var = source.store().get(&format!("{layer}.{leaf}")).unwrap();
            let rows = var.dims()[0];
            let mask: Vec<f32> = (0..rows)
                .map(|row| if kept.contains(&row) { 1.0 } else { 0.0 })
                .collect();
            let mut shape = vec![1usize; var.rank()];
            shape[0] = rows;
            let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
            var.set(&var.as_tensor().broadcast_mul(&mask)?)?;
        }
    }
    Ok(())
}

#[test]
fn the_narrow_model_equals_the_original_with_removed_channels_silenced() -> TestResult {
    for model in [ImageModel::CourseCnn, ImageModel::Lenet5, ImageModel::Mlp] {
        let store = VarStore::new(&Device::Cpu, DType::F32, 5);
        let source = ImageRecipe::new(model, dl_data::ImageDataset::Mnist).build(&store)?;
        // give the biases some value, so a wrong bias copy shows
        for (name, var) in store.trainable_variables() {
            if name.ends_with(".bias") {
                var.set(&(var.as_tensor() + 0.05)?)?;
            }
        }
        let plan = StructuredPlan::rank(&source, Sparsity::new(0.5)?)?;
        let defaults = model.default_widths();
        for ((_, kept), &width) in plan.kept.iter().zip(defaults) {
            assert_eq!(kept.len(), width - width / 2, "{model}");
        }
        let (_narrow_store, narrow_model) = narrow(model, &source, &plan)?;
        assert!(narrow_model.parameter_count() < source.parameter_count() / 2 + 2000);
        silence_removed(&source, &plan)?;
        let input = images(6);
        let expected = source.forward(&input, Mode::Eval)?.to_vec2::<f32>()?;
        let got = narrow_model.forward(&input, Mode::Eval)?.to_vec2::<f32>()?;
        for (a, b) in expected.iter().flatten().zip(got.iter().flatten()) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                "{model}: {a} vs {b}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_weakest_filters_go() -> TestResult {
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    let source =
        ImageRecipe::new(ImageModel::CourseCnn, dl_data::ImageDataset::Mnist).build(&store)?;
    let weight = store.get("conv2d.weight").unwrap();
    // filter f holds nine values ±(f + 1): its norm is 3 (f + 1), so the first 24 are weakest
    let values: Vec<f32> = (0..32 * 9)
        .map(|i| ((i / 9) + 1) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    weight.set(&Tensor::from_vec(values, (32, 1, 3, 3), &Device::Cpu)?)?;
    let plan = StructuredPlan::rank(&source, Sparsity::new(0.75)?)?;
    assert_eq!(plan.kept[0].1, (24..32).collect::<Vec<_>>());
    assert_eq!(plan.widths(), [8, 32]);
    Ok(())
}

#[test]
fn batch_normalised_models_transfer() -> TestResult {
    let store = VarStore::new(&Device::Cpu, DType::F32, 2);
    let source = ImageRecipe::new(ImageModel::Cnn, dl_data::ImageDataset::Mnist).build(&store)?;
    let plan = StructuredPlan::rank(&source, Sparsity::new(0.25)?)?;
    assert_eq!(plan.widths(), [24, 48, 96]);
    let (narrow_store, narrow_model) = narrow(ImageModel::Cnn, &source, &plan)?;
    let running_mean = narrow_store
        .get("batch_normalization.running_mean")
        .unwrap();
    assert_eq!(running_mean.dims(), [24]);
    narrow_model.forward(&images(2), Mode::Eval)?;
    // a single-layer model has nothing to prune structurally
    let logreg = ImageRecipe::new(ImageModel::Logreg, dl_data::ImageDataset::Mnist)
        .build(&VarStore::new(&Device::Cpu, DType::F32, 0))?;
    let error = StructuredPlan::rank(&logreg, Sparsity::new(0.5)?).unwrap_err();
    assert!(error.to_string().contains("classes"), "{error}");
    Ok(())
}
