//! Spearman's rank correlation ρ, the one statistic two crates need: dl-explain compares
//! saliency maps with it (Adebayo et al. 2018) and dl-tune ranks hyper-parameters' importance.

/// Ranks of `values` from 1, ties sharing their average rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = average;
        }
        start = end;
    }
    ranks
}

/// Spearman's ρ of two equally long series: the Pearson correlation of their ranks, 0 when
/// either is constant; `None` when the lengths differ or the series are empty.
///
/// ```
/// let rho = dl_tensor::spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).unwrap();
/// assert!((rho - 1.0).abs() < 1e-12);
/// ```
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    // ranks 1..=n (ties averaged) always have the mean (n + 1) / 2
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut covariance, mut variance_a, mut variance_b) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        covariance += (x - mean) * (y - mean);
        variance_a += (x - mean).powi(2);
        variance_b += (y - mean).powi(2);
    }
    if variance_a == 0.0 || variance_b == 0.0 {
        return Some(0.0);
    }
    Some(covariance / (variance_a * variance_b).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_by_hand() {
        // identical orders: 1; reversed: −1; ties share ranks: [1, 2, 2, 3] → ranks [1, 2.5, 2.5, 4]
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[1.0, 2.0, 2.0, 3.0]), [1.0, 2.5, 2.5, 4.0]);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), Some(0.0));
        assert_eq!(spearman(&[1.0], &[1.0, 2.0]), None);
    }
}
