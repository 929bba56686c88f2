//! Post-training int8 quantization: the integer forward pass equals a scalar reference written
//! here from the definition (integer sums, then y = (s_a·s_w)·acc + b, requantized with
//! round-half-even), bit for bit, on odd shapes; it stays close to the fp32 model; the int8 file
//! round-trips and its readers refuse damaged files by name.

use std::collections::BTreeMap;
use std::path::Path;

use dl_compress::{
    decode_int8, encode_int8, is_int8, Calibration, CompressError, QuantizedKind, QuantizedModel,
};
use dl_nn::{Activation, Conv2dConfig, Layer, Mode, Sequential, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An odd-shaped CNN: 2 input channels of 9 x 7, a padded strided convolution, pooling,
/// another convolution, then two Dense layers.
fn odd_model(seed: u64) -> dl_nn::Result<(VarStore, Sequential)> {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    let model = Sequential::builder(&store.root(), &[2, 9, 7])
        .conv2d_with(5, Conv2dConfig::new(3).padding(1), Activation::Relu)?
        .max_pool2d(2)?
        .conv2d_with(3, Conv2dConfig::new(2).stride(1), Activation::Relu)?
        .flatten()?
        .dense(7, Activation::Relu)?
        .dense(3, Activation::Softmax)?
        .build();
    Ok((store, model))
}

fn random_images(count: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let values: Vec<f32> = (0..count * 2 * 9 * 7).map(|_| rng.normal()).collect();
    Tensor::from_vec(values, (count, 2, 9, 7), &Device::Cpu).unwrap()
}

/// The documented requantization: sat_u8(round_half_even(y / s) + z).
fn requantize(y: f32, scale: f32, zero_point: u8) -> u8 {
    ((y / scale).round_ties_even() + f32::from(zero_point)).clamp(0.0, 255.0) as u8
}

/// The reference forward pass of `model`'s quantized layers, one image at a time, in the
/// model's own (C, H, W) layout: plain loops over i32 sums.
fn reference_logits(quantized: &QuantizedModel, image: &[f32]) -> Vec<f32> {
    let layers = quantized.layers();
    let first = &layers[0];
    let mut bytes: Vec<u8> = image
        .iter()
        .map(|&v| requantize(v, first.input_scale, first.input_zero_point))
        .collect();
    let mut shape = vec![2usize, 9, 7];
    for (index, layer) in layers.iter().enumerate() {
        let last = index + 1 == layers.len();
        let out_channels = layer.weight_shape[0];
        let multiplier: Vec<f32> = layer
            .weight_scales
            .iter()
            .map(|&s| layer.input_scale * s)
            .collect();
        let zero = i32::from(layer.input_zero_point);
        let finish = |sum: i32, n: usize| -> f32 {
            let y = multiplier[n] * sum as f32 + layer.bias[n];
            if last || y > 0.0 {
                y
            } else {
                0.0
            }
        };
        let (outputs, new_shape): (Vec<f32>, Vec<usize>) = match layer.kind {
            QuantizedKind::Conv2d { config, .. } => {
                let (c, h, w) = (shape[0], shape[1], shape[2]);
                let k = config.kernel_size;
                let oh = (h + 2 * config.padding - k) / config.stride + 1;
                let ow = (w + 2 * config.padding - k) / config.stride + 1;
                let mut out = vec![0f32; out_channels * oh * ow];
                for n in 0..out_channels {
                    for y in 0..oh {
                        for x in 0..ow {
                            let mut sum = 0i32;
                            for ch in 0..c {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let iy = (y * config.stride + ky) as isize
                                            - config.padding as isize;
                                        let ix = (x * config.stride + kx) as isize
                                            - config.padding as isize;
                                        let q = if iy >= 0
                                            && ix >= 0
                                            && (iy as usize) < h
                                            && (ix as usize) < w
                                        {
                                            i32::from(
                                                bytes[(ch * h + iy as usize) * w + ix as usize],
                                            )
                                        } else {
                                            zero
                                        };
                                        let weight =
                                            layer.weights[((n * c + ch) * k + ky) * k + kx];
                                        sum += (q - zero) * i32::from(weight);
                                    }
                                }
                            }
                            out[(n * oh + y) * ow + x] = finish(sum, n);
                        }
                    }
                }
                (out, vec![out_channels, oh, ow])
            }
            QuantizedKind::Dense => {
                let inputs = bytes.len();
                let out = (0..out_channels)
                    .map(|n| {
                        let sum: i32 = (0..inputs)
                            .map(|i| {
                                (i32::from(bytes[i]) - zero)
                                    * i32::from(layer.weights[n * inputs + i])
                            })
                            .sum();
                        finish(sum, n)
                    })
                    .collect();
                (out, vec![out_channels])
            }
        };
        if last {
            return outputs;
        }
        let next = &layers[index + 1];
        bytes = outputs
            .iter()
            .map(|&y| requantize(y, next.input_scale, next.input_zero_point))
            .collect();
        shape = new_shape;
        // the first convolution is followed by 2x2 max pooling
        if index == 0 {
            let (c, h, w) = (shape[0], shape[1], shape[2]);
            let (oh, ow) = (h / 2, w / 2);
            let mut pooled = vec![0u8; c * oh * ow];
            for ch in 0..c {
                for y in 0..oh {
                    for x in 0..ow {
                        let mut best = 0u8;
                        for dy in 0..2 {
                            for dx in 0..2 {
                                best = best.max(bytes[(ch * h + 2 * y + dy) * w + 2 * x + dx]);
                            }
                        }
                        pooled[(ch * oh + y) * ow + x] = best;
                    }
                }
            }
            bytes = pooled;
            shape = vec![c, oh, ow];
        }
    }
    unreachable!("the last layer returns")
}

