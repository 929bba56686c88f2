//! Post-training int8 quantization of a `Sequential` model (course §8, 模型压缩; Jacob et al.
//! 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
//! Inference").
//!
//! Every Dense and Conv2D weight becomes int8 with one scale per output channel (symmetric:
//! w ≈ s_n · q, q in [−127, 127]); every such layer's input becomes u8 with a scale and zero
//! point calibrated on training images. Inference then runs on integers
//! (`dl_tensor::kernels::int8`, AVX-512 VNNI where the CPU has it): a layer's output is
//! requantized inside the kernel straight to the next quantized layer's input bytes when only
//! max pooling, flattening, dropout or a ReLU lies between them (max pooling commutes with a
//! monotonic quantization), so the course CNN runs from the first convolution to the logits
//! without a float tensor in between. Only the last layer's output (the logits) is f32.

use dl_nn::{Activation, Conv2dConfig, LayerStructure, Mode, Sequential};
use dl_tensor::{
    kernels::int8::{self, Activations, Output, PackedInt8Weights},
    DType, Device, Tensor,
};
use rayon::prelude::*;

use crate::{Calibration, CompressError, RangeObserver, Result};

/// What a quantized layer computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantizedKind {
    /// A fully connected layer.
    Dense,
    /// A convolution over inputs of shape (channels, height, width).
    Conv2d {
        /// Kernel, stride and padding.
        config: Conv2dConfig,
        /// The input shape of one example.
        input_shape: [usize; 3],
    },
}

/// One Dense or Conv2D layer in int8: weights, their scales, the f32 bias and the input's
/// quantization.
#[derive(Debug, Clone)]
pub struct QuantizedLayer {
    /// The layer's name (`dense`), the prefix of its tensors.
    pub name: String,
    /// Dense or convolution.
    pub kind: QuantizedKind,
    /// The fp32 weight's shape: (out, in) or (out, C, k, k).
    pub weight_shape: Vec<usize>,
    /// The int8 weights, row-major in `weight_shape`.
    pub weights: Vec<i8>,
    /// One scale per output channel.
    pub weight_scales: Vec<f32>,
    /// The bias (zeros when the layer has none).
    pub bias: Vec<f32>,
    /// The input's scale.
    pub input_scale: f32,
    /// The input's zero point.
    pub input_zero_point: u8,
    /// W packed for the kernel; for a Dense layer fed by a convolution, with its columns
    /// reordered from the (channels, height, width) flattening to (height, width, channels),
    /// the layout the int8 convolution produces.
    packed: PackedInt8Weights,
}

