//! `dl_tensor::kernels::lstm_sequence` against independent references: the step loop written as
//! Candle operations (matrix product and the cell's formulas, in f64) for the outputs and every
//! gradient, with the batch split over 1, 2 and 3 threads (uneven blocks included); and finite
//! differences (`check_gradients` in f64) on the kernel itself.

mod common;

use common::{
    assert_close, assert_finite_differences, assert_gradients_close, cast_var, gradients_of, Result,
};
use dl_autograd::weighted_sum;
use dl_tensor::kernels::lstm_sequence::{
    lstm_sequence, lstm_sequence_from_tokens, LstmSequenceOutput,
};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

/// N(0, scale²) values of `shape` in f64.
fn normal(shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    Ok(SeededRng::new(seed)
        .normal_tensor(shape, 0.0, scale, &Device::Cpu)?
        .to_dtype(DType::F64)?)
}

/// A sequence kernel: (input or token ids, input weight, W_hh, b, h₀ | c₀) → outputs.
type SequenceKernel = fn(
    &Tensor,
    &Tensor,
    &Tensor,
    &Tensor,
    &Tensor,
) -> dl_tensor::candle_core::Result<LstmSequenceOutput>;

/// An LSTM layer's parameters and initial state, f64 variables: (W_ih, W_hh, b, h₀ | c₀).
struct Recurrent {
    weight_ih: Var,
    weight_hh: Var,
    bias: Var,
    initial: Var,
}

impl Recurrent {
    /// Random parameters for `inputs` input features, drawn from seeds `seed` to `seed + 3`.
    fn new(batch: usize, inputs: usize, hidden: usize, seed: u64) -> Result<Self> {
        let scale = 1.0 / (hidden as f32).sqrt();
        Ok(Self {
            weight_ih: Var::from_tensor(&normal(&[4 * hidden, inputs], seed, scale)?)?,
            weight_hh: Var::from_tensor(&normal(&[4 * hidden, hidden], seed + 1, scale)?)?,
            bias: Var::from_tensor(&normal(&[4 * hidden], seed + 2, 0.5)?)?,
            initial: Var::from_tensor(&normal(&[batch, 2 * hidden], seed + 3, 1.0)?)?,
        })
    }

    /// The same parameters in `dtype`.
    fn cast(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            weight_ih: cast_var(&self.weight_ih, dtype)?,
            weight_hh: cast_var(&self.weight_hh, dtype)?,
            bias: cast_var(&self.bias, dtype)?,
            initial: cast_var(&self.initial, dtype)?,
        })
    }

    /// `first` (the case's input variable), then these four variables: the order of the
    /// cases' names.
    fn variables_after<'a>(&'a self, first: &'a Var) -> [&'a Var; 5] {
        [
            first,
            &self.weight_ih,
            &self.weight_hh,
            &self.bias,
            &self.initial,
        ]
    }

    /// `kernel` (`lstm_sequence`, or `lstm_sequence_from_tokens` with W_ih Eᵀ as
    /// `input_weight`) on `input` with these parameters: every output, as [`all_outputs`].
    fn run(
        &self,
        kernel: SequenceKernel,
        input: &Tensor,
        input_weight: &Tensor,
    ) -> dl_tensor::candle_core::Result<Tensor> {
        all_outputs(&kernel(
            input,
            input_weight,
            self.weight_hh.as_tensor(),
            self.bias.as_tensor(),
            self.initial.as_tensor(),
        )?)
    }

    /// The reference: [`step_loop`] on `input` with these parameters.
    fn step_loop(&self, input: &Tensor) -> Result<Tensor> {
        step_loop(
            input,
            self.weight_ih.as_tensor(),
            self.weight_hh.as_tensor(),
            self.bias.as_tensor(),
            self.initial.as_tensor(),
        )
    }
}

/// The input and parameters of one case: (x, W_ih, W_hh, b, h₀ | c₀).
struct Case {
    input: Var,
    recurrent: Recurrent,
}

