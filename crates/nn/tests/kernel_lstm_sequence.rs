//! `dl_tensor::kernels::lstm_sequence` against independent references: the step loop written as
//! Candle operations (matrix product and the cell's formulas, in f64) for the outputs and every
//! gradient, with the batch split over 1, 2 and 3 threads (uneven blocks included); and finite
//! differences (`check_gradients` in f64) on the kernel itself.

mod common;

use common::{assert_close, Result};
use dl_autograd::{check_gradients, weighted_sum, GradientCheck};
use dl_tensor::kernels::lstm_sequence::lstm_sequence;
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

/// N(0, scale²) values of `shape` in f64.
fn normal(shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    Ok(SeededRng::new(seed)
        .normal_tensor(shape, 0.0, scale, &Device::Cpu)?
        .to_dtype(DType::F64)?)
}

/// The parameters and input of one case, all f64 variables: (x, W_ih, W_hh, b, h₀ | c₀).
struct Case {
    input: Var,
    weight_ih: Var,
    weight_hh: Var,
    bias: Var,
    initial: Var,
}

impl Case {
    fn new(batch: usize, steps: usize, features: usize, hidden: usize, seed: u64) -> Result<Self> {
        let scale = 1.0 / (hidden as f32).sqrt();
        Ok(Self {
            input: Var::from_tensor(&normal(&[batch, steps, features], seed, 1.0)?)?,
            weight_ih: Var::from_tensor(&normal(&[4 * hidden, features], seed + 1, scale)?)?,
            weight_hh: Var::from_tensor(&normal(&[4 * hidden, hidden], seed + 2, scale)?)?,
            bias: Var::from_tensor(&normal(&[4 * hidden], seed + 3, 0.5)?)?,
            initial: Var::from_tensor(&normal(&[batch, 2 * hidden], seed + 4, 1.0)?)?,
        })
    }

    fn variables(&self) -> [&Var; 5] {
        [
            &self.input,
            &self.weight_ih,
            &self.weight_hh,
            &self.bias,
            &self.initial,
        ]
    }

    /// The same case in `dtype`.
    fn cast(&self, dtype: DType) -> Result<Self> {
        let cast =
            |var: &Var| -> Result<Var> { Ok(Var::from_tensor(&var.as_tensor().to_dtype(dtype)?)?) };
        Ok(Self {
            input: cast(&self.input)?,
            weight_ih: cast(&self.weight_ih)?,
            weight_hh: cast(&self.weight_hh)?,
            bias: cast(&self.bias)?,
            initial: cast(&self.initial)?,
        })
    }

    fn kernel(&self) -> dl_tensor::candle_core::Result<Tensor> {
        lstm_sequence(
            self.input.as_tensor(),
            self.weight_ih.as_tensor(),
            self.weight_hh.as_tensor(),
            self.bias.as_tensor(),
            self.initial.as_tensor(),
        )
    }

    /// The reference: for t = 0, 1, …: a = x_t W_ihᵀ + b + h W_hhᵀ, then the cell's formulas,
    /// as Candle operations; returns (2, batch, steps, H) like the kernel.
    fn reference(&self) -> Result<Tensor> {
        let input = self.input.as_tensor();
        let steps = input.dim(1)?;
        let h = self.weight_hh.dims()[1];
        let sigmoid =
            |x: Tensor| -> Result<Tensor> { Ok(x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?) };
        let initial = self.initial.as_tensor();
        let mut hidden = initial.narrow(1, 0, h)?;
        let mut cell = initial.narrow(1, h, h)?;
        let (mut hiddens, mut cells) = (Vec::new(), Vec::new());
        for t in 0..steps {
            let a = input
                .narrow(1, t, 1)?
                .squeeze(1)?
                .matmul(&self.weight_ih.as_tensor().t()?)?
                .broadcast_add(self.bias.as_tensor())?
                .add(&hidden.matmul(&self.weight_hh.as_tensor().t()?)?)?;
            let i = sigmoid(a.narrow(1, 0, h)?)?;
            let f = sigmoid(a.narrow(1, h, h)?)?;
            let g = a.narrow(1, 2 * h, h)?.tanh()?;
            let o = sigmoid(a.narrow(1, 3 * h, h)?)?;
            cell = f.mul(&cell)?.add(&i.mul(&g)?)?;
            hidden = o.mul(&cell.tanh()?)?;
            hiddens.push(hidden.clone());
            cells.push(cell.clone());
        }
        Ok(Tensor::stack(
            &[Tensor::stack(&hiddens, 1)?, Tensor::stack(&cells, 1)?],
            0,
        )?)
    }
}