impl QuantizedLayer {
    /// Builds a layer from its parts, checking them (what a file reader calls).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        kind: QuantizedKind,
        weight_shape: Vec<usize>,
        weights: Vec<i8>,
        weight_scales: Vec<f32>,
        bias: Vec<f32>,
        input_scale: f32,
        input_zero_point: u8,
    ) -> Result<Self> {
        let bad = |problem: String| CompressError::BadSetting {
            setting: "quantized layer",
            problem: format!("{name}: {problem}"),
        };
        let out_features = *weight_shape
            .first()
            .ok_or_else(|| bad("the weight has no shape".into()))?;
        let in_features: usize = weight_shape[1..].iter().product();
        if bias.len() != out_features {
            return Err(bad(format!(
                "{} bias values for {out_features} output channels",
                bias.len()
            )));
        }
        if let Some(value) = bias.iter().find(|value| !value.is_finite()) {
            return Err(bad(format!("a bias value is {value}")));
        }
        if !(input_scale.is_finite() && input_scale > 0.0) {
            return Err(bad(format!(
                "the input scale {input_scale} is not finite and positive"
            )));
        }
        let packed =
            PackedInt8Weights::new(&weights, out_features, in_features, weight_scales.clone())
                .map_err(|error| bad(error.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            kind,
            weight_shape,
            weights,
            weight_scales,
            bias,
            input_scale,
            input_zero_point,
            packed,
        })
    }

    /// Quantizes an fp32 weight per output channel: s_n = max|w_n| / 127, q = round(w / s_n).
    /// A row of zeros (a pruned unit) gets scale 1 and stays zeros.
    pub fn quantize_weights(weight: &Tensor) -> Result<(Vec<i8>, Vec<f32>)> {
        let out_features = weight.dims()[0];
        let rows = weight
            .to_dtype(DType::F32)?
            .reshape((out_features, ()))?
            .to_vec2::<f32>()?;
        let mut values = Vec::with_capacity(weight.elem_count());
        let mut scales = Vec::with_capacity(out_features);
        for row in rows {
            let largest = row
                .iter()
                .fold(0f32, |largest, value| largest.max(value.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            scales.push(scale);
            values.extend(
                row.iter()
                    .map(|value| (value / scale).round().clamp(-127.0, 127.0) as i8),
            );
        }
        Ok((values, scales))
    }

    fn out_features(&self) -> usize {
        self.weight_shape[0]
    }
}

/// One step of the int8 forward pass.
#[derive(Debug, Clone)]
enum Step {
    /// A quantized layer (index into `layers`) and its activation.
    Layer(usize, Activation),
    /// Max pooling.
    MaxPool { kernel: usize, stride: usize },
    /// An activation of its own (a ReLU stage after batch normalisation, say).
    Activation(Activation),
    /// Nothing at inference (flattening, dropout).
    Identity,
}

/// Activations between steps: bytes with their quantization, or floats.
enum Values {
    U8 {
        values: Vec<u8>,
        scale: f32,
        zero_point: u8,
    },
    F32(Vec<f32>),
}

impl Values {
    /// The real values: floats as they are, bytes dequantized.
    fn into_floats(self) -> Vec<f32> {
        match self {
            Self::F32(values) => values,
            Self::U8 {
                values,
                scale,
                zero_point,
            } => dequantize(&values, scale, zero_point),
        }
    }
}

/// A `Sequential` model with int8 Dense and Conv2D layers.
#[derive(Debug, Clone)]
pub struct QuantizedModel {
    input_shape: Vec<usize>,
    steps: Vec<(Step, Vec<usize>)>,
    layers: Vec<QuantizedLayer>,
}

/// A Dense or Conv2D stage of a model, as int8 inference sees it: what calibration quantizes
/// and what a file's layers are checked against.
pub(crate) struct LayerSlot<'a> {
    /// The layer's name.
    pub name: &'a str,
    /// Its fp32 weight.
    pub weight: &'a dl_tensor::Var,
    /// Its bias, if it has one.
    pub bias: Option<&'a dl_tensor::Var>,
    /// The weight's shape.
    pub weight_shape: Vec<usize>,
    /// Dense, or a convolution with its settings and input shape.
    pub kind: QuantizedKind,
    /// The batch normalisation right after it, to fold into its weights.
    pub folded: Option<&'a dl_nn::BatchNorm>,
}

impl LayerSlot<'_> {
    /// The weight and bias inference uses: the layer's own, or with the batch normalisation
    /// after it folded in (w ← a · w and b ← a · b + c per output channel, where the
    /// normalisation computes a · x + c).
    fn folded_parameters(&self) -> Result<(Tensor, Tensor)> {
        let weight = self.weight.as_tensor().clone();
        let out_features = self.weight_shape[0];
        let bias = match self.bias {
            Some(bias) => bias.as_tensor().clone(),
            None => Tensor::zeros(out_features, weight.dtype(), weight.device())?,
        };
        let Some(norm) = self.folded else {
            return Ok((weight, bias));
        };
        let (scale, shift) = norm.inference_affine()?;
        let mut per_row = vec![1usize; weight.rank()];
        per_row[0] = out_features;
        let weight = weight.broadcast_mul(&scale.reshape(per_row)?)?;
        let bias = bias.mul(&scale)?.add(&shift)?;
        Ok((weight, bias))
    }
}

