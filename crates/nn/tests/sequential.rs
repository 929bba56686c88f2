//! Behaviour of `Sequential`: the course CNN's parameter count, Keras-style summary and
//! PyTorch-style names, logits versus probabilities, input checking, non-trainable buffers and
//! seeded determinism.

mod common;

use common::batches_tracked;
use dl_nn::{softmax, Activation, Layer, Mode, NnError, Sequential, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

/// The CNN of the course (§5.1): Conv2D(32, 3x3, relu) → MaxPooling2D(2) → Flatten →
/// Dense(128, relu) → Dense(10, softmax), on 28x28 grey images.
fn course_cnn(seed: u64) -> Sequential {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    Sequential::builder(&store.root(), &[1, 28, 28])
        .conv2d(32, 3, Activation::Relu)
        .unwrap()
        .max_pool2d(2)
        .unwrap()
        .flatten()
        .unwrap()
        .dense(128, Activation::Relu)
        .unwrap()
        .dense(10, Activation::Softmax)
        .unwrap()
        .build()
}

fn images(batch: usize, seed: u64) -> Tensor {
    SeededRng::new(seed)
        .uniform_tensor((batch, 1, 28, 28), 0.0, 1.0, &Device::Cpu)
        .unwrap()
}

fn flat(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().unwrap().to_vec1().unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|value| value.to_bits()).collect()
}

#[test]
fn course_cnn_has_693_962_parameters() {
    // conv2d: 32 kernels of 1·3·3 weights + 32 biases = 320.
    // 28x28 → 26x26 after a valid 3x3 convolution, 13x13 after 2x2 pooling: 32·13·13 = 5408.
    // dense: 5408·128 + 128 = 692,352. dense_1: 128·10 + 10 = 1,290.
    // Total: 320 + 692,352 + 1,290 = 693,962.
    let model = course_cnn(0);
    assert_eq!(model.parameter_count(), 693_962);
    assert_eq!(model.store().parameter_count(), 693_962);
    let layers: Vec<_> = model
        .layers()
        .map(|(name, kind, shape, count)| (name.to_string(), kind, shape.to_vec(), count))
        .collect();
    assert_eq!(
        layers,
        vec![
            ("conv2d".to_string(), "Conv2D", vec![32, 26, 26], 320),
            (
                "max_pooling2d".to_string(),
                "MaxPooling2D",
                vec![32, 13, 13],
                0
            ),
            ("flatten".to_string(), "Flatten", vec![5408], 0),
            ("dense".to_string(), "Dense", vec![128], 692_352),
            ("dense_1".to_string(), "Dense", vec![10], 1_290),
        ]
    );
    assert_eq!(model.input_shape(), &[1, 28, 28]);
    assert_eq!(model.output_shape(), &[10]);
}

/// The row of the summary table that starts with `name`, split into its three cells.
fn summary_row(summary: &str, name: &str) -> Vec<String> {
    let line = summary
        .lines()
        .find(|line| line.trim_start_matches('│').trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no row '{name}' in\n{summary}"));
    line.split('│')
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_string)
        .collect()
}

/// Asserts that each expected row (layer, output shape, parameter count) is in `summary`,
/// found by its first cell.
fn assert_summary_rows(summary: &str, rows: &[[&str; 3]]) {
    for row in rows {
        assert_eq!(summary_row(summary, row[0]), row);
    }
}

#[test]
fn course_cnn_summary_matches_keras() {
    let summary = course_cnn(0).summary();
    assert_summary_rows(
        &summary,
        &[
            ["conv2d (Conv2D)", "(None, 32, 26, 26)", "320"],
            ["max_pooling2d (MaxPooling2D)", "(None, 32, 13, 13)", "0"],
            ["flatten (Flatten)", "(None, 5408)", "0"],
            ["dense (Dense)", "(None, 128)", "692,352"],
            ["dense_1 (Dense)", "(None, 10)", "1,290"],
        ],
    );
    assert!(summary.contains("Total params: 693,962"), "{summary}");
    assert!(summary.contains("Trainable params: 693,962"), "{summary}");
    assert!(summary.contains("Non-trainable params: 0"), "{summary}");
    // The table's lines all have the same width.
    let widths: Vec<usize> = summary
        .lines()
        .filter(|line| line.starts_with(['│', '┌', '├', '└']))
        .map(|line| line.chars().count())
        .collect();
    assert!(
        widths.windows(2).all(|pair| pair[0] == pair[1]),
        "{summary}"
    );
}

#[test]
fn store_names_and_shapes_follow_pytorch() {
    let model = course_cnn(0);
    let store = model.store();
    assert_eq!(
        store.names(),
        vec![
            "conv2d.weight",
            "conv2d.bias",
            "dense.weight",
            "dense.bias",
            "dense_1.weight",
            "dense_1.bias"
        ]
    );
    // PyTorch layouts: Conv2d weight (out, in, kH, kW); Linear weight (out, in).
    let shape = |name: &str| store.get(name).unwrap().dims().to_vec();
    assert_eq!(shape("conv2d.weight"), vec![32, 1, 3, 3]);
    assert_eq!(shape("conv2d.bias"), vec![32]);
    assert_eq!(shape("dense.weight"), vec![128, 5408]);
    assert_eq!(shape("dense.bias"), vec![128]);
    assert_eq!(shape("dense_1.weight"), vec![10, 128]);
    assert_eq!(shape("dense_1.bias"), vec![10]);
    assert!(store
        .parameters()
        .iter()
        .all(|parameter| parameter.trainable));
    assert_eq!(store.trainable_variables().len(), 6);
}

