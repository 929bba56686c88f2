//! Behaviour of the layers: gradient checks of every layer's backward pass (in f64), forward
//! passes against independent nested-loop references, the statistics of batch normalisation
//! and dropout, and shape errors that name the layer instead of panicking.

mod common;

use common::{assert_gradients, batches_tracked, candle, f64_values, normal_f64_var};
use dl_autograd::weighted_sum;
use dl_nn::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dense, Dropout, Embedding,
    Flatten, Layer, MaxPool2d, Mode, Neuron, NnError, VarStore,
};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

fn f64_store(seed: u64) -> VarStore {
    VarStore::new(&Device::Cpu, DType::F64, seed)
}

/// A variable of the given shape with N(0, 1) values in f64.
fn random_var(shape: &[usize], seed: u64) -> Var {
    normal_f64_var(shape, seed, 1.0)
}

/// A variable whose values are all distinct, at least 4/n apart (a shuffled ramp over
/// [−2, 2)): no max-pooling window has a tie, and a perturbation of 1e-6 never changes which
/// element is the maximum.
fn distinct_var(shape: &[usize], seed: u64) -> Var {
    let count: usize = shape.iter().product();
    let values: Vec<f64> = SeededRng::new(seed)
        .permutation(count)
        .into_iter()
        .map(|rank| -2.0 + 4.0 * rank as f64 / count as f64)
        .collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

/// Gives a variable new N(0, 1) values (biases start at zero, scales at one; random values make
/// the checks and the references more discriminating).
fn randomise(variable: &Var, seed: u64) {
    let value = SeededRng::new(seed)
        .normal_tensor(variable.shape(), 0.0, 1.0, &Device::Cpu)
        .unwrap()
        .to_dtype(variable.dtype())
        .unwrap();
    variable.set(&value).unwrap();
}

fn assert_all_close(actual: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "{what}: element {index} is {a}, expected {e}"
        );
    }
}

