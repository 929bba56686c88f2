//! How good generated samples are (course §2.3 生成对抗网络), measured with a classifier the
//! way the GAN literature does, and read against real data:
//!
//! - **Inception Score** (Salimans et al., "Improved Techniques for Training GANs", 2016):
//!   IS = exp(E_x KL(p(y|x) ‖ p(y))). High when each sample is classified confidently (p(y|x)
//!   peaked) and the classes are diverse (p(y) flat); at most the number of classes. Computed
//!   on splits (10 of 1,000 samples) and reported as mean ± standard deviation over them.
//! - **Fréchet distance** (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
//!   Converge to a Local Nash Equilibrium", 2017, the FID): the distance between Gaussians
//!   fitted to the classifier's features of the samples and of real images,
//!   d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½).
//! - The **class histogram** of the predicted classes, its KL divergence to the uniform
//!   distribution (0 when every class is equally frequent; mode collapse raises it), and the
//!   share of **confident** samples (max p > 0.9).
//!
//! The matrix square roots come from the eigendecomposition of symmetric matrices (cyclic
//! Jacobi rotations, in f64), which needs no linear-algebra dependency.

use dl_tensor::{DType, Tensor};

use crate::{NnError, Result};

/// The rows of a `(N, K)` tensor as f64 vectors.
fn rows_of(what: &str, matrix: &Tensor) -> Result<(usize, usize, Vec<f64>)> {
    let (rows, columns) = matrix.dims2().map_err(|_| {
        NnError::shape(
            what,
            format!("expected a (N, K) matrix, got shape {:?}", matrix.dims()),
        )
    })?;
    if rows == 0 || columns == 0 {
        return Err(NnError::shape(
            what,
            "needs at least one row and one column",
        ));
    }
    let values = matrix
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    if values.iter().any(|value| !value.is_finite()) {
        return Err(NnError::shape(what, "holds a NaN or infinite value"));
    }
    Ok((rows, columns, values))
}

/// An Inception Score: the mean and standard deviation over the splits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InceptionScore {
    /// The mean of the splits' scores.
    pub mean: f64,
    /// Their (population) standard deviation.
    pub std: f64,
}