#[test]
fn int8_forward_equals_the_scalar_reference_bit_for_bit() -> TestResult {
    for seed in 0..3 {
        let (_store, model) = odd_model(seed)?;
        let quantized =
            QuantizedModel::calibrate(&model, &random_images(64, seed + 10), Calibration::MinMax)?;
        let images = random_images(13, seed + 20);
        let logits = quantized.forward(&images)?.to_vec2::<f32>()?;
        let flat = images.flatten_from(1)?.to_vec2::<f32>()?;
        for (image, logits) in flat.iter().zip(&logits) {
            assert_eq!(&reference_logits(&quantized, image), logits, "seed {seed}");
        }
    }
    Ok(())
}

#[test]
fn int8_stays_within_the_quantization_error_of_fp32() -> TestResult {
    let (_store, model) = odd_model(4)?;
    let quantized = QuantizedModel::calibrate(&model, &random_images(256, 5), Calibration::MinMax)?;
    let images = random_images(200, 6);
    let float = model.forward(&images, Mode::Eval)?;
    let int8 = quantized.forward(&images)?;
    let largest = float.abs()?.max_all()?.to_scalar::<f32>()?;
    let error = (float.clone() - &int8)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        error < 0.05 * largest,
        "error {error} against logits up to {largest}"
    );
    let agree = float
        .argmax(1)?
        .eq(&int8.argmax(1)?)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    assert!(agree >= 0.95, "argmax agrees on {agree}");
    // and as a Layer, which is what evaluate and predict call
    assert_eq!(
        Layer::forward(&quantized, &images, Mode::Eval)?.to_vec2::<f32>()?,
        int8.to_vec2::<f32>()?
    );
    Ok(())
}

#[test]
fn percentile_calibration_clips_the_extremes() -> TestResult {
    let (_store, model) = odd_model(1)?;
    let images = random_images(64, 2);
    let min_max = QuantizedModel::calibrate(&model, &images, Calibration::MinMax)?;
    let percentile = QuantizedModel::calibrate(
        &model,
        &images,
        Calibration::Percentile { percentile: 99.0 },
    )?;
    // a narrower range: a finer scale for the first layer's input
    assert!(percentile.layers()[0].input_scale < min_max.layers()[0].input_scale);
    let bad = QuantizedModel::calibrate(
        &model,
        &images,
        Calibration::Percentile { percentile: 20.0 },
    );
    assert!(bad.unwrap_err().to_string().contains("99.99"));
    Ok(())
}

