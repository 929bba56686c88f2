//! Helpers shared by the training tests.

use dl_tensor::Tensor;

/// Fails unless both snapshots hold the same tensors bit for bit (named in the message).
pub fn assert_same_weights(expected: &[(String, Tensor)], actual: &[(String, Tensor)]) {
    assert_eq!(expected.len(), actual.len());
    for ((name, expected), (_, actual)) in expected.iter().zip(actual) {
        let expected: Vec<f32> = expected.flatten_all().unwrap().to_vec1().unwrap();
        let actual: Vec<f32> = actual.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(expected, actual, "{name} differs after resuming");
    }
}
