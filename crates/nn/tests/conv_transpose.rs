//! The transposed convolution (`dl_tensor::kernels::conv_transpose2d` and the
//! `ConvTranspose2d` layer) against independent references: a hand-computed example, the
//! definition written as loops (the scatter formula of the module's header), Candle's
//! `conv_transpose2d`, the adjoint identity ⟨conv2d(y), x⟩ = ⟨y, conv_transpose2d(x)⟩, and
//! finite differences of every gradient in f64.

mod common;

use common::{assert_close, assert_finite_differences_with, flat, gradients_of, Result};
use dl_autograd::{weighted_sum, GradientCheck};
use dl_nn::{ConvTranspose2d, ConvTranspose2dConfig, Layer, Mode, VarStore};
use dl_tensor::kernels::{conv2d::conv2d, conv_transpose2d::conv_transpose2d};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

/// N(0, 1) values of `shape` in `dtype`.
fn normal(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    Ok(SeededRng::new(seed)
        .normal_tensor(shape, 0.0, 1.0, &Device::Cpu)?
        .to_dtype(dtype)?)
}

/// (batch, C_in, C_out, H, W, k, stride, padding, output_padding).
type Case = (
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

const CASES: [Case; 7] = [
    (2, 6, 3, 7, 7, 4, 2, 1, 0), // the DCGAN generator's 7x7 → 14x14 (scaled down)
    (3, 3, 1, 14, 14, 4, 2, 1, 0), // its last layer, 14x14 → 28x28
    (2, 2, 3, 5, 4, 3, 1, 0, 0), // stride 1: a "full" convolution
    (1, 3, 2, 4, 6, 3, 2, 0, 1), // output padding
    (2, 2, 2, 3, 3, 2, 3, 0, 0), // stride 3 > kernel 2: gaps in the output
    (2, 4, 5, 6, 5, 5, 2, 2, 1), // large padding and output padding
    (3, 5, 4, 4, 4, 1, 1, 0, 0), // 1x1 kernel
];

/// The definition, as loops in f64: every input value spread over its window of the output.
fn by_definition(input: &Tensor, weight: &Tensor, bias: &Tensor, case: Case) -> Result<Tensor> {
    let (batch, in_c, out_c, h, w, k, s, p, op) = case;
    let (oh, ow) = ((h - 1) * s + k + op - 2 * p, (w - 1) * s + k + op - 2 * p);
    let (x, wt, b) = (flat(input)?, flat(weight)?, flat(bias)?);
    let mut y = vec![0.0; batch * out_c * oh * ow];
    for n in 0..batch {
        for o in 0..out_c {
            for pixel in &mut y[(n * out_c + o) * oh * ow..][..oh * ow] {
                *pixel = b[o];
            }
            for c in 0..in_c {
                for i in 0..h {
                    for j in 0..w {
                        for u in 0..k {
                            for v in 0..k {
                                let (row, column) = (i * s + u, j * s + v);
                                if row < p || column < p || row - p >= oh || column - p >= ow {
                                    continue;
                                }
                                y[((n * out_c + o) * oh + row - p) * ow + column - p] += x
                                    [((n * in_c + c) * h + i) * w + j]
                                    * wt[((c * out_c + o) * k + u) * k + v];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(y, (batch, out_c, oh, ow), &Device::Cpu)?)
}

#[test]
fn a_hand_computed_example() -> Result {
    // x = [[1, 2], [3, 4]], one 3x3 kernel of 1..9, stride 2, padding 1: output 3x3 with
    // y[r, c] = Σ x[i, j]·W[r + 1 − 2i, c + 1 − 2j] over the taps inside the kernel.
    //   y[0,0] = x00·W11 = 5,        y[0,1] = x00·W12 + x01·W10 = 6 + 8 = 14,
    //   y[1,0] = x00·W21 + x10·W01 = 8 + 6 = 14,
    //   y[1,1] = x00·W22 + x01·W20 + x10·W02 + x11·W00 = 9 + 14 + 9 + 4 = 36.
    let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
    let kernel = Tensor::arange(1f32, 10., &Device::Cpu)?.reshape((1, 1, 3, 3))?;
    let y = conv_transpose2d(&x, &kernel, None, 2, 1, 0)?;
    assert_eq!(y.dims(), [1, 1, 3, 3]);
    let expected = [5., 14., 10., 14., 36., 24., 15., 34., 20.];
    assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, expected);
    Ok(())
}

#[test]
fn matches_the_definition_and_candle_in_f32_and_f64() -> Result {
    for (index, &case) in CASES.iter().enumerate() {
        let (batch, in_c, out_c, h, w, k, s, p, op) = case;
        let seed = 10 * index as u64;
        let input = normal(&[batch, in_c, h, w], seed, DType::F64)?;
        let weight = normal(&[in_c, out_c, k, k], seed + 1, DType::F64)?;
        let bias = normal(&[out_c], seed + 2, DType::F64)?;
        let expected = by_definition(&input, &weight, &bias, case)?;
        let what = format!("case {index} {case:?}");
        let candle = input
            .conv_transpose2d(&weight, p, op, s, 1)?
            .broadcast_add(&bias.reshape((1, (), 1, 1))?)?;
        assert_close(&candle, &expected, 1e-10, &format!("{what}: Candle"))?;
        for (dtype, tolerance) in [(DType::F64, 1e-10), (DType::F32, 2e-5)] {
            let output = conv_transpose2d(
                &input.to_dtype(dtype)?,
                &weight.to_dtype(dtype)?,
                Some(&bias.to_dtype(dtype)?),
                s,
                p,
                op,
            )?;
            assert_close(&output, &expected, tolerance, &format!("{what} {dtype:?}"))?;
        }
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> Result {
    for (index, &case) in CASES.iter().enumerate() {
        let (batch, in_c, out_c, h, w, k, s, p, op) = case;
        let seed = 100 + 10 * index as u64;
        let x = Var::from_tensor(&normal(&[batch, in_c, h, w], seed, DType::F64)?)?;
        let weight = Var::from_tensor(
            &normal(&[in_c, out_c, k, k], seed + 1, DType::F64)?
                .affine(1.0 / ((in_c * k * k) as f64).sqrt(), 0.0)?,
        )?;
        let bias = Var::from_tensor(&normal(&[out_c], seed + 2, DType::F64)?)?;
        assert_finite_differences_with(
            &format!("conv_transpose2d case {index} {case:?}"),
            &[("input", &x), ("weight", &weight), ("bias", &bias)],
            || {
                let output = conv_transpose2d(
                    x.as_tensor(),
                    weight.as_tensor(),
                    Some(bias.as_tensor()),
                    s,
                    p,
                    op,
                )?;
                weighted_sum(&output, seed + 3)
            },
            // Linear in each element: no truncation error, so a larger step is safe.
            &GradientCheck {
                epsilon: 1e-4,
                ..GradientCheck::default()
            },
        )?;
    }
    Ok(())
}

#[test]
fn is_the_adjoint_of_the_convolution() -> Result {
    // ⟨conv2d(y, W), x⟩ = ⟨y, conv_transpose2d(x, W)⟩ for the DCGAN's 4x4, stride 2, padding 1.
    let x = normal(&[2, 6, 7, 7], 1, DType::F64)?;
    let y = normal(&[2, 3, 14, 14], 2, DType::F64)?;
    let weight = normal(&[6, 3, 4, 4], 3, DType::F64)?;
    let left = (conv2d(&y, &weight, None, 2, 1)? * &x)?
        .sum_all()?
        .to_scalar::<f64>()?;
    let right = (conv_transpose2d(&x, &weight, None, 2, 1, 0)? * &y)?
        .sum_all()?
        .to_scalar::<f64>()?;
    assert!(
        (left - right).abs() < 1e-9 * left.abs().max(1.0),
        "{left} vs {right}"
    );
    Ok(())
}

#[test]
fn gradients_equal_candles_on_the_generator_shapes() -> Result {
    // Candle's own backward as a second reference, in f32, on the generator's two layers.
    for (index, &(batch, in_c, out_c, h, w, k, s, p, op)) in CASES[..2].iter().enumerate() {
        let seed = 300 + 10 * index as u64;
        let x = Var::from_tensor(&normal(&[batch, in_c, h, w], seed, DType::F32)?)?;
        let weight = Var::from_tensor(&normal(&[in_c, out_c, k, k], seed + 1, DType::F32)?)?;
        let ours = conv_transpose2d(x.as_tensor(), weight.as_tensor(), None, s, p, op)?;
        let candle = x
            .as_tensor()
            .conv_transpose2d(weight.as_tensor(), p, op, s, 1)?;
        let (ours, candle) = (
            gradients_of(&ours, &[&x, &weight], seed + 2)?,
            gradients_of(&candle, &[&x, &weight], seed + 2)?,
        );
        assert_close(&ours[0], &candle[0], 1e-4, "∂L/∂x")?;
        assert_close(&ours[1], &candle[1], 1e-4, "∂L/∂W")?;
    }
    Ok(())
}

#[test]
fn the_layer_grows_7x7_to_14x14_and_checks_its_input() -> Result {
    let store = VarStore::new(&Device::Cpu, DType::F64, 5);
    let config = ConvTranspose2dConfig::new(4).stride(2).padding(1);
    let layer = ConvTranspose2d::new(&store.root().sub("up"), 4, 2, config, true)?;
    assert_eq!(layer.weight().dims(), [4, 2, 4, 4]);
    assert_eq!(store.parameter_count(), 4 * 2 * 16 + 2);
    let x = Var::from_tensor(&normal(&[3, 4, 7, 7], 6, DType::F64)?)?;
    assert_eq!(
        layer.forward(x.as_tensor(), Mode::Train)?.dims(),
        [3, 2, 14, 14]
    );
    let bias = layer.bias().expect("a bias");
    assert_finite_differences_with(
        "ConvTranspose2d layer",
        &[("input", &x), ("weight", layer.weight()), ("bias", bias)],
        || {
            let output = common::candle(layer.forward(x.as_tensor(), Mode::Train))?;
            weighted_sum(&output.tanh()?, 7)
        },
        &GradientCheck::default(),
    )?;
    // Wrong channels, wrong rank, a padding that leaves nothing: errors naming the layer.
    for bad in [
        Tensor::zeros((1, 3, 7, 7), DType::F64, &Device::Cpu)?,
        Tensor::zeros((4, 7, 7), DType::F64, &Device::Cpu)?,
    ] {
        let message = layer.forward(&bad, Mode::Eval).unwrap_err().to_string();
        assert!(message.contains("up"), "{message}");
    }
    let no_room = ConvTranspose2dConfig::new(2).padding(3);
    let tight = ConvTranspose2d::new(&store.root().sub("tight"), 1, 1, no_room, false)?;
    assert!(tight
        .forward(
            &Tensor::zeros((1, 1, 2, 2), DType::F64, &Device::Cpu)?,
            Mode::Eval
        )
        .is_err());
    assert!(ConvTranspose2d::new(
        &store.root().sub("bad"),
        1,
        1,
        config.output_padding(2),
        true
    )
    .is_err());
    Ok(())
}
