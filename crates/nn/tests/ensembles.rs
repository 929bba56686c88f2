//! Ensemble arithmetic against hand computations on 1-4 examples over 3 classes: soft and hard
//! voting (with both tie-breaks), the expected calibration error bin by bin, the negative
//! log-likelihood with a clamped zero, disagreement and oracle accuracy, the errors bad input
//! gets, and Jensen's inequality (the mean ensemble's NLL ≤ the members' mean NLL) on random
//! probabilities.

use dl_nn::{
    combine, expected_calibration_error, negative_log_likelihood, oracle_accuracy,
    pairwise_disagreement, EnsembleMethod, NnError,
};
use dl_tensor::{Device, SeededRng, Tensor};

/// A `(N, 3)` f64 probability table.
fn table(rows: &[[f64; 3]]) -> Tensor {
    let values: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(values, (rows.len(), 3), &Device::Cpu).unwrap()
}

fn labels(values: &[u32]) -> Tensor {
    Tensor::new(values, &Device::Cpu).unwrap()
}

fn rows_of(tensor: &Tensor) -> Vec<Vec<f64>> {
    tensor.to_vec2::<f64>().unwrap()
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "{actual} vs expected {expected}"
    );
}

/// The error's message, checked to contain every one of `parts`.
fn assert_error_names(error: NnError, parts: &[&str]) {
    let message = error.to_string();
    for part in parts {
        assert!(
            message.contains(part),
            "'{message}' does not mention '{part}'"
        );
    }
}

#[test]
fn the_mean_of_two_members() {
    let first = table(&[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]);
    let second = table(&[[0.2, 0.7, 0.1], [0.4, 0.4, 0.2]]);
    let combined = combine(&[first, second], EnsembleMethod::Mean).unwrap();
    // Row 0: ((0.6 + 0.2)/2, (0.3 + 0.7)/2, (0.1 + 0.1)/2) = (0.4, 0.5, 0.1): class 1, which
    // the first member alone got wrong.
    // Row 1: ((0.2 + 0.4)/2, (0.2 + 0.4)/2, (0.6 + 0.2)/2) = (0.3, 0.3, 0.4): class 2.
    let expected = [[0.4, 0.5, 0.1], [0.3, 0.3, 0.4]];
    for (row, want) in rows_of(&combined.probabilities).iter().zip(expected) {
        row.iter().zip(want).for_each(|(&a, b)| assert_close(a, b));
    }
    assert_eq!(combined.predictions, vec![1, 2]);
}

#[test]
fn a_vote_with_a_clear_majority_overrules_the_confident_member() {
    let leaning = table(&[[0.3, 0.4, 0.3]]);
    let sure = table(&[[0.9, 0.05, 0.05]]);
    let members = [leaning.clone(), leaning, sure];
    // Votes: class 1, class 1, class 0 → shares (1/3, 2/3, 0), class 1.
    let vote = combine(&members, EnsembleMethod::Vote).unwrap();
    let shares = &rows_of(&vote.probabilities)[0];
    [1.0 / 3.0, 2.0 / 3.0, 0.0]
        .iter()
        .zip(shares)
        .for_each(|(&want, &got)| assert_close(got, want));
    assert_eq!(vote.predictions, vec![1]);
    // The mean, (0.3 + 0.3 + 0.9)/3 = 0.5 against (0.4 + 0.4 + 0.05)/3 ≈ 0.283, says class 0.
    assert_eq!(
        combine(&members, EnsembleMethod::Mean).unwrap().predictions,
        vec![0]
    );
}

#[test]
fn a_one_one_one_vote_goes_to_the_highest_mean_probability() {
    let members = [
        table(&[[0.5, 0.3, 0.2]]),   // votes 0
        table(&[[0.1, 0.6, 0.3]]),   // votes 1
        table(&[[0.2, 0.35, 0.45]]), // votes 2
    ];
    // One vote each; the means are (0.8, 1.25, 0.95)/3: class 1 has the highest.
    let vote = combine(&members, EnsembleMethod::Vote).unwrap();
    rows_of(&vote.probabilities)[0]
        .iter()
        .for_each(|&share| assert_close(share, 1.0 / 3.0));
    assert_eq!(vote.predictions, vec![1]);
}

