//! The plain-Rust inference path against the tensor layers it copies: `LstmInference` must give
//! the hidden states of `Lstm::step`, and `DenseInference` the outputs of `Dense`, to 1e-5.

use dl_nn::{Dense, DenseInference, Layer, Lstm, LstmConfig, LstmInference, Mode, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() < 1e-5,
            "{what}, element {index}: {a} vs {e} (|difference| must be < 1e-5)"
        );
    }
}

/// Sizes that are not multiples of the 16 lanes of the dot product, so its tail is exercised.
fn lstm_matches_step_by_step(dtype: DType) {
    let (input_size, hidden, layers) = (19, 37, 2);
    let store = VarStore::new(&Device::Cpu, dtype, 5);
    let lstm = Lstm::new(
        &store.root().sub("lstm"),
        LstmConfig::new(input_size, hidden).num_layers(layers),
    )
    .unwrap();
    let mut fast = LstmInference::new(&lstm).unwrap();
    assert_eq!(
        (fast.input_size(), fast.hidden_size()),
        (input_size, hidden)
    );
    let mut rng = SeededRng::new(9);
    let inputs: Vec<Vec<f32>> = (0..25)
        .map(|_| {
            (0..input_size)
                .map(|_| rng.uniform_range(-2.0, 2.0))
                .collect()
        })
        .collect();
    let mut state = lstm.zero_state(1).unwrap();
    for (step, input) in inputs.iter().enumerate() {
        let tensor = Tensor::new(input.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let (expected, next) = lstm.step(&tensor, &state).unwrap();
        state = next;
        let expected: Vec<f32> = expected
            .squeeze(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let actual = fast.step(input).unwrap().to_vec();
        assert_close(&actual, &expected, &format!("hidden state at step {step}"));
        // `cell` is (layers, batch = 1, hidden): compare every layer's cell state.
        let cells = state
            .cell
            .to_dtype(DType::F32)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (layer, cell) in cells.iter().enumerate() {
            assert_close(
                &fast.cell()[layer],
                cell,
                &format!("cell {layer} at step {step}"),
            );
        }
    }
    fast.reset();
    assert!(fast.hidden().iter().flatten().all(|&value| value == 0.0));
    assert!(fast.cell().iter().flatten().all(|&value| value == 0.0));
}

#[test]
fn lstm_inference_matches_lstm_step_in_f32() {
    lstm_matches_step_by_step(DType::F32);
}

#[test]
fn lstm_inference_copies_f64_weights() {
    lstm_matches_step_by_step(DType::F64);
}

#[test]
fn dense_inference_matches_dense() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 3);
    let dense = Dense::new(&store.root().sub("head"), 41, 13).unwrap();
    // A non-zero bias, so that adding it is checked too.
    let bias = dense.bias().unwrap();
    bias.set(
        &SeededRng::new(4)
            .uniform_tensor(13, -1.0, 1.0, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let fast = DenseInference::new(&dense).unwrap();
    assert_eq!(fast.out_features(), 13);
    let input: Vec<f32> = (0..41).map(|index| (index as f32 * 0.37).sin()).collect();
    let expected: Vec<f32> = dense
        .forward(
            &Tensor::from_slice(&input, (1, 41), &Device::Cpu).unwrap(),
            Mode::Eval,
        )
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut output = vec![0f32; 13];
    fast.forward(&input, &mut output).unwrap();
    assert_close(&output, &expected, "dense output");
}

#[test]
fn wrong_lengths_are_errors_naming_the_sizes() {
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    let lstm = Lstm::new(&store.root().sub("lstm"), LstmConfig::new(3, 4)).unwrap();
    let mut fast = LstmInference::new(&lstm).unwrap();
    let message = fast.step(&[1.0, 2.0]).unwrap_err().to_string();
    assert!(
        message.contains("expected an input of 3 values, got 2"),
        "{message}"
    );
    let dense = Dense::new(&store.root().sub("head"), 4, 2).unwrap();
    let fast = DenseInference::new(&dense).unwrap();
    let message = fast
        .forward(&[0.0; 4], &mut [0.0; 3])
        .unwrap_err()
        .to_string();
    assert!(message.contains("room for 2 outputs"), "{message}");
}
