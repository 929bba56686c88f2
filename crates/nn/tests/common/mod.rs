//! What the kernel tests share: comparing a tensor with a reference, element by element.

use dl_tensor::{DType, Tensor};

/// The tests' error type (`Send + Sync`, so that results can cross a Rayon pool).
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The elements of `tensor` as f64, in row-major order.
pub fn flat(tensor: &Tensor) -> Result<Vec<f64>> {
    Ok(tensor.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
}

/// Every element within `tolerance` · max(1, |expected|), shapes equal.
pub fn assert_close(actual: &Tensor, expected: &Tensor, tolerance: f64, what: &str) -> Result {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    for (index, (a, e)) in flat(actual)?.iter().zip(flat(expected)?).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "{what}: element {index} is {a}, expected {e}"
        );
    }
    Ok(())
}
