//! `Sequential`: a stack of layers, each feeding the next, built the way the course's Keras
//! code reads, and its Keras-style `summary()`.
//!
//! The builder knows the shape of one example (e.g. `[1, 28, 28]` for an MNIST image), so each
//! layer's input size is inferred as in Keras: `.dense(128, relu)` needs only the number of
//! units. Layer names follow Keras (`conv2d`, `dense`, `dense_1`, …) and prefix the tensor
//! names in checkpoints (`dense_1.weight`).

use std::collections::HashMap;

use dl_tensor::Tensor;

use crate::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dense, Dropout, Flatten, Layer,
    LayerStructure, MaxPool2d, Mode, NnError, Path, Result, VarStore,
};

struct Stage {
    name: String,
    layer: Box<dyn Layer>,
    activation: Activation,
    output_shape: Vec<usize>,
    parameter_count: usize,
}

/// Builds a [`Sequential`] one layer at a time; see [`Sequential::builder`].
pub struct SequentialBuilder {
    root: Path,
    input_shape: Vec<usize>,
    current_shape: Vec<usize>,
    stages: Vec<Stage>,
    kind_counts: HashMap<&'static str, usize>,
}

impl SequentialBuilder {
    fn next_name(&mut self, base: &'static str) -> String {
        let count = self.kind_counts.entry(base).or_insert(0);
        let name = if *count == 0 {
            base.to_string()
        } else {
            format!("{base}_{count}")
        };
        *count += 1;
        name
    }

    /// Adds any layer. `build` receives the layer's path and the shape of one input example
    /// (without the batch dimension) and returns the layer; `activation` is applied to its
    /// output. The output shape is found by running one example through the new layer.
    pub fn layer<F>(
        mut self,
        base_name: &'static str,
        activation: Activation,
        build: F,
    ) -> Result<Self>
    where
        F: FnOnce(&Path, &[usize]) -> Result<Box<dyn Layer>>,
    {
        let name = self.next_name(base_name);
        let store = self.root.store().clone();
        let before = store.parameter_count();
        let layer = build(&self.root.sub(&name), &self.current_shape)?;
        let parameter_count = store.parameter_count() - before;
        let mut probe_shape = vec![1];
        probe_shape.extend_from_slice(&self.current_shape);
        let probe = Tensor::zeros(probe_shape, store.dtype(), store.device())?;
        let output = activation.apply(&layer.forward(&probe, Mode::Eval)?)?;
        self.current_shape = output.dims()[1..].to_vec();
        self.stages.push(Stage {
            name,
            layer,
            activation,
            output_shape: self.current_shape.clone(),
            parameter_count,
        });
        Ok(self)
    }

    /// A convolution with `filters` kernels of `kernel_size` x `kernel_size`, stride 1, no
    /// padding (Keras' `Conv2D(filters, (k, k), activation=...)`).
    pub fn conv2d(
        self,
        filters: usize,
        kernel_size: usize,
        activation: Activation,
    ) -> Result<Self> {
        self.conv2d_with(filters, Conv2dConfig::new(kernel_size), activation)
    }

    /// A convolution with explicit stride and padding.
    pub fn conv2d_with(
        self,
        filters: usize,
        config: Conv2dConfig,
        activation: Activation,
    ) -> Result<Self> {
        self.layer("conv2d", activation, |path, shape| {
            if shape.len() != 3 {
                return Err(NnError::shape(
                    path.prefix(),
                    format!("Conv2D needs (channels, height, width) inputs, got {shape:?}"),
                ));
            }
            Ok(Box::new(Conv2d::new(path, shape[0], filters, config)?))
        })
    }

    /// Max pooling over `pool_size` x `pool_size` windows.
    pub fn max_pool2d(self, pool_size: usize) -> Result<Self> {
        self.layer("max_pooling2d", Activation::Identity, |_, _| {
            Ok(Box::new(MaxPool2d::new(pool_size)?))
        })
    }

    /// Flattens each example to a vector.
    pub fn flatten(self) -> Result<Self> {
        self.layer("flatten", Activation::Identity, |_, _| {
            Ok(Box::new(Flatten))
        })
    }

    /// A fully connected layer of `units` neurons.
    pub fn dense(self, units: usize, activation: Activation) -> Result<Self> {
        self.layer("dense", activation, |path, shape| {
            let in_features = *shape.last().ok_or_else(|| {
                NnError::shape(path.prefix(), "Dense needs at least one input dimension")
            })?;
            Ok(Box::new(Dense::new(path, in_features, units)?))
        })
    }

    /// Dropout with the given rate, seeded from the store.
    pub fn dropout(self, rate: f32) -> Result<Self> {
        self.layer("dropout", Activation::Identity, |path, _| {
            Ok(Box::new(Dropout::new(rate, path.fork_rng())?))
        })
    }