/// The Dense and Conv2D stages of `model`, in order; a convolution whose input is not (C, H, W)
/// is an error naming it.
pub(crate) fn layer_slots(model: &Sequential) -> Result<Vec<LayerSlot<'_>>> {
    let mut slots: Vec<LayerSlot<'_>> = Vec::new();
    let mut input_shape = model.input_shape().to_vec();
    let mut previous_is_layer = false;
    for stage in model.stages() {
        let slot = match stage.structure {
            LayerStructure::Dense(dense) => {
                Some((dense.weight(), dense.bias(), QuantizedKind::Dense))
            }
            LayerStructure::Conv2d(conv) => {
                let shape: [usize; 3] = input_shape.as_slice().try_into().map_err(|_| {
                    CompressError::UnsupportedLayer {
                        layer: stage.name.to_string(),
                        kind: "Conv2D",
                        action: "quantized",
                        reason: format!("its input shape {input_shape:?} is not (C, H, W)"),
                    }
                })?;
                let kind = QuantizedKind::Conv2d {
                    config: conv.config(),
                    input_shape: shape,
                };
                Some((conv.weight(), conv.bias(), kind))
            }
            LayerStructure::BatchNorm(norm) if previous_is_layer => {
                if let Some(last) = slots.last_mut() {
                    last.folded = Some(norm);
                }
                None
            }
            _ => None,
        };
        previous_is_layer = slot.is_some();
        if let Some((weight, bias, kind)) = slot {
            slots.push(LayerSlot {
                name: stage.name,
                weight,
                bias,
                weight_shape: weight.dims().to_vec(),
                kind,
                folded: None,
            });
        }
        input_shape = stage.output_shape.to_vec();
    }
    Ok(slots)
}

/// The stages of `model` as steps, with their layers' structure; an error naming the first
/// layer int8 inference cannot run.
fn plan(model: &Sequential) -> Result<Vec<(Step, Vec<usize>)>> {
    let mut steps = Vec::new();
    let mut layer_count = 0;
    let stage_count = model.stages().count();
    let mut follows_foldable = false;
    for (stage_index, stage) in model.stages().enumerate() {
        let unsupported = |reason: &str| CompressError::UnsupportedLayer {
            layer: stage.name.to_string(),
            kind: stage.structure.kind(),
            action: "quantized",
            reason: reason.to_string(),
        };
        let step = match stage.structure {
            LayerStructure::Dense(_) | LayerStructure::Conv2d(_) => {
                layer_count += 1;
                Step::Layer(layer_count - 1, stage.activation)
            }
            LayerStructure::MaxPool2d(pool) => Step::MaxPool {
                kernel: pool.kernel_size(),
                stride: pool.stride(),
            },
            LayerStructure::Flatten | LayerStructure::Dropout(_) => Step::Identity,
            LayerStructure::Identity => Step::Activation(stage.activation),
            // Folded into the layer before it (see `layer_slots`).
            LayerStructure::BatchNorm(_) if follows_foldable => Step::Identity,
            LayerStructure::BatchNorm(_) => {
                return Err(unsupported(
                    "batch normalisation is folded into the Conv2D or Dense layer just before it, which must have no activation of its own",
                ))
            }
            LayerStructure::Other(_) => {
                return Err(unsupported(
                    "int8 inference here covers Dense, Conv2D, batch normalisation (folded), pooling, flattening, dropout and activations",
                ))
            }
        };
        if matches!(step, Step::Layer(..) | Step::Activation(_))
            && stage.activation == Activation::Softmax
            && stage_index + 1 != stage_count
        {
            return Err(unsupported("a softmax is supported only at the output"));
        }
        if !matches!(step, Step::Layer(..) | Step::Activation(_))
            && stage.activation != Activation::Identity
        {
            return Err(unsupported(
                "an activation on this kind of layer is not supported",
            ));
        }
        follows_foldable = matches!(step, Step::Layer(_, Activation::Identity));
        steps.push((step, stage.output_shape.to_vec()));
    }
    if layer_count == 0 {
        return Err(CompressError::NothingToCompress { action: "quantize" });
    }
    Ok(steps)
}