#[test]
fn a_vote_tied_in_mean_probability_too_goes_to_the_lowest_class() {
    // Row 0: votes for 0 and 1, means (0.5, 0.5, 0) → class 0.
    // Row 1: votes for 1 and 2, means (0.1, 0.45, 0.45) → class 1 (the lowest *tied* class, not
    // class 0, which has no vote).
    let members = [
        table(&[[0.6, 0.4, 0.0], [0.1, 0.5, 0.4]]),
        table(&[[0.4, 0.6, 0.0], [0.1, 0.4, 0.5]]),
    ];
    let vote = combine(&members, EnsembleMethod::Vote).unwrap();
    assert_eq!(vote.predictions, vec![0, 1]);
    assert_eq!(rows_of(&vote.probabilities)[1], vec![0.0, 0.5, 0.5]);
}

/// Four examples: confidences 0.9 (right), 0.7 (wrong), 0.5 (right), 0.45 (wrong).
fn four_examples() -> (Tensor, Tensor) {
    (
        table(&[
            [0.9, 0.05, 0.05], // predicts 0, label 0: right
            [0.2, 0.7, 0.1],   // predicts 1, label 2: wrong
            [0.5, 0.3, 0.2],   // predicts 0, label 0: right
            [0.45, 0.35, 0.2], // predicts 0, label 1: wrong
        ]),
        labels(&[0, 2, 0, 1]),
    )
}

#[test]
fn ece_with_three_bins_by_hand() {
    let (probabilities, labels) = four_examples();
    // Bins (0, 1/3], (1/3, 2/3], (2/3, 1]:
    // - (1/3, 2/3] holds 0.5 (right) and 0.45 (wrong): accuracy 1/2, mean confidence 0.475,
    //   weight 2/4: 0.5 · |0.5 − 0.475| = 0.0125.
    // - (2/3, 1] holds 0.9 (right) and 0.7 (wrong): accuracy 1/2, mean confidence 0.8,
    //   weight 2/4: 0.5 · |0.5 − 0.8| = 0.15.
    // ECE = 0.0125 + 0.15 = 0.1625.
    let ece = expected_calibration_error(&probabilities, &labels, 3).unwrap();
    assert_close(ece, 0.1625);
}

#[test]
fn ece_with_fifteen_bins_by_hand() {
    let (probabilities, labels) = four_examples();
    // Width 1/15 ≈ 0.0667: 0.9 · 15 = 13.5 → bin 13, 0.7 · 15 = 10.5 → bin 10,
    // 0.5 · 15 = 7.5 → bin 7, 0.45 · 15 = 6.75 → bin 6. One example per bin, weight 1/4 each:
    // ECE = (|1 − 0.9| + |0 − 0.7| + |1 − 0.5| + |0 − 0.45|) / 4 = (0.1 + 0.7 + 0.5 + 0.45) / 4
    //     = 1.75 / 4 = 0.4375.
    let ece = expected_calibration_error(&probabilities, &labels, 15).unwrap();
    assert_close(ece, 0.4375);
}

#[test]
fn ece_is_zero_when_perfectly_calibrated() {
    // Confidence 1.0, all right: |1 − 1| = 0.
    let certain = table(&[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]);
    assert_eq!(
        expected_calibration_error(&certain, &labels(&[0, 2]), 15).unwrap(),
        0.0
    );
    // Confidence 0.6 on five examples, three right: accuracy 0.6 = confidence.
    let hesitant = table(&[[0.6, 0.3, 0.1]; 5]);
    let ece = expected_calibration_error(&hesitant, &labels(&[0, 0, 0, 1, 2]), 15).unwrap();
    assert_close(ece, 0.0);
}

