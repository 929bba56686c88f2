//! The sample-quality measures against hand computations: the Inception Score of a small
//! probability table worked out term by term, the Fréchet distance of 2-D Gaussians against
//! the closed form tr √(Σ₁Σ₂) = √(tr(Σ₁Σ₂) + 2√(det Σ₁ det Σ₂)) (for 2x2 matrices, with
//! covariances that do not commute), and the statistics of a small feature set.

use dl_nn::{
    class_histogram, confident_share, frechet_distance, inception_score, kl_to_uniform,
    FeatureStatistics,
};
use dl_tensor::{Device, Tensor};

#[test]
fn the_inception_score_of_a_small_table_by_hand() {
    // Three samples over two classes: p(y) = ((0.9 + 0.2 + 0.5)/3, (0.1 + 0.8 + 0.5)/3).
    let rows = [[0.9f64, 0.1], [0.2, 0.8], [0.5, 0.5]];
    let marginal = [1.6 / 3.0, 1.4 / 3.0];
    let kl = |row: &[f64; 2]| -> f64 {
        row.iter()
            .zip(marginal)
            .map(|(p, q)| p * (p / q).ln())
            .sum()
    };
    let expected = ((kl(&rows[0]) + kl(&rows[1]) + kl(&rows[2])) / 3.0).exp();
    let table = Tensor::new(&rows, &Device::Cpu).unwrap();
    let score = inception_score(&table, 1).unwrap();
    assert!(
        (score.mean - expected).abs() < 1e-12,
        "{} vs {expected}",
        score.mean
    );
    assert_eq!(score.std, 0.0);
    // Two splits of one sample each: every split is certain of itself, IS = 1 each.
    let split = inception_score(&table.narrow(0, 0, 2).unwrap(), 2).unwrap();
    assert!((split.mean - 1.0).abs() < 1e-12);
    assert!(inception_score(&table, 0).is_err());
    assert!(inception_score(&table, 4).is_err());
}

#[test]
fn the_histogram_its_divergence_and_the_confident_share() {
    let scores = Tensor::new(
        &[[0.95f64, 0.05], [0.6, 0.4], [0.3, 0.7], [0.02, 0.98]],
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(class_histogram(&scores).unwrap(), [0.5, 0.5]);
    assert_eq!(confident_share(&scores, 0.9).unwrap(), 0.5);
    assert_eq!(kl_to_uniform(&[0.5, 0.5]), 0.0);
    // Everything in one of ten classes: ln 10.
    let mut collapsed = [0.0; 10];
    collapsed[3] = 1.0;
    assert!((kl_to_uniform(&collapsed) - 10f64.ln()).abs() < 1e-12);
    // 0.75 / 0.25: 0.75 ln 1.5 + 0.25 ln 0.5.
    let expected = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
    assert!((kl_to_uniform(&[0.75, 0.25]) - expected).abs() < 1e-12);
}

#[test]
fn feature_statistics_are_the_mean_and_the_unbiased_covariance() {
    // x = (1, 2, 3), y = (2, 4, 9): means 2 and 5; var x = 1, var y = (9 + 1 + 16)/2 = 13,
    // cov = ((−1)(−3) + 0·(−1) + 1·4)/2 = 3.5.
    let features = Tensor::new(&[[1.0f64, 2.0], [2.0, 4.0], [3.0, 9.0]], &Device::Cpu).unwrap();
    let statistics = FeatureStatistics::of(&features).unwrap();
    assert_eq!(statistics.mean, [2.0, 5.0]);
    assert_eq!(statistics.covariance, [1.0, 3.5, 3.5, 13.0]);
    assert!(FeatureStatistics::of(&features.narrow(0, 0, 1).unwrap()).is_err());
}

#[test]
fn the_frechet_distance_of_two_dimensional_gaussians_has_a_closed_form() {
    let first = FeatureStatistics {
        mean: vec![0.5, -1.0],
        covariance: vec![2.0, 0.6, 0.6, 1.0],
    };
    let second = FeatureStatistics {
        mean: vec![1.5, 0.0],
        covariance: vec![0.5, -0.3, -0.3, 3.0],
    };
    // Σ₁Σ₂ = [[2·0.5 + 0.6·(−0.3), …], …]; its trace and the determinants by hand.
    let trace_product = (2.0 * 0.5 + 0.6 * -0.3) + (0.6 * -0.3 + 1.0 * 3.0);
    let determinants = (2.0 * 1.0 - 0.6 * 0.6) * (0.5 * 3.0 - 0.3 * 0.3);
    let cross = (trace_product + 2.0 * f64::sqrt(determinants)).sqrt();
    let expected = (1.0 + 1.0) + (2.0 + 1.0) + (0.5 + 3.0) - 2.0 * cross;
    let distance = frechet_distance(&first, &second).unwrap();
    assert!(
        (distance - expected).abs() < 1e-9,
        "{distance} vs {expected}"
    );
    // Symmetric, and 0 from a distribution to itself.
    assert!((frechet_distance(&second, &first).unwrap() - expected).abs() < 1e-9);
    assert!(frechet_distance(&first, &first).unwrap().abs() < 1e-9);
    let other_size = FeatureStatistics {
        mean: vec![0.0],
        covariance: vec![1.0],
    };
    assert!(frechet_distance(&first, &other_size).is_err());
}