impl Case {
    fn new(batch: usize, steps: usize, features: usize, hidden: usize, seed: u64) -> Result<Self> {
        Ok(Self {
            input: Var::from_tensor(&normal(&[batch, steps, features], seed, 1.0)?)?,
            recurrent: Recurrent::new(batch, features, hidden, seed + 1)?,
        })
    }
}

impl KernelCase for Case {
    const NAMES: [&'static str; 5] = NAMES;

    fn variables(&self) -> [&Var; 5] {
        self.recurrent.variables_after(&self.input)
    }

    /// The same case in `dtype`.
    fn cast(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            input: cast_var(&self.input, dtype)?,
            recurrent: self.recurrent.cast(dtype)?,
        })
    }

    fn kernel(&self) -> dl_tensor::candle_core::Result<Tensor> {
        self.recurrent.run(
            lstm_sequence,
            self.input.as_tensor(),
            self.recurrent.weight_ih.as_tensor(),
        )
    }

    /// The reference: the step loop of [`step_loop`] on this case's tensors.
    fn reference(&self) -> Result<Tensor> {
        self.recurrent.step_loop(self.input.as_tensor())
    }
}

/// Every output of the kernel in one flat tensor, so that one weighted sum sends a gradient
/// through each: the hidden states of every step, then h_T, then c_T.
fn all_outputs(output: &LstmSequenceOutput) -> dl_tensor::candle_core::Result<Tensor> {
    Tensor::cat(
        &[
            output.hidden.flatten_all()?,
            output.final_hidden.flatten_all()?,
            output.final_cell.flatten_all()?,
        ],
        0,
    )
}

/// The reference: for t = 0, 1, …: a = x_t W_ihᵀ + b + h W_hhᵀ, then the cell's formulas, as
/// Candle operations; returns what [`all_outputs`] gives for the kernel.
fn step_loop(
    input: &Tensor,
    weight_ih: &Tensor,
    weight_hh: &Tensor,
    bias: &Tensor,
    initial: &Tensor,
) -> Result<Tensor> {
    let steps = input.dim(1)?;
    let h = weight_hh.dims()[1];
    let sigmoid = |x: Tensor| -> Result<Tensor> { Ok(x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?) };
    let mut hidden = initial.narrow(1, 0, h)?;
    let mut cell = initial.narrow(1, h, h)?;
    let (mut hiddens, mut cells) = (Vec::new(), Vec::new());
    for t in 0..steps {
        let a = input
            .narrow(1, t, 1)?
            .squeeze(1)?
            .matmul(&weight_ih.t()?)?
            .broadcast_add(bias)?
            .add(&hidden.matmul(&weight_hh.t()?)?)?;
        let i = sigmoid(a.narrow(1, 0, h)?)?;
        let f = sigmoid(a.narrow(1, h, h)?)?;
        let g = a.narrow(1, 2 * h, h)?.tanh()?;
        let o = sigmoid(a.narrow(1, 3 * h, h)?)?;
        cell = f.mul(&cell)?.add(&i.mul(&g)?)?;
        hidden = o.mul(&cell.tanh()?)?;
        hiddens.push(hidden.clone());
        cells.push(cell.clone());
    }
    Ok(all_outputs(&LstmSequenceOutput {
        hidden: Tensor::stack(&hiddens, 1)?,
        final_hidden: hidden,
        final_cell: cell,
    })?)
}

const NAMES: [&str; 5] = ["x", "W_ih", "W_hh", "b", "initial state"];