impl QuantizedModel {
    /// Quantizes `model`, calibrating each quantized layer's input range on `calibration_images`
    /// (a batch of the model's input shape, e.g. 1,000 training images) with `calibration`.
    pub fn calibrate(
        model: &Sequential,
        calibration_images: &Tensor,
        calibration: Calibration,
    ) -> Result<Self> {
        calibration.validate()?;
        let count = calibration_images.dims().first().copied().unwrap_or(0);
        if count == 0 {
            return Err(CompressError::BadSetting {
                setting: "calibration images",
                problem: "0 images: calibration needs at least one (a few hundred to a thousand is usual)".into(),
            });
        }
        let steps = plan(model)?;
        let stages: Vec<_> = model.stages().collect();
        let mut observers: Vec<RangeObserver> = Vec::new();
        for stage in &stages {
            if matches!(
                stage.structure,
                LayerStructure::Dense(_) | LayerStructure::Conv2d(_)
            ) {
                observers.push(RangeObserver::new(calibration));
            }
        }
        const CALIBRATION_BATCH: usize = 250;
        for start in (0..count).step_by(CALIBRATION_BATCH) {
            let length = CALIBRATION_BATCH.min(count - start);
            let mut values = calibration_images.narrow(0, start, length)?;
            let mut layer = 0;
            for stage in &stages {
                if matches!(
                    stage.structure,
                    LayerStructure::Dense(_) | LayerStructure::Conv2d(_)
                ) {
                    observers[layer].observe(&values)?;
                    layer += 1;
                }
                values = stage
                    .layer
                    .forward_activated(&values, Mode::Eval, stage.activation)?;
            }
        }
        let mut layers = Vec::new();
        for (slot, observer) in layer_slots(model)?.into_iter().zip(&mut observers) {
            let (low, high) = observer.range(calibration)?;
            let (input_scale, input_zero_point) = int8::choose_u8_scale(low, high)?;
            let (weight, bias) = slot.folded_parameters()?;
            let (weights, weight_scales) = QuantizedLayer::quantize_weights(&weight)?;
            let bias = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            layers.push(QuantizedLayer::new(
                slot.name,
                slot.kind,
                slot.weight_shape,
                weights,
                weight_scales,
                bias,
                input_scale,
                input_zero_point,
            )?);
        }
        Self {
            input_shape: model.input_shape().to_vec(),
            steps,
            layers,
        }
        .with_layouts()
    }

    /// Rebuilds a quantized model from `layers` (read from a file) for the architecture of
    /// `model` (whose own weights are not used): the layers must match its Dense and Conv2D
    /// stages in order, name, kind and shape.
    pub fn from_layers(model: &Sequential, layers: Vec<QuantizedLayer>) -> Result<Self> {
        let steps = plan(model)?;
        let expected = layer_slots(model)?;
        if expected.len() != layers.len() {
            return Err(CompressError::BadSetting {
                setting: "quantized layers",
                problem: format!(
                    "the architecture has {} Dense/Conv2D layers but {} quantized layers were given",
                    expected.len(),
                    layers.len()
                ),
            });
        }
        for (slot, layer) in expected.iter().zip(&layers) {
            let (name, shape) = (slot.name, &slot.weight_shape);
            if name != layer.name || *shape != layer.weight_shape {
                return Err(CompressError::BadSetting {
                    setting: "quantized layers",
                    problem: format!(
                        "expected layer '{name}' with weight shape {shape:?}, found '{}' with {:?}",
                        layer.name, layer.weight_shape
                    ),
                });
            }
        }
        Self {
            input_shape: model.input_shape().to_vec(),
            steps,
            layers,
        }
        .with_layouts()
    }

    /// The quantized layers, in order.
    pub fn layers(&self) -> &[QuantizedLayer] {
        &self.layers
    }

    /// Repacks each Dense layer whose input comes from a convolution for the channels-last
    /// layout the int8 convolutions produce (see [`Layout`]).
    fn with_layouts(mut self) -> Result<Self> {
        let mut layout = Layout::ChannelsFirst;
        let mut shape = self.input_shape.clone();
        for (step, output_shape) in &self.steps {
            match step {
                Step::Layer(index, _) => {
                    let layer = &mut self.layers[*index];
                    layout = match layer.kind {
                        QuantizedKind::Conv2d { .. } => Layout::ChannelsLast,
                        QuantizedKind::Dense => {
                            if layout == Layout::ChannelsLast {
                                let [channels, height, width]: [usize; 3] =
                                    shape.as_slice().try_into().map_err(|_| {
                                        CompressError::BadSetting {
                                            setting: "quantized model",
                                            problem: format!("{}: a convolution's output of shape {shape:?} is not (C, H, W)", layer.name),
                                        }
                                    })?;
                                layer.packed = pack_channels_last(layer, channels, height * width)?;
                            }
                            Layout::ChannelsFirst
                        }
                    };
                }
                Step::MaxPool { .. } | Step::Activation(_) => {}
                Step::Identity => {
                    // flattening keeps the order of the bytes: the shape to remember is the
                    // last (C, H, W) one
                    if output_shape.len() != 1 {
                        shape = output_shape.clone();
                    }
                    continue;
                }
            }
            shape = output_shape.clone();
        }
        Ok(self)
    }

