//! Pruning masks: one 0/1 tensor per pruned weight, and the weights they apply to.
//!
//! A mask multiplies its weight after every change (w ← w ⊙ m) and its gradient before every
//! optimizer step, so a pruned weight stays exactly zero (Han et al. 2015, "Learning both
//! Weights and Connections for Efficient Neural Networks"; `torch.nn.utils.prune` keeps
//! `weight_orig` and `weight_mask` the same way).

use std::collections::BTreeMap;

use dl_nn::{LayerStructure, Sequential};
use dl_tensor::{DType, Tensor, Var};

use crate::{CompressError, Result};

/// Which parameters pruning may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrunableSelection {
    /// Also prune the biases of Dense and Conv2D layers (off by default, as in Han et al.:
    /// they are few and matter).
    pub biases: bool,
}

/// One parameter that pruning may zero, with the layer it belongs to.
#[derive(Debug, Clone)]
pub struct PrunableWeight {
    /// The variable's name (`dense.weight`).
    pub name: String,
    /// The layer's name (`dense`).
    pub layer: String,
    /// The variable.
    pub var: Var,
}

/// The weights of `model` that pruning may zero: every Dense and Conv2D weight (and, when
/// `selection.biases`, their biases), in the model's order. Batch-normalisation parameters are
/// never pruned. A model without such a layer is an error.
pub fn prunable_weights(
    model: &Sequential,
    selection: PrunableSelection,
) -> Result<Vec<PrunableWeight>> {
    let mut weights = Vec::new();
    for stage in model.stages() {
        let (weight, bias) = match stage.structure {
            LayerStructure::Dense(dense) => (dense.weight(), dense.bias()),
            LayerStructure::Conv2d(conv) => (conv.weight(), conv.bias()),
            _ => continue,
        };
        weights.push(PrunableWeight {
            name: format!("{}.weight", stage.name),
            layer: stage.name.to_string(),
            var: weight.clone(),
        });
        if let (true, Some(bias)) = (selection.biases, bias) {
            weights.push(PrunableWeight {
                name: format!("{}.bias", stage.name),
                layer: stage.name.to_string(),
                var: bias.clone(),
            });
        }
    }
    if weights.is_empty() {
        return Err(CompressError::NothingToCompress { action: "prune" });
    }
    Ok(weights)
}

/// The masks of a pruned model, by variable name: 1 keeps a weight, 0 removes it. Each mask
/// has its variable's shape and dtype.
#[derive(Debug, Clone, Default)]
pub struct PruningMasks {
    masks: BTreeMap<String, Tensor>,
}

/// How sparse one pruned variable is.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableSparsity {
    /// The variable's name.
    pub name: String,
    /// Its number of elements.
    pub total: usize,
    /// How many of them are zero.
    pub zeros: usize,
}

impl VariableSparsity {
    /// The share of zeros.
    pub fn sparsity(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.zeros as f64 / self.total as f64
        }
    }
}

impl PruningMasks {
    /// No masks: nothing is pruned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Masks that keep exactly the non-zero entries of each weight: what a pruned checkpoint
    /// implies, so that fine-tuning it (or resuming a pruning run) keeps its zeros.
    pub fn from_zeros(weights: &[PrunableWeight]) -> Result<Self> {
        let mut masks = Self::new();
        for weight in weights {
            let value = weight.var.as_tensor();
            let mask = value.ne(0.0)?.to_dtype(value.dtype())?;
            masks.insert(&weight.name, mask);
        }
        Ok(masks)
    }

    /// Sets the mask of `name`.
    pub fn insert(&mut self, name: &str, mask: Tensor) {
        self.masks.insert(name.to_string(), mask);
    }

    /// The mask of `name`, if it is pruned.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.masks.get(name)
    }

    /// Every (name, mask).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.masks.iter().map(|(name, mask)| (name.as_str(), mask))
    }

    /// Whether no variable has a mask.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// w ← w ⊙ m for every masked weight among `weights`.
    pub fn apply(&self, weights: &[PrunableWeight]) -> Result<()> {
        for weight in weights {
            if let Some(mask) = self.masks.get(&weight.name) {
                let masked = weight.var.as_tensor().detach().mul(mask)?;
                weight.var.set(&masked)?;
            }
        }
        Ok(())
    }

    /// The masked copy of a tensor belonging to variable `name` (its gradient, or an optimizer
    /// buffer of its shape); unmasked names and other shapes pass unchanged.
    pub fn mask_tensor(
        &self,
        name: &str,
        tensor: &Tensor,
    ) -> dl_tensor::candle_core::Result<Tensor> {
        match self.masks.get(name) {
            Some(mask) if mask.dims() == tensor.dims() => {
                tensor.mul(&mask.to_dtype(tensor.dtype())?)
            }
            _ => Ok(tensor.clone()),
        }
    }

    /// How many entries each mask removes.
    pub fn sparsity(&self) -> Result<Vec<VariableSparsity>> {
        self.masks
            .iter()
            .map(|(name, mask)| {
                let kept = mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()? as usize;
                Ok(VariableSparsity {
                    name: name.clone(),
                    total: mask.elem_count(),
                    zeros: mask.elem_count() - kept,
                })
            })
            .collect()
    }
}

/// How many entries of each of `weights` are exactly zero, and the share over all of them:
/// the sparsity a checkpoint really has.
pub fn measured_sparsity(weights: &[PrunableWeight]) -> Result<(Vec<VariableSparsity>, f64)> {
    let mut rows = Vec::new();
    for weight in weights {
        let value = weight.var.as_tensor();
        let zeros = value
            .eq(0.0)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()? as usize;
        rows.push(VariableSparsity {
            name: weight.name.clone(),
            total: value.elem_count(),
            zeros,
        });
    }
    let total: usize = rows.iter().map(|row| row.total).sum();
    let zeros: usize = rows.iter().map(|row| row.zeros).sum();
    Ok((rows, zeros as f64 / total.max(1) as f64))
}