/// A case the kernel is checked on: its variables, their names, the kernel's outputs and the
/// reference's (both flattened by [`all_outputs`]), and the same case in another dtype.
trait KernelCase: Sized + Sync {
    const NAMES: [&'static str; 5];
    fn variables(&self) -> [&Var; 5];
    fn cast(&self, dtype: DType) -> Result<Self>;
    fn kernel(&self) -> dl_tensor::candle_core::Result<Tensor>;
    fn reference(&self) -> Result<Tensor>;
}

/// The kernel's outputs and the gradients of every variable against the reference's (computed
/// in f64), in f32 and f64, with the batch split over 1, 2 and 3 threads.
fn matches_the_reference<C: KernelCase>(case: &C, what: &str) -> Result {
    let expected_output = case.reference()?;
    let expected = gradients_of(&expected_output, &case.variables(), 9)?;
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        for (dtype, tolerance) in [(DType::F32, 5e-5), (DType::F64, 1e-11)] {
            let what = format!("{what} {dtype:?} {threads} threads");
            let cast = case.cast(dtype)?;
            let (output, gradients) = pool.install(|| -> Result<_> {
                let output = cast.kernel()?;
                let gradients = gradients_of(&output, &cast.variables(), 9)?;
                Ok((output, gradients))
            })?;
            assert_close(
                &output,
                &expected_output,
                tolerance,
                &format!("{what} output"),
            )?;
            assert_gradients_close(&what, &C::NAMES, &gradients, &expected, tolerance)?;
        }
    }
    Ok(())
}

/// The kernel's gradients on `case` (in f64) against finite differences.
fn matches_finite_differences<C: KernelCase>(case: &C, what: &str) -> Result {
    let variables: Vec<(&str, &Var)> = C::NAMES.into_iter().zip(case.variables()).collect();
    assert_finite_differences(what, &variables, || weighted_sum(&case.kernel()?, 4))
}

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
        matches_the_reference(
            &case,
            &format!("lstm sequence {batch}x{steps}x{features}x{hidden}"),
        )?;
    }
    Ok(())
}

#[test]
fn lstm_sequence_gradients_match_finite_differences() -> Result {
    matches_finite_differences(&Case::new(2, 3, 3, 2, 300)?, "lstm sequence")
}

#[test]
fn constants_get_no_gradient_and_bad_shapes_are_errors() -> Result {
    let case = Case::new(2, 3, 3, 2, 310)?;
    let (input, initial) = (
        case.input.as_tensor().detach(),
        case.recurrent.initial.as_tensor().detach(),
    );
    let output = lstm_sequence(
        &input,
        case.recurrent.weight_ih.as_tensor(),
        case.recurrent.weight_hh.as_tensor(),
        case.recurrent.bias.as_tensor(),
        &initial,
    )?;
    let store = weighted_sum(&output.hidden, 5)?.backward()?;
    assert!(store.get(&input).is_none() && store.get(&initial).is_none());
    assert!(store.get(case.recurrent.weight_hh.as_tensor()).is_some());

    let wrong = normal(&[8, 3], 313, 1.0)?;
    let error = lstm_sequence(
        &input,
        case.recurrent.weight_ih.as_tensor(),
        &wrong,
        case.recurrent.bias.as_tensor(),
        &initial,
    )
    .unwrap_err();
    assert!(error.to_string().contains("W_hh"), "{error}");
    let empty = Tensor::zeros((2, 0, 3), DType::F64, &Device::Cpu)?;
    let error = lstm_sequence(
        &empty,
        case.recurrent.weight_ih.as_tensor(),
        case.recurrent.weight_hh.as_tensor(),
        case.recurrent.bias.as_tensor(),
        &initial,
    )
    .unwrap_err();
    assert!(error.to_string().contains("at least one"), "{error}");
    Ok(())
}

/// Embedding → LSTM over token ids: the table E (V, E) and the layer's parameters, f64.
struct TokenCase {
    tokens: Tensor,
    table: Var,
    recurrent: Recurrent,
}

const TOKEN_NAMES: [&str; 5] = ["E", "W_ih", "W_hh", "b", "initial state"];

impl TokenCase {
    fn new(
        batch: usize,
        steps: usize,
        vocabulary: usize,
        embedding: usize,
        hidden: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut rng = SeededRng::new(seed);
        // Ids drawn with repeats, so that several positions add into one column's gradient.
        let ids: Vec<u32> = (0..batch * steps)
            .map(|_| rng.below(vocabulary) as u32)
            .collect();
        Ok(Self {
            tokens: Tensor::from_vec(ids, (batch, steps), &Device::Cpu)?,
            table: Var::from_tensor(&normal(&[vocabulary, embedding], seed + 1, 1.0)?)?,
            recurrent: Recurrent::new(batch, embedding, hidden, seed + 2)?,
        })
    }
}