    /// The input quantization that the step after `index` should produce: the next quantized
    /// layer's, when only pooling, identities and ReLUs lie between.
    fn requantize_for(&self, index: usize) -> Option<(f32, u8)> {
        for (step, _) in &self.steps[index + 1..] {
            match step {
                Step::Layer(layer, _) => {
                    let layer = &self.layers[*layer];
                    return Some((layer.input_scale, layer.input_zero_point));
                }
                Step::MaxPool { .. } | Step::Identity => {}
                Step::Activation(Activation::Relu | Activation::Identity) => {}
                Step::Activation(_) => return None,
            }
        }
        None
    }

    /// The logits (every layer and activation except a final softmax), as `Sequential::forward`
    /// in evaluation mode, for a batch `(N, input shape…)` of f32 inputs.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        if input.rank() != self.input_shape.len() + 1 || input.dims()[1..] != self.input_shape[..] {
            return Err(CompressError::BadSetting {
                setting: "quantized model input",
                problem: format!(
                    "expected a batch of shape (N, {:?}), got {:?}",
                    self.input_shape,
                    input.dims()
                ),
            });
        }
        let batch = input.dims()[0];
        let mut values = Values::F32(
            input
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        let mut layout = Layout::ChannelsFirst;
        let mut shape = self.input_shape.clone();
        let last = self.steps.len() - 1;
        let mut index = 0;
        while index < self.steps.len() {
            let (step, output_shape) = &self.steps[index];
            let mut next = index + 1;
            match step {
                Step::Layer(layer, activation) => {
                    let layer = &self.layers[*layer];
                    let fusable = matches!(layer.kind, QuantizedKind::Conv2d { .. })
                        && matches!(activation, Activation::Relu | Activation::Identity);
                    let pool = match self.steps.get(index + 1) {
                        Some((Step::MaxPool { kernel, stride }, pooled)) if fusable => {
                            next = index + 2;
                            Some(Pool {
                                kernel: *kernel,
                                stride: *stride,
                                out_height: pooled[1],
                                out_width: pooled[2],
                            })
                        }
                        _ => None,
                    };
                    if let (QuantizedKind::Conv2d { .. }, Layout::ChannelsLast) =
                        (layer.kind, layout)
                    {
                        values = to_channels_first(values, batch, &shape);
                    }
                    let skip_softmax = index == last && *activation == Activation::Softmax;
                    values = self.run_layer(
                        layer,
                        *activation,
                        skip_softmax,
                        values,
                        batch,
                        next - 1,
                        pool,
                    )?;
                    layout = match layer.kind {
                        QuantizedKind::Conv2d { .. } => Layout::ChannelsLast,
                        QuantizedKind::Dense => Layout::ChannelsFirst,
                    };
                }
                Step::MaxPool { kernel, stride } => {
                    values = max_pool(
                        values,
                        batch,
                        &shape,
                        output_shape,
                        *kernel,
                        *stride,
                        layout,
                    );
                }
                Step::Identity => {
                    if output_shape.len() != 1 {
                        // not a flattening (dropout): the shape in (C, H, W) terms is kept
                        shape = output_shape.clone();
                    }
                    index = next;
                    continue;
                }
                Step::Activation(activation) => {
                    let per_example = shape.iter().product();
                    values = apply_activation(values, *activation, &[batch, per_example])?;
                }
            }
            shape = self.steps[next - 1].1.clone();
            index = next;
        }
        if layout == Layout::ChannelsLast {
            values = to_channels_first(values, batch, &shape);
        }
        let floats = values.into_floats();
        let mut dims = vec![batch];
        dims.extend_from_slice(&self.steps[last].1);
        Ok(Tensor::from_vec(floats, dims, &Device::Cpu)?.to_device(input.device())?)
    }

    /// Class probabilities: [`QuantizedModel::forward`] then a softmax.
    pub fn predict(&self, input: &Tensor) -> Result<Tensor> {
        Ok(dl_nn::softmax(&self.forward(input)?)?)
    }

    /// Runs one quantized layer; `index` is the last step it covers (its pooling, if fused).
    #[allow(clippy::too_many_arguments)]
    fn run_layer(
        &self,
        layer: &QuantizedLayer,
        activation: Activation,
        skip_softmax: bool,
        values: Values,
        batch: usize,
        index: usize,
        pool: Option<Pool>,
    ) -> Result<Values> {
        let input = match values {
            Values::U8 {
                values,
                scale,
                zero_point,
            } if scale == layer.input_scale && zero_point == layer.input_zero_point => values,
            other => {
                let floats = other.into_floats();
                let mut bytes = vec![0u8; floats.len()];
                int8::quantize_u8(
                    &floats,
                    layer.input_scale,
                    layer.input_zero_point,
                    &mut bytes,
                )?;
                bytes
            }
        };
        let relu = activation == Activation::Relu;
        let fused = relu || activation == Activation::Identity;
        let requantize = if fused {
            self.requantize_for(index)
        } else {
            None
        };
        let rows = match layer.kind {
            QuantizedKind::Dense => batch,
            QuantizedKind::Conv2d { .. } => 0,
        };
        let product = |activations: Activations<'_>, output: Output<'_>| {
            int8::matmul(activations, &layer.packed, Some(&layer.bias), relu, output)
        };
        let result = match (layer.kind, requantize) {
            (QuantizedKind::Dense, Some((scale, zero_point))) => {
                let mut out = vec![0u8; rows * layer.out_features()];
                product(
                    layer.activations(&input, rows),
                    Output::U8 {
                        out: &mut out,
                        scale,
                        zero_point,
                    },
                )?;
                Values::U8 {
                    values: out,
                    scale,
                    zero_point,
                }
            }
            (QuantizedKind::Dense, None) => {
                let mut out = vec![0f32; rows * layer.out_features()];
                product(layer.activations(&input, rows), Output::F32(&mut out))?;
                Values::F32(out)
            }
            (
                QuantizedKind::Conv2d {
                    config,
                    input_shape,
                },
                requantize,
            ) => {
                let convolution = Convolution {
                    layer,
                    config,
                    input_shape,
                    pool,
                };
                match requantize {
                    Some((scale, zero_point)) => Values::U8 {
                        values: convolution.run(&input, 0u8, |activations, out| {
                            product(
                                activations,
                                Output::U8 {
                                    out,
                                    scale,
                                    zero_point,
                                },
                            )
                        })?,
                        scale,
                        zero_point,
                    },
                    None => Values::F32(convolution.run(&input, 0f32, |activations, out| {
                        product(activations, Output::F32(out))
                    })?),
                }
            }
        };
        if fused || skip_softmax {
            Ok(result)
        } else {
            let per_example = match &result {
                Values::U8 { values, .. } => values.len() / batch,
                Values::F32(values) => values.len() / batch,
            };
            apply_activation(result, activation, &[batch, per_example])
        }
    }
}