    /// An activation on its own (Keras' `Activation` layer), e.g. after batch normalisation.
    pub fn activation(self, activation: Activation) -> Result<Self> {
        self.layer("activation", activation, |_, _| Ok(Box::new(Identity)))
    }

    /// Batch normalisation over the channel (or feature) dimension, with PyTorch's defaults.
    pub fn batch_norm(self) -> Result<Self> {
        self.layer(
            "batch_normalization",
            Activation::Identity,
            |path, shape| {
                let features = *shape.first().ok_or_else(|| {
                    NnError::shape(path.prefix(), "BatchNorm needs a channel dimension")
                })?;
                Ok(Box::new(BatchNorm::new(
                    path,
                    features,
                    BatchNormConfig::default(),
                )?))
            },
        )
    }

    /// Finishes the model.
    pub fn build(self) -> Sequential {
        Sequential {
            store: self.root.store().clone(),
            input_shape: self.input_shape,
            stages: self.stages,
        }
    }
}

/// The layer that passes its input through unchanged; carries a standalone activation.
struct Identity;

impl Layer for Identity {
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(input.clone())
    }

    fn kind(&self) -> &'static str {
        "Activation"
    }

    fn structure(&self) -> LayerStructure<'_> {
        LayerStructure::Identity
    }
}

/// One stage of a [`Sequential`] model, as [`Sequential::stages`] shows it.
pub struct StageView<'a> {
    /// The layer's name, the prefix of its variables (`dense_1` for `dense_1.weight`).
    pub name: &'a str,
    /// The layer itself (`layer.forward_activated(x, mode, activation)` runs the stage).
    pub layer: &'a dyn Layer,
    /// What the layer is, with its parameters.
    pub structure: LayerStructure<'a>,
    /// The activation applied after it.
    pub activation: Activation,
    /// The shape of one example after the stage.
    pub output_shape: &'a [usize],
}

/// A stack of layers applied in order.
///
/// As a [`Layer`], `forward` returns the scores before a final softmax (the *logits*): the
/// losses take logits because log-softmax fused into the loss is numerically stable. Use
/// [`Sequential::predict`] for the model's full output (probabilities after a final softmax).
pub struct Sequential {
    store: VarStore,
    input_shape: Vec<usize>,
    stages: Vec<Stage>,
}

impl Sequential {
    /// Starts a model whose examples have shape `input_shape` (no batch dimension), with its
    /// variables under `root`.
    pub fn builder(root: &Path, input_shape: &[usize]) -> SequentialBuilder {
        SequentialBuilder {
            root: root.clone(),
            input_shape: input_shape.to_vec(),
            current_shape: input_shape.to_vec(),
            stages: Vec::new(),
            kind_counts: HashMap::new(),
        }
    }

    /// The shape of one input example.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The shape of one output (e.g. `[10]` for ten classes).
    pub fn output_shape(&self) -> &[usize] {
        self.stages
            .last()
            .map_or(self.input_shape.as_slice(), |stage| {
                stage.output_shape.as_slice()
            })
    }

    /// The store holding the model's variables.
    pub fn store(&self) -> &VarStore {
        &self.store
    }

    /// The number of trainable parameters of the model's layers.
    pub fn parameter_count(&self) -> usize {
        self.stages.iter().map(|stage| stage.parameter_count).sum()
    }