fn assert_shape_error(result: dl_nn::Result<Tensor>, layer: &str) {
    match result {
        Err(error @ NnError::Shape { .. }) => {
            assert!(
                error.to_string().contains(layer),
                "the message should name '{layer}': {error}"
            );
        }
        other => panic!("expected a shape error naming '{layer}', got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient checks
// ---------------------------------------------------------------------------------------------

#[test]
fn dense_gradients_for_2d_and_3d_inputs() {
    for (input_shape, seed) in [(vec![4, 5], 1u64), (vec![2, 3, 5], 2)] {
        let store = f64_store(seed);
        let dense = Dense::new(&store.root().sub("dense"), 5, 3).unwrap();
        randomise(dense.bias().unwrap(), 10 + seed);
        let x = random_var(&input_shape, 20 + seed);
        let what = format!("dense on {input_shape:?}");
        assert_gradients(
            &what,
            &[
                ("weight", dense.weight()),
                ("bias", dense.bias().unwrap()),
                ("x", &x),
            ],
            || weighted_sum(&candle(dense.forward(x.as_tensor(), Mode::Train))?, 3),
        );
    }
}

#[test]
fn dense_without_bias_gradients() {
    let store = f64_store(4);
    let dense = Dense::with_bias(&store.root().sub("dense"), 3, 2, false).unwrap();
    assert!(dense.bias().is_none());
    let x = random_var(&[4, 3], 5);
    assert_gradients(
        "dense without bias",
        &[("weight", dense.weight()), ("x", &x)],
        || weighted_sum(&candle(dense.forward(x.as_tensor(), Mode::Eval))?, 1),
    );
}

#[test]
fn neuron_gradients() {
    for activation in [Activation::Sigmoid, Activation::Tanh, Activation::Identity] {
        let store = f64_store(3);
        let neuron = Neuron::new(&store.root().sub("neuron"), 4, activation).unwrap();
        randomise(neuron.bias(), 6);
        let x = random_var(&[5, 4], 7);
        assert_gradients(
            &format!("neuron with {activation}"),
            &[
                ("weight", neuron.weights()),
                ("bias", neuron.bias()),
                ("x", &x),
            ],
            || weighted_sum(&candle(neuron.forward(x.as_tensor()))?, 2),
        );
    }
}

/// (in channels, out channels, config, input height, input width).
fn conv_cases() -> Vec<(usize, usize, Conv2dConfig, usize, usize)> {
    vec![
        // kernel 3, stride 1, padding 0 ("valid", the course's CNN).
        (1, 2, Conv2dConfig::new(3), 6, 6),
        // kernel 3, stride 2, padding 1.
        (2, 2, Conv2dConfig::new(3).stride(2).padding(1), 7, 7),
        // odd, non-square sizes: 7x5 input, 2 in-channels, 3 out-channels.
        (2, 3, Conv2dConfig::new(3), 7, 5),
        (2, 3, Conv2dConfig::new(3).stride(2).padding(1), 7, 5),
        // stride 2 where the last row is used but the last column is not (8 rows: windows
        // start at −1, 1, 3, 5 and reach row 7; 7 columns: windows start at −1, 1, 3, 5 and
        // reach column 7, which is padding).
        (1, 2, Conv2dConfig::new(3).stride(2).padding(1), 6, 5),
        (1, 2, Conv2dConfig::new(3).stride(2).padding(1), 8, 7),
        // kernel 2, stride 3: some input rows and columns are never read.
        (2, 1, Conv2dConfig::new(2).stride(3), 8, 7),
    ]
}

#[test]
fn conv2d_gradients_for_several_configurations() {
    for (case, (in_channels, out_channels, config, height, width)) in
        conv_cases().into_iter().enumerate()
    {
        let store = f64_store(case as u64);
        let conv =
            Conv2d::new(&store.root().sub("conv"), in_channels, out_channels, config).unwrap();
        randomise(conv.bias().unwrap(), 40 + case as u64);
        let x = random_var(&[2, in_channels, height, width], 50 + case as u64);
        let what = format!("conv2d {in_channels}→{out_channels} {config:?} on {height}x{width}");
        assert_gradients(
            &what,
            &[
                ("weight", conv.weight()),
                ("bias", conv.bias().unwrap()),
                ("x", &x),
            ],
            || weighted_sum(&candle(conv.forward(x.as_tensor(), Mode::Train))?, 4),
        );
    }
}

#[test]
fn max_pool_gradients() {
    // (kernel, stride, height, width)
    let cases = [(2, 2, 6, 6), (2, 2, 7, 5), (3, 2, 7, 7), (3, 2, 6, 5)];
    for (case, (kernel, stride, height, width)) in cases.into_iter().enumerate() {
        let pool = MaxPool2d::with_stride(kernel, stride).unwrap();
        let x = distinct_var(&[2, 2, height, width], 60 + case as u64);
        let what = format!("max pool kernel {kernel} stride {stride} on {height}x{width}");
        assert_gradients(&what, &[("x", &x)], || {
            weighted_sum(&candle(pool.forward(x.as_tensor(), Mode::Train))?, 5)
        });
    }
}

#[test]
fn flatten_gradients_and_shape() {
    let x = random_var(&[2, 3, 2, 2], 8);
    let output = Flatten.forward(x.as_tensor(), Mode::Eval).unwrap();
    assert_eq!(output.dims(), &[2, 12]);
    assert_eq!(f64_values(&output), f64_values(x.as_tensor()));
    assert_gradients("flatten", &[("x", &x)], || {
        weighted_sum(&candle(Flatten.forward(x.as_tensor(), Mode::Train))?, 6)
    });
}

/// A batch norm layer for the gradient checks: f64, over `input_shape[1]` features, with
/// random weight and bias, and a random input `x` of `input_shape`, all drawn from `seed`.
struct BatchNormCase {
    _store: VarStore,
    norm: BatchNorm,
    weight: Var,
    bias: Var,
    x: Var,
}

impl BatchNormCase {
    /// Builds the case for an input of `input_shape` from `seed`.
    fn new(input_shape: &[usize], seed: u64) -> Self {
        let store = f64_store(seed);
        let norm = BatchNorm::new(
            &store.root().sub("bn"),
            input_shape[1],
            BatchNormConfig::default(),
        )
        .unwrap();
        let weight = store.get("bn.weight").unwrap();
        let bias = store.get("bn.bias").unwrap();
        randomise(&weight, 70 + seed);
        randomise(&bias, 80 + seed);
        let x = random_var(input_shape, 90 + seed);
        Self {
            _store: store,
            norm,
            weight,
            bias,
            x,
        }
    }

    /// Checks the gradients of a weighted sum (drawn from `seed`) of the layer's output on x in
    /// `mode`, with respect to everything that output depends on: the weight, the bias, the
    /// running statistics in eval mode, and x.
    fn assert_gradients(&self, what: &str, mode: Mode, seed: u64) {
        let mut variables = vec![("weight", &self.weight), ("bias", &self.bias)];
        if mode == Mode::Eval {
            variables.push(("running_mean", self.norm.running_mean()));
            variables.push(("running_var", self.norm.running_var()));
        }
        variables.push(("x", &self.x));
        assert_gradients(what, &variables, || {
            weighted_sum(&candle(self.norm.forward(self.x.as_tensor(), mode))?, seed)
        });
    }
}

#[test]
fn batch_norm_gradients_in_train_mode() {
    // In training the output depends only on the batch (its mean and variance), not on the
    // running statistics that each call updates, so the loss is a deterministic function of x,
    // γ and β and finite differences apply.
    for (input_shape, seed) in [(vec![6, 4], 1u64), (vec![3, 2, 3, 3], 2)] {
        BatchNormCase::new(&input_shape, seed).assert_gradients(
            &format!("batch norm (train) on {input_shape:?}"),
            Mode::Train,
            7,
        );
    }
}

#[test]
fn batch_norm_gradients_in_eval_mode() {
    for (input_shape, seed) in [(vec![5, 3], 3u64), (vec![2, 3, 2, 3], 4)] {
        let case = BatchNormCase::new(&input_shape, seed);
        // A few training steps so that the running statistics are not the initial 0 and 1 (they
        // depend on the batches only, not on the weight and bias).
        for step in 0..3 {
            let batch = random_var(&input_shape, 200 + step);
            let shifted = batch.as_tensor().affine(2.0, 0.5).unwrap();
            case.norm.forward(&shifted, Mode::Train).unwrap();
        }
        case.assert_gradients(
            &format!("batch norm (eval) on {input_shape:?}"),
            Mode::Eval,
            8,
        );
    }
}

#[test]
fn embedding_gradients_with_repeated_ids() {
    let store = f64_store(5);
    let embedding = Embedding::new(&store.root().sub("embedding"), 6, 3).unwrap();
    // Id 2 appears three times: its row's gradient is the sum of three output gradients.
    let ids = Tensor::new(&[[2u32, 0, 5], [2, 2, 1]], &Device::Cpu).unwrap();
    assert_gradients("embedding", &[("weight", embedding.weight())], || {
        weighted_sum(&candle(embedding.forward(&ids, Mode::Train))?, 9)
    });
}

#[test]
fn dropout_gradients_with_a_fixed_mask() {
    // A fresh layer from the same seed in every call draws the same mask, so the loss is a
    // deterministic function of x: ∂L/∂x = r·mask/(1 − p).
    let x = random_var(&[4, 6], 10);
    assert_gradients("dropout (train)", &[("x", &x)], || {
        let dropout = candle(Dropout::new(0.4, SeededRng::new(3)))?;
        weighted_sum(&candle(dropout.forward(x.as_tensor(), Mode::Train))?, 10)
    });
}

// ---------------------------------------------------------------------------------------------
// Forward passes against references
// ---------------------------------------------------------------------------------------------

/// y[n, o, i, j] = b[o] + Σ_c Σ_u Σ_v W[o, c, u, v] · x[n, c, i·s + u − p, j·s + v − p], with
/// x = 0 outside the image: the definition, in loops.
fn naive_conv2d(
    x: &[f64],
    (batch, in_channels, height, width): (usize, usize, usize, usize),
    weight: &[f64],
    bias: &[f64],
    out_channels: usize,
    config: Conv2dConfig,
) -> (Vec<f64>, usize, usize) {
    let k = config.kernel_size;
    let (s, p) = (config.stride, config.padding as isize);
    let out_height = (height + 2 * config.padding - k) / s + 1;
    let out_width = (width + 2 * config.padding - k) / s + 1;
    let mut output = vec![0.0; batch * out_channels * out_height * out_width];
    for n in 0..batch {
        for o in 0..out_channels {
            for i in 0..out_height {
                for j in 0..out_width {
                    let mut sum = bias[o];
                    for c in 0..in_channels {
                        for u in 0..k {
                            for v in 0..k {
                                let row = (i * s + u) as isize - p;
                                let column = (j * s + v) as isize - p;
                                if row < 0
                                    || column < 0
                                    || row >= height as isize
                                    || column >= width as isize
                                {
                                    continue;
                                }
                                let (row, column) = (row as usize, column as usize);
                                sum += weight[((o * in_channels + c) * k + u) * k + v]
                                    * x[((n * in_channels + c) * height + row) * width + column];
                            }
                        }
                    }
                    output[((n * out_channels + o) * out_height + i) * out_width + j] = sum;
                }
            }
        }
    }
    (output, out_height, out_width)
}

#[test]
fn conv2d_forward_matches_nested_loops() {
    for (case, (in_channels, out_channels, config, height, width)) in
        conv_cases().into_iter().enumerate()
    {
        let store = f64_store(100 + case as u64);
        let conv =
            Conv2d::new(&store.root().sub("conv"), in_channels, out_channels, config).unwrap();
        randomise(conv.bias().unwrap(), 110 + case as u64);
        let batch = 2;
        let x = random_var(&[batch, in_channels, height, width], 120 + case as u64);
        let output = conv.forward(x.as_tensor(), Mode::Eval).unwrap();
        let (expected, out_height, out_width) = naive_conv2d(
            &f64_values(x.as_tensor()),
            (batch, in_channels, height, width),
            &f64_values(conv.weight().as_tensor()),
            &f64_values(conv.bias().unwrap().as_tensor()),
            out_channels,
            config,
        );
        assert_eq!(
            output.dims(),
            &[batch, out_channels, out_height, out_width],
            "case {case}"
        );
        assert_eq!(config.output_size(height), Some(out_height));
        assert_eq!(config.output_size(width), Some(out_width));
        assert_all_close(
            &f64_values(&output),
            &expected,
            1e-12,
            &format!("conv case {case}"),
        );
    }
}

#[test]
fn conv2d_output_size_formula() {
    // (size + 2·padding − kernel) / stride + 1: (28 − 3)/1 + 1 = 26; (7 + 2 − 3)/2 + 1 = 4;
    // a kernel larger than the padded input does not fit.
    assert_eq!(Conv2dConfig::new(3).output_size(28), Some(26));
    assert_eq!(
        Conv2dConfig::new(3).stride(2).padding(1).output_size(7),
        Some(4)
    );
    assert_eq!(Conv2dConfig::new(5).output_size(4), None);
    assert_eq!(Conv2dConfig::new(5).padding(1).output_size(3), Some(1));
}

/// The maximum of each `kernel x kernel` window whose top-left corner is at multiples of
/// `stride`; windows that would cross the border are dropped (floor of the output size).
fn naive_max_pool(
    x: &[f64],
    (batch, channels, height, width): (usize, usize, usize, usize),
    kernel: usize,
    stride: usize,
) -> (Vec<f64>, usize, usize) {
    let out_height = (height - kernel) / stride + 1;
    let out_width = (width - kernel) / stride + 1;
    let mut output = Vec::new();
    for plane in 0..batch * channels {
        for i in 0..out_height {
            for j in 0..out_width {
                let mut largest = f64::NEG_INFINITY;
                for u in 0..kernel {
                    for v in 0..kernel {
                        let value = x[(plane * height + i * stride + u) * width + j * stride + v];
                        largest = largest.max(value);
                    }
                }
                output.push(largest);
            }
        }
    }
    (output, out_height, out_width)
}

#[test]
fn max_pool_forward_matches_nested_loops() {
    for (case, (kernel, stride, height, width)) in [
        (2, 2, 6, 6),
        (2, 2, 7, 5),
        (3, 2, 7, 7),
        (3, 1, 5, 6),
        (3, 3, 8, 7),
    ]
    .into_iter()
    .enumerate()
    {
        let pool = MaxPool2d::with_stride(kernel, stride).unwrap();
        assert_eq!((pool.kernel_size(), pool.stride()), (kernel, stride));
        let x = random_var(&[2, 3, height, width], 130 + case as u64);
        let output = pool.forward(x.as_tensor(), Mode::Eval).unwrap();
        let (expected, out_height, out_width) = naive_max_pool(
            &f64_values(x.as_tensor()),
            (2, 3, height, width),
            kernel,
            stride,
        );
        assert_eq!(output.dims(), &[2, 3, out_height, out_width], "case {case}");
        assert_all_close(
            &f64_values(&output),
            &expected,
            0.0,
            &format!("pool case {case}"),
        );
    }
    // MaxPool2d::new(k) is stride k.
    let pool = MaxPool2d::new(2).unwrap();
    assert_eq!((pool.kernel_size(), pool.stride()), (2, 2));
    assert!(MaxPool2d::new(0).is_err());
    assert!(MaxPool2d::with_stride(2, 0).is_err());
}

#[test]
fn max_pool_gradient_goes_to_the_window_maximum() {
    // One 2x2 window [[1, 4], [3, 2]]: the maximum 4 receives the whole gradient.
    let x = Var::new(&[[[[1f64, 4.0], [3.0, 2.0]]]], &Device::Cpu).unwrap();
    let output = MaxPool2d::new(2)
        .unwrap()
        .forward(x.as_tensor(), Mode::Train)
        .unwrap();
    assert_eq!(f64_values(&output), vec![4.0]);
    let gradients = output.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        f64_values(gradients.get(x.as_tensor()).unwrap()),
        vec![0.0, 1.0, 0.0, 0.0]
    );
}

/// Per-channel values of an (N, C) or (N, C, H, W) tensor given as a flat vector.
fn channel_values(values: &[f64], dims: &[usize], channel: usize) -> Vec<f64> {
    let channels = dims[1];
    let plane: usize = dims[2..].iter().product();
    let mut picked = Vec::new();
    for n in 0..dims[0] {
        let start = (n * channels + channel) * plane;
        picked.extend_from_slice(&values[start..start + plane]);
    }
    picked
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Σ (x − mean)² / (count − divisor_offset): biased with 0, unbiased with 1.
fn variance(values: &[f64], divisor_offset: f64) -> f64 {
    let centre = mean(values);
    values
        .iter()
        .map(|value| (value - centre).powi(2))
        .sum::<f64>()
        / (values.len() as f64 - divisor_offset)
}

#[test]
fn batch_norm_train_normalises_and_updates_running_statistics() {
    for dims in [vec![8, 3], vec![4, 2, 3, 3]] {
        let store = f64_store(11);
        let channels = dims[1];
        let norm = BatchNorm::new(
            &store.root().sub("bn"),
            channels,
            BatchNormConfig::default(),
        )
        .unwrap();
        let mut expected_mean = vec![0.0; channels];
        let mut expected_var = vec![1.0; channels];
        for step in 0..2u64 {
            // Channel c has mean about c and standard deviation about 3.
            let x = random_var(&dims, 300 + step)
                .as_tensor()
                .affine(3.0, 0.0)
                .unwrap();
            let offsets: Vec<f64> = (0..channels).map(|c| c as f64).collect();
            let mut shape = vec![1, channels];
            shape.extend(std::iter::repeat_n(1, dims.len() - 2));
            let x = x
                .broadcast_add(&Tensor::from_vec(offsets, shape, &Device::Cpu).unwrap())
                .unwrap();
            let input = f64_values(&x);
            let output = f64_values(&norm.forward(&x, Mode::Train).unwrap());
            for channel in 0..channels {
                let values = channel_values(&input, &dims, channel);
                let normalised = channel_values(&output, &dims, channel);
                // γ = 1, β = 0: mean 0 and (biased) variance σ²/(σ² + ε) ≈ 1 − ε/σ².
                let batch_variance = variance(&values, 0.0);
                assert!(
                    mean(&normalised).abs() < 1e-12,
                    "{dims:?} channel {channel}"
                );
                let expected_output_variance = batch_variance / (batch_variance + 1e-5);
                assert!(
                    (variance(&normalised, 0.0) - expected_output_variance).abs() < 1e-12,
                    "{dims:?} channel {channel}"
                );
                assert!((variance(&normalised, 0.0) - 1.0).abs() < 1e-3);
                // r ← (1 − 0.1)·r + 0.1·batch, with the unbiased variance (divide by n − 1).
                expected_mean[channel] = 0.9 * expected_mean[channel] + 0.1 * mean(&values);
                expected_var[channel] = 0.9 * expected_var[channel] + 0.1 * variance(&values, 1.0);
            }
            assert_all_close(
                &f64_values(norm.running_mean().as_tensor()),
                &expected_mean,
                1e-12,
                "running mean",
            );
            assert_all_close(
                &f64_values(norm.running_var().as_tensor()),
                &expected_var,
                1e-12,
                "running variance",
            );
            assert_eq!(batches_tracked(&store, "bn"), step as i64 + 1);
        }
    }
}

#[test]
fn batch_norm_eval_uses_running_statistics() {
    let store = f64_store(12);
    let norm = BatchNorm::new(&store.root().sub("bn"), 2, BatchNormConfig::default()).unwrap();
    let running_mean = Tensor::new(&[0.5f64, -1.0], &Device::Cpu).unwrap();
    let running_var = Tensor::new(&[4.0f64, 0.25], &Device::Cpu).unwrap();
    norm.running_mean().set(&running_mean).unwrap();
    norm.running_var().set(&running_var).unwrap();
    let gamma = [2.0, -0.5];
    let beta = [0.1, 0.2];
    store
        .get("bn.weight")
        .unwrap()
        .set(&Tensor::new(&gamma, &Device::Cpu).unwrap())
        .unwrap();
    store
        .get("bn.bias")
        .unwrap()
        .set(&Tensor::new(&beta, &Device::Cpu).unwrap())
        .unwrap();
    let x = Tensor::new(&[[1.5f64, 0.0], [-0.5, -2.0], [2.0, 1.0]], &Device::Cpu).unwrap();
    let output = f64_values(&norm.forward(&x, Mode::Eval).unwrap());
    // y = γ (x − r_mean) / sqrt(r_var + ε) + β, channel by channel.
    let input = f64_values(&x);
    let means = [0.5, -1.0];
    let variances = [4.0, 0.25];
    let expected: Vec<f64> = input
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let c = index % 2;
            gamma[c] * (value - means[c]) / (variances[c] + 1e-5f64).sqrt() + beta[c]
        })
        .collect();
    assert_all_close(&output, &expected, 1e-12, "eval output");
    // Evaluation leaves the running statistics alone and does not depend on the batch: one row
    // alone gives the same result as within the batch.
    assert_eq!(f64_values(norm.running_mean().as_tensor()), vec![0.5, -1.0]);
    let single = f64_values(
        &norm
            .forward(&x.narrow(0, 1, 1).unwrap(), Mode::Eval)
            .unwrap(),
    );
    assert_all_close(&single, &expected[2..4], 1e-15, "single row");
    let tracked = store.get("bn.num_batches_tracked").unwrap();
    assert_eq!(tracked.as_tensor().to_scalar::<i64>().unwrap(), 0);
}

#[test]
fn batch_norm_rejects_bad_configurations_and_tiny_batches() {
    let store = f64_store(13);
    let root = store.root();
    let bad = |epsilon, momentum| BatchNormConfig { epsilon, momentum };
    assert!(BatchNorm::new(&root.sub("a"), 0, BatchNormConfig::default()).is_err());
    assert!(BatchNorm::new(&root.sub("b"), 2, bad(0.0, 0.1)).is_err());
    assert!(BatchNorm::new(&root.sub("c"), 2, bad(1e-5, 1.5)).is_err());
    let norm = BatchNorm::new(&root.sub("bn"), 2, BatchNormConfig::default()).unwrap();
    // One value per channel cannot give a variance.
    let single = Tensor::new(&[[1f64, 2.0]], &Device::Cpu).unwrap();
    assert_shape_error(norm.forward(&single, Mode::Train), "bn");
    // A single example is fine in evaluation.
    assert!(norm.forward(&single, Mode::Eval).is_ok());
}

#[test]
fn dropout_eval_is_the_identity() {
    let dropout = Dropout::new(0.5, SeededRng::new(1)).unwrap();
    let x = random_var(&[10, 10], 14);
    let output = dropout.forward(x.as_tensor(), Mode::Eval).unwrap();
    assert_eq!(f64_values(&output), f64_values(x.as_tensor()));
    // Rate 0 drops nothing even in training.
    let keep_all = Dropout::new(0.0, SeededRng::new(1)).unwrap();
    let output = keep_all.forward(x.as_tensor(), Mode::Train).unwrap();
    assert_eq!(f64_values(&output), f64_values(x.as_tensor()));
}

#[test]
fn dropout_train_drops_about_rate_and_scales_survivors() {
    let rate = 0.3f32;
    let dropout = Dropout::new(rate, SeededRng::new(2)).unwrap();
    assert_eq!(dropout.rate(), rate);
    let ones = Tensor::ones((100, 100), DType::F64, &Device::Cpu).unwrap();
    let output = f64_values(&dropout.forward(&ones, Mode::Train).unwrap());
    let dropped = output.iter().filter(|&&value| value == 0.0).count();
    // 10,000 Bernoulli(0.3) draws: standard deviation sqrt(0.3·0.7/10⁴) ≈ 0.0046, so ±0.02 is
    // more than four standard deviations.
    let fraction = dropped as f64 / output.len() as f64;
    assert!((fraction - 0.3).abs() < 0.02, "dropped fraction {fraction}");
    // Survivors are scaled by 1/(1 − p) = 1/0.7, so the expected value stays 1.
    let scale = 1.0 / (1.0 - f64::from(rate));
    for value in &output {
        assert!(
            *value == 0.0 || (value - scale).abs() < 1e-6,
            "unexpected value {value}"
        );
    }
    let average = mean(&output);
    assert!((average - 1.0).abs() < 0.03, "mean {average}");
}

#[test]
fn dropout_masks_follow_the_seed() {
    let x = Tensor::ones((20, 20), DType::F32, &Device::Cpu).unwrap();
    let mask = |seed: u64| {
        f64_values(
            &Dropout::new(0.5, SeededRng::new(seed))
                .unwrap()
                .forward(&x, Mode::Train)
                .unwrap(),
        )
    };
    assert_eq!(mask(7), mask(7));
    assert_ne!(mask(7), mask(8));
    // Successive calls draw fresh masks; restoring the generator state repeats them.
    let dropout = Dropout::new(0.5, SeededRng::new(9)).unwrap();
    let state = dropout.rng_state();
    let first = f64_values(&dropout.forward(&x, Mode::Train).unwrap());
    let second = f64_values(&dropout.forward(&x, Mode::Train).unwrap());
    assert_ne!(first, second);
    dropout.set_rng_state(state);
    assert_eq!(
        f64_values(&dropout.forward(&x, Mode::Train).unwrap()),
        first
    );
}

#[test]
fn dropout_rejects_rates_outside_zero_to_one() {
    for rate in [1.0f32, -0.1, 1.5, f32::NAN] {
        let error = Dropout::new(rate, SeededRng::new(0)).unwrap_err();
        assert!(matches!(error, NnError::Config { .. }), "{rate}: {error:?}");
    }
}

#[test]
fn embedding_rows_are_weight_rows() {
    let store = f64_store(15);
    let embedding = Embedding::new(&store.root().sub("embedding"), 5, 3).unwrap();
    assert_eq!(
        (embedding.vocabulary_size(), embedding.embedding_dim()),
        (5, 3)
    );
    let table = f64_values(embedding.weight().as_tensor());
    for dtype in [DType::U32, DType::I64, DType::U8] {
        let ids = Tensor::new(&[[4u32, 0], [2, 4]], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let output = embedding.forward(&ids, Mode::Eval).unwrap();
        assert_eq!(output.dims(), &[2, 2, 3]);
        let values = f64_values(&output);
        for (position, id) in [4usize, 0, 2, 4].into_iter().enumerate() {
            assert_eq!(
                &values[position * 3..position * 3 + 3],
                &table[id * 3..id * 3 + 3],
                "{dtype:?} position {position}"
            );
        }
    }
}

#[test]
fn embedding_rejects_out_of_range_and_float_ids() {
    let store = f64_store(16);
    let embedding = Embedding::new(&store.root().sub("tokens"), 5, 3).unwrap();
    let out_of_range = Tensor::new(&[1u32, 5], &Device::Cpu).unwrap();
    let result = embedding.forward(&out_of_range, Mode::Eval);
    assert_shape_error(result, "tokens");
    let message = embedding
        .forward(&out_of_range, Mode::Eval)
        .unwrap_err()
        .to_string();
    assert!(message.contains('5'), "{message}");
    // A negative i64 id is out of range too, not a wrapped-around lookup.
    let negative = Tensor::new(&[-1i64, 0], &Device::Cpu).unwrap();
    assert_shape_error(embedding.forward(&negative, Mode::Eval), "tokens");
    let floats = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
    assert_shape_error(embedding.forward(&floats, Mode::Eval), "tokens");
    assert!(Embedding::new(&store.root().sub("empty"), 0, 3).is_err());
}

// ---------------------------------------------------------------------------------------------
// Shape errors
// ---------------------------------------------------------------------------------------------

#[test]
fn shape_errors_name_the_layer() {
    let store = f64_store(17);
    let root = store.root();
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F64, &Device::Cpu).unwrap();

    let dense = Dense::new(&root.sub("hidden"), 4, 2).unwrap();
    assert_shape_error(dense.forward(&zeros(&[3, 5]), Mode::Eval), "hidden");
    assert_shape_error(dense.forward(&zeros(&[]), Mode::Eval), "hidden");

    let neuron = Neuron::new(&root.sub("unit"), 3, Activation::Sigmoid).unwrap();
    assert!(matches!(
        neuron.forward(&zeros(&[2, 4])),
        Err(NnError::Shape { ref layer, .. }) if layer == "unit"
    ));
    assert!(neuron.forward(&zeros(&[3])).is_err());

    let conv = Conv2d::new(&root.sub("features"), 2, 4, Conv2dConfig::new(3)).unwrap();
    // Wrong number of channels, wrong rank, and an image smaller than the kernel.
    assert_shape_error(conv.forward(&zeros(&[1, 3, 5, 5]), Mode::Eval), "features");
    assert_shape_error(conv.forward(&zeros(&[2, 5, 5]), Mode::Eval), "features");
    assert_shape_error(conv.forward(&zeros(&[1, 2, 2, 5]), Mode::Eval), "features");

    let pool = MaxPool2d::new(2).unwrap();
    assert_shape_error(
        pool.forward(&zeros(&[2, 4, 4]), Mode::Eval),
        "max_pooling2d",
    );
    assert_shape_error(
        pool.forward(&zeros(&[1, 1, 1, 4]), Mode::Eval),
        "max_pooling2d",
    );

    assert_shape_error(Flatten.forward(&zeros(&[6]), Mode::Eval), "flatten");

    let norm = BatchNorm::new(&root.sub("norm"), 3, BatchNormConfig::default()).unwrap();
    assert_shape_error(norm.forward(&zeros(&[4, 2]), Mode::Train), "norm");
    assert_shape_error(norm.forward(&zeros(&[4, 3, 2]), Mode::Eval), "norm");
    assert_shape_error(norm.forward(&zeros(&[4, 2, 2, 2]), Mode::Eval), "norm");
}

#[test]
fn bad_layer_configurations_are_errors() {
    let store = f64_store(18);
    let root = store.root();
    assert!(matches!(
        Dense::new(&root.sub("a"), 0, 2),
        Err(NnError::Config { .. })
    ));
    assert!(Dense::new(&root.sub("b"), 2, 0).is_err());
    assert!(Neuron::new(&root.sub("c"), 0, Activation::Relu).is_err());
    assert!(Conv2d::new(&root.sub("d"), 0, 2, Conv2dConfig::new(3)).is_err());
    assert!(Conv2d::new(&root.sub("e"), 1, 2, Conv2dConfig::new(0)).is_err());
    assert!(Conv2d::new(&root.sub("f"), 1, 2, Conv2dConfig::new(3).stride(0)).is_err());
    // Registering the same name twice is refused.
    Dense::new(&root.sub("twice"), 2, 2).unwrap();
    assert!(matches!(
        Dense::new(&root.sub("twice"), 2, 2),
        Err(NnError::DuplicateParameter(ref name)) if name == "twice.weight"
    ));
}
