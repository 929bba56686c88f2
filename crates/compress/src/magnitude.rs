//! Unstructured magnitude pruning: remove the weights of smallest |w| (Han et al. 2015,
//! "Learning both Weights and Connections for Efficient Neural Networks"), per layer or with
//! one threshold over all layers (`torch.nn.utils.prune.global_unstructured` with L1).
//!
//! The count removed is exact: ties in |w| are broken by position, so a sparsity of 0.9 zeroes
//! exactly round(0.9 · n) weights. Weights a previous mask removed stay removed (they rank
//! below every live weight), so raising the sparsity step by step never revives a weight.

use dl_tensor::{DType, Tensor};

use crate::{PrunableWeight, PruneAmount, PruningMasks, Result};

/// Whether each layer loses the same share of its weights, or all layers share one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneScope {
    /// Every pruned variable reaches the amount on its own.
    Layer,
    /// One |w| threshold over all pruned variables: large layers, often the most redundant,
    /// lose more (Han et al.'s finding for AlexNet and LeNet).
    Global,
}

/// A weight's rank key: pruned weights first, then by magnitude.
fn rank_keys(weight: &PrunableWeight, previous: &PruningMasks) -> Result<Vec<f64>> {
    let magnitudes = weight
        .var
        .as_tensor()
        .abs()?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let Some(mask) = previous.get(&weight.name) else {
        return Ok(magnitudes);
    };
    let kept = mask.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(magnitudes
        .into_iter()
        .zip(kept)
        .map(|(magnitude, keep)| if keep == 0.0 { -1.0 } else { magnitude })
        .collect())
}

/// The positions `(variable, element)` of the `count` smallest keys, ties by position.
fn smallest(keys: &[Vec<f64>], count: usize) -> Vec<(usize, usize)> {
    let mut positions: Vec<(usize, usize)> = keys
        .iter()
        .enumerate()
        .flat_map(|(variable, values)| (0..values.len()).map(move |element| (variable, element)))
        .collect();
    if count == 0 {
        return Vec::new();
    }
    if count < positions.len() {
        positions.select_nth_unstable_by(count - 1, |a, b| {
            keys[a.0][a.1]
                .total_cmp(&keys[b.0][b.1])
                .then_with(|| a.cmp(b))
        });
        positions.truncate(count);
    }
    positions
}

/// How many entries a previous mask already removed from `weight`.
fn previously_removed(weight: &PrunableWeight, previous: &PruningMasks) -> Result<usize> {
    Ok(match previous.get(&weight.name) {
        Some(mask) => {
            mask.elem_count() - mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()? as usize
        }
        None => 0,
    })
}

/// Masks removing `amount` of `weights` by magnitude, within each variable or globally, on top
/// of `previous` (whose removed weights stay removed: a smaller amount than they already
/// remove keeps them as they are).
///
/// ```
/// use dl_compress::{magnitude_masks, PrunableWeight, PruneAmount, PruneScope, PruningMasks, Sparsity};
/// use dl_tensor::{Device, Var};
///
/// let var = Var::new(&[[0.5f32, -0.1], [0.3, -2.0]], &Device::Cpu)?;
/// let weights = [PrunableWeight { name: "w".into(), layer: "dense".into(), var }];
/// let amount = PruneAmount::Fraction(Sparsity::new(0.5)?);
/// let masks = magnitude_masks(&weights, amount, PruneScope::Layer, &PruningMasks::new())?;
/// // the two smallest magnitudes, 0.1 and 0.3, go
/// assert_eq!(masks.get("w").unwrap().to_vec2::<f32>()?, [[1.0, 0.0], [0.0, 1.0]]);
/// # Ok::<(), dl_compress::CompressError>(())
/// ```
pub fn magnitude_masks(
    weights: &[PrunableWeight],
    amount: PruneAmount,
    scope: PruneScope,
    previous: &PruningMasks,
) -> Result<PruningMasks> {
    let keys: Vec<Vec<f64>> = weights
        .iter()
        .map(|weight| rank_keys(weight, previous))
        .collect::<Result<_>>()?;
    let mut removed: Vec<Vec<bool>> = keys
        .iter()
        .map(|values| vec![false; values.len()])
        .collect();
    match scope {
        PruneScope::Layer => {
            for (index, weight) in weights.iter().enumerate() {
                let total = keys[index].len();
                let count = amount
                    .count_of(total)?
                    .max(previously_removed(weight, previous)?);
                for (_, element) in smallest(&keys[index..=index], count) {
                    removed[index][element] = true;
                }
            }
        }
        PruneScope::Global => {
            // ANCHOR: global-magnitude
            let total = keys.iter().map(Vec::len).sum();
            let already: usize = weights
                .iter()
                .map(|weight| previously_removed(weight, previous))
                .sum::<Result<_>>()?;
            let count = amount.count_of(total)?.max(already);
            for (variable, element) in smallest(&keys, count) {
                removed[variable][element] = true;
            }
            // ANCHOR_END: global-magnitude
        }
    }
    let mut masks = PruningMasks::new();
    for (weight, removed) in weights.iter().zip(removed) {
        let value = weight.var.as_tensor();
        let keep: Vec<f32> = removed
            .iter()
            .map(|&gone| if gone { 0.0 } else { 1.0 })
            .collect();
        let mask = Tensor::from_vec(keep, value.dims(), value.device())?.to_dtype(value.dtype())?;
        masks.insert(&weight.name, mask);
    }
    Ok(masks)
}

/// Prunes `weights` in place: computes [`magnitude_masks`] and zeroes what they remove.
/// Returns the masks, which fine-tuning must keep applying (see [`crate::MaskedOptimizer`]).
pub fn prune_by_magnitude(
    weights: &[PrunableWeight],
    amount: PruneAmount,
    scope: PruneScope,
) -> Result<PruningMasks> {
    let previous = PruningMasks::from_zeros(weights)?;
    let masks = magnitude_masks(weights, amount, scope, &previous)?;
    masks.apply(weights)?;
    Ok(masks)
}
