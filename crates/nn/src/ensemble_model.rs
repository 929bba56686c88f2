//! An ensemble as one model (course appendix, FAQ "how to improve a model": 集成): several
//! trained classifiers behind one [`Layer`], so that anything that evaluates or serves a model
//! takes an ensemble unchanged (Lakshminarayanan et al., "Simple and Scalable Predictive
//! Uncertainty Estimation using Deep Ensembles", 2017).
//!
//! A classifier's `forward` gives logits; the ensemble's gives the logarithm of its combined
//! class probabilities, which are logits too: softmax(ln p) = p when the row of p sums to 1. So
//! cross-entropy on the ensemble's output is the ensemble's negative log-likelihood, and its
//! argmax is the ensemble's prediction.
//!
//! - [`EnsembleMethod::Mean`]: ln((1/K) Σₖ softmax(zₖ)) = logsumexpₖ(log_softmax(zₖ)) − ln K,
//!   computed in the log domain so a confident member never underflows to ln 0. Built from
//!   ordinary ops, so gradients flow to the input (saliency works through an ensemble).
//! - [`EnsembleMethod::Vote`]: ln((1 − ε)·votes/K + ε·mean), ε = [`VOTE_SMOOTHING`]. The small
//!   share of the mean probabilities keeps every log finite and settles ties between vote
//!   shares exactly as [`crate::combine`] does (the higher mean probability wins, then the lower
//!   class), since ε·mean < (1 − ε)/K, the smallest gap between two different vote shares.
//!   Votes have no gradient.

use dl_tensor::{Device, Tensor};

use crate::{combine, log_softmax, softmax, EnsembleMethod, Layer, Mode, NnError, Result};

/// The share of the mean probabilities mixed into a vote ensemble's output (see the module
/// documentation).
pub const VOTE_SMOOTHING: f64 = 1e-3;

/// Classifiers that predict together: a [`Layer`] whose output is the log of their combined
/// class probabilities.
///
/// ```
/// use dl_nn::{softmax, Activation, EnsembleMethod, EnsembleModel, Layer, Mode, Sequential, VarStore};
/// use dl_tensor::{DType, Device, Tensor};
///
/// let member = |seed| -> dl_nn::Result<Box<dyn Layer>> {
///     let store = VarStore::new(&Device::Cpu, DType::F32, seed);
///     Ok(Box::new(Sequential::builder(&store.root(), &[4]).dense(3, Activation::Softmax)?.build()))
/// };
/// let ensemble = EnsembleModel::new(vec![member(1)?, member(2)?], EnsembleMethod::Mean)?;
/// let input = Tensor::ones((2, 4), DType::F32, &Device::Cpu)?;
/// let probabilities = softmax(&ensemble.forward(&input, Mode::Eval)?)?;
/// let row_sums: Vec<f32> = probabilities.sum(1)?.to_vec1()?;
/// assert!(row_sums.iter().all(|sum| (sum - 1.0).abs() < 1e-5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EnsembleModel {
    members: Vec<Box<dyn Layer>>,
    method: EnsembleMethod,
}

impl EnsembleModel {
    /// An ensemble of `members` (at least one; each `forward` gives `(N, C)` logits over the
    /// same classes) combined by `method`.
    pub fn new(members: Vec<Box<dyn Layer>>, method: EnsembleMethod) -> Result<Self> {
        if members.is_empty() {
            return Err(NnError::config(
                "ensemble members",
                "none given: an ensemble needs at least one model",
            ));
        }
        Ok(Self { members, method })
    }

    /// The members, in order.
    pub fn members(&self) -> &[Box<dyn Layer>] {
        &self.members
    }

    /// How the members' predictions are combined.
    pub fn method(&self) -> EnsembleMethod {
        self.method
    }

    /// Each member's `(N, C)` logits for `input`, checked to have one shape.
    fn member_logits(&self, input: &Tensor, mode: Mode) -> Result<Vec<Tensor>> {
        let logits = self
            .members
            .iter()
            .map(|member| member.forward(input, mode))
            .collect::<Result<Vec<_>>>()?;
        let first = logits[0].dims().to_vec();
        if first.len() != 2 {
            return Err(NnError::config(
                "ensemble members",
                format!("member 1 gives output of shape {first:?}; an ensemble combines (N, C) class scores"),
            ));
        }
        if let Some(index) = logits.iter().position(|member| member.dims() != first) {
            return Err(NnError::config(
                "ensemble members",
                format!(
                    "member {} gives output of shape {:?}, member 1 {first:?}: the members must predict the same classes",
                    index + 1,
                    logits[index].dims()
                ),
            ));
        }
        Ok(logits)
    }
}

impl Layer for EnsembleModel {
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor> {
        let logits = self.member_logits(input, mode)?;
        let count = logits.len() as f64;
        match self.method {
            EnsembleMethod::Mean => {
                let log_probabilities =
                    logits.iter().map(log_softmax).collect::<Result<Vec<_>>>()?;
                // (K, N, C) → logsumexp over the members, shifted by their maximum
                let stacked = Tensor::stack(&log_probabilities, 0)?;
                let maximum = stacked.max_keepdim(0)?.detach();
                let log_sum = stacked
                    .broadcast_sub(&maximum)?
                    .exp()?
                    .sum_keepdim(0)?
                    .log()?
                    .add(&maximum)?;
                Ok((log_sum.squeeze(0)? - count.ln())?)
            }
            EnsembleMethod::Vote => {
                let probabilities = logits
                    .iter()
                    .map(|member| Ok(softmax(member)?.detach().to_device(&Device::Cpu)?))
                    .collect::<Result<Vec<_>>>()?;
                let votes = combine(&probabilities, EnsembleMethod::Vote)?.probabilities;
                let mean = combine(&probabilities, EnsembleMethod::Mean)?.probabilities;
                let mixed = ((votes * (1.0 - VOTE_SMOOTHING))? + (mean * VOTE_SMOOTHING)?)?;
                Ok(mixed
                    .log()?
                    .to_dtype(logits[0].dtype())?
                    .to_device(logits[0].device())?)
            }
        }
    }