/// The Inception Score of class probabilities `(N, K)` (each row p(y|x), summing to 1), over
/// `splits` consecutive splits of N / `splits` rows (the remainder is left out).
///
/// ```
/// use dl_nn::inception_score;
/// use dl_tensor::{Device, Tensor};
///
/// // Two samples, each certain of a different class: KL(p(y|x) ‖ p(y)) = ln 2, IS = 2.
/// let certain = Tensor::new(&[[1.0f64, 0.0], [0.0, 1.0]], &Device::Cpu)?;
/// assert!((inception_score(&certain, 1)?.mean - 2.0).abs() < 1e-12);
/// // Identical predictions: p(y|x) = p(y), IS = 1 (the least).
/// let undecided = Tensor::new(&[[0.5f64, 0.5], [0.5, 0.5]], &Device::Cpu)?;
/// assert!((inception_score(&undecided, 1)?.mean - 1.0).abs() < 1e-12);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
pub fn inception_score(probabilities: &Tensor, splits: usize) -> Result<InceptionScore> {
    let (rows, classes, values) = rows_of("inception score", probabilities)?;
    if splits == 0 || splits > rows {
        return Err(NnError::config(
            "inception score",
            format!("needs 1 to {rows} splits (one sample each at least), got {splits}"),
        ));
    }
    let size = rows / splits;
    let scores: Vec<f64> = (0..splits)
        .map(|split| {
            let part = &values[split * size * classes..(split + 1) * size * classes];
            let mut marginal = vec![0.0; classes];
            for row in part.chunks_exact(classes) {
                marginal.iter_mut().zip(row).for_each(|(sum, p)| *sum += p);
            }
            marginal.iter_mut().for_each(|p| *p /= size as f64);
            let mean_kl = part
                .chunks_exact(classes)
                .map(|row| {
                    row.iter()
                        .zip(&marginal)
                        .filter(|(&p, _)| p > 0.0)
                        .map(|(&p, &q)| p * (p.ln() - q.ln()))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / size as f64;
            mean_kl.exp()
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let variance = scores
        .iter()
        .map(|score| (score - mean).powi(2))
        .sum::<f64>()
        / splits as f64;
    Ok(InceptionScore {
        mean,
        std: variance.sqrt(),
    })
}

/// The share of each class among the predicted classes (argmax of each row of `(N, K)`
/// scores).
pub fn class_histogram(scores: &Tensor) -> Result<Vec<f64>> {
    let (rows, classes, values) = rows_of("class histogram", scores)?;
    let mut counts = vec![0usize; classes];
    for row in values.chunks_exact(classes) {
        let best = row
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (index, &value)| {
                if value > best.1 {
                    (index, value)
                } else {
                    best
                }
            })
            .0;
        counts[best] += 1;
    }
    Ok(counts
        .into_iter()
        .map(|count| count as f64 / rows as f64)
        .collect())
}

/// KL(h ‖ uniform) = Σ h ln(K·h) of a histogram `h` over K classes, in nats: 0 when every class
/// is equally frequent, ln K when one class has everything.
pub fn kl_to_uniform(histogram: &[f64]) -> f64 {
    let classes = histogram.len() as f64;
    histogram
        .iter()
        .filter(|&&share| share > 0.0)
        .map(|&share| share * (classes * share).ln())
        .sum()
}

/// The share of rows of `(N, K)` probabilities whose largest value exceeds `threshold`.
pub fn confident_share(probabilities: &Tensor, threshold: f64) -> Result<f64> {
    let (rows, classes, values) = rows_of("confident share", probabilities)?;
    let confident = values
        .chunks_exact(classes)
        .filter(|row| row.iter().any(|&p| p > threshold))
        .count();
    Ok(confident as f64 / rows as f64)
}

/// The mean and covariance of a set of feature vectors: the Gaussian the Fréchet distance
/// compares.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStatistics {
    /// μ, one value per feature.
    pub mean: Vec<f64>,
    /// Σ, row-major `(K, K)`, with the unbiased 1/(N − 1) normalisation (NumPy's `cov`).
    pub covariance: Vec<f64>,
}

impl FeatureStatistics {
    /// The statistics of `(N, K)` features, N ≥ 2.
    pub fn of(features: &Tensor) -> Result<Self> {
        let (rows, size, values) = rows_of("feature statistics", features)?;
        if rows < 2 {
            return Err(NnError::shape(
                "feature statistics",
                "a covariance needs at least 2 feature vectors",
            ));
        }
        let mut mean = vec![0.0; size];
        for row in values.chunks_exact(size) {
            mean.iter_mut().zip(row).for_each(|(sum, x)| *sum += x);
        }
        mean.iter_mut().for_each(|value| *value /= rows as f64);
        let mut covariance = vec![0.0; size * size];
        let mut centred = vec![0.0; size];
        for row in values.chunks_exact(size) {
            centred
                .iter_mut()
                .zip(row.iter().zip(&mean))
                .for_each(|(c, (x, m))| *c = x - m);
            for (i, &ci) in centred.iter().enumerate() {
                if ci == 0.0 {
                    continue;
                }
                let target = &mut covariance[i * size..(i + 1) * size];
                target
                    .iter_mut()
                    .zip(&centred)
                    .for_each(|(t, &cj)| *t += ci * cj);
            }
        }
        covariance
            .iter_mut()
            .for_each(|value| *value /= (rows - 1) as f64);
        Ok(Self { mean, covariance })
    }

    /// The number of features K.
    pub fn size(&self) -> usize {
        self.mean.len()
    }
}

/// The Fréchet distance d² between the Gaussians of two feature sets (see the module
/// documentation); 0 for identical statistics.
///
/// ```
/// use dl_nn::{frechet_distance, FeatureStatistics};
///
/// // One-dimensional Gaussians: d² = (μ₁ − μ₂)² + σ₁² + σ₂² − 2σ₁σ₂ = (μ₁ − μ₂)² + (σ₁ − σ₂)².
/// let a = FeatureStatistics { mean: vec![1.0], covariance: vec![4.0] };
/// let b = FeatureStatistics { mean: vec![3.0], covariance: vec![1.0] };
/// assert!((frechet_distance(&a, &b)? - (4.0 + 1.0)).abs() < 1e-9);
/// # Ok::<(), dl_nn::NnError>(())
/// ```
pub fn frechet_distance(first: &FeatureStatistics, second: &FeatureStatistics) -> Result<f64> {
    let size = first.size();
    if second.size() != size
        || first.covariance.len() != size * size
        || second.covariance.len() != size * size
    {
        return Err(NnError::shape(
            "Fréchet distance",
            format!(
                "the two feature sets differ in size ({} and {})",
                first.size(),
                second.size()
            ),
        ));
    }
    let mean_term: f64 = first
        .mean
        .iter()
        .zip(&second.mean)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let trace = |matrix: &[f64]| (0..size).map(|i| matrix[i * size + i]).sum::<f64>();
    // tr (Σ₁^½ Σ₂ Σ₁^½)^½: Σ₁^½ from Σ₁'s eigendecomposition, then the eigenvalues of the
    // symmetric positive semi-definite product.
    let root = symmetric_square_root(&first.covariance, size);
    let product = multiply(&multiply(&root, &second.covariance, size), &root, size);
    let cross = symmetric_eigen(&symmetrised(&product, size), size)
        .0
        .iter()
        .map(|&value| value.max(0.0).sqrt())
        .sum::<f64>();
    Ok((mean_term + trace(&first.covariance) + trace(&second.covariance) - 2.0 * cross).max(0.0))
}

/// A · B for row-major `(n, n)` matrices.
fn multiply(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut product = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            let row = &mut product[i * n..(i + 1) * n];
            row.iter_mut()
                .zip(&b[k * n..(k + 1) * n])
                .for_each(|(p, &bkj)| *p += aik * bkj);
        }
    }
    product
}