#[test]
fn confidences_on_bin_edges_go_to_the_bin_they_close() {
    // Two bins, (0, 0.5] and (0.5, 1].
    // 1.0 (wrong) joins 0.8 (right) in the last bin: accuracy 1/2, mean confidence 0.9,
    // ECE = 1 · |0.5 − 0.9| = 0.4. (Were 1.0 dropped, it would be 1/2 · |1 − 0.8| = 0.1.)
    let top = table(&[[1.0, 0.0, 0.0], [0.8, 0.2, 0.0]]);
    let ece = expected_calibration_error(&top, &labels(&[1, 0]), 2).unwrap();
    assert_close(ece, 0.4);
    // 0.5 (a tie: predicts class 0, right) joins 0.4 (predicts 2, wrong) in the first bin:
    // accuracy 1/2, mean confidence 0.45, ECE = 1 · |0.5 − 0.45| = 0.05. (In the second bin
    // it would be 1/2 · |0 − 0.4| + 1/2 · |1 − 0.5| = 0.45.)
    let middle = table(&[[0.5, 0.5, 0.0], [0.3, 0.3, 0.4]]);
    let ece = expected_calibration_error(&middle, &labels(&[0, 0]), 2).unwrap();
    assert_close(ece, 0.05);
}

#[test]
fn nll_by_hand_with_a_zero_probability_clamped() {
    // p(y) = 0.5, 0.25 and 0 (clamped to 1e-12):
    // NLL = (ln 2 + ln 4 + ln 10¹²) / 3 = (3 ln 2 + 12 ln 10) / 3 = ln 2 + 4 ln 10 ≈ 9.9035.
    let probabilities = table(&[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.0, 1.0, 0.0]]);
    let nll = negative_log_likelihood(&probabilities, &labels(&[0, 2, 0])).unwrap();
    assert_close(nll, 2f64.ln() + 4.0 * 10f64.ln());
    // f32 probabilities give the same (0.5 and 0.25 are exact in f32).
    let single = probabilities.to_dtype(dl_tensor::DType::F32).unwrap();
    let nll32 = negative_log_likelihood(&single, &labels(&[0, 2, 0])).unwrap();
    assert_close(nll32, nll);
}

/// Three members' predictions on four examples (argmax per row in the comments).
fn three_members() -> [Tensor; 3] {
    [
        // 0, 1, 2, 0
        table(&[
            [0.8, 0.1, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.2, 0.7],
            [0.5, 0.3, 0.2],
        ]),
        // 0, 1, 1, 1
        table(&[
            [0.6, 0.3, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.5, 0.3],
            [0.3, 0.4, 0.3],
        ]),
        // 2, 1, 2, 0
        table(&[
            [0.3, 0.2, 0.5],
            [0.3, 0.4, 0.3],
            [0.1, 0.1, 0.8],
            [0.6, 0.2, 0.2],
        ]),
    ]
}

#[test]
fn pairwise_disagreement_of_three_members_by_hand() {
    // (0, 1): 0,1,2,0 vs 0,1,1,1 differ on examples 2 and 3: 2/4.
    // (0, 2): 0,1,2,0 vs 2,1,2,0 differ on example 0: 1/4.
    // (1, 2): 0,1,1,1 vs 2,1,2,0 differ on examples 0, 2 and 3: 3/4.
    let shares = pairwise_disagreement(&three_members()).unwrap();
    assert_eq!(shares, vec![((0, 1), 0.5), ((0, 2), 0.25), ((1, 2), 0.75)]);
    // A single member has no pair.
    assert!(pairwise_disagreement(&three_members()[..1])
        .unwrap()
        .is_empty());
}

#[test]
fn oracle_accuracy_by_hand() {
    // Labels 0, 1, 1, 2. Member 0 (0,1,2,0) is right on examples 0, 1; member 1 (0,1,1,1) on
    // 0, 1, 2; member 2 (2,1,2,0) on 1. Example 3 (class 2) nobody gets: oracle 3/4.
    let oracle = oracle_accuracy(&three_members(), &labels(&[0, 1, 1, 2])).unwrap();
    assert_close(oracle, 0.75);
    // Soft voting can beat the oracle: neither member predicts class 2 (ties go to the lowest
    // index), yet their mean (0.275, 0.275, 0.45) does.
    let members = [table(&[[0.45, 0.1, 0.45]]), table(&[[0.1, 0.45, 0.45]])];
    assert_eq!(oracle_accuracy(&members, &labels(&[2])).unwrap(), 0.0);
    let mean = combine(&members, EnsembleMethod::Mean).unwrap();
    assert_eq!(mean.predictions, vec![2]);
}

