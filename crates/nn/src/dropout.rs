//! Dropout (course appendix, "如何防止过拟合"): during training each unit is zeroed with probability
//! p and the survivors are scaled by 1/(1 − p) (inverted dropout), so no unit can rely on any
//! other and the expected activation is unchanged; in evaluation the layer does nothing.
//!
//! Masks come from a seeded generator, so a training run repeats exactly.

use std::sync::Mutex;

use dl_tensor::{SeededRng, Tensor};

use crate::{Layer, LayerStructure, Mode, NnError, Result};

/// Randomly zeroes a fraction `rate` of its inputs during training.
#[derive(Debug)]
pub struct Dropout {
    rate: f32,
    rng: Mutex<SeededRng>,
}

impl Dropout {
    /// Drops each input with probability `rate` (in `[0, 1)`), drawing masks from `rng`.
    pub fn new(rate: f32, rng: SeededRng) -> Result<Self> {
        if !(0.0..1.0).contains(&rate) {
            return Err(NnError::config(
                "dropout",
                format!("the rate must be in [0, 1), got {rate}"),
            ));
        }
        Ok(Self {
            rate,
            rng: Mutex::new(rng),
        })
    }

    /// The probability of dropping a unit.
    pub fn rate(&self) -> f32 {
        self.rate
    }

    /// The generator's current state, for resuming a run exactly.
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).state()
    }

    /// Continues the mask sequence from a saved [`Dropout::rng_state`].
    pub fn set_rng_state(&self, state: [u64; 4]) {
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = SeededRng::from_state(state);
    }
}

impl Layer for Dropout {
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor> {
        // ANCHOR: dropout
        if mode == Mode::Eval || self.rate == 0.0 {
            return Ok(input.clone());
        }
        let keep = 1.0 - self.rate;
        let mask = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bernoulli_tensor(input.shape(), keep, input.device())?
            .to_dtype(input.dtype())?;
        Ok(input.mul(&mask)?.affine(1.0 / f64::from(keep), 0.0)?)
        // ANCHOR_END: dropout
    }

    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::Dropout(self)
    }

    fn random_states(&self) -> Vec<[u64; 4]> {
        vec![self.rng_state()]
    }

    fn set_random_states(&self, states: &[[u64; 4]]) -> Result<()> {
        crate::layer::expect_random_states(self.kind(), states, 1)?;
        self.set_rng_state(states[0]);
        Ok(())
    }
}