#[test]
fn forward_returns_logits_and_predict_returns_probabilities() {
    let model = course_cnn(1);
    let x = images(3, 2);
    let logits = model.forward(&x, Mode::Eval).unwrap();
    let probabilities = model.predict(&x).unwrap();
    assert_eq!(logits.dims(), &[3, 10]);
    assert_eq!(probabilities.dims(), &[3, 10]);
    // predict = softmax(forward).
    let expected = flat(&softmax(&logits).unwrap());
    let actual = flat(&probabilities);
    for (a, e) in actual.iter().zip(&expected) {
        assert!((a - e).abs() < 1e-6, "{a} vs {e}");
    }
    for row in probabilities.to_vec2::<f32>().unwrap() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?}");
        assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
    // The logits are not probabilities: some are negative (or the rows do not sum to 1).
    let logit_rows = logits.to_vec2::<f32>().unwrap();
    assert!(logit_rows
        .iter()
        .any(|row| row.iter().any(|&z| z < 0.0) || (row.iter().sum::<f32>() - 1.0).abs() > 1e-3));
}

#[test]
fn a_model_without_final_softmax_returns_the_same_from_forward_and_predict() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 3);
    let model = Sequential::builder(&store.root(), &[4])
        .dense(3, Activation::Tanh)
        .unwrap()
        .dense(2, Activation::Sigmoid)
        .unwrap()
        .build();
    let x = SeededRng::new(4)
        .normal_tensor((5, 4), 0.0, 1.0, &Device::Cpu)
        .unwrap();
    assert_eq!(
        flat(&model.forward(&x, Mode::Eval).unwrap()),
        flat(&model.predict(&x).unwrap())
    );
}

#[test]
fn wrong_input_shapes_are_errors() {
    let model = course_cnn(0);
    for shape in [
        vec![2, 28, 28],
        vec![2, 1, 28, 27],
        vec![2, 3, 28, 28],
        vec![784],
    ] {
        let x = Tensor::zeros(shape.as_slice(), DType::F32, &Device::Cpu).unwrap();
        match model.forward(&x, Mode::Eval) {
            Err(error @ NnError::Shape { .. }) => {
                let message = error.to_string();
                assert!(message.contains("1, 28, 28"), "{shape:?}: {message}");
            }
            other => panic!("{shape:?}: expected a shape error, got {other:?}"),
        }
        assert!(model.predict(&x).is_err());
    }
}

#[test]
fn builder_reports_layers_that_do_not_fit() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    // A convolution needs (channels, height, width).
    let result = Sequential::builder(&store.root(), &[10]).conv2d(4, 3, Activation::Relu);
    assert!(matches!(result, Err(NnError::Shape { .. })));
    // A 5x5 kernel does not fit a 3x3 image.
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let result = Sequential::builder(&store.root(), &[1, 3, 3]).conv2d(4, 5, Activation::Relu);
    assert!(result.is_err());
}

#[test]
fn batch_norm_and_dropout_report_non_trainable_parameters() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 5);
    let model = Sequential::builder(&store.root(), &[8])
        .dense(16, Activation::Relu)
        .unwrap()
        .batch_norm()
        .unwrap()
        .dropout(0.5)
        .unwrap()
        .dense(3, Activation::Softmax)
        .unwrap()
        .build();
    // Trainable: dense 8·16 + 16 = 144; batch norm γ and β 2·16 = 32; dense_1 16·3 + 3 = 51;
    // 144 + 32 + 51 = 227. Non-trainable: running mean and variance, 2·16 = 32 (the integer
    // batch counter is not a parameter). Total 259.
    assert_eq!(model.parameter_count(), 227);
    let summary = model.summary();
    assert!(summary.contains("Total params: 259"), "{summary}");
    assert!(summary.contains("Trainable params: 227"), "{summary}");
    assert!(summary.contains("Non-trainable params: 32"), "{summary}");
    assert!(
        summary.contains("batch_normalization (BatchNormalization)"),
        "{summary}"
    );
    assert_summary_rows(&summary, &[["dropout (Dropout)", "(None, 16)", "0"]]);
    assert_eq!(
        store.names(),
        vec![
            "dense.weight",
            "dense.bias",
            "batch_normalization.weight",
            "batch_normalization.bias",
            "batch_normalization.running_mean",
            "batch_normalization.running_var",
            "batch_normalization.num_batches_tracked",
            "dense_1.weight",
            "dense_1.bias",
        ]
    );
    let buffers: Vec<String> = store
        .parameters()
        .into_iter()
        .filter(|parameter| !parameter.trainable)
        .map(|parameter| parameter.name)
        .collect();
    assert_eq!(
        buffers,
        vec![
            "batch_normalization.running_mean",
            "batch_normalization.running_var",
            "batch_normalization.num_batches_tracked",
        ]
    );
    // Evaluation is deterministic; training draws fresh dropout masks.
    let x = SeededRng::new(6)
        .normal_tensor((4, 8), 0.0, 1.0, &Device::Cpu)
        .unwrap();
    assert_eq!(
        flat(&model.forward(&x, Mode::Eval).unwrap()),
        flat(&model.forward(&x, Mode::Eval).unwrap())
    );
    let first = flat(&model.forward(&x, Mode::Train).unwrap());
    let second = flat(&model.forward(&x, Mode::Train).unwrap());
    assert_ne!(first, second);
    // Two training passes were counted by the batch norm.
    assert_eq!(batches_tracked(&store, "batch_normalization"), 2);
}