    fn kind(&self) -> &'static str {
        "Ensemble"
    }
}

impl std::fmt::Debug for EnsembleModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EnsembleModel")
            .field("members", &self.members.len())
            .field("method", &self.method)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use dl_tensor::{DType, D};

    use super::*;

    /// The argmax of each row of `(N, C)` `values`.
    fn row_argmax(values: &Tensor) -> Vec<u32> {
        values.argmax(D::Minus1).unwrap().to_vec1().unwrap()
    }

    /// A layer that ignores its input and returns fixed logits.
    struct Fixed(Tensor);

    impl Layer for Fixed {
        fn forward(&self, _input: &Tensor, _mode: Mode) -> Result<Tensor> {
            Ok(self.0.clone())
        }
        fn kind(&self) -> &'static str {
            "Fixed"
        }
    }

    fn fixed(probabilities: &[[f64; 3]]) -> Box<dyn Layer> {
        let flat: Vec<f64> = probabilities.iter().flatten().map(|p| p.ln()).collect();
        Box::new(Fixed(
            Tensor::from_vec(flat, (probabilities.len(), 3), &Device::Cpu).unwrap(),
        ))
    }

    fn probabilities_of(model: &EnsembleModel) -> Vec<Vec<f64>> {
        let input = Tensor::zeros((1, 1), DType::F64, &Device::Cpu).unwrap();
        let output = model.forward(&input, Mode::Eval).unwrap();
        output.exp().unwrap().to_vec2().unwrap()
    }

    #[test]
    fn mean_is_the_mean_of_the_members_probabilities() {
        // (0.5, 0.3, 0.2) and (0.1, 0.6, 0.3): mean (0.3, 0.45, 0.25), by hand
        let model = EnsembleModel::new(
            vec![fixed(&[[0.5, 0.3, 0.2]]), fixed(&[[0.1, 0.6, 0.3]])],
            EnsembleMethod::Mean,
        )
        .unwrap();
        let row = &probabilities_of(&model)[0];
        for (got, want) in row.iter().zip([0.3, 0.45, 0.25]) {
            assert!((got - want).abs() < 1e-12, "{row:?}");
        }
    }

    #[test]
    fn mean_of_certain_members_stays_finite() {
        // member logits (0, −800, −800): softmax underflows to exactly (1, 0, 0) in f64
        let certain = Tensor::new(&[[0.0f64, -800.0, -800.0]], &Device::Cpu).unwrap();
        let other = Tensor::new(&[[-800.0f64, 0.0, -800.0]], &Device::Cpu).unwrap();
        let model = EnsembleModel::new(
            vec![Box::new(Fixed(certain)), Box::new(Fixed(other))],
            EnsembleMethod::Mean,
        )
        .unwrap();
        let input = Tensor::zeros((1, 1), DType::F64, &Device::Cpu).unwrap();
        let output: Vec<Vec<f64>> = model
            .forward(&input, Mode::Eval)
            .unwrap()
            .to_vec2()
            .unwrap();
        // ln((1 + e⁻⁸⁰⁰)/2) = ln(1/2) for the two certain classes; ln((e⁻⁸⁰⁰ + e⁻⁸⁰⁰)/2) = −800
        // for the third: finite, where ln of the mean of the softmaxes would be ln 0 = −∞
        assert!((output[0][0] - 0.5f64.ln()).abs() < 1e-12, "{output:?}");
        assert!((output[0][2] + 800.0).abs() < 1e-9, "{output:?}");
    }

    #[test]
    fn vote_ties_go_to_the_higher_mean_probability() {
        // two members, one vote each for classes 0 and 1: a tie of vote shares (0.5, 0.5, 0);
        // the mean probabilities (0.375, 0.45, 0.175) favour class 1
        let model = EnsembleModel::new(
            vec![fixed(&[[0.4, 0.35, 0.25]]), fixed(&[[0.35, 0.55, 0.1]])],
            EnsembleMethod::Vote,
        )
        .unwrap();
        let input = Tensor::zeros((1, 1), DType::F64, &Device::Cpu).unwrap();
        assert_eq!(row_argmax(&model.forward(&input, Mode::Eval).unwrap()), [1]);
        let row = &probabilities_of(&model)[0];
        // (1 − ε)·0.5 + ε·0.45 for class 1, by hand
        let want = (1.0 - VOTE_SMOOTHING) * 0.5 + VOTE_SMOOTHING * 0.45;
        assert!((row[1] - want).abs() < 1e-12, "{row:?}");
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{row:?}");
    }

    #[test]
    fn members_of_different_shapes_are_refused() {
        let model = EnsembleModel::new(
            vec![
                fixed(&[[0.5, 0.3, 0.2]]),
                fixed(&[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]),
            ],
            EnsembleMethod::Mean,
        )
        .unwrap();
        let input = Tensor::zeros((1, 1), DType::F64, &Device::Cpu).unwrap();
        let error = model.forward(&input, Mode::Eval).unwrap_err().to_string();
        assert!(error.contains("member 2"), "{error}");
    }

    #[test]
    fn an_empty_ensemble_is_refused() {
        let error = EnsembleModel::new(Vec::new(), EnsembleMethod::Mean)
            .unwrap_err()
            .to_string();
        assert!(error.contains("at least one"), "{error}");
    }
}
