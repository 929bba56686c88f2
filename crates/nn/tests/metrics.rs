//! Behaviour of the metrics: the confusion matrix from scores, precision and recall, its
//! display, and accuracy.

use dl_nn::{accuracy, ConfusionMatrix, NnError};
use dl_tensor::{Device, Tensor};

/// Six examples over three classes. The predicted class is each row's largest score:
///   row: 0    1    2    3    4    5
///   true 0    0    1    1    2    2
///   pred 0    1    1    2    2    2
fn scores_and_labels() -> (Tensor, Tensor) {
    let scores = Tensor::new(
        &[
            [0.7f32, 0.2, 0.1],
            [0.3, 0.6, 0.1],
            [-1.0, 2.0, 0.5],
            [0.1, 0.2, 0.7],
            [0.0, 0.1, 0.9],
            [0.2, 0.3, 0.5],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let labels = Tensor::new(&[0u32, 0, 1, 1, 2, 2], &Device::Cpu).unwrap();
    (scores, labels)
}

#[test]
fn confusion_matrix_counts_match_hand_counts() {
    let (scores, labels) = scores_and_labels();
    let mut matrix = ConfusionMatrix::new(3);
    matrix.add_scores(&scores, &labels).unwrap();
    // Counts (rows: true class, columns: predicted class), from the table above:
    //   true 0: predicted 0 once, 1 once
    //   true 1: predicted 1 once, 2 once
    //   true 2: predicted 2 twice
    let expected = [[1, 1, 0], [0, 1, 1], [0, 0, 2]];
    for (actual, row) in expected.iter().enumerate() {
        for (predicted, &count) in row.iter().enumerate() {
            assert_eq!(
                matrix.count(actual, predicted),
                count,
                "({actual}, {predicted})"
            );
        }
    }
    assert_eq!(matrix.classes(), 3);
    assert_eq!(matrix.total(), 6);
    // Correct: the diagonal, 1 + 1 + 2 = 4 of 6.
    assert!((matrix.accuracy() - 4.0 / 6.0).abs() < 1e-12);
}

#[test]
fn precision_and_recall_match_hand_computation() {
    let (scores, labels) = scores_and_labels();
    let mut matrix = ConfusionMatrix::new(3);
    matrix.add_scores(&scores, &labels).unwrap();
    // Precision of c = count(c, c) / column sum; recall of c = count(c, c) / row sum.
    // class 0: column [1, 0, 0] → 1/1; row [1, 1, 0] → 1/2.
    // class 1: column [1, 1, 0] → 1/2; row [0, 1, 1] → 1/2.
    // class 2: column [0, 1, 2] → 2/3; row [0, 0, 2] → 2/2.
    let close = |value: Option<f64>, expected: f64| {
        let value = value.expect("defined");
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
    };
    close(matrix.precision(0), 1.0);
    close(matrix.recall(0), 0.5);
    close(matrix.precision(1), 0.5);
    close(matrix.recall(1), 0.5);
    close(matrix.precision(2), 2.0 / 3.0);
    close(matrix.recall(2), 1.0);
}

#[test]
fn undefined_precision_and_recall_are_none() {
    // Class 2 never occurs and is never predicted: both ratios are 0/0.
    let mut matrix = ConfusionMatrix::new(3);
    matrix.add_pairs(&[0, 1, 1], &[0, 1, 0]).unwrap();
    assert_eq!(matrix.precision(2), None);
    assert_eq!(matrix.recall(2), None);
    assert_eq!(ConfusionMatrix::new(2).accuracy(), 0.0);
}

#[test]
fn batches_accumulate() {
    let (scores, labels) = scores_and_labels();
    let mut matrix = ConfusionMatrix::new(3);
    matrix
        .add_scores(
            &scores.narrow(0, 0, 3).unwrap(),
            &labels.narrow(0, 0, 3).unwrap(),
        )
        .unwrap();
    matrix
        .add_scores(
            &scores.narrow(0, 3, 3).unwrap(),
            &labels.narrow(0, 3, 3).unwrap(),
        )
        .unwrap();
    let mut whole = ConfusionMatrix::new(3);
    whole.add_scores(&scores, &labels).unwrap();
    assert_eq!(matrix, whole);
    // Labels of another integer type count the same.
    let mut from_i64 = ConfusionMatrix::new(3);
    from_i64
        .add_scores(&scores, &labels.to_dtype(dl_tensor::DType::I64).unwrap())
        .unwrap();
    assert_eq!(from_i64, whole);
}

#[test]
fn display_shows_counts_precision_and_recall() {
    let (scores, labels) = scores_and_labels();
    let mut matrix = ConfusionMatrix::new(3);
    matrix.add_scores(&scores, &labels).unwrap();
    let text = matrix.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("precision") && lines[0].contains("recall"),
        "{text}"
    );
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&header[1..4], &["0", "1", "2"], "{text}");
    // Each row: the true class, its three counts, then precision and recall in percent.
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        vec!["0", "1", "1", "0", "100.00%", "50.00%"],
        "{text}"
    );
    assert_eq!(
        rows[1],
        vec!["1", "0", "1", "1", "50.00%", "50.00%"],
        "{text}"
    );
    assert_eq!(
        rows[2],
        vec!["2", "0", "0", "2", "66.67%", "100.00%"],
        "{text}"
    );
    // An undefined ratio shows as '-'.
    let mut sparse = ConfusionMatrix::new(2);
    sparse.add_pairs(&[0], &[0]).unwrap();
    let last_row: Vec<String> = sparse
        .to_string()
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(last_row, vec!["1", "0", "0", "-", "-"]);
}