impl QuantizedLayer {
    /// `rows` rows of this layer's input bytes, with its quantization.
    fn activations<'a>(&self, values: &'a [u8], rows: usize) -> Activations<'a> {
        Activations {
            values,
            rows,
            scale: self.input_scale,
            zero_point: self.input_zero_point,
        }
    }
}

/// The order of a convolution's outputs in memory. The int8 convolution produces, per image,
/// one row of all channels per position (channels last, what its matrix product gives);
/// leaving them so saves a transposition, and the Dense layer after them reads its inputs in
/// that order (its weight columns are reordered once, when the model is built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// (C, H, W), the model's own order.
    ChannelsFirst,
    /// (H, W, C).
    ChannelsLast,
}

/// A Dense layer's weights with columns in (H, W, C) order instead of (C, H, W).
fn pack_channels_last(
    layer: &QuantizedLayer,
    channels: usize,
    positions: usize,
) -> Result<PackedInt8Weights> {
    let out_features = layer.out_features();
    let in_features = channels * positions;
    if layer.weights.len() != out_features * in_features {
        return Err(CompressError::BadSetting {
            setting: "quantized model",
            problem: format!(
                "{}: {} inputs do not come from {channels} channels of {positions} positions",
                layer.name,
                layer.weights.len() / out_features.max(1)
            ),
        });
    }
    let mut reordered = vec![0i8; layer.weights.len()];
    for (row, out) in layer
        .weights
        .chunks_exact(in_features)
        .zip(reordered.chunks_exact_mut(in_features))
    {
        for channel in 0..channels {
            for position in 0..positions {
                out[position * channels + channel] = row[channel * positions + position];
            }
        }
    }
    Ok(PackedInt8Weights::new(
        &reordered,
        out_features,
        in_features,
        layer.weight_scales.clone(),
    )?)
}

