//! The Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio & Kégl 2011, "Algorithms for
//! Hyper-Parameter Optimization"), univariate, with Optuna's defaults.
//!
//! The finished trials are split into the best γ(n) = min(⌈0.1 n⌉, 25) — the *good* ones — and
//! the rest (pruned trials count as bad). For each parameter a density is fitted to each group:
//! l(x) over the good values, g(x) over the bad; for numbers a mixture of Gaussians truncated to
//! [low, high] (on the log scale for `log` parameters), one per value plus a broad prior, each as
//! wide as the gap to its neighbours; for categories the smoothed frequencies. 24 candidates are
//! drawn from l and the one with the largest l(x)/g(x) — the largest expected improvement, as the
//! paper shows — is proposed. Until 10 trials have finished, configurations are random.

use dl_tensor::SeededRng;

use crate::{
    sampler::random_config, Config, Direction, Parameter, SearchSpace, TrialRecord, TrialState,
};

/// TPE's settings (Optuna's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeSettings {
    /// Random configurations before the model is used.
    pub startup_trials: usize,
    /// Candidates drawn from l(x) per parameter.
    pub candidates: usize,
    /// The weight of the prior component (numbers) or pseudo-count (categories).
    pub prior_weight: f64,
}

impl Default for TpeSettings {
    fn default() -> Self {
        Self {
            startup_trials: 10,
            candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// The configuration TPE proposes after the trials in `visible`.
pub fn sample(
    space: &SearchSpace,
    rng: &mut SeededRng,
    visible: &[&TrialRecord],
    direction: Direction,
    settings: &TpeSettings,
) -> Config {
    let mut complete: Vec<(&TrialRecord, f64)> = visible
        .iter()
        .filter(|trial| trial.state == TrialState::Complete)
        .filter_map(|trial| {
            trial
                .value
                .filter(|value| value.is_finite())
                .map(|value| (*trial, value))
        })
        .collect();
    let pruned: Vec<&TrialRecord> = visible
        .iter()
        .copied()
        .filter(|trial| trial.state == TrialState::Pruned)
        .collect();
    let finished = complete.len() + pruned.len();
    if finished < settings.startup_trials.max(1) || complete.is_empty() {
        return random_config(space, rng);
    }
    complete.sort_by(|a, b| match direction {
        Direction::Maximize => b.1.total_cmp(&a.1),
        Direction::Minimize => a.1.total_cmp(&b.1),
    });
    // ANCHOR: tpe-split
    let good_count = ((0.1 * finished as f64).ceil() as usize)
        .clamp(1, 25)
        .min(complete.len());
    let good: Vec<&TrialRecord> = complete[..good_count]
        .iter()
        .map(|(trial, _)| *trial)
        .collect();
    let bad: Vec<&TrialRecord> = complete[good_count..]
        .iter()
        .map(|(trial, _)| *trial)
        .chain(pruned)
        .collect();
    // ANCHOR_END: tpe-split
    space
        .parameters()
        .map(|(name, parameter)| {
            let value = match parameter {
                Parameter::Fixed { value } => value.clone(),
                Parameter::Categorical { choices } => {
                    let weights = |group: &[&TrialRecord]| {
                        let mut weights =
                            vec![settings.prior_weight / choices.len() as f64; choices.len()];
                        for trial in group {
                            if let Some(index) = choices
                                .iter()
                                .position(|choice| Some(choice) == trial.config.get(name))
                            {
                                weights[index] += 1.0;
                            }
                        }
                        let total: f64 = weights.iter().sum();
                        weights
                            .iter()
                            .map(|weight| weight / total)
                            .collect::<Vec<f64>>()
                    };
                    let (below, above) = (weights(&good), weights(&bad));
                    let best = (0..settings.candidates.max(1))
                        .map(|_| pick(rng, &below))
                        .max_by(|&a, &b| {
                            let score = |index: usize| below[index].ln() - above[index].ln();
                            score(a).total_cmp(&score(b))
                        })
                        .unwrap_or(0);
                    choices[best].clone()
                }
                Parameter::Int { .. } | Parameter::Float { .. } => {
                    let (low, high) = parameter.scale_bounds().expect("a number");
                    let points = |group: &[&TrialRecord]| -> Vec<f64> {
                        group
                            .iter()
                            .filter_map(|trial| {
                                trial
                                    .config
                                    .get(name)
                                    .and_then(|value| parameter.position_of(value))
                            })
                            .collect()
                    };
                    let below = Parzen::fit(&points(&good), low, high, settings.prior_weight);
                    let above = Parzen::fit(&points(&bad), low, high, settings.prior_weight);
                    (0..settings.candidates.max(1))
                        .map(|_| parameter.value_at(below.sample(rng)))
                        .map(|value| {
                            let position = parameter.position_of(&value).unwrap_or(low);
                            (
                                below.log_density(position) - above.log_density(position),
                                value,
                            )
                        })
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, value)| value)
                        .unwrap_or_else(|| parameter.value_at(0.5 * (low + high)))
                }
            };
            (name.to_string(), value)
        })
        .collect()
}

/// An index drawn with probabilities `weights` (summing to 1).
fn pick(rng: &mut SeededRng, weights: &[f64]) -> usize {
    let mut target = rng.uniform_f64();
    for (index, weight) in weights.iter().enumerate() {
        if target < *weight {
            return index;
        }
        target -= weight;
    }
    weights.len() - 1
}

/// A mixture of Gaussians truncated to [low, high].
#[derive(Debug, Clone)]
struct Parzen {
    means: Vec<f64>,
    widths: Vec<f64>,
    weights: Vec<f64>,
    low: f64,
    high: f64,
}

impl Parzen {
    /// One component per point, as wide as the larger gap to its sorted neighbours (the bounds
    /// at the ends), clipped to [range / min(100, 1 + n), range]; plus the prior, centred with
    /// the whole range as its width.
    fn fit(points: &[f64], low: f64, high: f64, prior_weight: f64) -> Self {
        let range = (high - low).max(f64::MIN_POSITIVE);
        let mut sorted = points.to_vec();
        sorted.sort_by(f64::total_cmp);
        let narrowest = range / (100f64).min(1.0 + sorted.len() as f64);
        let mut means = Vec::with_capacity(sorted.len() + 1);
        let mut widths = Vec::with_capacity(sorted.len() + 1);
        for (index, &mean) in sorted.iter().enumerate() {
            let left = if index == 0 { low } else { sorted[index - 1] };
            let right = sorted.get(index + 1).copied().unwrap_or(high);
            means.push(mean);
            widths.push((mean - left).max(right - mean).clamp(narrowest, range));
        }
        let mut weights = vec![1.0; sorted.len()];
        means.push(0.5 * (low + high));
        widths.push(range);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|weight| *weight /= total);
        Self {
            means,
            widths,
            weights,
            low,
            high,
        }
    }

