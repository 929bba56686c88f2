//! `EnsembleModel`, the ensemble as one layer: its gradient against finite differences, and its
//! output against `combine` (the arithmetic checked by hand in `ensembles.rs`) on random members.

use dl_autograd::{check_gradients, weighted_sum, GradientCheck};
use dl_nn::{
    combine, softmax, Activation, EnsembleMethod, EnsembleModel, Layer, Mode, Sequential, VarStore,
};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

/// A small f64 classifier, 4 inputs → 5 tanh units → 3 classes, initialised from `seed`.
fn member(seed: u64) -> Box<dyn Layer> {
    let store = VarStore::new(&Device::Cpu, DType::F64, seed);
    Box::new(
        Sequential::builder(&store.root(), &[4])
            .dense(5, Activation::Tanh)
            .unwrap()
            .dense(3, Activation::Softmax)
            .unwrap()
            .build(),
    )
}

fn random_input(rows: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let values: Vec<f64> = (0..rows * 4)
        .map(|_| 4.0 * rng.uniform_f64() - 2.0)
        .collect();
    Tensor::from_vec(values, (rows, 4), &Device::Cpu).unwrap()
}

#[test]
fn mean_ensemble_backward_matches_finite_differences() {
    let ensemble =
        EnsembleModel::new(vec![member(1), member(2), member(3)], EnsembleMethod::Mean).unwrap();
    let input = Var::from_tensor(&random_input(6, 7)).unwrap();
    let report = check_gradients(
        &[("input", &input)],
        || {
            let output = ensemble
                .forward(input.as_tensor(), Mode::Eval)
                .map_err(|error| dl_tensor::candle_core::Error::Msg(error.to_string()))?;
            weighted_sum(&output, 11)
        },
        &GradientCheck::default(),
    )
    .unwrap();
    assert!(report.worst_relative_error < 1e-6, "{report}");
}

#[test]
fn outputs_are_the_log_of_what_combine_computes() {
    let members = [member(4), member(5), member(6), member(7)];
    let input = random_input(40, 9);
    let probabilities: Vec<Tensor> = members
        .iter()
        .map(|member| softmax(&member.forward(&input, Mode::Eval).unwrap()).unwrap())
        .collect();
    for method in [EnsembleMethod::Mean, EnsembleMethod::Vote] {
        let ensemble =
            EnsembleModel::new(vec![member(4), member(5), member(6), member(7)], method).unwrap();
        let output = ensemble.forward(&input, Mode::Eval).unwrap();
        let combined = combine(&probabilities, method).unwrap();
        let predicted: Vec<u32> = output.argmax(1).unwrap().to_vec1().unwrap();
        assert_eq!(predicted, combined.predictions, "{method:?}");
        let mine: Vec<f64> = output
            .exp()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let theirs: Vec<f64> = combined
            .probabilities
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let tolerance = match method {
            EnsembleMethod::Mean => 1e-12,
            // the vote output mixes in ε of the mean probabilities
            EnsembleMethod::Vote => 2.0 * dl_nn::VOTE_SMOOTHING,
        };
        for (a, b) in mine.iter().zip(&theirs) {
            assert!((a - b).abs() < tolerance, "{method:?}: {a} vs {b}");
        }
    }
}
