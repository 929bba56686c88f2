//! The fast CPU kernels of `dl_tensor::kernels` against independent references: Candle's own
//! operations (computed in f64, the kernels in f32 and f64) for the forward pass and every
//! gradient, on random shapes with odd sizes, padding and stride; finite differences
//! (`check_gradients` in f64) on the kernels themselves; and the layers that use them. (The
//! Adam kernel is checked in `crates/optim/tests/fused_adam.rs`.)
//!
//! Nothing here switches the kernels off (tests run in parallel threads and the switch is
//! global): each reference is computed from Candle operations directly.

mod common;

use common::{
    assert_close, assert_finite_differences, assert_finite_differences_with,
    assert_gradients_close, cast_var, flat, gradients_of, Result,
};
use dl_autograd::{weighted_sum, GradientCheck};
use dl_nn::{cross_entropy, log_softmax, Activation, Conv2d, Conv2dConfig, Layer, Mode, VarStore};
use dl_tensor::kernels::{
    conv2d::{conv2d, conv2d_relu},
    cross_entropy as ce,
    lstm_cell::lstm_cell,
    max_pool2d::max_pool2d,
};
use dl_tensor::{candle_core, DType, Device, SeededRng, Tensor, Var};

/// N(0, 1) values of `shape` in `dtype`.
fn normal(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    Ok(SeededRng::new(seed)
        .normal_tensor(shape, 0.0, 1.0, &Device::Cpu)?
        .to_dtype(dtype)?)
}

/// A variable of N(0, 1) values of `shape` in f64.
fn normal_var(shape: &[usize], seed: u64) -> Result<Var> {
    Ok(Var::from_tensor(&normal(shape, seed, DType::F64)?)?)
}