impl KernelCase for TokenCase {
    const NAMES: [&'static str; 5] = TOKEN_NAMES;

    fn variables(&self) -> [&Var; 5] {
        self.recurrent.variables_after(&self.table)
    }

    fn cast(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            tokens: self.tokens.clone(),
            table: cast_var(&self.table, dtype)?,
            recurrent: self.recurrent.cast(dtype)?,
        })
    }

    /// The kernel on token ids, with W_ih Eᵀ formed by Candle (so gradients reach E and W_ih).
    fn kernel(&self) -> dl_tensor::candle_core::Result<Tensor> {
        let input_weight = self
            .recurrent
            .weight_ih
            .as_tensor()
            .matmul(&self.table.as_tensor().t()?)?;
        self.recurrent
            .run(lstm_sequence_from_tokens, &self.tokens, &input_weight)
    }

    /// The reference: Candle's embedding lookup, then the step loop.
    fn reference(&self) -> Result<Tensor> {
        let (batch, steps) = self.tokens.dims2()?;
        let embedded = self
            .table
            .as_tensor()
            .embedding(&self.tokens.flatten_all()?)?
            .reshape((batch, steps, self.table.dims()[1]))?;
        self.recurrent.step_loop(&embedded)
    }
}

#[test]
fn lstm_sequence_from_tokens_matches_embedding_then_the_step_loop() -> Result {
    // (batch, steps, vocabulary, embedding, hidden)
    for (index, (batch, steps, vocabulary, embedding, hidden)) in [
        (1, 1, 1, 1, 1),
        (3, 5, 7, 4, 3),
        (7, 9, 65, 16, 20),
        (32, 12, 65, 64, 128),
    ]
    .into_iter()
    .enumerate()
    {
        let case = TokenCase::new(
            batch,
            steps,
            vocabulary,
            embedding,
            hidden,
            400 + 10 * index as u64,
        )?;
        matches_the_reference(
            &case,
            &format!("lstm from tokens {batch}x{steps}, V {vocabulary}, E {embedding}, H {hidden}"),
        )?;
    }
    Ok(())
}

#[test]
fn lstm_sequence_from_tokens_gradients_match_finite_differences() -> Result {
    matches_finite_differences(&TokenCase::new(2, 4, 5, 3, 2, 500)?, "lstm from tokens")
}

#[test]
fn token_ids_outside_the_vocabulary_or_not_u32_are_errors() -> Result {
    let case = TokenCase::new(2, 3, 4, 3, 2, 510)?;
    let weight = case
        .recurrent
        .weight_ih
        .as_tensor()
        .matmul(&case.table.as_tensor().t()?)?;
    let run = |tokens: &Tensor| {
        lstm_sequence_from_tokens(
            tokens,
            &weight,
            case.recurrent.weight_hh.as_tensor(),
            case.recurrent.bias.as_tensor(),
            case.recurrent.initial.as_tensor(),
        )
    };
    let outside = Tensor::new(&[[0u32, 1, 4], [3, 2, 1]], &Device::Cpu)?;
    let error = run(&outside).unwrap_err().to_string();
    assert!(
        error.contains("token id 4") && error.contains("vocabulary of 4"),
        "{error}"
    );
    let wide = Tensor::new(&[[0i64, 1, 2], [3, 2, 1]], &Device::Cpu)?;
    let error = run(&wide).unwrap_err().to_string();
    assert!(error.contains("u32"), "{error}");
    let fewer_rows = Tensor::new(&[[0u32, 1, 2]], &Device::Cpu)?;
    let error = run(&fewer_rows).unwrap_err().to_string();
    assert!(error.contains("initial state"), "{error}");
    Ok(())
}
