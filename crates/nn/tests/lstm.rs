//! Tests of the LSTM layer: gradients against finite differences, outputs against a plain scalar
//! implementation of the equations, `step` against `forward_sequence`, PyTorch's parameter
//! names, dropout between layers, bad inputs, and a small sequence task it must learn.

use dl_autograd::{check_gradients, weighted_sum, GradientCheck, Gradients};
use dl_nn::{
    log_softmax, Dense, Embedding, Layer, Lstm, LstmConfig, LstmState, Mode, NnError, VarStore,
};
use dl_tensor::{candle_core, DType, Device, SeededRng, Tensor, Var};

/// Converts a layer error for closures that must return a Candle result.
fn candle(error: NnError) -> candle_core::Error {
    candle_core::Error::wrap(error)
}

/// A tensor of uniform values in [-1, 1) in the given type.
fn random(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    SeededRng::new(seed)
        .uniform_tensor(shape, -1.0, 1.0, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_abs_difference(first: &Tensor, second: &Tensor) -> f64 {
    assert_eq!(first.dims(), second.dims());
    first
        .to_dtype(DType::F64)
        .unwrap()
        .sub(&second.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn gradient_check(with_initial_state: bool) {
    let (input_size, hidden, batch, seq_len, layers) = (3, 4, 2, 5, 2);
    let store = VarStore::new(&Device::Cpu, DType::F64, 11);
    let lstm = Lstm::new(
        &store.root().sub("lstm"),
        LstmConfig::new(input_size, hidden).num_layers(layers),
    )
    .unwrap();
    let input = Var::from_tensor(&random(&[batch, seq_len, input_size], DType::F64, 1)).unwrap();
    let initial_hidden =
        Var::from_tensor(&random(&[layers, batch, hidden], DType::F64, 2)).unwrap();
    let initial_cell = Var::from_tensor(&random(&[layers, batch, hidden], DType::F64, 3)).unwrap();

    let mut named: Vec<(String, Var)> = store.trainable_variables();
    named.push(("input".to_string(), input.clone()));
    if with_initial_state {
        named.push(("initial.hidden".to_string(), initial_hidden.clone()));
        named.push(("initial.cell".to_string(), initial_cell.clone()));
    }
    let variables: Vec<(&str, &Var)> = named
        .iter()
        .map(|(name, var)| (name.as_str(), var))
        .collect();
    assert_eq!(
        variables.len(),
        4 * layers + 1 + 2 * usize::from(with_initial_state)
    );

    let loss = || {
        let initial = LstmState {
            hidden: initial_hidden.as_tensor().clone(),
            cell: initial_cell.as_tensor().clone(),
        };
        let (outputs, state) = lstm
            .forward_sequence(
                input.as_tensor(),
                with_initial_state.then_some(&initial),
                Mode::Train,
            )
            .map_err(candle)?;
        weighted_sum(&outputs, 21)?
            .add(&weighted_sum(&state.hidden, 22)?)?
            .add(&weighted_sum(&state.cell, 23)?)
    };
    // Every variable must receive a gradient through the fused sigmoid, tanh, narrow and stack.
    let gradients = Gradients::compute(&loss().unwrap(), variables.iter().copied()).unwrap();
    assert!(
        gradients.missing().is_empty(),
        "no gradient for {:?}",
        gradients.missing()
    );

    let options = GradientCheck {
        // ε = 1e-5 rather than 1e-6: with a loss of order one, rounding in the two f64 losses
        // perturbs the central difference by about 1e-16 / ε, which at ε = 1e-6 is already a
        // relative error of several 1e-6 for gradients near 1e-4; the truncation error ε² is
        // still far below the tolerance.
        epsilon: 1e-5,
        max_elements_per_variable: 64,
        ..GradientCheck::default()
    };
    let report = check_gradients(&variables, loss, &options).unwrap();
    println!("{report}");
    assert!(report.worst_relative_error < 1e-6, "{report}");
    let expected: usize = named.iter().map(|(_, var)| var.elem_count().min(64)).sum();
    assert_eq!(report.elements_checked, expected);
}

#[test]
fn gradients_match_finite_differences_from_zero_state() {
    gradient_check(false);
}

#[test]
fn gradients_match_finite_differences_from_given_state() {
    gradient_check(true);
}

/// The weights of one layer as plain rows.
struct ScalarLayer {
    weight_ih: Vec<Vec<f64>>,
    weight_hh: Vec<Vec<f64>>,
    bias_ih: Vec<f64>,
    bias_hh: Vec<f64>,
}

fn sigmoid(value: f64) -> f64 {
    1.0 / (1.0 + (-value).exp())
}

fn dot(row: &[f64], vector: &[f64]) -> f64 {
    row.iter().zip(vector).map(|(a, b)| a * b).sum()
}

/// The LSTM equations written out with loops: returns outputs[b][t][j] of the last layer and
/// the final hidden[l][b][j] and cell[l][b][j].
#[allow(clippy::type_complexity)]
fn scalar_lstm(
    layers: &[ScalarLayer],
    input: &[Vec<Vec<f64>>],
    initial_hidden: &[Vec<Vec<f64>>],
    initial_cell: &[Vec<Vec<f64>>],
) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<Vec<f64>>>, Vec<Vec<Vec<f64>>>) {
    let size = layers[0].weight_hh[0].len();
    let mut sequences: Vec<Vec<Vec<f64>>> = input.to_vec();
    let mut final_hidden = Vec::new();
    let mut final_cell = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let mut layer_hidden = Vec::new();
        let mut layer_cell = Vec::new();
        for sequence in sequences.iter_mut() {
            let batch_index = layer_hidden.len();
            let mut hidden = initial_hidden[index][batch_index].clone();
            let mut cell = initial_cell[index][batch_index].clone();
            for step in sequence.iter_mut() {
                let gate = |row: usize| {
                    dot(&layer.weight_ih[row], step)
                        + layer.bias_ih[row]
                        + dot(&layer.weight_hh[row], &hidden)
                        + layer.bias_hh[row]
                };
                let mut new_hidden = vec![0.0; size];
                let mut new_cell = vec![0.0; size];
                for unit in 0..size {
                    let input_gate = sigmoid(gate(unit));
                    let forget_gate = sigmoid(gate(size + unit));
                    let candidate = gate(2 * size + unit).tanh();
                    let output_gate = sigmoid(gate(3 * size + unit));
                    new_cell[unit] = forget_gate * cell[unit] + input_gate * candidate;
                    new_hidden[unit] = output_gate * new_cell[unit].tanh();
                }
                hidden = new_hidden;
                cell = new_cell;
                *step = hidden.clone();
            }
            layer_hidden.push(hidden);
            layer_cell.push(cell);
        }
        final_hidden.push(layer_hidden);
        final_cell.push(layer_cell);
    }
    (sequences, final_hidden, final_cell)
}

fn assert_close_3d(actual: &Tensor, expected: &[Vec<Vec<f64>>], tolerance: f64, what: &str) {
    let actual = actual.to_vec3::<f64>().unwrap();
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (a, e) in actual.iter().flatten().zip(expected.iter().flatten()) {
        assert_eq!(a.len(), e.len(), "{what}");
        for (x, y) in a.iter().zip(e) {
            assert!((x - y).abs() < tolerance, "{what}: {x} vs {y}");
        }
    }
}

#[test]
fn outputs_match_a_scalar_implementation_of_the_equations() {
    let (input_size, hidden, batch, seq_len, layers) = (3, 5, 3, 7, 2);
    let store = VarStore::new(&Device::Cpu, DType::F64, 5);
    let lstm = Lstm::new(
        &store.root().sub("rnn"),
        LstmConfig::new(input_size, hidden).num_layers(layers),
    )
    .unwrap();
    let get = |name: &str| store.get(&format!("rnn.{name}")).unwrap();
    let scalar_layers: Vec<ScalarLayer> = (0..layers)
        .map(|layer| ScalarLayer {
            weight_ih: get(&format!("weight_ih_l{layer}")).to_vec2().unwrap(),
            weight_hh: get(&format!("weight_hh_l{layer}")).to_vec2().unwrap(),
            bias_ih: get(&format!("bias_ih_l{layer}")).to_vec1().unwrap(),
            bias_hh: get(&format!("bias_hh_l{layer}")).to_vec1().unwrap(),
        })
        .collect();
    // Inputs of a few units make the gates leave their linear region.
    let input = random(&[batch, seq_len, input_size], DType::F64, 7)
        .affine(3.0, 0.0)
        .unwrap();
    let initial = LstmState {
        hidden: random(&[layers, batch, hidden], DType::F64, 8),
        cell: random(&[layers, batch, hidden], DType::F64, 9)
            .affine(2.0, 0.0)
            .unwrap(),
    };
    let input_values = input.to_vec3::<f64>().unwrap();

    // From the given state.
    let (outputs, state) = lstm
        .forward_sequence(&input, Some(&initial), Mode::Eval)
        .unwrap();
    let (expected_outputs, expected_hidden, expected_cell) = scalar_lstm(
        &scalar_layers,
        &input_values,
        &initial.hidden.to_vec3().unwrap(),
        &initial.cell.to_vec3().unwrap(),
    );
    assert_eq!(outputs.dims(), &[batch, seq_len, hidden]);
    assert_close_3d(&outputs, &expected_outputs, 1e-10, "outputs");
    assert_close_3d(&state.hidden, &expected_hidden, 1e-10, "final hidden");
    assert_close_3d(&state.cell, &expected_cell, 1e-10, "final cell");
    // The last output is the last layer's final hidden state.
    assert!(
        max_abs_difference(
            &outputs
                .narrow(1, seq_len - 1, 1)
                .unwrap()
                .squeeze(1)
                .unwrap(),
            &state.last_hidden().unwrap()
        ) == 0.0
    );

    // From the zero state (the default).
    let zeros = vec![vec![vec![0.0; hidden]; batch]; layers];
    let (outputs, state) = lstm.forward_sequence(&input, None, Mode::Eval).unwrap();
    let (expected_outputs, expected_hidden, expected_cell) =
        scalar_lstm(&scalar_layers, &input_values, &zeros, &zeros);
    assert_close_3d(&outputs, &expected_outputs, 1e-10, "outputs from zeros");
    assert_close_3d(&state.hidden, &expected_hidden, 1e-10, "hidden from zeros");
    assert_close_3d(&state.cell, &expected_cell, 1e-10, "cell from zeros");
    // The Layer interface gives the same outputs.
    assert_eq!(lstm.kind(), "LSTM");
    assert_eq!(
        max_abs_difference(&lstm.forward(&input, Mode::Eval).unwrap(), &outputs),
        0.0
    );
}

#[test]
fn step_by_step_matches_the_whole_sequence() {
    for dtype in [DType::F64, DType::F32] {
        let (input_size, hidden, batch, seq_len, layers) = (4, 6, 3, 9, 3);
        let store = VarStore::new(&Device::Cpu, dtype, 2);
        let lstm = Lstm::new(
            &store.root(),
            LstmConfig::new(input_size, hidden)
                .num_layers(layers)
                .dropout(0.5),
        )
        .unwrap();
        let input = random(&[batch, seq_len, input_size], dtype, 4);
        let initial = LstmState {
            hidden: random(&[layers, batch, hidden], dtype, 5),
            cell: random(&[layers, batch, hidden], dtype, 6),
        };
        let (outputs, final_state) = lstm
            .forward_sequence(&input, Some(&initial), Mode::Eval)
            .unwrap();

        let tolerance = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        let mut state = initial.clone();
        for time in 0..seq_len {
            let step_input = input.narrow(1, time, 1).unwrap().squeeze(1).unwrap();
            let (output, next) = lstm.step(&step_input, &state).unwrap();
            assert_eq!(output.dims(), &[batch, hidden]);
            let expected = outputs.narrow(1, time, 1).unwrap().squeeze(1).unwrap();
            assert!(
                max_abs_difference(&output, &expected) < tolerance,
                "step {time}"
            );
            state = next;
        }
        assert!(max_abs_difference(&state.hidden, &final_state.hidden) < tolerance);
        assert!(max_abs_difference(&state.cell, &final_state.cell) < tolerance);

        // Two chunks, the second continuing from the first's final state, give the whole run.
        let (first, middle) = lstm
            .forward_sequence(&input.narrow(1, 0, 4).unwrap(), Some(&initial), Mode::Eval)
            .unwrap();
        let (second, end) = lstm
            .forward_sequence(
                &input.narrow(1, 4, seq_len - 4).unwrap(),
                Some(&middle.detach()),
                Mode::Eval,
            )
            .unwrap();
        let joined = Tensor::cat(&[&first, &second], 1).unwrap();
        assert!(max_abs_difference(&joined, &outputs) < tolerance);
        assert!(max_abs_difference(&end.hidden, &final_state.hidden) < tolerance);
        assert!(max_abs_difference(&end.cell, &final_state.cell) < tolerance);
    }
}

#[test]
fn detached_state_stops_gradients_at_the_chunk_boundary() {
    let store = VarStore::new(&Device::Cpu, DType::F64, 3);
    let lstm = Lstm::new(&store.root(), LstmConfig::new(2, 3)).unwrap();
    let first_input = Var::from_tensor(&random(&[2, 4, 2], DType::F64, 1)).unwrap();
    let second_input = random(&[2, 4, 2], DType::F64, 2);
    let (_, middle) = lstm
        .forward_sequence(first_input.as_tensor(), None, Mode::Train)
        .unwrap();
    for (detach, reaches_first_chunk) in [(false, true), (true, false)] {
        let carried = if detach {
            middle.detach()
        } else {
            middle.clone()
        };
        let (outputs, _) = lstm
            .forward_sequence(&second_input, Some(&carried), Mode::Train)
            .unwrap();
        let loss = weighted_sum(&outputs, 4).unwrap();
        let gradients = Gradients::compute(&loss, [("first", &first_input)]).unwrap();
        assert_eq!(
            gradients.missing().is_empty(),
            reaches_first_chunk,
            "detach {detach}"
        );
    }
}

#[test]
fn parameters_have_pytorch_names_shapes_and_initialisation() {
    let (input_size, hidden) = (7, 5);
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let lstm = Lstm::new(
        &store.root().sub("lstm"),
        LstmConfig::new(input_size, hidden).num_layers(2),
    )
    .unwrap();
    assert_eq!(
        lstm.config(),
        LstmConfig {
            input_size,
            hidden_size: hidden,
            num_layers: 2,
            dropout: 0.0
        }
    );
    let expected: Vec<(&str, Vec<usize>)> = vec![
        ("lstm.weight_ih_l0", vec![4 * hidden, input_size]),
        ("lstm.weight_hh_l0", vec![4 * hidden, hidden]),
        ("lstm.bias_ih_l0", vec![4 * hidden]),
        ("lstm.bias_hh_l0", vec![4 * hidden]),
        ("lstm.weight_ih_l1", vec![4 * hidden, hidden]),
        ("lstm.weight_hh_l1", vec![4 * hidden, hidden]),
        ("lstm.bias_ih_l1", vec![4 * hidden]),
        ("lstm.bias_hh_l1", vec![4 * hidden]),
    ];
    assert_eq!(
        store.names(),
        expected
            .iter()
            .map(|(name, _)| name.to_string())
            .collect::<Vec<_>>()
    );
    let limit = 1.0 / (hidden as f64).sqrt();
    for (name, shape) in &expected {
        let var = store.get(name).unwrap();
        assert_eq!(var.dims(), shape.as_slice(), "{name}");
        assert_eq!(var.dtype(), DType::F32);
        let values: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            values.iter().all(|&v| f64::from(v).abs() <= limit),
            "{name}"
        );
        // Spread over the interval, not a constant.
        let largest = values.iter().fold(0f32, |m, &v| m.max(v.abs()));
        assert!(f64::from(largest) > 0.5 * limit, "{name}");
    }
    // PyTorch's parameter count: 4H(in + H) + 8H for the first layer, 4H(2H) + 8H after.
    let first = 4 * hidden * (input_size + hidden) + 8 * hidden;
    let second = 4 * hidden * (2 * hidden) + 8 * hidden;
    assert_eq!(store.parameter_count(), first + second);

    // The same seed gives the same weights.
    let again = VarStore::new(&Device::Cpu, DType::F32, 0);
    Lstm::new(
        &again.root().sub("lstm"),
        LstmConfig::new(input_size, hidden).num_layers(2),
    )
    .unwrap();
    for (name, _) in &expected {
        let diff = max_abs_difference(
            store.get(name).unwrap().as_tensor(),
            again.get(name).unwrap().as_tensor(),
        );
        assert_eq!(diff, 0.0, "{name}");
    }
}

#[test]
fn dropout_acts_between_layers_in_training_only() {
    let config = LstmConfig::new(3, 8).num_layers(2).dropout(0.5);
    let build = |config: LstmConfig| {
        let store = VarStore::new(&Device::Cpu, DType::F32, 9);
        Lstm::new(&store.root().sub("lstm"), config).unwrap()
    };
    let input = random(&[4, 6, 3], DType::F32, 1);
    let run = |lstm: &Lstm, mode| lstm.forward_sequence(&input, None, mode).unwrap().0;

    let lstm = build(config);
    let eval = run(&lstm, Mode::Eval);
    // Evaluation is deterministic and ignores dropout: it equals the model without dropout
    // (whose weights are the same, as the seed is).
    assert_eq!(max_abs_difference(&eval, &run(&lstm, Mode::Eval)), 0.0);
    let no_dropout = build(config.dropout(0.0));
    assert_eq!(
        max_abs_difference(&eval, &run(&no_dropout, Mode::Eval)),
        0.0
    );
    assert_eq!(
        max_abs_difference(&eval, &run(&no_dropout, Mode::Train)),
        0.0
    );

    // Training drops units, with a new mask each call.
    let train = run(&lstm, Mode::Train);
    assert!(max_abs_difference(&train, &eval) > 1e-3);
    let train_again = run(&lstm, Mode::Train);
    assert!(max_abs_difference(&train, &train_again) > 1e-3);

    // The same seed repeats the same masks.
    let twin = build(config);
    assert_eq!(max_abs_difference(&train, &run(&twin, Mode::Train)), 0.0);
    assert_eq!(
        max_abs_difference(&train_again, &run(&twin, Mode::Train)),
        0.0
    );

    // With a single layer there is nothing between layers to drop.
    let single = build(LstmConfig::new(3, 8).dropout(0.5));
    assert_eq!(
        max_abs_difference(&run(&single, Mode::Train), &run(&single, Mode::Eval)),
        0.0
    );
}

fn expect_shape_error<T: std::fmt::Debug>(result: dl_nn::Result<T>, what: &str) -> String {
    match result {
        Err(error @ NnError::Shape { .. }) => error.to_string(),
        other => panic!("{what}: expected a shape error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_and_configurations_are_errors() {
    let (input_size, hidden, layers) = (3, 4, 2);
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let lstm = Lstm::new(
        &store.root().sub("lstm"),
        LstmConfig::new(input_size, hidden).num_layers(layers),
    )
    .unwrap();
    let device = Device::Cpu;
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &device).unwrap();

    let message = expect_shape_error(
        lstm.forward_sequence(&zeros(&[2, 3]), None, Mode::Eval),
        "rank 2",
    );
    assert!(
        message.contains("lstm") && message.contains("[2, 3]"),
        "{message}"
    );
    expect_shape_error(lstm.forward(&zeros(&[2, 3, 4, 3]), Mode::Eval), "rank 4");
    let message = expect_shape_error(
        lstm.forward_sequence(&zeros(&[2, 5, 4]), None, Mode::Eval),
        "input_size",
    );
    assert!(
        message.contains("(batch, seq_len, 3)") && message.contains("[2, 5, 4]"),
        "{message}"
    );
    expect_shape_error(
        lstm.forward_sequence(&zeros(&[2, 0, 3]), None, Mode::Eval),
        "empty sequence",
    );
    expect_shape_error(
        lstm.forward_sequence(&zeros(&[0, 5, 3]), None, Mode::Eval),
        "empty batch",
    );
    expect_shape_error(
        lstm.forward_sequence(
            &Tensor::zeros((2, 5, 3), DType::F64, &device).unwrap(),
            None,
            Mode::Eval,
        ),
        "dtype",
    );

    let good = LstmState::zeros(layers, 2, hidden, DType::F32, &device).unwrap();
    assert!(lstm
        .forward_sequence(&zeros(&[2, 5, 3]), Some(&good), Mode::Eval)
        .is_ok());
    assert!(lstm.step(&zeros(&[2, 3]), &good).is_ok());
    let bad_states = [
        (
            "wrong batch",
            LstmState::zeros(layers, 3, hidden, DType::F32, &device).unwrap(),
        ),
        (
            "wrong layers",
            LstmState::zeros(1, 2, hidden, DType::F32, &device).unwrap(),
        ),
        (
            "wrong hidden",
            LstmState::zeros(layers, 2, hidden + 1, DType::F32, &device).unwrap(),
        ),
        (
            "wrong dtype",
            LstmState::zeros(layers, 2, hidden, DType::F64, &device).unwrap(),
        ),
        (
            "cell only wrong",
            LstmState {
                hidden: zeros(&[layers, 2, hidden]),
                cell: zeros(&[layers, 2, hidden, 1]),
            },
        ),
        (
            "rank 2",
            LstmState {
                hidden: zeros(&[2, hidden]),
                cell: zeros(&[2, hidden]),
            },
        ),
    ];
    for (what, state) in &bad_states {
        let message = expect_shape_error(
            lstm.forward_sequence(&zeros(&[2, 5, 3]), Some(state), Mode::Eval),
            what,
        );
        assert!(message.contains("state"), "{message}");
        expect_shape_error(lstm.step(&zeros(&[2, 3]), state), what);
    }
    expect_shape_error(lstm.step(&zeros(&[2, 1, 3]), &good), "step rank 3");
    expect_shape_error(lstm.step(&zeros(&[2, 4]), &good), "step input_size");

    for (what, config) in [
        ("input_size 0", LstmConfig::new(0, 4)),
        ("hidden_size 0", LstmConfig::new(3, 0)),
        ("num_layers 0", LstmConfig::new(3, 4).num_layers(0)),
        (
            "dropout 1",
            LstmConfig::new(3, 4).num_layers(2).dropout(1.0),
        ),
        (
            "dropout < 0",
            LstmConfig::new(3, 4).num_layers(2).dropout(-0.1),
        ),
        (
            "dropout NaN",
            LstmConfig::new(3, 4).num_layers(2).dropout(f32::NAN),
        ),
    ] {
        let store = VarStore::new(&device, DType::F32, 0);
        match Lstm::new(&store.root().sub("bad"), config) {
            Err(NnError::Config { what: subject, .. }) => {
                assert!(subject.contains("bad"), "{what}")
            }
            other => panic!("{what}: expected a configuration error, got {other:?}"),
        }
    }
}

/// Random bit sequences, one-hot encoded `(batch, seq_len, 2)`, with the target of each step:
/// the parity of the current and the previous bit (the bit before the first counts as 0), a task
/// that needs both memory and a nonlinear combination.
fn parity_batch(rng: &mut SeededRng, batch: usize, seq_len: usize) -> (Tensor, Tensor) {
    let mut inputs = Vec::with_capacity(batch * seq_len * 2);
    let mut targets = Vec::with_capacity(batch * seq_len);
    for _ in 0..batch {
        let mut previous = 0u32;
        for _ in 0..seq_len {
            let bit = u32::from(rng.uniform() < 0.5);
            inputs.extend_from_slice(if bit == 1 { &[0f32, 1.0] } else { &[1.0, 0.0] });
            targets.push(bit ^ previous);
            previous = bit;
        }
    }
    (
        Tensor::from_vec(inputs, (batch, seq_len, 2), &Device::Cpu).unwrap(),
        Tensor::from_vec(targets, batch * seq_len, &Device::Cpu).unwrap(),
    )
}

#[test]
fn learns_the_parity_of_the_last_two_bits() {
    let (hidden, seq_len) = (12, 10);
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    let lstm = Lstm::new(&store.root().sub("lstm"), LstmConfig::new(2, hidden)).unwrap();
    let head = Dense::new(&store.root().sub("head"), hidden, 2).unwrap();
    let logits = |input: &Tensor| {
        let outputs = lstm.forward(input, Mode::Train).unwrap();
        head.forward(&outputs, Mode::Train)
            .unwrap()
            .reshape(((), 2))
            .unwrap()
    };
    let accuracy = |rng: &mut SeededRng| {
        let (input, targets) = parity_batch(rng, 200, seq_len);
        dl_tensor::accuracy(&logits(&input), &targets).unwrap()
    };

    let mut rng = SeededRng::new(2);
    let before = accuracy(&mut SeededRng::new(100));
    let variables = store.trainable_variables();
    let learning_rate = 1.0;
    for _ in 0..300 {
        let (input, targets) = parity_batch(&mut rng, 32, seq_len);
        let one_hot = dl_tensor::one_hot(&targets, 2).unwrap();
        let log_probabilities = log_softmax(&logits(&input)).unwrap();
        let loss = log_probabilities
            .mul(&one_hot)
            .unwrap()
            .sum_all()
            .unwrap()
            .affine(-1.0 / targets.elem_count() as f64, 0.0)
            .unwrap();
        let gradients =
            Gradients::compute(&loss, variables.iter().map(|(n, v)| (n.as_str(), v))).unwrap();
        assert!(gradients.missing().is_empty());
        for (name, var) in &variables {
            let gradient = gradients.get(name).unwrap();
            var.set(
                &var.as_tensor()
                    .sub(&gradient.affine(learning_rate, 0.0).unwrap())
                    .unwrap(),
            )
            .unwrap();
        }
    }
    let after = accuracy(&mut SeededRng::new(100));
    assert!(before < 0.7, "accuracy before training {before}");
    assert!(
        after >= 0.95,
        "accuracy after training {after} (before {before})"
    );
}

/// Embedding → LSTM built from `seed`: twins built from the same seed have the same weights and
/// draw the same dropout masks.
fn embedded_model(dtype: DType, seed: u64, embedding_dim: usize) -> (VarStore, Embedding, Lstm) {
    let store = VarStore::new(&Device::Cpu, dtype, seed);
    let embedding = Embedding::new(&store.root().sub("embedding"), 11, embedding_dim).unwrap();
    let lstm = Lstm::new(
        &store.root().sub("lstm"),
        LstmConfig::new(6, 9).num_layers(2).dropout(0.3),
    )
    .unwrap();
    (store, embedding, lstm)
}

#[test]
fn forward_embedded_equals_embedding_then_forward_sequence_with_gradients() {
    let mut rng = SeededRng::new(21);
    let ids: Vec<u32> = (0..4 * 7).map(|_| rng.below(11) as u32).collect();
    let ids = Tensor::from_vec(ids, (4, 7), &Device::Cpu).unwrap();
    for (dtype, tolerance) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
        let state = LstmState {
            hidden: random(&[2, 4, 9], dtype, 22),
            cell: random(&[2, 4, 9], dtype, 23),
        };
        let mut results = Vec::new();
        for fused in [true, false] {
            let (store, embedding, lstm) = embedded_model(dtype, 5, 6);
            let (outputs, final_state) = if fused {
                lstm.forward_embedded(&embedding, &ids, Some(&state), Mode::Train)
            } else {
                let embedded = embedding.forward(&ids, Mode::Train).unwrap();
                lstm.forward_sequence(&embedded, Some(&state), Mode::Train)
            }
            .unwrap();
            let loss = weighted_sum(&outputs, 3)
                .unwrap()
                .add(&weighted_sum(&final_state.cell, 4).unwrap())
                .unwrap();
            let variables = store.trainable_variables();
            let gradients =
                Gradients::compute(&loss, variables.iter().map(|(n, v)| (n.as_str(), v))).unwrap();
            let per_variable: Vec<(String, Tensor)> = variables
                .iter()
                .map(|(name, _)| (name.clone(), gradients.get(name).unwrap().clone()))
                .collect();
            results.push((outputs, final_state, per_variable));
        }
        let (fused, plain) = (&results[0], &results[1]);
        assert!(
            max_abs_difference(&fused.0, &plain.0) < tolerance,
            "{dtype:?} outputs"
        );
        assert!(max_abs_difference(&fused.1.hidden, &plain.1.hidden) < tolerance);
        assert!(max_abs_difference(&fused.1.cell, &plain.1.cell) < tolerance);
        assert_eq!(fused.2.len(), 9, "embedding + 2 layers x 4 parameters");
        for ((name, first), (_, second)) in fused.2.iter().zip(&plain.2) {
            let gap = max_abs_difference(first, second);
            assert!(gap < tolerance, "{dtype:?} ∂L/∂{name} differs by {gap}");
        }
    }
}

#[test]
fn forward_embedded_rejects_bad_ids_and_a_mismatched_embedding() {
    let (_store, embedding, lstm) = embedded_model(DType::F32, 5, 6);
    let outside = Tensor::new(&[[0u32, 11]], &Device::Cpu).unwrap();
    let message = expect_shape_error(
        lstm.forward_embedded(&embedding, &outside, None, Mode::Train),
        "id 11 of 11",
    );
    assert!(
        message.contains("token id 11") && message.contains("embedding"),
        "{message}"
    );
    let floats = Tensor::new(&[[0f32, 1.]], &Device::Cpu).unwrap();
    expect_shape_error(
        lstm.forward_embedded(&embedding, &floats, None, Mode::Train),
        "float ids",
    );
    let empty = Tensor::zeros((2, 0), DType::U32, &Device::Cpu).unwrap();
    expect_shape_error(
        lstm.forward_embedded(&embedding, &empty, None, Mode::Train),
        "no steps",
    );
    let (_store, narrow, _) = embedded_model(DType::F32, 5, 5);
    let ids = Tensor::new(&[[0u32, 1]], &Device::Cpu).unwrap();
    let message = expect_shape_error(
        lstm.forward_embedded(&narrow, &ids, None, Mode::Train),
        "embedding of 5 for an input of 6",
    );
    assert!(message.contains("6 values per token"), "{message}");
}