#[test]
fn no_calibration_images_and_unsupported_layers_are_refused() -> TestResult {
    let (_store, model) = odd_model(1)?;
    let none = random_images(0, 1);
    let error = QuantizedModel::calibrate(&model, &none, Calibration::MinMax).unwrap_err();
    assert!(error.to_string().contains("0 images"), "{error}");
    // batch normalisation after a ReLU cannot be folded into the convolution
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let after_relu = Sequential::builder(&store.root(), &[1, 6, 6])
        .conv2d(2, 3, Activation::Relu)?
        .batch_norm()?
        .flatten()?
        .dense(2, Activation::Softmax)?
        .build();
    let images = Tensor::zeros((4, 1, 6, 6), DType::F32, &Device::Cpu)?;
    let error = QuantizedModel::calibrate(&after_relu, &images, Calibration::MinMax).unwrap_err();
    assert!(matches!(error, CompressError::UnsupportedLayer { .. }));
    assert!(error.to_string().contains("batch_normalization"), "{error}");
    Ok(())
}

#[test]
fn batch_normalisation_is_folded_into_the_convolution() -> TestResult {
    // The zoo's `cnn`: two convolutions, each followed by batch normalisation, then ReLU.
    let store = VarStore::new(&Device::Cpu, DType::F32, 8);
    let model =
        dl_models::ImageRecipe::new(dl_models::ImageModel::Cnn, dl_data::ImageDataset::Mnist)
            .build(&store)?;
    // running statistics and affine parameters far from the identity, so that folding matters
    let mut rng = SeededRng::new(3);
    for (name, var) in store.parameters().into_iter().map(|p| (p.name, p.var)) {
        if name.starts_with("batch_normalization") && var.rank() == 1 && !name.ends_with("tracked")
        {
            let count = var.dims()[0];
            let values: Vec<f32> = (0..count)
                .map(|_| match name.rsplit('.').next() {
                    Some("running_var") => 0.2 + rng.uniform(),
                    _ => rng.normal() * 0.5 + if name.ends_with("weight") { 1.0 } else { 0.0 },
                })
                .collect();
            var.set(&Tensor::from_vec(values, count, &Device::Cpu)?)?;
        }
    }
    let mut rng = SeededRng::new(4);
    let mut images = |count: usize| {
        let values: Vec<f32> = (0..count * 784).map(|_| rng.uniform()).collect();
        Tensor::from_vec(values, (count, 1, 28, 28), &Device::Cpu).unwrap()
    };
    let quantized = QuantizedModel::calibrate(&model, &images(128), Calibration::MinMax)?;
    let probe = images(64);
    let float = model.forward(&probe, Mode::Eval)?;
    let int8 = quantized.forward(&probe)?;
    let largest = float.abs()?.max_all()?.to_scalar::<f32>()?;
    let error = (float.clone() - &int8)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        error < 0.05 * largest,
        "error {error} against logits up to {largest}"
    );
    // and the folded weights round-trip through the file with the architecture alone
    let bytes = encode_int8(&quantized, &metadata())?;
    let decoded = decode_int8(Path::new("cnn.int8"), &bytes, &model)?;
    assert_eq!(
        decoded.forward(&probe)?.to_vec2::<f32>()?,
        int8.to_vec2::<f32>()?
    );
    Ok(())
}