const NAMES: [&str; 5] = ["x", "W_ih", "W_hh", "b", "initial state"];

/// (batch, steps, features, hidden): small, odd, and large enough to be split over threads.
const CASES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 1, 1),
    (3, 4, 2, 5),
    (2, 7, 6, 3),
    (7, 30, 16, 64),
    (32, 12, 64, 128),
];

#[test]
fn lstm_sequence_matches_the_step_loop_and_all_gradients() -> Result {
    for (index, (batch, steps, features, hidden)) in CASES.into_iter().enumerate() {
        let case = Case::new(batch, steps, features, hidden, 100 + 10 * index as u64)?;
        let expected_output = case.reference()?;
        let store = weighted_sum(&expected_output, 9)?.backward()?;
        let expected: Vec<Tensor> = case
            .variables()
            .iter()
            .map(|v| store.get(v.as_tensor()).cloned().expect("a gradient"))
            .collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()?;
            for (dtype, tolerance) in [(DType::F32, 5e-5), (DType::F64, 1e-11)] {
                let what = format!(
                    "lstm sequence {batch}x{steps}x{features}x{hidden} {dtype:?} {threads} threads"
                );
                let cast = case.cast(dtype)?;
                let (output, store) = pool.install(|| -> Result<_> {
                    let output = cast.kernel()?;
                    let store = weighted_sum(&output, 9)?.backward()?;
                    Ok((output, store))
                })?;
                assert_close(
                    &output,
                    &expected_output,
                    tolerance,
                    &format!("{what} output"),
                )?;
                for ((name, var), expected) in NAMES.iter().zip(cast.variables()).zip(&expected) {
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
    let case = Case::new(2, 3, 3, 2, 300)?;
    let variables: Vec<(&str, &Var)> = NAMES.into_iter().zip(case.variables()).collect();
    let report = check_gradients(
        &variables,
        || weighted_sum(&case.kernel()?, 4),
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
fn constants_get_no_gradient_and_bad_shapes_are_errors() -> Result {
    let case = Case::new(2, 3, 3, 2, 310)?;
    let (input, initial) = (
        case.input.as_tensor().detach(),
        case.initial.as_tensor().detach(),
    );
    let output = lstm_sequence(
        &input,
        case.weight_ih.as_tensor(),
        case.weight_hh.as_tensor(),
        case.bias.as_tensor(),
        &initial,
    )?;
    let store = weighted_sum(&output, 5)?.backward()?;
    assert!(store.get(&input).is_none() && store.get(&initial).is_none());
    assert!(store.get(case.weight_hh.as_tensor()).is_some());

    let wrong = normal(&[8, 3], 313, 1.0)?;
    let error = lstm_sequence(
        &input,
        case.weight_ih.as_tensor(),
        &wrong,
        case.bias.as_tensor(),
        &initial,
    )
    .unwrap_err();
    assert!(error.to_string().contains("W_hh"), "{error}");
    let empty = Tensor::zeros((2, 0, 3), DType::F64, &Device::Cpu)?;
    let error = lstm_sequence(
        &empty,
        case.weight_ih.as_tensor(),
        case.weight_hh.as_tensor(),
        case.bias.as_tensor(),
        &initial,
    )
    .unwrap_err();
    assert!(error.to_string().contains("at least one"), "{error}");
    Ok(())
}
