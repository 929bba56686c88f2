//! The seeded random generator behind every random choice in dl-practice: weight
//! initialisation, dropout masks, shuffling and sampling.
//!
//! Candle's CPU generator cannot be seeded, so two runs of the same program would start from
//! different weights. `SeededRng` is xoshiro256** (Blackman and Vigna) seeded through SplitMix64:
//! small enough to read, fast, and the same sequence on every platform, so the same seed gives
//! the same model bit for bit.

use candle_core::{Device, Result, Shape, Tensor};

/// A deterministic pseudo-random generator (xoshiro256**).
///
/// ```
/// use dl_tensor::SeededRng;
/// let mut first = SeededRng::new(7);
/// let mut second = SeededRng::new(7);
/// assert_eq!(first.next_u64(), second.next_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRng {
    state: [u64; 4],
}

/// One step of SplitMix64, used to spread a 64-bit seed over xoshiro's 256-bit state.
fn split_mix(value: &mut u64) -> u64 {
    *value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut mixed = *value;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^ (mixed >> 31)
}

impl SeededRng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut spreader = seed;
        let state = [
            split_mix(&mut spreader),
            split_mix(&mut spreader),
            split_mix(&mut spreader),
            split_mix(&mut spreader),
        ];
        Self { state }
    }

    /// An independent generator for one purpose (say, dropout) derived from this one's seed
    /// material, so adding a random draw in one place does not shift the draws of another.
    pub fn fork(&mut self, stream: u64) -> Self {
        let base = self.next_u64();
        Self::new(base ^ stream.wrapping_mul(0xD605_BBB5_8C8A_BBB7))
    }

    /// The full internal state, for saving a training run and resuming it exactly.
    pub fn state(&self) -> [u64; 4] {
        self.state
    }

    /// Rebuilds a generator from [`SeededRng::state`]. An all-zero state (which xoshiro can never
    /// leave) is replaced by the state of seed 0.
    pub fn from_state(state: [u64; 4]) -> Self {
        if state == [0; 4] {
            return Self::new(0);
        }
        Self { state }
    }

    /// The next 64 uniformly random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = self.state[1] << 17;
        self.state[2] ^= self.state[0];
        self.state[3] ^= self.state[1];
        self.state[1] ^= self.state[2];
        self.state[0] ^= self.state[3];
        self.state[2] ^= shifted;
        self.state[3] = self.state[3].rotate_left(45);
        result
    }

    /// A uniform number in `[0, 1)` with 24 random bits (every f32 step in that range).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// A uniform number in `[0, 1)` with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `[low, high)`.
    pub fn uniform_range(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.uniform()
    }

    /// A uniform integer in `0..bound` without modulo bias (Lemire's method). `bound` must be > 0.
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "SeededRng::below needs a positive bound");
        let bound = bound as u64;
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as usize;
            }
        }
    }

    /// A standard normal number, N(0, 1), by the Box–Muller transform.
    pub fn normal(&mut self) -> f32 {
        let radius_draw = 1.0 - self.uniform_f64();
        let angle = std::f64::consts::TAU * self.uniform_f64();
        ((-2.0 * radius_draw.ln()).sqrt() * angle.cos()) as f32
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = self.below(index + 1);
            items.swap(index, other);
        }
    }

    /// A random ordering of `0..count`.
    pub fn permutation(&mut self, count: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..count).collect();
        self.shuffle(&mut order);
        order
    }

    /// Picks an index with probability proportional to `weights` (which need not sum to one).
    /// Returns `None` when the weights are empty, negative, or sum to zero or a non-finite value.
    pub fn weighted_index(&mut self, weights: &[f32]) -> Option<usize> {
        let total: f64 = weights.iter().map(|&weight| f64::from(weight)).sum();
        if weights.is_empty() || !total.is_finite() || total <= 0.0 {
            return None;
        }
        if weights.iter().any(|&weight| weight < 0.0) {
            return None;
        }
        let mut target = self.uniform_f64() * total;
        for (index, &weight) in weights.iter().enumerate() {
            target -= f64::from(weight);
            if target < 0.0 {
                return Some(index);
            }
        }
        weights.iter().rposition(|&weight| weight > 0.0)
    }

    /// A tensor of uniform numbers in `[low, high)`.
    pub fn uniform_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        low: f32,
        high: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let values: Vec<f32> = (0..shape.elem_count())
            .map(|_| self.uniform_range(low, high))
            .collect();
        Tensor::from_vec(values, shape, device)
    }

    /// A tensor of normal numbers with the given mean and standard deviation.
    pub fn normal_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        mean: f32,
        std: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let values: Vec<f32> = (0..shape.elem_count())
            .map(|_| mean + std * self.normal())
            .collect();
        Tensor::from_vec(values, shape, device)
    }

    /// A tensor of 1.0 (kept, with probability `keep_probability`) and 0.0 (dropped).
    pub fn bernoulli_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        keep_probability: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let values: Vec<f32> = (0..shape.elem_count())
            .map(|_| f32::from(u8::from(self.uniform() < keep_probability)))
            .collect();
        Tensor::from_vec(values, shape, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_sequence() {
        // Reference: the xoshiro256** C code of Blackman and Vigna, started from the state
        // {1, 2, 3, 4}; its first outputs are 11520, 0, 1509978240, 1215971899390074240.
        let mut rng = SeededRng::from_state([1, 2, 3, 4]);
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            vec![11520, 0, 1_509_978_240, 1_215_971_899_390_074_240]
        );
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SeededRng::new(3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[rng.below(7)] += 1;
        }
        assert!(
            seen.iter().all(|&count| (800..1200).contains(&count)),
            "{seen:?}"
        );
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = SeededRng::new(11);
        let draws: Vec<f64> = (0..200_000).map(|_| f64::from(rng.normal())).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let variance = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.01, "variance {variance}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut rng = SeededRng::new(5);
        let mut order = rng.permutation(100);
        assert_ne!(order, (0..100).collect::<Vec<_>>());
        order.sort_unstable();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn weighted_index_follows_weights_and_rejects_bad_ones() {
        let mut rng = SeededRng::new(9);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            counts[rng.weighted_index(&[1.0, 0.0, 3.0]).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((2300..2700).contains(&counts[0]), "{counts:?}");
        assert_eq!(rng.weighted_index(&[]), None);
        assert_eq!(rng.weighted_index(&[0.0, 0.0]), None);
        assert_eq!(rng.weighted_index(&[f32::NAN]), None);
        assert_eq!(rng.weighted_index(&[-1.0, 2.0]), None);
    }
}
