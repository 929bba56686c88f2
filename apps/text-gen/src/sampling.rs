//! Choosing the next token from the model's scores (course §5.2, `model.predict(start_string)`
//! made explicit).
//!
//! The model outputs logits z; the distribution it predicts is softmax(z). Sampling from
//! softmax(z / T) with a temperature T reshapes it: T < 1 sharpens it towards the most likely
//! token (T → 0 is greedy decoding, always the arg-max), T > 1 flattens it towards uniform.
//! Top-k keeps only the k most likely tokens; top-p (nucleus sampling) keeps the smallest set of
//! most likely tokens whose probabilities add up to at least p. Both cut off the long tail of
//! unlikely tokens that makes sampled text derail.

use anyhow::{bail, Result};
use dl_tensor::SeededRng;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// T >= 0; 0 means greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (k >= 1).
    pub top_k: Option<usize>,
    /// Keep the most likely tokens up to cumulative probability p in (0, 1].
    pub top_p: Option<f32>,
}

impl Sampling {
    /// Checks the ranges, with messages naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            bail!(
                "--temperature must be 0 (greedy) or positive, got {}",
                self.temperature
            );
        }
        if self.top_k == Some(0) {
            bail!("--top-k must be at least 1 (1 is greedy), got 0");
        }
        if let Some(top_p) = self.top_p {
            if !(top_p > 0.0 && top_p <= 1.0) {
                bail!("--top-p must be in (0, 1], got {top_p}");
            }
        }
        Ok(())
    }
}

/// Reusable buffers of [`Sampler::sample`], so that sampling allocates nothing per token.
#[derive(Debug, Default)]
pub struct Sampler {
    weights: Vec<f32>,
    order: Vec<usize>,
}

/// The index of the largest score (the first one on a tie); NaN never wins.
pub fn greedy(logits: &[f32]) -> usize {
    let mut best = 0;
    for (index, &score) in logits.iter().enumerate() {
        if score > logits[best] || logits[best].is_nan() {
            best = index;
        }
    }
    best
}

impl Sampler {
    /// Draws a token id from `logits` with `sampling`; the draw comes from `rng`.
    pub fn sample(
        &mut self,
        logits: &[f32],
        sampling: &Sampling,
        rng: &mut SeededRng,
    ) -> Result<u32> {
        if logits.is_empty() {
            bail!("the model produced no scores to sample from");
        }
        if sampling.temperature == 0.0 || sampling.top_k == Some(1) {
            return Ok(greedy(logits) as u32);
        }
        let largest = logits[greedy(logits)];
        // exp((z − max) / T): the softmax numerators, without overflow.
        self.weights.clear();
        self.weights.extend(
            logits
                .iter()
                .map(|&score| ((score - largest) / sampling.temperature).exp()),
        );
        let vocabulary = logits.len();
        let top_k = sampling.top_k.unwrap_or(vocabulary).min(vocabulary);
        let top_p = sampling.top_p.unwrap_or(1.0);
        if top_k < vocabulary || top_p < 1.0 {
            self.truncate(top_k, top_p);
        }
        let Some(choice) = rng.weighted_index(&self.weights) else {
            bail!("the model's scores are not finite numbers (NaN or infinity): the checkpoint may be corrupt");
        };
        Ok(choice as u32)
    }

    /// Zeroes every weight outside the `top_k` largest, then outside the smallest set of largest
    /// ones holding `top_p` of the remaining probability.
    fn truncate(&mut self, top_k: usize, top_p: f32) {
        let weights = &mut self.weights;
        self.order.clear();
        self.order.extend(0..weights.len());
        // Largest first; ties in id order, so the choice is reproducible.
        self.order
            .sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        let kept = &self.order[..top_k];
        let total: f64 = kept.iter().map(|&id| f64::from(weights[id])).sum();
        let mut cumulative = 0.0;
        let mut keep = kept.len();
        for (rank, &id) in kept.iter().enumerate() {
            cumulative += f64::from(weights[id]) / total;
            if cumulative >= f64::from(top_p) {
                keep = rank + 1;
                break;
            }
        }
        for &id in &self.order[keep..] {
            weights[id] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
        }
    }

    /// Draws `draws` tokens and counts them.
    fn histogram(logits: &[f32], sampling: &Sampling, draws: usize) -> Vec<usize> {
        let mut sampler = Sampler::default();
        let mut rng = SeededRng::new(1);
        let mut counts = vec![0; logits.len()];
        for _ in 0..draws {
            counts[sampler.sample(logits, sampling, &mut rng).unwrap() as usize] += 1;
        }
        counts
    }

    #[test]
    fn temperature_zero_is_greedy() {
        let logits = [0.1, 2.5, 2.4, -1.0];
        assert_eq!(histogram(&logits, &sampling(0.0, None, None), 50)[1], 50);
        assert_eq!(greedy(&[f32::NAN, 1.0, 3.0, 3.0]), 2);
    }

    #[test]
    fn temperature_one_follows_the_softmax() {
        // Logits ln 1, ln 2, ln 7: probabilities 0.1, 0.2, 0.7.
        let logits = [0f32, 2f32.ln(), 7f32.ln()];
        let counts = histogram(&logits, &sampling(1.0, None, None), 20_000);
        for (count, expected) in counts.iter().zip([0.1, 0.2, 0.7]) {
            let share = *count as f64 / 20_000.0;
            assert!((share - expected).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn low_temperature_sharpens_and_high_flattens() {
        let logits = [0f32, 1.0];
        let cold = histogram(&logits, &sampling(0.2, None, None), 10_000);
        let hot = histogram(&logits, &sampling(5.0, None, None), 10_000);
        // T = 0.2: odds e^5 ≈ 148 to 1; T = 5: odds e^0.2 ≈ 1.22 to 1.
        assert!(cold[0] < 150, "{cold:?}");
        assert!((4_200..4_800).contains(&hot[0]), "{hot:?}");
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        // Probabilities 0.1, 0.2, 0.3, 0.4.
        let logits = [1f32.ln(), 2f32.ln(), 3f32.ln(), 4f32.ln()];
        let top_two = histogram(&logits, &sampling(1.0, Some(2), None), 10_000);
        assert_eq!(top_two[..2], [0, 0]);
        // Renormalised: 3/7 and 4/7.
        assert!((4_000..4_600).contains(&top_two[2]), "{top_two:?}");
        // 0.4 + 0.3 = 0.7 >= 0.65: only the two most likely remain.
        let nucleus = histogram(&logits, &sampling(1.0, None, Some(0.65)), 10_000);
        assert_eq!(nucleus[..2], [0, 0]);
        // p = 1 keeps everything.
        let all = histogram(&logits, &sampling(1.0, None, Some(1.0)), 10_000);
        assert!(all.iter().all(|&count| count > 500), "{all:?}");
    }

    #[test]
    fn bad_settings_and_scores_are_errors() {
        assert!(sampling(-0.5, None, None).validate().is_err());
        assert!(sampling(f32::NAN, None, None).validate().is_err());
        assert!(sampling(1.0, Some(0), None).validate().is_err());
        assert!(sampling(1.0, None, Some(0.0)).validate().is_err());
        assert!(sampling(1.0, None, Some(1.5)).validate().is_err());
        assert!(sampling(0.0, Some(3), Some(1.0)).validate().is_ok());
        let error = Sampler::default()
            .sample(
                &[f32::NAN, f32::NAN],
                &sampling(1.0, None, None),
                &mut SeededRng::new(0),
            )
            .unwrap_err();
        assert!(error.to_string().contains("not finite"), "{error}");
    }
}