    /// A draw: a component by weight, then its Gaussian until the draw lies in bounds.
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        if self.high <= self.low {
            return self.low;
        }
        let component = pick(rng, &self.weights);
        for _ in 0..100 {
            let draw = self.means[component] + self.widths[component] * standard_normal(rng);
            if (self.low..=self.high).contains(&draw) {
                return draw;
            }
        }
        self.means[component].clamp(self.low, self.high)
    }

    /// ln of the truncated mixture's density at `x`.
    fn log_density(&self, x: f64) -> f64 {
        let terms: Vec<f64> = (0..self.means.len())
            .map(|index| {
                let (mean, width) = (self.means[index], self.widths[index]);
                let mass =
                    normal_cdf((self.high - mean) / width) - normal_cdf((self.low - mean) / width);
                let z = (x - mean) / width;
                self.weights[index].ln()
                    - 0.5 * z * z
                    - (width * (2.0 * std::f64::consts::PI).sqrt()).ln()
                    - mass.max(1e-300).ln()
            })
            .collect();
        let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        largest
            + terms
                .iter()
                .map(|term| (term - largest).exp())
                .sum::<f64>()
                .ln()
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut SeededRng) -> f64 {
    let u = rng.uniform_f64().max(f64::MIN_POSITIVE);
    let v = rng.uniform_f64();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Φ(z), the standard normal CDF, from the complementary error function.
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// erfc(x) with a fractional error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let polynomial = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * polynomial.exp();
    if x >= 0.0 {
        value
    } else {
        2.0 - value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_cdf_matches_its_table() {
        // Φ(0) = 0.5, Φ(1) = 0.841344746, Φ(−1.96) = 0.024997895 (standard normal tables)
        for (z, expected) in [(0.0, 0.5), (1.0, 0.841_344_746), (-1.96, 0.024_997_895)] {
            assert!((normal_cdf(z) - expected).abs() < 1e-7, "{z}");
        }
    }

    #[test]
    fn a_parzen_density_integrates_to_one_over_its_bounds() {
        let parzen = Parzen::fit(&[0.2, 0.25, 0.9], 0.0, 1.0, 1.0);
        let steps = 20_000;
        let integral: f64 = (0..steps)
            .map(|index| {
                parzen
                    .log_density((index as f64 + 0.5) / steps as f64)
                    .exp()
                    / steps as f64
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        let mut rng = SeededRng::new(1);
        assert!((0..1000).all(|_| (0.0..=1.0).contains(&parzen.sample(&mut rng))));
    }
}