/// A value max pooling compares: bytes or floats, with a maximum that compiles to one vector
/// instruction (a conditional store would not vectorise).
trait Pooled: Copy + Send + Sync {
    /// The larger of the two.
    fn larger(self, other: Self) -> Self;
}

impl Pooled for u8 {
    #[inline(always)]
    fn larger(self, other: Self) -> Self {
        self.max(other)
    }
}

impl Pooled for f32 {
    #[inline(always)]
    fn larger(self, other: Self) -> Self {
        if other > self {
            other
        } else {
            self
        }
    }
}

/// Max pooling fused into the convolution before it.
#[derive(Debug, Clone, Copy)]
struct Pool {
    kernel: usize,
    stride: usize,
    out_height: usize,
    out_width: usize,
}

/// One int8 convolution over a batch, image by image (in parallel): im2col, then the integer
/// product into the output in channels-last order — or, when a max pooling follows, into a small
/// per-image buffer that stays in cache and is pooled from there.
struct Convolution<'a> {
    layer: &'a QuantizedLayer,
    config: Conv2dConfig,
    input_shape: [usize; 3],
    pool: Option<Pool>,
}

impl Convolution<'_> {
    fn run<T, F>(&self, input: &[u8], zero: T, product: F) -> Result<Vec<T>>
    where
        T: Pooled,
        F: Fn(Activations<'_>, &mut [T]) -> dl_tensor::Result<()> + Sync,
    {
        let [channels, height, width] = self.input_shape;
        let config = self.config;
        let out_height = config.output_size(height).unwrap_or(0);
        let out_width = config.output_size(width).unwrap_or(0);
        let positions = out_height * out_width;
        let filters = self.layer.out_features();
        let per_image = match self.pool {
            Some(pool) => filters * pool.out_height * pool.out_width,
            None => filters * positions,
        };
        let image_size = channels * height * width;
        let batch = input.len() / image_size.max(1);
        let mut out = vec![zero; batch * per_image];
        out.par_chunks_mut(per_image)
            .zip(input.par_chunks(image_size))
            .try_for_each_init(
                || {
                    vec![
                        zero;
                        if self.pool.is_some() {
                            positions * filters
                        } else {
                            0
                        }
                    ]
                },
                |scratch, (out, image)| -> Result<()> {
                    let (columns, _, _) = int8::im2col_u8(
                        image,
                        (channels, height, width),
                        config.kernel_size,
                        config.stride,
                        config.padding,
                        self.layer.input_zero_point,
                    )?;
                    let activations = self.layer.activations(&columns, positions);
                    let Some(pool) = self.pool else {
                        product(activations, out)?;
                        return Ok(());
                    };
                    product(activations, scratch)?;
                    // (H, W, C) rows of `filters` values: an element-wise max over the window's
                    // rows, which vectorises.
                    for y in 0..pool.out_height {
                        for x in 0..pool.out_width {
                            let best = &mut out[(y * pool.out_width + x) * filters..][..filters];
                            let row = |dy: usize, dx: usize| {
                                let at =
                                    ((y * pool.stride + dy) * out_width + x * pool.stride + dx)
                                        * filters;
                                &scratch[at..at + filters]
                            };
                            best.copy_from_slice(row(0, 0));
                            for dy in 0..pool.kernel {
                                for dx in 0..pool.kernel {
                                    for (best, &value) in best.iter_mut().zip(row(dy, dx)) {
                                        *best = best.larger(value);
                                    }
                                }
                            }
                        }
                    }
                    Ok(())
                },
            )?;
        Ok(out)
    }
}

/// Channels-last values of shape (C, H, W) per image back to channels first.
fn to_channels_first(values: Values, batch: usize, shape: &[usize]) -> Values {
    fn transpose<T: Copy + Default + Send + Sync>(
        values: &[T],
        batch: usize,
        channels: usize,
    ) -> Vec<T> {
        let per_image = values.len() / batch.max(1);
        let positions = per_image / channels.max(1);
        let mut out = vec![T::default(); values.len()];
        out.par_chunks_mut(per_image.max(1))
            .zip(values.par_chunks(per_image.max(1)))
            .for_each(|(out, image)| {
                for (position, row) in image.chunks_exact(channels).enumerate() {
                    for (channel, &value) in row.iter().enumerate() {
                        out[channel * positions + position] = value;
                    }
                }
            });
        out
    }
    let channels = shape.first().copied().unwrap_or(1).max(1);
    match values {
        Values::U8 {
            values,
            scale,
            zero_point,
        } => Values::U8 {
            values: transpose(&values, batch, channels),
            scale,
            zero_point,
        },
        Values::F32(values) => Values::F32(transpose(&values, batch, channels)),
    }
}

