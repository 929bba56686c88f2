//! Structured pruning: remove whole convolution filters and Dense units, ranked by the L2 norm
//! of their weights (Li et al. 2017, "Pruning Filters for Efficient ConvNets"), so that the
//! model really shrinks — fewer parameters, a smaller file and less work — and the next layer's
//! inputs shrink with it. Unstructured zeros save nothing without sparse kernels; removed
//! filters do (course §8, 模型剪枝).
//!
//! [`StructuredPlan::rank`] picks what stays; the caller builds the narrower architecture with
//! [`StructuredPlan::widths`] and [`StructuredPlan::transfer`] copies the kept weights into it.

use dl_nn::{LayerStructure, Sequential, VarStore};
use dl_tensor::{DType, Tensor};

use crate::{CompressError, Result, Sparsity};

/// Which filters or units of each hidden layer survive.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredPlan {
    /// For each hidden Conv2D and Dense layer in order (the output layer excluded): its name
    /// and the indices of the kept output channels, ascending.
    pub kept: Vec<(String, Vec<usize>)>,
}

/// The L2 norm of each output channel (row) of a weight.
fn row_norms(weight: &Tensor) -> Result<Vec<f64>> {
    let rows = weight.dims()[0];
    Ok(weight
        .to_dtype(DType::F64)?
        .reshape((rows, ()))?
        .sqr()?
        .sum(1)?
        .sqrt()?
        .to_vec1::<f64>()?)
}

impl StructuredPlan {
    /// Keeps, in every hidden Conv2D and Dense layer, the (1 − `fraction`) of its filters or
    /// units with the largest weight norm (at least one). The output layer keeps all its
    /// units: they are the classes.
    pub fn rank(model: &Sequential, fraction: Sparsity) -> Result<Self> {
        let stages: Vec<_> = model
            .stages()
            .filter(|stage| {
                matches!(
                    stage.structure,
                    LayerStructure::Dense(_) | LayerStructure::Conv2d(_)
                )
            })
            .collect();
        let Some((_output, hidden)) = stages.split_last() else {
            return Err(CompressError::NothingToCompress {
                action: "prune structurally",
            });
        };
        if hidden.is_empty() {
            return Err(CompressError::UnsupportedLayer {
                layer: stages[0].name.to_string(),
                kind: stages[0].structure.kind(),
                action: "pruned structurally",
                reason: "it is the model's only layer, whose outputs are the classes".into(),
            });
        }
        let mut kept = Vec::new();
        for stage in hidden {
            let weight = match stage.structure {
                LayerStructure::Dense(dense) => dense.weight(),
                LayerStructure::Conv2d(conv) => conv.weight(),
                _ => unreachable!("filtered above"),
            };
            let norms = row_norms(weight.as_tensor())?;
            let keep = (norms.len() - fraction.count_of(norms.len())).max(1);
            let mut order: Vec<usize> = (0..norms.len()).collect();
            order.sort_by(|a, b| norms[*b].total_cmp(&norms[*a]).then(a.cmp(b)));
            let mut chosen = order[..keep].to_vec();
            chosen.sort_unstable();
            kept.push((stage.name.to_string(), chosen));
        }
        Ok(Self { kept })
    }

    /// The new width of each hidden layer.
    pub fn widths(&self) -> Vec<usize> {
        self.kept.iter().map(|(_, kept)| kept.len()).collect()
    }