/// (M + Mᵀ) / 2: removes the rounding asymmetry of a product that is symmetric in exact
/// arithmetic.
fn symmetrised(matrix: &[f64], n: usize) -> Vec<f64> {
    let mut result = matrix.to_vec();
    for i in 0..n {
        for j in 0..i {
            let mean = 0.5 * (matrix[i * n + j] + matrix[j * n + i]);
            result[i * n + j] = mean;
            result[j * n + i] = mean;
        }
    }
    result
}

/// S^½ = V diag(√max(λ, 0)) Vᵀ of a symmetric positive semi-definite S.
fn symmetric_square_root(matrix: &[f64], n: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(&symmetrised(matrix, n), n);
    let mut root = vec![0.0; n * n];
    for (k, &value) in values.iter().enumerate() {
        let scale = value.max(0.0).sqrt();
        if scale == 0.0 {
            continue;
        }
        for i in 0..n {
            let vik = vectors[i * n + k] * scale;
            for j in 0..n {
                root[i * n + j] += vik * vectors[j * n + k];
            }
        }
    }
    root
}

/// The eigenvalues and eigenvectors (the columns of V, row-major) of a symmetric matrix, by
/// cyclic Jacobi rotations: each rotation zeroes one off-diagonal pair, and sweeps repeat
/// until the off-diagonal part is negligible.
fn symmetric_eigen(matrix: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let scale: f64 = a
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_decomposition() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut values, vectors) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-12 && (values[1] - 3.0).abs() < 1e-12);
        // V is orthogonal.
        let vt_v = multiply(
            &[vectors[0], vectors[2], vectors[1], vectors[3]],
            &vectors,
            2,
        );
        assert!((vt_v[0] - 1.0).abs() < 1e-12 && vt_v[1].abs() < 1e-12);
    }

    #[test]
    fn the_square_root_squares_back() {
        let matrix = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let root = symmetric_square_root(&matrix, 3);
        let square = multiply(&root, &root, 3);
        for (a, b) in square.iter().zip(matrix) {
            assert!((a - b).abs() < 1e-10, "{square:?}");
        }
    }
}