/// Max pooling of (batch, C, H, W) values in either layout, bytes or floats alike.
fn max_pool(
    values: Values,
    batch: usize,
    input: &[usize],
    output: &[usize],
    kernel: usize,
    stride: usize,
    layout: Layout,
) -> Values {
    fn pool<T: Pooled + Default>(
        values: &[T],
        batch: usize,
        input: &[usize],
        output: &[usize],
        (kernel, stride): (usize, usize),
        layout: Layout,
    ) -> Vec<T> {
        let (channels, height, width) = (input[0], input[1], input[2]);
        let (out_h, out_w) = (output[1], output[2]);
        // channels first: `channels` planes of one value per position; channels last: one plane
        // of `channels` values per position
        let (planes, depth) = match layout {
            Layout::ChannelsFirst => (batch * channels, 1),
            Layout::ChannelsLast => (batch, channels),
        };
        let mut out = vec![T::default(); batch * channels * out_h * out_w];
        out.par_chunks_mut(out_h * out_w * depth)
            .zip(values.par_chunks(height * width * depth))
            .for_each(|(out, plane)| {
                for y in 0..out_h {
                    for x in 0..out_w {
                        let best = &mut out[(y * out_w + x) * depth..][..depth];
                        let start = (y * stride * width + x * stride) * depth;
                        best.copy_from_slice(&plane[start..start + depth]);
                        for dy in 0..kernel {
                            for dx in 0..kernel {
                                let at = ((y * stride + dy) * width + x * stride + dx) * depth;
                                for (best, &value) in best.iter_mut().zip(&plane[at..at + depth]) {
                                    *best = best.larger(value);
                                }
                            }
                        }
                    }
                }
            });
        debug_assert_eq!(planes * out_h * out_w * depth, out.len());
        out
    }
    match values {
        Values::U8 {
            values,
            scale,
            zero_point,
        } => Values::U8 {
            values: pool(&values, batch, input, output, (kernel, stride), layout),
            scale,
            zero_point,
        },
        Values::F32(values) => Values::F32(pool(
            &values,
            batch,
            input,
            output,
            (kernel, stride),
            layout,
        )),
    }
}

fn dequantize(values: &[u8], scale: f32, zero_point: u8) -> Vec<f32> {
    values
        .iter()
        .map(|&value| scale * (f32::from(value) - f32::from(zero_point)))
        .collect()
}

/// An activation on its own: ReLU and the identity stay in bytes, others run in f32 (they act
/// element by element, so the layout does not matter).
fn apply_activation(values: Values, activation: Activation, dims: &[usize]) -> Result<Values> {
    match (values, activation) {
        (values, Activation::Identity) => Ok(values),
        (
            Values::U8 {
                values,
                scale,
                zero_point,
            },
            Activation::Relu,
        ) => Ok(Values::U8 {
            values: values
                .into_iter()
                .map(|value| value.max(zero_point))
                .collect(),
            scale,
            zero_point,
        }),
        (values, activation) => {
            let floats = values.into_floats();
            let tensor = Tensor::from_vec(floats, dims, &Device::Cpu)?;
            let activated = activation.apply(&tensor)?;
            Ok(Values::F32(activated.flatten_all()?.to_vec1::<f32>()?))
        }
    }
}

impl dl_nn::Layer for QuantizedModel {
    /// The logits, as [`QuantizedModel::forward`]; the mode changes nothing (int8 models only
    /// run inference).
    fn forward(&self, input: &Tensor, _mode: Mode) -> dl_nn::Result<Tensor> {
        QuantizedModel::forward(self, input).map_err(|error| match error {
            CompressError::Nn(inner) => inner,
            CompressError::Candle(inner) => inner.into(),
            other => dl_nn::NnError::config("int8 model", other.to_string()),
        })
    }

    fn kind(&self) -> &'static str {
        "Int8Sequential"
    }
}