#[test]
fn confusion_matrix_rejects_inputs_that_do_not_fit() {
    let (scores, labels) = scores_and_labels();
    let mut matrix = ConfusionMatrix::new(4);
    // Scores with 3 columns for a 4-class matrix.
    assert!(matches!(
        matrix.add_scores(&scores, &labels),
        Err(NnError::Target { .. })
    ));
    let mut matrix = ConfusionMatrix::new(3);
    // Five labels for six rows.
    assert!(matrix
        .add_scores(&scores, &labels.narrow(0, 0, 5).unwrap())
        .is_err());
    // A label outside the classes.
    let bad_labels = Tensor::new(&[0u32, 0, 1, 1, 2, 3], &Device::Cpu).unwrap();
    let error = matrix.add_scores(&scores, &bad_labels).unwrap_err();
    assert!(error.to_string().contains('3'), "{error}");
    assert!(matrix.add_pairs(&[0, 1], &[0]).is_err());
    // Nothing was counted by the failed calls.
    assert_eq!(matrix.total(), 0);
}

#[test]
fn accuracy_by_hand() {
    let (scores, labels) = scores_and_labels();
    // Rows 0, 2, 4 and 5 are right: 4/6.
    let value = accuracy(&scores, &labels).unwrap();
    assert!((value - 4.0 / 6.0).abs() < 1e-12, "{value}");
    let mut matrix = ConfusionMatrix::new(3);
    matrix.add_scores(&scores, &labels).unwrap();
    assert!((matrix.accuracy() - value).abs() < 1e-12);
    // All right and all wrong.
    let all_right = Tensor::new(&[0u32, 1, 1, 2, 2, 2], &Device::Cpu).unwrap();
    assert_eq!(accuracy(&scores, &all_right).unwrap(), 1.0);
    let all_wrong = Tensor::new(&[2u32, 2, 0, 0, 0, 1], &Device::Cpu).unwrap();
    assert_eq!(accuracy(&scores, &all_wrong).unwrap(), 0.0);
    // i64 labels work the same.
    let as_i64 = labels.to_dtype(dl_tensor::DType::I64).unwrap();
    assert_eq!(accuracy(&scores, &as_i64).unwrap(), value);
}

#[test]
fn accuracy_rejects_shape_mismatch_and_handles_empty_batches() {
    let (scores, labels) = scores_and_labels();
    assert!(accuracy(&scores, &labels.narrow(0, 0, 4).unwrap()).is_err());
    assert!(accuracy(&scores.flatten_all().unwrap(), &labels).is_err());
    let empty_scores = Tensor::zeros((0, 3), dl_tensor::DType::F32, &Device::Cpu).unwrap();
    let empty_labels = Tensor::zeros(0, dl_tensor::DType::U32, &Device::Cpu).unwrap();
    assert_eq!(accuracy(&empty_scores, &empty_labels).unwrap(), 0.0);
}