    /// Copies the kept weights of `source` into `target`, a model of the same architecture
    /// built with [`StructuredPlan::widths`]: kept rows of each pruned layer, and of each
    /// layer's inputs the columns (or input channels, or batch-norm features) that came from
    /// kept channels. Every variable of `target` is written; a shape that does not follow is
    /// an error naming the variable.
    pub fn transfer(&self, source: &Sequential, target: &Sequential) -> Result<()> {
        let source_stages: Vec<_> = source.stages().collect();
        let target_stages: Vec<_> = target.stages().collect();
        if source_stages.len() != target_stages.len() {
            return Err(mismatch("the two models have different numbers of layers"));
        }
        // The channels (or features) of the current activations that survive, and for
        // channels, how many values each one holds per example once flattened.
        let mut inputs: Option<Vec<usize>> = None;
        let mut values_per_channel = 1usize;
        let mut plan = self.kept.iter();
        let last_layer = source_stages.iter().rposition(|stage| {
            matches!(
                stage.structure,
                LayerStructure::Dense(_) | LayerStructure::Conv2d(_)
            )
        });
        for (index, (from, to)) in source_stages.iter().zip(&target_stages).enumerate() {
            if from.structure.kind() != to.structure.kind() {
                return Err(mismatch(&format!(
                    "layer {} is {} in one model and {} in the other",
                    from.name,
                    from.structure.kind(),
                    to.structure.kind()
                )));
            }
            let prefix = from.name;
            match from.structure {
                LayerStructure::Dense(_) | LayerStructure::Conv2d(_) => {
                    let outputs = if Some(index) == last_layer {
                        None
                    } else {
                        let (name, kept) = plan
                            .next()
                            .ok_or_else(|| mismatch("the plan has fewer layers than the model"))?;
                        if name != prefix {
                            return Err(mismatch(&format!("the plan's layer {name} is not {prefix}")));
                        }
                        Some(kept.clone())
                    };
                    let columns = inputs.as_ref().map(|channels| expand(channels, values_per_channel));
                    copy(source.store(), target.store(), &format!("{prefix}.weight"), outputs.as_deref(), columns.as_deref())?;
                    copy(source.store(), target.store(), &format!("{prefix}.bias"), outputs.as_deref(), None)?;
                    values_per_channel = 1;
                    inputs = outputs;
                }
                LayerStructure::BatchNorm(_) => {
                    for name in source.store().names() {
                        if let Some(leaf) = name.strip_prefix(&format!("{prefix}.")) {
                            let features = if target.store().get(&name).is_some_and(|var| var.rank() == 1) && leaf != "num_batches_tracked" {
                                inputs.as_deref()
                            } else {
                                None
                            };
                            copy(source.store(), target.store(), &name, features, None)?;
                        }
                    }
                }
                LayerStructure::Flatten => {
                    // each kept channel now stands for its H·W flattened values
                    let shape = if index == 0 { source.input_shape().to_vec() } else { source_stages[index - 1].output_shape.to_vec() };
                    values_per_channel = shape.iter().skip(1).product::<usize>().max(1);
                }
                LayerStructure::MaxPool2d(_)
                | LayerStructure::Dropout(_)
                | LayerStructure::Identity => {}
                LayerStructure::Other(kind) => {
                    return Err(CompressError::UnsupportedLayer {
                        layer: prefix.to_string(),
                        kind,
                        action: "pruned structurally",
                        reason: "structured pruning here covers Dense, Conv2D, batch normalisation, pooling, flattening, dropout and activations".into(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Kept channels → kept flattened features, each channel owning `per_channel` consecutive ones.
fn expand(channels: &[usize], per_channel: usize) -> Vec<usize> {
    channels
        .iter()
        .flat_map(|&channel| channel * per_channel..(channel + 1) * per_channel)
        .collect()
}

fn mismatch(problem: &str) -> CompressError {
    CompressError::BadSetting {
        setting: "structured pruning",
        problem: problem.to_string(),
    }
}

/// Copies variable `name` from `source` to `target`, keeping only `rows` of dimension 0 and
/// `columns` of dimension 1 when given. A variable missing from both is fine (no bias).
fn copy(
    source: &VarStore,
    target: &VarStore,
    name: &str,
    rows: Option<&[usize]>,
    columns: Option<&[usize]>,
) -> Result<()> {
    let (Some(from), Some(to)) = (source.get(name), target.get(name)) else {
        return match (source.get(name), target.get(name)) {
            (None, None) => Ok(()),
            _ => Err(mismatch(&format!(
                "'{name}' exists in only one of the models"
            ))),
        };
    };
    let mut value = from.as_tensor().clone();
    let device = value.device().clone();
    if let Some(rows) = rows {
        let indices: Vec<u32> = rows.iter().map(|&row| row as u32).collect();
        value = value.index_select(&Tensor::new(indices.as_slice(), &device)?, 0)?;
    }
    if let Some(columns) = columns {
        let indices: Vec<u32> = columns.iter().map(|&column| column as u32).collect();
        value = value.index_select(&Tensor::new(indices.as_slice(), &device)?, 1)?;
    }
    if value.dims() != to.dims() {
        return Err(mismatch(&format!(
            "'{name}' would have shape {:?}, the narrower model has {:?}",
            value.dims(),
            to.dims()
        )));
    }
    to.set(&value.contiguous()?)?;
    Ok(())
}
