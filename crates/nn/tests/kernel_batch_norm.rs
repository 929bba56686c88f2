//! `dl_tensor::kernels::batch_norm` against independent references: the same formulas written
//! as Candle operations (in f64) for the output, the batch statistics and every gradient, on
//! inputs of rank 2, 3 and 4 with odd sizes; finite differences (`check_gradients` in f64); and
//! the `BatchNorm` layer, whose running averages must follow PyTorch's update rule.

mod common;

use common::{
    assert_close, assert_finite_differences, assert_gradients_close, cast_var, gradients_of, Result,
};
use dl_autograd::weighted_sum;
use dl_nn::{BatchNorm, BatchNormConfig, Layer, Mode, VarStore};
use dl_tensor::kernels::batch_norm::batch_norm_train;
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

/// Values of `shape` drawn from N(mean, 1) (a non-zero mean tests the centring).
fn normal(shape: &[usize], seed: u64, mean: f32) -> Result<Tensor> {
    Ok(SeededRng::new(seed)
        .normal_tensor(shape, mean, 1.0, &Device::Cpu)?
        .to_dtype(DType::F64)?)
}

/// The reference: y = γ (x − μ)/√(σ² + ε) + β with Candle's reductions over every dimension but
/// the channel's; returns (y, μ, σ²) with μ and σ² flattened to (C).
fn reference(
    input: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    epsilon: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let rank = input.rank();
    let reduced: Vec<usize> = (0..rank).filter(|&d| d != 1).collect();
    let mut broadcast = vec![1; rank];
    broadcast[1] = input.dim(1)?;
    let mean = input.mean_keepdim(reduced.as_slice())?;
    let centred = input.broadcast_sub(&mean)?;
    let variance = centred.sqr()?.mean_keepdim(reduced.as_slice())?;
    let output = centred
        .broadcast_div(&variance.affine(1.0, epsilon)?.sqrt()?)?
        .broadcast_mul(&weight.reshape(broadcast.as_slice())?)?
        .broadcast_add(&bias.reshape(broadcast.as_slice())?)?;
    Ok((output, mean.flatten_all()?, variance.flatten_all()?))
}

#[test]
fn batch_norm_matches_candle_forward_statistics_and_all_gradients() -> Result {
    let shapes: [&[usize]; 5] = [
        &[4, 3, 5, 7],
        &[2, 5],
        &[3, 2, 1, 1],
        &[5, 4, 6],
        &[32, 8, 13, 13],
    ];
    for (case, shape) in shapes.into_iter().enumerate() {
        let seed = 10 * case as u64;
        let channels = shape[1];
        let input = Var::from_tensor(&normal(shape, seed, 3.0)?)?;
        let weight = Var::from_tensor(&normal(&[channels], seed + 1, 1.0)?)?;
        let bias = Var::from_tensor(&normal(&[channels], seed + 2, 0.0)?)?;
        let epsilon = 1e-5;
        let (output, mean, variance) = reference(
            input.as_tensor(),
            weight.as_tensor(),
            bias.as_tensor(),
            epsilon,
        )?;
        let expected = gradients_of(&output, &[&input, &weight, &bias], 7)?;
        for (dtype, tolerance) in [(DType::F32, 2e-4), (DType::F64, 1e-10)] {
            let what = format!("batch norm {shape:?} {dtype:?}");
            let (x, w, b) = (
                cast_var(&input, dtype)?,
                cast_var(&weight, dtype)?,
                cast_var(&bias, dtype)?,
            );
            let (actual, statistics) =
                batch_norm_train(x.as_tensor(), w.as_tensor(), b.as_tensor(), epsilon)?;
            assert_eq!(actual.dtype(), dtype);
            assert_close(&actual, &output, tolerance, &format!("{what} y"))?;
            assert_close(&statistics.mean, &mean, tolerance, &format!("{what} mean"))?;
            assert_close(
                &statistics.variance,
                &variance,
                tolerance,
                &format!("{what} variance"),
            )?;
            assert_gradients_close(
                &what,
                &["input", "weight", "bias"],
                &gradients_of(&actual, &[&x, &w, &b], 7)?,
                &expected,
                tolerance,
            )?;
        }
    }
    Ok(())
}

#[test]
fn batch_norm_gradients_match_finite_differences() -> Result {
    let input = Var::from_tensor(&normal(&[3, 2, 2, 3], 40, 1.0)?)?;
    let weight = Var::from_tensor(&normal(&[2], 41, 1.0)?)?;
    let bias = Var::from_tensor(&normal(&[2], 42, 0.0)?)?;
    assert_finite_differences(
        "batch norm",
        &[("input", &input), ("weight", &weight), ("bias", &bias)],
        || {
            let (output, _) = batch_norm_train(
                input.as_tensor(),
                weight.as_tensor(),
                bias.as_tensor(),
                1e-5,
            )?;
            weighted_sum(&output, 3)
        },
    )
}

#[test]
fn shapes_that_do_not_match_are_errors() -> Result {
    let input = normal(&[4, 3, 2, 2], 50, 0.0)?;
    let three = Tensor::ones(3, DType::F64, &Device::Cpu)?;
    let two = Tensor::ones(2, DType::F64, &Device::Cpu)?;
    let error = batch_norm_train(&input, &two, &three, 1e-5).unwrap_err();
    assert!(error.to_string().contains("weight"), "{error}");
    let error = batch_norm_train(&input, &three, &two, 1e-5).unwrap_err();
    assert!(error.to_string().contains("bias"), "{error}");
    let vector = normal(&[4], 51, 0.0)?;
    assert!(batch_norm_train(&vector, &three, &three, 1e-5).is_err());
    Ok(())
}

#[test]
fn the_layer_keeps_pytorch_running_averages() -> Result {
    // After one training batch: r_mean = 0.9·0 + 0.1·μ, r_var = 0.9·1 + 0.1·σ²·m/(m − 1).
    let store = VarStore::new(&Device::Cpu, DType::F64, 0);
    let layer = BatchNorm::new(&store.root().sub("bn"), 3, BatchNormConfig::default())?;
    let input = normal(&[6, 3, 4, 4], 60, 2.0)?;
    layer.forward(&input, Mode::Train)?;
    let (_, mean, variance) = reference(
        &input,
        &Tensor::ones(3, DType::F64, &Device::Cpu)?,
        &Tensor::zeros(3, DType::F64, &Device::Cpu)?,
        1e-5,
    )?;
    let count = (6 * 4 * 4) as f64;
    let expected_mean = mean.affine(0.1, 0.0)?;
    let expected_var = variance.affine(0.1 * count / (count - 1.0), 0.9)?;
    assert_close(
        layer.running_mean().as_tensor(),
        &expected_mean,
        1e-12,
        "running mean",
    )?;
    assert_close(
        layer.running_var().as_tensor(),
        &expected_var,
        1e-12,
        "running variance",
    )?;
    Ok(())
}
