//! Fine-tuning a pruned model: an optimizer wrapper that keeps pruned weights at exactly zero.
//!
//! Before each step it zeroes the gradients of removed weights, after it re-applies the masks;
//! when it prunes further it also zeroes the optimizer's buffers of the newly removed weights
//! (Adam's moments, SGD's momentum), so a removed weight gets a zero update forever. The masks
//! and the schedule's position travel in the optimizer's state, so a pruning run stopped and
//! resumed goes on exactly as an uninterrupted one (Zhu & Gupta 2017; Han et al. 2015).

use dl_autograd::Gradients;
use dl_optim::{OptimError, Optimizer, OptimizerState};

use crate::{
    magnitude_masks, PrunableWeight, PruneAmount, PruneScope, PruningMasks, PruningSchedule,
    Result, Sparsity,
};

/// The optimizer-state suffix of a mask: `dense.weight.pruning_mask`.
const MASK_SUFFIX: &str = ".pruning_mask";
/// The optimizer-state value counting the wrapper's steps.
const STEPS_KEY: &str = "pruning_steps";

/// An optimizer that trains only the weights its masks keep, pruning further along a
/// [`PruningSchedule`] if it has one. Use it wherever an optimizer goes (a `dl_train::Trainer`).
pub struct MaskedOptimizer {
    inner: Box<dyn Optimizer>,
    weights: Vec<PrunableWeight>,
    masks: PruningMasks,
    schedule: Option<(PruningSchedule, PruneScope)>,
    steps: u64,
}

impl MaskedOptimizer {
    /// Keeps the zeros `weights` have now (a pruned checkpoint's), with no further pruning.
    pub fn keeping_zeros(inner: Box<dyn Optimizer>, weights: Vec<PrunableWeight>) -> Result<Self> {
        let masks = PruningMasks::from_zeros(&weights)?;
        Ok(Self {
            inner,
            weights,
            masks,
            schedule: None,
            steps: 0,
        })
    }

    /// Prunes `weights` by magnitude along `schedule` (within each layer or globally, as
    /// `scope` says) while `inner` trains them. Zeros the weights have now stay zeros.
    pub fn with_schedule(
        inner: Box<dyn Optimizer>,
        weights: Vec<PrunableWeight>,
        schedule: PruningSchedule,
        scope: PruneScope,
    ) -> Result<Self> {
        schedule.validate()?;
        let mut optimizer = Self::keeping_zeros(inner, weights)?;
        optimizer.schedule = Some((schedule, scope));
        Ok(optimizer)
    }

    /// The current masks.
    pub fn masks(&self) -> &PruningMasks {
        &self.masks
    }

    /// Steps taken (the schedule's clock).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Raises the sparsity to `sparsity` by magnitude, zeroing the removed weights and their
    /// optimizer buffers.
    fn prune_to(&mut self, sparsity: f64, scope: PruneScope) -> Result<()> {
        let amount = PruneAmount::Fraction(Sparsity::new(sparsity)?);
        self.masks = magnitude_masks(&self.weights, amount, scope, &self.masks)?;
        self.masks.apply(&self.weights)?;
        let mut state = self.inner.state()?;
        if state.tensors.is_empty() {
            return Ok(());
        }
        for (name, tensor) in state.tensors.iter_mut() {
            if let Some((variable, _buffer)) = name.rsplit_once('.') {
                *tensor = self.masks.mask_tensor(variable, tensor)?;
            }
        }
        self.inner.load_state(&state)?;
        Ok(())
    }

    fn masked_step(&mut self, gradients: &Gradients) -> Result<()> {
        if let Some((schedule, scope)) = self.schedule {
            if let Some(sparsity) = schedule.sparsity_at(self.steps) {
                self.prune_to(sparsity, scope)?;
            }
        }
        let masked =
            gradients.map(|name, gradient| Ok(self.masks.mask_tensor(name, gradient)?))?;
        self.inner.step(&masked)?;
        self.masks.apply(&self.weights)?;
        self.steps += 1;
        Ok(())
    }
}

impl Optimizer for MaskedOptimizer {
    fn step(&mut self, gradients: &Gradients) -> dl_optim::Result<()> {
        Ok(self.masked_step(gradients)?)
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, learning_rate: f64) {
        self.inner.set_learning_rate(learning_rate);
    }

    /// The inner optimizer's state plus the masks (`<variable>.pruning_mask`) and the step
    /// count (`pruning_steps`).
    fn state(&self) -> dl_optim::Result<OptimizerState> {
        let mut state = self.inner.state()?;
        state.set_value(STEPS_KEY, self.steps);
        for (name, mask) in self.masks.iter() {
            state
                .tensors
                .insert(format!("{name}{MASK_SUFFIX}"), mask.clone());
        }
        Ok(state)
    }

    /// Restores what [`Optimizer::state`] saved: the inner state, then masks for exactly the
    /// weights this wrapper prunes (shapes checked), then the step count. The weights are
    /// masked at once.
    fn load_state(&mut self, state: &OptimizerState) -> dl_optim::Result<()> {
        let mut inner_state = state.clone();
        let mut masks = PruningMasks::new();
        for weight in &self.weights {
            let key = format!("{}{MASK_SUFFIX}", weight.name);
            let mask =
                inner_state
                    .tensors
                    .remove(&key)
                    .ok_or_else(|| OptimError::MissingStateTensor {
                        tensor: key.clone(),
                    })?;
            if mask.dims() != weight.var.dims() {
                return Err(OptimError::StateShapeMismatch {
                    tensor: key,
                    expected: weight.var.dims().to_vec(),
                    found: mask.dims().to_vec(),
                });
            }
            masks.insert(&weight.name, mask.to_dtype(weight.var.dtype())?);
        }
        if let Some(extra) = inner_state
            .tensors
            .keys()
            .find(|name| name.ends_with(MASK_SUFFIX))
        {
            return Err(OptimError::UnexpectedStateTensor {
                tensor: extra.clone(),
                kind: "pruning",
            });
        }
        let steps = state.value(STEPS_KEY)?;
        inner_state.remove_value(STEPS_KEY);
        self.inner.load_state(&inner_state)?;
        self.masks = masks;
        self.steps = steps;
        self.masks.apply(&self.weights)?;
        Ok(())
    }
}