#[test]
fn pruned_zeros_stay_exact_zeros_in_int8() -> TestResult {
    let (_store, model) = odd_model(3)?;
    let weights = dl_compress::prunable_weights(&model, Default::default())?;
    dl_compress::prune_by_magnitude(
        &weights,
        dl_compress::Sparsity::new(0.8)?.into(),
        dl_compress::PruneScope::Global,
    )?;
    let quantized = QuantizedModel::calibrate(&model, &random_images(32, 1), Calibration::MinMax)?;
    for (layer, weight) in quantized.layers().iter().zip(&weights) {
        let float: Vec<f32> = weight.var.as_tensor().flatten_all()?.to_vec1()?;
        for (q, w) in layer.weights.iter().zip(&float) {
            if *w == 0.0 {
                assert_eq!(*q, 0);
            }
        }
    }
    Ok(())
}

fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "quantization".to_string(),
            "{\"precision\":\"int8\"}".to_string(),
        ),
        ("note".to_string(), "test".to_string()),
    ])
}

#[test]
fn the_int8_file_round_trips() -> TestResult {
    let (_store, model) = odd_model(7)?;
    let quantized = QuantizedModel::calibrate(&model, &random_images(32, 8), Calibration::MinMax)?;
    let bytes = encode_int8(&quantized, &metadata())?;
    let read = dl_compress::read_metadata(Path::new("model.int8"), &bytes)?;
    assert!(is_int8(&read));
    assert_eq!(read["note"], "test");
    // Another process rebuilds the architecture (fresh random weights) and reads the file.
    let (_other_store, architecture) = odd_model(99)?;
    let decoded = decode_int8(Path::new("model.int8"), &bytes, &architecture)?;
    let images = random_images(9, 3);
    assert_eq!(
        decoded.forward(&images)?.to_vec2::<f32>()?,
        quantized.forward(&images)?.to_vec2::<f32>()?
    );
    Ok(())
}

/// `bytes` with the raw data of tensor `name` replaced by `value` (same length).
fn with_tensor_data(bytes: &[u8], name: &str, value: &[u8]) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let data = file.tensor(name).unwrap().data();
    assert_eq!(data.len(), value.len());
    let offset = data.as_ptr() as usize - bytes.as_ptr() as usize;
    let mut damaged = bytes.to_vec();
    damaged[offset..offset + value.len()].copy_from_slice(value);
    damaged
}

#[test]
fn damaged_int8_files_are_refused_by_name() -> TestResult {
    let (_store, model) = odd_model(7)?;
    let quantized = QuantizedModel::calibrate(&model, &random_images(32, 8), Calibration::MinMax)?;
    let bytes = encode_int8(&quantized, &metadata())?;
    let path = Path::new("damaged.int8.safetensors");
    let decode = |bytes: &[u8]| {
        decode_int8(path, bytes, &model)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let scales = quantized.layers()[1].weight_scales.len();
    let mut negative = (-1.0f32).to_le_bytes().to_vec();
    negative.extend(std::iter::repeat_n(0u8, 4 * (scales - 1)));
    assert!(decode(&with_tensor_data(
        &bytes,
        "conv2d_1.weight_scale",
        &negative
    ))
    .contains("conv2d_1"));
    let nan_scale: Vec<u8> = [f32::NAN, 0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert!(decode(&with_tensor_data(
        &bytes,
        "dense.input_quantization",
        &nan_scale
    ))
    .contains("dense"));
    let bad_zero: Vec<u8> = [0.1f32, 300.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert!(decode(&with_tensor_data(
        &bytes,
        "dense.input_quantization",
        &bad_zero
    ))
    .contains("zero point"));
    let weight_count = quantized.layers()[0].weights.len();
    let mut minimum = vec![0x80u8];
    minimum.extend(std::iter::repeat_n(0u8, weight_count - 1));
    assert!(decode(&with_tensor_data(&bytes, "conv2d.weight", &minimum)).contains("-128"));
    assert!(decode(&bytes[..bytes.len() / 2]).contains("not a safetensors file"));
    // a file of another architecture
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let other = Sequential::builder(&store.root(), &[2, 9, 7])
        .flatten()?
        .dense(3, Activation::Softmax)?
        .build();
    let error = decode_int8(path, &bytes, &other)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(error.contains("dense.weight"), "{error}");
    Ok(())
}
