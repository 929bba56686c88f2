//! `dl_tensor::kernels::lstm_sequence` against independent references: the step loop written as
//! Candle operations (matrix product and the cell's formulas, in f64) for the outputs and every
//! gradient, with the batch split over 1, 2 and 3 threads (uneven blocks included); and finite
//! differences (`check_gradients` in f64) on the kernel itself.

use dl_autograd::{check_gradients, weighted_sum, GradientCheck};
use dl_tensor::kernels::lstm_sequence::lstm_sequence;
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// N(0, scale²) values of `shape` in f64.
fn normal(shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    Ok(SeededRng::new(seed)
        .normal_tensor(shape, 0.0, scale, &Device::Cpu)?
        .to_dtype(DType::F64)?)
}

fn flat(tensor: &Tensor) -> Result<Vec<f64>> {
    Ok(tensor.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
}

/// Every element within `tolerance` · max(1, |expected|).
fn assert_close(actual: &Tensor, expected: &Tensor, tolerance: f64, what: &str) -> Result {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    for (index, (a, e)) in flat(actual)?.iter().zip(flat(expected)?).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "{what}: element {index} is {a}, expected {e}"
        );
    }
    Ok(())
}

/// The reference: for t = 0, 1, …: a = a_t + h W_hhᵀ, then the cell's formulas, as Candle
/// operations; returns (batch, steps, 2H) like the kernel.
fn reference(input_parts: &Tensor, weight_hh: &Tensor, initial: &Tensor) -> Result<Tensor> {
    let (_, steps, gates) = input_parts.dims3()?;
    let h = gates / 4;
    let sigmoid = |x: Tensor| -> Result<Tensor> { Ok(x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?) };
    let mut hidden = initial.narrow(1, 0, h)?;
    let mut cell = initial.narrow(1, h, h)?;
    let mut outputs = Vec::with_capacity(steps);
    for t in 0..steps {
        let a = input_parts
            .narrow(1, t, 1)?
            .squeeze(1)?
            .add(&hidden.matmul(&weight_hh.t()?)?)?;
        let i = sigmoid(a.narrow(1, 0, h)?)?;
        let f = sigmoid(a.narrow(1, h, h)?)?;
        let g = a.narrow(1, 2 * h, h)?.tanh()?;
        let o = sigmoid(a.narrow(1, 3 * h, h)?)?;
        cell = f.mul(&cell)?.add(&i.mul(&g)?)?;
        hidden = o.mul(&cell.tanh()?)?;
        outputs.push(Tensor::cat(&[&hidden, &cell], 1)?);
    }
    Ok(Tensor::stack(&outputs, 1)?)
}

/// (batch, steps, hidden): small, odd, and large enough to be split over threads.
const CASES: [(usize, usize, usize); 5] =
    [(1, 1, 1), (3, 4, 5), (2, 7, 3), (7, 30, 64), (32, 12, 128)];

#[test]
fn lstm_sequence_matches_the_step_loop_and_all_gradients() -> Result {
    for (case, (batch, steps, hidden)) in CASES.into_iter().enumerate() {
        let seed = 100 + 10 * case as u64;
        let input_parts = Var::from_tensor(&normal(&[batch, steps, 4 * hidden], seed, 1.0)?)?;
        let scale = 1.0 / (hidden as f32).sqrt();
        let weight_hh = Var::from_tensor(&normal(&[4 * hidden, hidden], seed + 1, scale)?)?;
        let initial = Var::from_tensor(&normal(&[batch, 2 * hidden], seed + 2, 1.0)?)?;
        let expected_output = reference(
            input_parts.as_tensor(),
            weight_hh.as_tensor(),
            initial.as_tensor(),
        )?;
        let store = weighted_sum(&expected_output, 9)?.backward()?;
        let variables = [&input_parts, &weight_hh, &initial];
        let expected: Vec<Tensor> = variables
            .iter()
            .map(|v| store.get(v.as_tensor()).cloned().expect("a gradient"))
            .collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()?;
            for (dtype, tolerance) in [(DType::F32, 5e-5), (DType::F64, 1e-11)] {
                let what =
                    format!("lstm sequence {batch}x{steps}x{hidden} {dtype:?} {threads} threads");
                let cast = |var: &Var| -> Result<Var> {
                    Ok(Var::from_tensor(&var.as_tensor().to_dtype(dtype)?)?)
                };
                let (a, w, s) = (cast(&input_parts)?, cast(&weight_hh)?, cast(&initial)?);
                let (output, store) = pool.install(|| -> Result<_> {
                    let output = lstm_sequence(a.as_tensor(), w.as_tensor(), s.as_tensor())?;
                    let store = weighted_sum(&output, 9)?.backward()?;
                    Ok((output, store))
                })?;
                assert_close(
                    &output,
                    &expected_output,
                    tolerance,
                    &format!("{what} output"),
                )?;
                for ((name, var), expected) in ["input parts", "W_hh", "initial state"]
                    .iter()
                    .zip([&a, &w, &s])
                    .zip(&expected)
                {
                    let actual = store.get(var.as_tensor()).expect("a gradient");
                    assert_close(actual, expected, tolerance, &format!("{what} ∂L/∂{name}"))?;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn lstm_sequence_gradients_match_finite_differences() -> Result {
    let input_parts = Var::from_tensor(&normal(&[2, 3, 8], 300, 1.0)?)?;
    let weight_hh = Var::from_tensor(&normal(&[8, 2], 301, 0.7)?)?;
    let initial = Var::from_tensor(&normal(&[2, 4], 302, 1.0)?)?;
    let report = check_gradients(
        &[
            ("input parts", &input_parts),
            ("W_hh", &weight_hh),
            ("initial state", &initial),
        ],
        || {
            let output = lstm_sequence(
                input_parts.as_tensor(),
                weight_hh.as_tensor(),
                initial.as_tensor(),
            )?;
            weighted_sum(&output, 4)
        },
        &GradientCheck::default(),
    )?;
    assert!(report.elements_checked > 0);
    assert!(
        report.worst_relative_error < 1e-6,
        "lstm sequence: {report}"
    );
    Ok(())
}

#[test]
fn a_constant_initial_state_gets_no_gradient_and_bad_shapes_are_errors() -> Result {
    let input_parts = Var::from_tensor(&normal(&[2, 3, 8], 310, 1.0)?)?;
    let weight_hh = Var::from_tensor(&normal(&[8, 2], 311, 0.7)?)?;
    let initial = normal(&[2, 4], 312, 1.0)?;
    let output = lstm_sequence(input_parts.as_tensor(), weight_hh.as_tensor(), &initial)?;
    let store = weighted_sum(&output, 5)?.backward()?;
    assert!(store.get(&initial).is_none());
    assert!(store.get(input_parts.as_tensor()).is_some());

    let wrong_weight = normal(&[8, 3], 313, 1.0)?;
    let error = lstm_sequence(input_parts.as_tensor(), &wrong_weight, &initial).unwrap_err();
    assert!(error.to_string().contains("W_hh"), "{error}");
    let empty = Tensor::zeros((2, 0, 8), DType::F64, &Device::Cpu)?;
    assert!(lstm_sequence(&empty, weight_hh.as_tensor(), &initial).is_err());
    let not_multiple_of_four = normal(&[2, 3, 7], 314, 1.0)?;
    assert!(lstm_sequence(&not_multiple_of_four, weight_hh.as_tensor(), &initial).is_err());
    Ok(())
}