#[test]
fn bad_input_gets_an_error_naming_the_problem() {
    let good = table(&[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]);
    let both = labels(&[0, 2]);

    let empty = combine(&[], EnsembleMethod::Mean).unwrap_err();
    assert_error_names(empty, &["ensemble", "at least one member"]);

    let other = table(&[[0.5, 0.3, 0.2]]);
    let mismatched = combine(&[good.clone(), other], EnsembleMethod::Vote).unwrap_err();
    assert_error_names(mismatched, &["member 1", "[1, 3]", "[2, 3]"]);

    let not_a_table = Tensor::new(&[0.5f64, 0.5], &Device::Cpu).unwrap();
    let rank = negative_log_likelihood(&not_a_table, &labels(&[0])).unwrap_err();
    assert_error_names(rank, &["(N, C)", "[2]"]);

    let short = negative_log_likelihood(&good, &labels(&[0])).unwrap_err();
    assert_error_names(short, &["labels", "[1]", "(2,)"]);
    let short = oracle_accuracy(std::slice::from_ref(&good), &labels(&[0, 1, 2])).unwrap_err();
    assert_error_names(short, &["oracle accuracy", "labels", "[3]"]);

    let outside = expected_calibration_error(&good, &labels(&[0, 3]), 15).unwrap_err();
    assert_error_names(outside, &["label 3", "position 1", "0..3"]);

    let float_labels = Tensor::new(&[0.0f32, 1.0], &Device::Cpu).unwrap();
    let float = negative_log_likelihood(&good, &float_labels).unwrap_err();
    assert_error_names(float, &["integer class indices", "F32"]);

    let no_bins = expected_calibration_error(&good, &both, 0).unwrap_err();
    assert_error_names(no_bins, &["expected calibration error", "at least 1 bin"]);

    let nan = table(&[[0.5, f64::NAN, 0.5], [0.1, 0.1, 0.8]]);
    let error = combine(&[good.clone(), nan], EnsembleMethod::Mean).unwrap_err();
    assert_error_names(error, &["member 1", "row 0, class 1", "NaN", "[0, 1]"]);
    let nan = table(&[[0.5, 0.3, 0.2], [0.1, f64::NAN, 0.8]]);
    let error = expected_calibration_error(&nan, &both, 15).unwrap_err();
    assert_error_names(error, &["probabilities", "row 1, class 1", "NaN"]);

    let negative = table(&[[1.5, -0.3, -0.2], [0.1, 0.1, 0.8]]);
    let error = negative_log_likelihood(&negative, &both).unwrap_err();
    assert_error_names(error, &["row 0, class 0", "1.5", "[0, 1]"]);
}

/// `rows` random probability rows over `classes` classes, each uniform draws normalised.
fn random_probabilities(rng: &mut SeededRng, rows: usize, classes: usize) -> Tensor {
    let mut values = Vec::with_capacity(rows * classes);
    for _ in 0..rows {
        let draws: Vec<f64> = (0..classes).map(|_| rng.uniform_f64() + 1e-3).collect();
        let total: f64 = draws.iter().sum();
        values.extend(draws.iter().map(|draw| draw / total));
    }
    Tensor::from_vec(values, (rows, classes), &Device::Cpu).unwrap()
}

#[test]
fn the_mean_ensembles_nll_is_at_most_the_members_mean_nll() {
    // Jensen: −ln is convex, so −ln((1/M) Σ pₘ) ≤ (1/M) Σ −ln pₘ for every example, and so for
    // the average over examples. (No probability here is near the 1e-12 clamp, which the
    // inequality does not survive.)
    let mut rng = SeededRng::new(2017);
    for case in 0..50 {
        let (members, rows, classes) = (2 + rng.below(4), 1 + rng.below(8), 2 + rng.below(5));
        let tables: Vec<Tensor> = (0..members)
            .map(|_| random_probabilities(&mut rng, rows, classes))
            .collect();
        let truth: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
        let truth = labels(&truth);
        let members_mean = tables
            .iter()
            .map(|member| negative_log_likelihood(member, &truth).unwrap())
            .sum::<f64>()
            / members as f64;
        let mean = combine(&tables, EnsembleMethod::Mean).unwrap();
        let ensemble = negative_log_likelihood(&mean.probabilities, &truth).unwrap();
        assert!(
            ensemble <= members_mean + 1e-12,
            "case {case}: ensemble NLL {ensemble} > members' mean {members_mean}"
        );
    }
}