/// Checks `kernel` against a reference computed in f64: `expected` is the reference's output
/// on the f64 `variables` (named by `names`). For each (dtype, tolerance) the variables are
/// cast to the dtype and given to `kernel`, whose output and gradients (of the weighted sum
/// drawn from `seed`) must match the reference's.
fn assert_kernel_matches_reference<const N: usize, F>(
    what: &str,
    names: &[&str; N],
    variables: [&Var; N],
    expected: &Tensor,
    seed: u64,
    tolerances: [(DType, f64); 2],
    kernel: F,
) -> Result
where
    F: Fn([&Tensor; N]) -> candle_core::Result<Tensor>,
{
    let expected_gradients = gradients_of(expected, &variables, seed)?;
    for (dtype, tolerance) in tolerances {
        let what = format!("{what} {dtype:?}");
        let cast = variables
            .iter()
            .map(|variable| cast_var(variable, dtype))
            .collect::<Result<Vec<Var>>>()?;
        let cast: Vec<&Var> = cast.iter().collect();
        let output = kernel(std::array::from_fn(|index| cast[index].as_tensor()))?;
        assert_close(&output, expected, tolerance, &format!("{what} output"))?;
        assert_gradients_close(
            &what,
            names,
            &gradients_of(&output, &cast, seed)?,
            &expected_gradients,
            tolerance,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// conv2d
// ---------------------------------------------------------------------------------------------

/// (batch, C_in, C_out, H, W, kh, kw, stride, padding).
type ConvCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// The convolutions checked. Candle's own conv2d backward needs
/// (H + 2p − kh) mod s = (W + 2p − kw) mod s (see `dl-nn`'s conv.rs), which every case keeps.
const CONV_CASES: [ConvCase; 9] = [
    (2, 1, 32, 28, 28, 3, 3, 1, 0), // the course's first layer
    (3, 3, 5, 9, 13, 3, 3, 2, 1),   // odd, non-square, stride 2, padding 1
    (2, 2, 3, 7, 5, 3, 3, 1, 0),
    (1, 4, 6, 11, 11, 5, 5, 2, 2), // LeNet-like 5x5 with stride and padding
    (2, 3, 2, 10, 10, 3, 3, 2, 0), // stride leaves the last row and column unread
    (2, 2, 3, 8, 11, 2, 2, 3, 0),  // stride 3 > kernel 2: gaps between windows
    (3, 5, 4, 6, 6, 1, 1, 1, 0),   // 1x1 kernel (no im2col)
    (2, 3, 4, 5, 9, 3, 5, 1, 2),   // rectangular kernel, padding 2
    (1, 2, 3, 4, 4, 3, 3, 1, 3),   // padding larger than the kernel's reach
];

/// A convolution kernel: (input, weight, bias, stride, padding) → output.
type ConvKernel =
    fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> candle_core::Result<Tensor>;

/// Checks `kernel` on every case of [`CONV_CASES`] (seeds from `first_seed`, 10 apart) against
/// Candle's conv2d plus the bias in f64, followed by ReLU when `relu`: the output and the
/// gradients of input, weight and bias, in f32 and f64.
fn assert_conv_kernel_matches_candle(
    label: &str,
    kernel: ConvKernel,
    relu: bool,
    first_seed: u64,
) -> Result {
    for (case, &(batch, in_channels, out_channels, height, width, kh, kw, stride, padding)) in
        CONV_CASES.iter().enumerate()
    {
        let seed = first_seed + 10 * case as u64;
        let what = format!(
            "{label} case {case}: {batch}x{in_channels}x{height}x{width}, {out_channels} kernels {kh}x{kw}, stride {stride}, padding {padding}"
        );
        let input = normal_var(&[batch, in_channels, height, width], seed)?;
        let weight = normal_var(&[out_channels, in_channels, kh, kw], seed + 1)?;
        let bias = normal_var(&[out_channels], seed + 2)?;
        let mut expected = input
            .as_tensor()
            .conv2d(weight.as_tensor(), padding, stride, 1, 1)?
            .broadcast_add(&bias.as_tensor().reshape((1, (), 1, 1))?)?;
        if relu {
            expected = expected.relu()?;
        }
        assert_kernel_matches_reference(
            &what,
            &["input", "weight", "bias"],
            [&input, &weight, &bias],
            &expected,
            seed + 3,
            [(DType::F32, 2e-5), (DType::F64, 1e-12)],
            |[x, w, b]| kernel(x, w, Some(b), stride, padding),
        )?;
    }
    Ok(())
}

#[test]
fn conv2d_matches_candle_forward_and_all_gradients() -> Result {
    assert_conv_kernel_matches_candle("conv2d", conv2d, false, 0)
}

#[test]
fn conv2d_gradients_match_finite_differences() -> Result {
    for (case, &(batch, in_channels, out_channels, height, width, kh, kw, stride, padding)) in
        CONV_CASES.iter().enumerate().skip(1)
    {
        let seed = 100 + 10 * case as u64;
        let x = normal_var(&[batch, in_channels, height, width], seed)?;
        // Weights of about 1/√fan-in, as initialisation gives: the loss stays small, and so
        // does the rounding error of its finite differences.
        let w = Var::from_tensor(
            &normal(&[out_channels, in_channels, kh, kw], seed + 1, DType::F64)?
                .affine(1.0 / ((in_channels * kh * kw) as f64).sqrt(), 0.0)?,
        )?;
        let b = normal_var(&[out_channels], seed + 2)?;
        assert_finite_differences_with(
            &format!("conv2d case {case}"),
            &[("input", &x), ("weight", &w), ("bias", &b)],
            || {
                let output = conv2d(
                    x.as_tensor(),
                    w.as_tensor(),
                    Some(b.as_tensor()),
                    stride,
                    padding,
                )?;
                weighted_sum(&output, seed + 3)
            },
            // The loss is linear in each single element, so the central difference has no
            // truncation error and a larger step only shrinks its rounding error.
            &GradientCheck {
                epsilon: 1e-4,
                ..GradientCheck::default()
            },
        )?;
    }
    Ok(())
}

#[test]
fn conv2d_without_bias_and_with_data_input_gives_only_the_weight_gradient() -> Result {
    // The input is data (no variable): only the kernels get a gradient, and it equals Candle's.
    let input = normal(&[4, 2, 9, 9], 7, DType::F32)?;
    let weight = Var::from_tensor(&normal(&[3, 2, 3, 3], 8, DType::F32)?)?;
    let output = conv2d(&input, weight.as_tensor(), None, 2, 1)?;
    let expected = input.conv2d(weight.as_tensor(), 1, 2, 1, 1)?;
    assert_close(&output, &expected, 2e-5, "output without bias")?;
    let gradient = gradients_of(&output, &[&weight], 9)?;
    let expected_gradient = gradients_of(&expected, &[&weight], 9)?;
    assert_close(&gradient[0], &expected_gradient[0], 2e-5, "∂L/∂W")?;
    Ok(())
}

#[test]
fn conv2d_reads_strided_views_and_rejects_bad_shapes() -> Result {
    // A transposed (non-contiguous) input gives the same result as its contiguous copy.
    let input = normal(&[2, 3, 7, 6], 11, DType::F32)?.transpose(2, 3)?;
    let weight = normal(&[4, 3, 3, 3], 12, DType::F32)?;
    let strided = conv2d(&input, &weight, None, 1, 1)?;
    let contiguous = conv2d(&input.contiguous()?, &weight, None, 1, 1)?;
    assert_close(&strided, &contiguous, 0.0, "strided input")?;
    // Channel mismatch, a kernel that does not fit, a bias of the wrong size.
    assert!(conv2d(&input, &normal(&[4, 2, 3, 3], 1, DType::F32)?, None, 1, 0).is_err());
    assert!(conv2d(&input, &normal(&[4, 3, 9, 9], 1, DType::F32)?, None, 1, 0).is_err());
    let bias = normal(&[5], 1, DType::F32)?;
    assert!(conv2d(&input, &weight, Some(&bias), 1, 0).is_err());
    Ok(())
}

#[test]
fn the_conv2d_layer_matches_candle_in_f32() -> Result {
    // The layer (kernel path) against Candle's conv2d on the same weights: the course's first
    // layer at batch 3.
    let store = VarStore::new(&Device::Cpu, DType::F32, 3);
    let layer = Conv2d::new(&store.root().sub("conv"), 1, 32, Conv2dConfig::new(3))?;
    let input = normal(&[3, 1, 28, 28], 4, DType::F32)?;
    let output = layer.forward(&input, Mode::Train)?;
    let expected = input.to_dtype(DType::F64)?.conv2d(
        &layer.weight().as_tensor().to_dtype(DType::F64)?,
        0,
        1,
        1,
        1,
    )?;
    assert_close(&output, &expected, 2e-5, "Conv2d layer")?;
    Ok(())
}

#[test]
fn conv2d_relu_matches_candle_conv_then_relu() -> Result {
    assert_conv_kernel_matches_candle("conv2d+relu", conv2d_relu, true, 400)
}

#[test]
fn conv2d_relu_gradients_match_finite_differences() -> Result {
    let x = normal_var(&[2, 2, 7, 6], 500)?;
    let w = Var::from_tensor(&normal(&[3, 2, 3, 3], 501, DType::F64)?.affine(0.3, 0.0)?)?;
    let b = normal_var(&[3], 502)?;
    assert_finite_differences(
        "conv2d+relu",
        &[("input", &x), ("weight", &w), ("bias", &b)],
        || {
            weighted_sum(
                &conv2d_relu(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), 2, 1)?,
                503,
            )
        },
    )
}

#[test]
fn a_sequential_conv_relu_stage_equals_the_layer_then_the_activation() -> Result {
    // Sequential runs Conv2d + ReLU as one fused kernel; Candle's conv2d, bias and ReLU on the
    // same variables are the reference.
    let store = VarStore::new(&Device::Cpu, DType::F32, 9);
    let model = dl_nn::Sequential::builder(&store.root(), &[2, 9, 8])
        .conv2d_with(4, Conv2dConfig::new(3).padding(1), Activation::Relu)?
        .build();
    let weight = store.get("conv2d.weight").expect("the layer's kernels");
    let bias = store.get("conv2d.bias").expect("the layer's bias");
    bias.set(&normal(&[4], 11, DType::F32)?)?;
    let input = normal(&[3, 2, 9, 8], 10, DType::F32)?;
    let expected = input
        .conv2d(weight.as_tensor(), 1, 1, 1, 1)?
        .broadcast_add(&bias.as_tensor().reshape((1, 4, 1, 1))?)?
        .relu()?;
    assert_close(
        &model.forward(&input, Mode::Train)?,
        &expected,
        1e-6,
        "Sequential conv+relu",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// max_pool2d
// ---------------------------------------------------------------------------------------------

/// Each window's first maximum receives the window's output gradient: the reference backward
/// pass, by nested loops.
fn naive_pool_gradient(
    input: &[f64],
    dims: [usize; 4],
    kernel: usize,
    stride: usize,
    output_grad: &[f64],
) -> Vec<f64> {
    let [batch, channels, height, width] = dims;
    let (out_height, out_width) = (
        (height - kernel) / stride + 1,
        (width - kernel) / stride + 1,
    );
    let mut grad = vec![0.0; input.len()];
    for plane in 0..batch * channels {
        for i in 0..out_height {
            for j in 0..out_width {
                let mut best = plane * height * width + i * stride * width + j * stride;
                for u in 0..kernel {
                    for v in 0..kernel {
                        let index =
                            plane * height * width + (i * stride + u) * width + j * stride + v;
                        if input[index] > input[best] {
                            best = index;
                        }
                    }
                }
                grad[best] += output_grad[(plane * out_height + i) * out_width + j];
            }
        }
    }
    grad
}

#[test]
fn max_pool2d_matches_candle_forward_and_the_window_maximum_gradient() -> Result {
    // (batch, channels, H, W, kernel, stride)
    let cases = [
        (2, 3, 26, 26, 2, 2),
        (1, 2, 7, 5, 2, 2),   // odd sizes: the last row/column fills no window
        (2, 1, 9, 8, 3, 2),   // overlapping windows
        (1, 3, 10, 11, 2, 3), // gaps between windows
        (3, 2, 5, 5, 5, 1),   // one window covering everything
    ];
    for (case, (batch, channels, height, width, kernel, stride)) in cases.into_iter().enumerate() {
        let what =
            format!("max pool case {case}: {height}x{width}, kernel {kernel}, stride {stride}");
        let dims = [batch, channels, height, width];
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(&normal(&dims, 20 + case as u64, dtype)?)?;
            let output = max_pool2d(x.as_tensor(), kernel, stride)?;
            let expected = x.as_tensor().max_pool2d_with_stride(kernel, stride)?;
            assert_close(&output, &expected, 0.0, &format!("{what} {dtype:?} output"))?;
            let gradient = gradients_of(&output, &[&x], 30 + case as u64)?.remove(0);
            let output_grad = SeededRng::new(30 + case as u64)
                .uniform_tensor(output.shape(), -1.0, 1.0, &Device::Cpu)?
                .to_dtype(dtype)?;
            let expected_gradient = naive_pool_gradient(
                &flat(x.as_tensor())?,
                dims,
                kernel,
                stride,
                &flat(&output_grad)?,
            );
            let expected_gradient = Tensor::from_vec(expected_gradient, &dims, &Device::Cpu)?;
            assert_close(
                &gradient,
                &expected_gradient,
                1e-6,
                &format!("{what} {dtype:?} ∂L/∂x"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn max_pool2d_gradients_match_finite_differences() -> Result {
    // Distinct values (a shuffled ramp), so that no perturbation changes a window's winner.
    for (case, (kernel, stride, height, width)) in [(2, 2, 6, 7), (3, 2, 7, 7), (2, 3, 8, 5)]
        .into_iter()
        .enumerate()
    {
        let count = 2 * 2 * height * width;
        let values: Vec<f64> = SeededRng::new(case as u64)
            .permutation(count)
            .into_iter()
            .map(|rank| rank as f64 / count as f64)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(
            values,
            (2, 2, height, width),
            &Device::Cpu,
        )?)?;
        assert_finite_differences(&format!("max pool case {case}"), &[("x", &x)], || {
            weighted_sum(&max_pool2d(x.as_tensor(), kernel, stride)?, 5)
        })?;
    }
    Ok(())
}

#[test]
fn a_tie_sends_the_gradient_to_the_first_maximum() -> Result {
    // One 2x2 window of equal values: PyTorch's rule, the first in row-major order wins.
    let x = Var::new(&[[[[1f32, 1.], [1., 1.]]]], &Device::Cpu)?;
    let gradient = max_pool2d(x.as_tensor(), 2, 2)?.sum_all()?.backward()?;
    let gradient = flat(gradient.get(x.as_tensor()).expect("a gradient"))?;
    assert_eq!(gradient, [1., 0., 0., 0.]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cross-entropy
// ---------------------------------------------------------------------------------------------

/// The reference: dl-nn's log-softmax composition, picked and averaged.
fn reference_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let picked = log_softmax(logits)?.gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?;
    Ok(picked.mean_all()?.neg()?)
}

#[test]
fn cross_entropy_matches_the_log_softmax_composition() -> Result {
    for (case, (rows, classes)) in [(32, 10), (1, 2), (7, 13), (128, 10), (3, 1000)]
        .into_iter()
        .enumerate()
    {
        let seed = 40 + case as u64;
        let mut rng = SeededRng::new(seed);
        let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
        let labels = Tensor::from_vec(labels, rows, &Device::Cpu)?;
        // Large logits too: the kernel must subtract the row maximum as the reference does.
        let logits =
            Var::from_tensor(&normal(&[rows, classes], seed, DType::F64)?.affine(30.0, 0.0)?)?;
        let expected = reference_cross_entropy(logits.as_tensor(), &labels)?;
        let expected_gradient = logits.as_tensor().clone();
        let expected_gradient = expected
            .backward()?
            .get(&expected_gradient)
            .cloned()
            .expect("a gradient");
        for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::F64, 1e-12)] {
            let z = Var::from_tensor(&logits.as_tensor().to_dtype(dtype)?)?;
            let loss = ce::cross_entropy(z.as_tensor(), &labels)?;
            assert_close(
                &loss,
                &expected,
                tolerance,
                &format!("{rows}x{classes} {dtype:?} loss"),
            )?;
            let gradient = loss
                .backward()?
                .get(z.as_tensor())
                .cloned()
                .expect("a gradient");
            assert_close(
                &gradient,
                &expected_gradient,
                tolerance,
                &format!("{rows}x{classes} {dtype:?} ∂L/∂z"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn cross_entropy_gradients_match_finite_differences() -> Result {
    let z = normal_var(&[6, 5], 50)?;
    let labels = Tensor::new(&[0i64, 4, 2, 2, 1, 3], &Device::Cpu)?;
    // A scaled loss checks that the incoming gradient (here 3) is applied.
    assert_finite_differences("cross-entropy", &[("z", &z)], || {
        ce::cross_entropy(z.as_tensor(), &labels)?.affine(3.0, 0.0)
    })
}

#[test]
fn cross_entropy_takes_any_integer_labels_and_strided_logits() -> Result {
    let logits = normal(&[5, 4], 60, DType::F32)?;
    let expected = ce::cross_entropy(&logits, &Tensor::new(&[1u32, 0, 3, 3, 2], &Device::Cpu)?)?
        .to_scalar::<f32>()?;
    for labels in [
        Tensor::new(&[1u8, 0, 3, 3, 2], &Device::Cpu)?,
        Tensor::new(&[1i64, 0, 3, 3, 2], &Device::Cpu)?,
        Tensor::new(&[1i32, 0, 3, 3, 2], &Device::Cpu)?,
    ] {
        assert_eq!(
            ce::cross_entropy(&logits, &labels)?.to_scalar::<f32>()?,
            expected
        );
    }
    // The same logits stored transposed.
    let transposed = logits.t()?.contiguous()?.t()?;
    let labels = Tensor::new(&[1u32, 0, 3, 3, 2], &Device::Cpu)?;
    assert_eq!(
        ce::cross_entropy(&transposed, &labels)?.to_scalar::<f32>()?,
        expected
    );
    // A label out of range is an error, not a wrong number.
    assert!(ce::cross_entropy(&logits, &Tensor::new(&[1u32, 0, 4, 3, 2], &Device::Cpu)?).is_err());
    Ok(())
}

#[test]
fn dl_nn_cross_entropy_uses_the_kernel_for_sequences() -> Result {
    // (N, T, vocabulary) logits with (N, T) labels, through dl_nn::cross_entropy.
    let logits = normal(&[2, 3, 7], 70, DType::F32)?;
    let labels = Tensor::new(&[[0u32, 6, 3], [2, 2, 5]], &Device::Cpu)?;
    let loss = cross_entropy(&logits, &labels)?;
    let expected = reference_cross_entropy(&logits.reshape((6, 7))?, &labels.flatten_all()?)?;
    assert_close(&loss, &expected, 1e-6, "sequence cross-entropy")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LSTM cell
// ---------------------------------------------------------------------------------------------

/// The reference: the step's formulas as Candle operations, (h', c').
fn reference_lstm_cell(
    input_part: &Tensor,
    recurrent: &Tensor,
    cell: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let hidden = cell.dim(1)?;
    let gates = input_part.add(recurrent)?;
    let sigmoid = |x: Tensor| -> Result<Tensor> { Ok(x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?) };
    let i = sigmoid(gates.narrow(1, 0, hidden)?)?;
    let f = sigmoid(gates.narrow(1, hidden, hidden)?)?;
    let g = gates.narrow(1, 2 * hidden, hidden)?.tanh()?;
    let o = sigmoid(gates.narrow(1, 3 * hidden, hidden)?)?;
    let new_cell = f.mul(cell)?.add(&i.mul(&g)?)?;
    Ok((o.mul(&new_cell.tanh()?)?, new_cell))
}

/// A loss that reads both outputs, with different weights, so that ∂L/∂h' and ∂L/∂c' both
/// reach the backward pass.
fn lstm_loss(hidden: &Tensor, cell: &Tensor) -> candle_core::Result<Tensor> {
    weighted_sum(hidden, 1)?.add(&weighted_sum(cell, 2)?)
}

#[test]
fn lstm_cell_matches_candle_forward_and_all_gradients() -> Result {
    for (case, (batch, hidden)) in [(1, 1), (3, 5), (16, 64), (7, 300)].into_iter().enumerate() {
        let seed = 200 + 10 * case as u64;
        let input_part = normal_var(&[batch, 4 * hidden], seed)?;
        let recurrent = normal_var(&[batch, 4 * hidden], seed + 1)?;
        let cell = normal_var(&[batch, hidden], seed + 2)?;
        let (h, c) = reference_lstm_cell(
            input_part.as_tensor(),
            recurrent.as_tensor(),
            cell.as_tensor(),
        )?;
        let store = lstm_loss(&h, &c)?.backward()?;
        let variables = [&input_part, &recurrent, &cell];
        let expected: Vec<Tensor> = variables
            .iter()
            .map(|v| store.get(v.as_tensor()).cloned().expect("a gradient"))
            .collect();
        for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::F64, 1e-12)] {
            let what = format!("lstm cell {batch}x{hidden} {dtype:?}");
            let (a, r, c0) = (
                cast_var(&input_part, dtype)?,
                cast_var(&recurrent, dtype)?,
                cast_var(&cell, dtype)?,
            );
            let (new_hidden, new_cell) = lstm_cell(a.as_tensor(), r.as_tensor(), c0.as_tensor())?;
            assert_close(&new_hidden, &h, tolerance, &format!("{what} h'"))?;
            assert_close(&new_cell, &c, tolerance, &format!("{what} c'"))?;
            let store = lstm_loss(&new_hidden, &new_cell)?.backward()?;
            let actual: Vec<Tensor> = [&a, &r, &c0]
                .iter()
                .map(|v| store.get(v.as_tensor()).cloned().expect("a gradient"))
                .collect();
            assert_gradients_close(
                &what,
                &["input part", "recurrent part", "cell"],
                &actual,
                &expected,
                tolerance,
            )?;
        }
    }
    Ok(())
}

#[test]
fn lstm_cell_gradients_match_finite_differences() -> Result {
    let input_part = normal_var(&[3, 8], 300)?;
    let recurrent = normal_var(&[3, 8], 301)?;
    let cell = normal_var(&[3, 2], 302)?;
    assert_finite_differences(
        "lstm cell",
        &[
            ("input part", &input_part),
            ("recurrent part", &recurrent),
            ("cell", &cell),
        ],
        || {
            let (h, c) = lstm_cell(
                input_part.as_tensor(),
                recurrent.as_tensor(),
                cell.as_tensor(),
            )?;
            lstm_loss(&h, &c)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// bias
// ---------------------------------------------------------------------------------------------

#[test]
fn add_bias_matches_broadcast_add_and_its_gradients() -> Result {
    // (rows, columns) from one row to many blocks of rows, and a 3-d input.
    let shapes: [&[usize]; 5] = [&[1, 1], &[3, 5], &[200, 7], &[3200, 65], &[4, 9, 6]];
    for (case, shape) in shapes.into_iter().enumerate() {
        let seed = 500 + 10 * case as u64;
        let columns = *shape.last().expect("a last dimension");
        let input = normal_var(shape, seed)?;
        let bias = normal_var(&[columns], seed + 1)?;
        let expected = input.as_tensor().broadcast_add(bias.as_tensor())?;
        assert_kernel_matches_reference(
            &format!("add_bias {shape:?}"),
            &["x", "b"],
            [&input, &bias],
            &expected,
            seed,
            [(DType::F32, 1e-5), (DType::F64, 1e-12)],
            |[x, b]| dl_tensor::kernels::bias::add_bias(x, b),
        )?;
    }
    let input = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
    let wrong = Tensor::ones(4, DType::F32, &Device::Cpu)?;
    let error = dl_tensor::kernels::bias::add_bias(&input, &wrong).unwrap_err();
    assert!(error.to_string().contains("last dimension"), "{error}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// linear
// ---------------------------------------------------------------------------------------------

#[test]
fn linear_matches_matmul_plus_bias_and_its_gradients() -> Result {
    // (rows, in, out): one row, odd sizes, and the course CNN's 5408 → 128 layer.
    for (case, (rows, inputs, outputs)) in [(1, 1, 1), (3, 5, 7), (32, 5408, 128), (200, 9, 65)]
        .into_iter()
        .enumerate()
    {
        let seed = 600 + 10 * case as u64;
        let input = normal_var(&[rows, inputs], seed)?;
        let weight = normal_var(&[outputs, inputs], seed + 1)?;
        let bias = normal_var(&[outputs], seed + 2)?;
        let expected = input
            .as_tensor()
            .matmul(&weight.as_tensor().t()?)?
            .broadcast_add(bias.as_tensor())?;
        assert_kernel_matches_reference(
            &format!("linear {rows}x{inputs}x{outputs}"),
            &["x", "W", "b"],
            [&input, &weight, &bias],
            &expected,
            seed,
            [(DType::F32, 1e-4), (DType::F64, 1e-11)],
            |[x, w, b]| dl_tensor::kernels::linear::linear(x, w, b),
        )?;
    }
    Ok(())
}

#[test]
fn linear_gradients_match_finite_differences_and_bad_shapes_are_errors() -> Result {
    let input = normal_var(&[3, 4], 700)?;
    let weight = normal_var(&[2, 4], 701)?;
    let bias = normal_var(&[2], 702)?;
    assert_finite_differences(
        "linear",
        &[("x", &input), ("W", &weight), ("b", &bias)],
        || {
            let output = dl_tensor::kernels::linear::linear(
                input.as_tensor(),
                weight.as_tensor(),
                bias.as_tensor(),
            )?;
            weighted_sum(&output, 5)
        },
    )?;
    let wrong = normal(&[2, 5], 703, DType::F64)?;
    let error = dl_tensor::kernels::linear::linear(input.as_tensor(), &wrong, bias.as_tensor())
        .unwrap_err();
    assert!(error.to_string().contains("linear"), "{error}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// leaky ReLU
// ---------------------------------------------------------------------------------------------

#[test]
fn leaky_relu_matches_candles_maximum_and_finite_differences() -> Result {
    use dl_tensor::kernels::leaky_relu::leaky_relu;
    // Values at least 0.05 away from the kink at 0, in f64: forward and gradient equal
    // Candle's max(x, αx), and the gradient equals finite differences.
    let values: Vec<f64> = (0..600)
        .map(|i| {
            let magnitude = 0.05 + (i % 37) as f64 * 0.1;
            if i % 3 == 0 {
                -magnitude
            } else {
                magnitude
            }
        })
        .collect();
    let x = Var::from_tensor(&Tensor::from_vec(values, (4, 6, 25), &Device::Cpu)?)?;
    let ours = leaky_relu(x.as_tensor(), 0.2)?;
    let reference = x.as_tensor().maximum(&x.as_tensor().affine(0.2, 0.0)?)?;
    assert_close(&ours, &reference, 0.0, "leaky ReLU output")?;
    let (ours, reference) = (
        gradients_of(&ours, &[&x], 3)?,
        gradients_of(&reference, &[&x], 3)?,
    );
    assert_close(&ours[0], &reference[0], 1e-15, "leaky ReLU gradient")?;
    assert_finite_differences("leaky ReLU", &[("x", &x)], || {
        weighted_sum(&leaky_relu(x.as_tensor(), 0.2)?, 4)
    })
}