#[test]
fn batch_norm_after_a_convolution_normalises_channels() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 7);
    let model = Sequential::builder(&store.root(), &[1, 8, 8])
        .conv2d(4, 3, Activation::Identity)
        .unwrap()
        .batch_norm()
        .unwrap()
        .build();
    assert_eq!(model.output_shape(), &[4, 6, 6]);
    assert_eq!(
        store.get("batch_normalization.weight").unwrap().dims(),
        &[4]
    );
    let output = model
        .forward(
            &SeededRng::new(8)
                .normal_tensor((3, 1, 8, 8), 0.0, 1.0, &Device::Cpu)
                .unwrap(),
            Mode::Train,
        )
        .unwrap();
    // Each channel of the training output has mean 0 over (N, H, W).
    let means = output.mean_keepdim((0, 2, 3)).unwrap();
    for value in flat(&means) {
        assert!(value.abs() < 1e-5, "{value}");
    }
}

#[test]
fn same_seed_gives_identical_models_and_another_seed_does_not() {
    let first = course_cnn(42);
    let second = course_cnn(42);
    let third = course_cnn(43);
    let snapshot = |model: &Sequential| -> Vec<(String, Vec<u32>)> {
        model
            .store()
            .snapshot()
            .unwrap()
            .into_iter()
            .map(|(name, tensor)| (name, bits(&flat(&tensor))))
            .collect()
    };
    assert_eq!(snapshot(&first), snapshot(&second));
    let x = images(2, 9);
    assert_eq!(
        bits(&flat(&first.forward(&x, Mode::Eval).unwrap())),
        bits(&flat(&second.forward(&x, Mode::Eval).unwrap()))
    );
    let differs = snapshot(&first)
        .into_iter()
        .zip(snapshot(&third))
        .filter(|((name, _), _)| name.ends_with("weight"))
        .all(|((_, a), (_, b))| a != b);
    assert!(differs, "every weight should change with the seed");
    assert_ne!(
        flat(&first.forward(&x, Mode::Eval).unwrap()),
        flat(&third.forward(&x, Mode::Eval).unwrap())
    );
    // Biases start at zero whatever the seed.
    assert!(flat(third.store().get("dense.bias").unwrap().as_tensor())
        .iter()
        .all(|&b| b == 0.0));
}

#[test]
fn dropout_masks_are_seeded_by_the_store() {
    let build = |seed: u64| {
        let store = VarStore::new(&Device::Cpu, DType::F32, seed);
        Sequential::builder(&store.root(), &[50])
            .dropout(0.5)
            .unwrap()
            .build()
    };
    let x = Tensor::ones((4, 50), DType::F32, &Device::Cpu).unwrap();
    let mask = |model: &Sequential| flat(&model.forward(&x, Mode::Train).unwrap());
    assert_eq!(mask(&build(1)), mask(&build(1)));
    assert_ne!(mask(&build(1)), mask(&build(2)));
}

#[test]
fn random_states_continue_every_dropout_layer_in_order() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 5);
    let model = Sequential::builder(&store.root(), &[6])
        .dropout(0.5)
        .unwrap()
        .dense(6, Activation::Relu)
        .unwrap()
        .dropout(0.3)
        .unwrap()
        .dense(3, Activation::Identity)
        .unwrap()
        .build();
    let input = SeededRng::new(1)
        .uniform_tensor((4, 6), -1.0, 1.0, &Device::Cpu)
        .unwrap();
    let states = model.random_states();
    assert_eq!(states.len(), 2, "one generator per dropout layer");
    let first = flat(&model.forward(&input, Mode::Train).unwrap());
    let second = flat(&model.forward(&input, Mode::Train).unwrap());
    assert_ne!(bits(&first), bits(&second), "a new mask every call");
    model.set_random_states(&states).unwrap();
    assert_eq!(
        bits(&flat(&model.forward(&input, Mode::Train).unwrap())),
        bits(&first),
        "the saved states repeat the masks"
    );
    // Swapping the two layers' states changes the masks: the order matters.
    model.set_random_states(&[states[1], states[0]]).unwrap();
    assert_ne!(
        bits(&flat(&model.forward(&input, Mode::Train).unwrap())),
        bits(&first)
    );
    let error = model.set_random_states(&states[..1]).unwrap_err();
    assert!(error.to_string().contains("expected 2"), "{error}");
}