    /// Each layer's name, type, output shape and parameter count.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &'static str, &[usize], usize)> {
        self.stages.iter().map(|stage| {
            (
                stage.name.as_str(),
                stage.layer.kind(),
                stage.output_shape.as_slice(),
                stage.parameter_count,
            )
        })
    }

    /// Every stage in order: its name, what its layer is, its activation and output shape —
    /// the view that pruning and quantization rewrite a trained model from.
    pub fn stages(&self) -> impl Iterator<Item = StageView<'_>> {
        self.stages.iter().map(|stage| StageView {
            name: &stage.name,
            layer: stage.layer.as_ref(),
            structure: stage.layer.structure(),
            activation: stage.activation,
            output_shape: &stage.output_shape,
        })
    }

    /// `input` if it is a batch of the model's input shape, else an error saying which.
    fn check_input(&self, input: &Tensor) -> Result<Tensor> {
        let expected = &self.input_shape;
        if input.rank() != expected.len() + 1 || &input.dims()[1..] != expected.as_slice() {
            return Err(NnError::shape(
                "sequential input",
                format!(
                    "expected a batch of shape (N, {}), got {:?}",
                    expected
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    input.dims()
                ),
            ));
        }
        Ok(input.clone())
    }

    // ANCHOR: sequential-forward
    fn run(&self, input: &Tensor, mode: Mode, final_activation: bool) -> Result<Tensor> {
        let mut output = self.check_input(input)?;
        let last = self.stages.len().saturating_sub(1);
        for (index, stage) in self.stages.iter().enumerate() {
            let skip =
                index == last && !final_activation && stage.activation == Activation::Softmax;
            output = if skip {
                stage.layer.forward(&output, mode)?
            } else {
                stage
                    .layer
                    .forward_activated(&output, mode, stage.activation)?
            };
        }
        Ok(output)
    }
    // ANCHOR_END: sequential-forward

    /// The penultimate features in evaluation mode: the output of every stage but the last
    /// (after its activation), e.g. the 128 ReLU units of the course's CNN. What a Fréchet
    /// distance compares (see [`crate::frechet_distance`]).
    pub fn features(&self, input: &Tensor) -> Result<Tensor> {
        if self.stages.len() < 2 {
            return Err(NnError::config(
                "sequential features",
                "the model has a single layer: there are no features before its output",
            ));
        }
        let mut output = self.check_input(input)?;
        for stage in &self.stages[..self.stages.len() - 1] {
            output = stage
                .layer
                .forward_activated(&output, Mode::Eval, stage.activation)?;
        }
        Ok(output)
    }

    /// The model's full output in evaluation mode, including a final softmax (probabilities).
    pub fn predict(&self, input: &Tensor) -> Result<Tensor> {
        self.run(input, Mode::Eval, true)
    }

    /// A Keras-style table of the layers, their output shapes and parameter counts.
    pub fn summary(&self) -> String {
        let shape_text = |shape: &[usize]| {
            let mut parts = vec!["None".to_string()];
            parts.extend(shape.iter().map(ToString::to_string));
            format!("({})", parts.join(", "))
        };
        let rows: Vec<(String, String, String)> = self
            .stages
            .iter()
            .map(|stage| {
                (
                    format!("{} ({})", stage.name, stage.layer.kind()),
                    shape_text(&stage.output_shape),
                    group_thousands(stage.parameter_count),
                )
            })
            .collect();
        let headers = ("Layer (type)", "Output Shape", "Param #");
        let width_of = |pick: fn(&(String, String, String)) -> usize, header: &str| {
            rows.iter()
                .map(pick)
                .max()
                .unwrap_or(0)
                .max(header.chars().count())
        };
        let name_width = width_of(|row| row.0.chars().count(), headers.0);
        let shape_width = width_of(|row| row.1.chars().count(), headers.1);
        let count_width = width_of(|row| row.2.chars().count(), headers.2);
        let rule = |left: &str, middle: &str, right: &str| {
            format!(
                "{left}{}{middle}{}{middle}{}{right}\n",
                "─".repeat(name_width + 2),
                "─".repeat(shape_width + 2),
                "─".repeat(count_width + 2)
            )
        };
        let mut text = String::from("Model: \"sequential\"\n");
        text += &rule("┌", "┬", "┐");
        text += &format!(
            "│ {:<name_width$} │ {:<shape_width$} │ {:>count_width$} │\n",
            headers.0, headers.1, headers.2
        );
        text += &rule("├", "┼", "┤");
        for (name, shape, count) in &rows {
            text += &format!(
                "│ {name:<name_width$} │ {shape:<shape_width$} │ {count:>count_width$} │\n"
            );
        }
        text += &rule("└", "┴", "┘");
        let trainable = self.parameter_count();
        let non_trainable: usize = self
            .store
            .parameters()
            .iter()
            .filter(|parameter| !parameter.trainable && parameter.var.dtype().is_float())
            .map(|parameter| parameter.var.elem_count())
            .sum();
        text += &format!(
            " Total params: {}\n Trainable params: {}\n Non-trainable params: {}\n",
            group_thousands(trainable + non_trainable),
            group_thousands(trainable),
            group_thousands(non_trainable)
        );
        text
    }
}

impl Layer for Sequential {
    /// The logits: every layer and activation except a final softmax.
    fn forward(&self, input: &Tensor, mode: Mode) -> Result<Tensor> {
        self.run(input, mode, false)
    }

    fn kind(&self) -> &'static str {
        "Sequential"
    }

    /// Every layer's generator states, layer after layer.
    fn random_states(&self) -> Vec<[u64; 4]> {
        self.stages
            .iter()
            .flat_map(|stage| stage.layer.random_states())
            .collect()
    }

    fn set_random_states(&self, states: &[[u64; 4]]) -> Result<()> {
        let expected = self.random_states().len();
        crate::layer::expect_random_states(self.kind(), states, expected)?;
        let mut rest = states;
        for stage in &self.stages {
            let (own, after) = rest.split_at(stage.layer.random_states().len());
            stage.layer.set_random_states(own)?;
            rest = after;
        }
        Ok(())
    }
}

/// 693962 → "693,962".
fn group_thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::group_thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(693_962), "693,962");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
