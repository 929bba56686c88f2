//! `dl_tensor::kernels::int8` (course §8, model compression): the int8 product against its
//! definition, on every backend this CPU has, and the quantization helpers around it. Every
//! expected value is computed here, by the formulas, independently of the kernels.

use dl_tensor::kernels::int8::{
    self, accumulators, choose_u8_scale, im2col_u8, matmul_with_backend, quantize_u8,
    reference_accumulators, Activations, Backend, Output, PackedInt8Weights, MAX_IN_FEATURES,
};
use dl_tensor::SeededRng;

/// The backends this CPU runs; the portable one always.
fn backends() -> Vec<Backend> {
    let available: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|backend| backend.is_available())
        .collect();
    assert!(available.contains(&Backend::Portable));
    available
}

fn random_bytes(rng: &mut SeededRng, count: usize) -> Vec<u8> {
    (0..count).map(|_| rng.below(256) as u8).collect()
}

/// Weights in [-127, 127].
fn random_weights(rng: &mut SeededRng, count: usize) -> Vec<i8> {
    (0..count)
        .map(|_| (rng.below(255) as i32 - 127) as i8)
        .collect()
}

fn input(values: &[u8], rows: usize, scale: f32, zero_point: u8) -> Activations<'_> {
    Activations {
        values,
        rows,
        scale,
        zero_point,
    }
}

/// The accumulators of every available backend, checked equal to the definition.
fn check_accumulators(a: &[u8], rows: usize, zero_point: u8, w: &[i8], n: usize, k: usize) {
    let expected = reference_accumulators(a, rows, zero_point, w, n, k).unwrap();
    let packed = PackedInt8Weights::new(w, n, k, vec![1.0; n]).unwrap();
    for backend in backends() {
        let mut acc = vec![0i32; rows * n];
        accumulators(backend, input(a, rows, 1.0, zero_point), &packed, &mut acc).unwrap();
        assert_eq!(
            acc,
            expected,
            "{} backend, m {rows} k {k} n {n}, zero point {zero_point}",
            backend.name()
        );
    }
}

#[test]
fn the_best_backend_is_named_and_available() {
    let best = Backend::best();
    assert!(best.is_available());
    assert_eq!(int8::backend(), best.name());
    assert_eq!(best, backends()[0], "the fastest available one");
    println!(
        "backends here: {:?}",
        backends().iter().map(|b| b.name()).collect::<Vec<_>>()
    );
}

#[test]
fn accumulators_match_the_definition_on_odd_shapes() {
    let mut rng = SeededRng::new(1);
    for rows in [1, 3, 5, 17, 33] {
        for k in [1, 2, 3, 4, 5, 9, 17, 33, 100] {
            for n in [1, 3, 10, 16, 17, 33, 65, 100] {
                let a = random_bytes(&mut rng, rows * k);
                let w = random_weights(&mut rng, n * k);
                let zero_point = [0, 128, 255, rng.below(256) as u8][rng.below(4)];
                check_accumulators(&a, rows, zero_point, &w, n, k);
            }
        }
    }
    // Larger, and above the size that spreads rows over threads (rows not a multiple of the
    // tiles, k not a multiple of 4).
    for (rows, k, n) in [(100, 100, 100), (70, 501, 130), (676, 9, 32)] {
        let a = random_bytes(&mut rng, rows * k);
        let w = random_weights(&mut rng, n * k);
        check_accumulators(&a, rows, 7, &w, n, k);
    }
}

#[test]
fn accumulators_are_exact_at_the_extremes() {
    for (rows, k, n) in [(1, 1, 1), (5, 17, 33), (9, 1000, 20)] {
        for zero_point in [0, 128, 255] {
            for (activation, weight) in [(255, 127), (0, -127), (255, -127), (0, 127)] {
                let a = vec![activation; rows * k];
                let w = vec![weight; n * k];
                check_accumulators(&a, rows, zero_point, &w, n, k);
            }
        }
    }
    // The longest rows allowed: 255 · 127 · k is just below i32::MAX, both signs.
    let k = MAX_IN_FEATURES;
    let (a, w) = (vec![255u8; 2 * k], vec![127i8; 3 * k]);
    check_accumulators(&a, 2, 0, &w, 3, k);
    let expected = 255 * 127 * k as i64;
    assert!(expected <= i64::from(i32::MAX));
    assert_eq!(
        i64::from(reference_accumulators(&a, 2, 0, &w, 3, k).unwrap()[0]),
        expected
    );
    let a = vec![0u8; 2 * k];
    check_accumulators(&a, 2, 255, &w, 3, k);
    assert!(PackedInt8Weights::new(&vec![1; k + 1], 1, k + 1, vec![1.0]).is_err());
}

/// y = (s_a · s_w[n]) · acc + b[n], then ReLU: the documented epilogue, operation by operation.
fn expected_real(
    acc: &[i32],
    n: usize,
    input_scale: f32,
    scales: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    acc.iter()
        .enumerate()
        .map(|(index, &acc)| {
            let channel = index % n;
            let mut y = (input_scale * scales[channel]) * acc as f32;
            if let Some(bias) = bias {
                y += bias[channel];
            }
            if !relu || y > 0.0 {
                y
            } else {
                0.0
            }
        })
        .collect()
}

/// sat_u8(round_half_even(y / s) + z).
fn expected_u8(y: f32, scale: f32, zero_point: u8) -> u8 {
    let q = (y / scale).round_ties_even() + f32::from(zero_point);
    if q.is_nan() {
        0
    } else {
        q.clamp(0.0, 255.0) as u8
    }
}

#[test]
fn every_backend_gives_the_formula_bit_for_bit() {
    let mut rng = SeededRng::new(2);
    for (rows, k, n) in [(1, 5, 3), (7, 33, 17), (33, 100, 65), (70, 501, 130)] {
        let a = random_bytes(&mut rng, rows * k);
        let w = random_weights(&mut rng, n * k);
        let scales: Vec<f32> = (0..n).map(|_| rng.uniform_range(1e-3, 2e-2)).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let (input_scale, zero_point) = (0.037, 113);
        let packed = PackedInt8Weights::new(&w, n, k, scales.clone()).unwrap();
        let acc = reference_accumulators(&a, rows, zero_point, &w, n, k).unwrap();
        for (bias, relu) in [
            (None, false),
            (Some(&bias[..]), false),
            (Some(&bias[..]), true),
        ] {
            let real = expected_real(&acc, n, input_scale, &scales, bias, relu);
            // An output scale that saturates some values on both sides.
            let (out_scale, out_zero) = (0.01, 100);
            for backend in backends() {
                let mut y = vec![f32::NAN; rows * n];
                let quantized = input(&a, rows, input_scale, zero_point);
                matmul_with_backend(backend, quantized, &packed, bias, relu, Output::F32(&mut y))
                    .unwrap();
                let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&y), bits(&real), "{} backend, f32", backend.name());

                let mut q = vec![0u8; rows * n];
                let output = Output::U8 {
                    out: &mut q,
                    scale: out_scale,
                    zero_point: out_zero,
                };
                matmul_with_backend(backend, quantized, &packed, bias, relu, output).unwrap();
                let expected: Vec<u8> = real
                    .iter()
                    .map(|&y| expected_u8(y, out_scale, out_zero))
                    .collect();
                assert_eq!(q, expected, "{} backend, u8", backend.name());
            }
        }
    }
}

#[test]
fn a_product_worked_by_hand() {
    // A (2 × 3), zero point 128, scale 0.5: q − z = [[2, 0, -8], [0, 12, -28]],
    // so the real activations are [[1, 0, -4], [0, 6, -14]].
    let a = [130u8, 128, 120, 128, 140, 100];
    // W (2 outputs × 3 inputs), scales 0.25 and 2.
    let w = [1i8, 2, 3, -4, 0, 5];
    let weights = PackedInt8Weights::new(&w, 2, 3, vec![0.25, 2.0]).unwrap();
    let bias = [3.0f32, 100.0];
    // acc[0] = [2·1 + 0·2 − 8·3, 2·(−4) + 0·0 − 8·5]   = [−22, −48]
    // acc[1] = [0·1 + 12·2 − 28·3, 0·(−4) + 12·0 − 28·5] = [−60, −140]
    // multipliers s_a · s_w = [0.5 · 0.25, 0.5 · 2] = [0.125, 1]
    // y[0] = [0.125 · (−22) + 3, −48 + 100]  = [0.25, 52]
    // y[1] = [0.125 · (−60) + 3, −140 + 100] = [−4.5, −40]   (ReLU: [0, 0])
    // As u8 with scale 0.5, zero point 10: y / 0.5 = [0.5, 104, −9, −80], rounded half to
    // even [0, 104, −9, −80], plus 10 and saturated: [10, 114, 1, 0]; after ReLU [10, 114, 10, 10].
    let activations = input(&a, 2, 0.5, 128);
    for backend in backends() {
        let mut acc = [0i32; 4];
        accumulators(backend, activations, &weights, &mut acc).unwrap();
        assert_eq!(acc, [-22, -48, -60, -140]);
        for (relu, real, quantized) in [
            (false, [0.25, 52.0, -4.5, -40.0], [10, 114, 1, 0]),
            (true, [0.25, 52.0, 0.0, 0.0], [10, 114, 10, 10]),
        ] {
            let mut y = [0f32; 4];
            matmul_with_backend(
                backend,
                activations,
                &weights,
                Some(&bias),
                relu,
                Output::F32(&mut y),
            )
            .unwrap();
            assert_eq!(y, real, "{} backend, relu {relu}", backend.name());
            let mut q = [0u8; 4];
            let output = Output::U8 {
                out: &mut q,
                scale: 0.5,
                zero_point: 10,
            };
            matmul_with_backend(backend, activations, &weights, Some(&bias), relu, output).unwrap();
            assert_eq!(q, quantized, "{} backend, relu {relu}", backend.name());
        }
    }
}

#[test]
fn quantize_u8_rounds_half_to_even_and_saturates() {
    let values = [
        0.0,
        1.25,  // 2.5 steps → 2
        1.75,  // 3.5 steps → 4
        -1.25, // −2.5 steps → −2
        100.0,
        -100.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut out = [0u8; 9];
    quantize_u8(&values, 0.5, 20, &mut out).unwrap();
    assert_eq!(out, [20, 22, 24, 18, 220, 0, 0, 255, 0]);
    let mut rng = SeededRng::new(3);
    let values: Vec<f32> = (0..1001).map(|_| rng.normal() * 3.0).collect();
    let mut out = vec![0u8; values.len()];
    quantize_u8(&values, 0.021, 77, &mut out).unwrap();
    let expected: Vec<u8> = values.iter().map(|&v| expected_u8(v, 0.021, 77)).collect();
    assert_eq!(out, expected);
}

#[test]
fn chosen_scales_cover_the_range_with_zero_exact() {
    let mut rng = SeededRng::new(4);
    let ranges = [
        (-1.0, 1.0),
        (0.5, 3.0),   // all positive: the range starts at 0
        (-7.0, -2.0), // all negative: the range ends at 0
        (-1e-3, 5.0),
        (-3.3, 0.1),
        (-1e-30, 1e-30),
        (-f32::MAX, f32::MAX),
    ];
    for (min, max) in ranges {
        let (scale, zero_point) = choose_u8_scale(min, max).unwrap();
        assert!(scale > 0.0 && scale.is_finite());
        let (low, high) = (f32::min(min, 0.0), f32::max(max, 0.0));
        let mut values: Vec<f32> = (0..500)
            .map(|_| {
                let t = rng.uniform();
                low * (1.0 - t) + high * t
            })
            .collect();
        values.extend([low, high, 0.0, min, max]);
        let values: Vec<f32> = values.into_iter().map(|v| v.clamp(low, high)).collect();
        let mut q = vec![0u8; values.len()];
        quantize_u8(&values, scale, zero_point, &mut q).unwrap();
        for (&value, &q) in values.iter().zip(&q) {
            // In f64: 128 steps of the widest range's scale overflow f32.
            let back = f64::from(scale) * f64::from(i32::from(q) - i32::from(zero_point));
            let error = (back - f64::from(value)).abs();
            // scale / 2, and the rounding of scale (an f32) times up to 255 steps.
            assert!(
                error <= f64::from(scale) / 2.0 * (1.0 + 1e-4),
                "range [{min}, {max}]: {value} came back as {back}, scale {scale}"
            );
        }
        let mut zero = [0u8];
        quantize_u8(&[0.0], scale, zero_point, &mut zero).unwrap();
        assert_eq!(zero[0], zero_point, "0 maps to the zero point exactly");
    }
    assert_eq!(choose_u8_scale(0.0, 0.0).unwrap(), (1.0, 0));
    assert_eq!(choose_u8_scale(0.0, 255.0).unwrap(), (1.0, 0));
    assert_eq!(choose_u8_scale(-255.0, 0.0).unwrap(), (1.0, 255));
}

#[test]
fn im2col_matches_windows_of_the_padded_image() {
    let (channels, height, width, kernel, stride, padding, pad) = (3, 7, 5, 3, 2, 1, 37u8);
    let mut rng = SeededRng::new(5);
    let image = random_bytes(&mut rng, channels * height * width);
    let (columns, out_h, out_w) = im2col_u8(
        &image,
        (channels, height, width),
        kernel,
        stride,
        padding,
        pad,
    )
    .unwrap();
    assert_eq!((out_h, out_w), (4, 3));
    // The definition: pad the image, then read each window.
    let (padded_h, padded_w) = (height + 2 * padding, width + 2 * padding);
    let mut padded = vec![pad; channels * padded_h * padded_w];
    for c in 0..channels {
        for y in 0..height {
            for x in 0..width {
                padded[(c * padded_h + y + padding) * padded_w + x + padding] =
                    image[(c * height + y) * width + x];
            }
        }
    }
    let mut expected = Vec::new();
    for oy in 0..out_h {
        for ox in 0..out_w {
            for c in 0..channels {
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let (y, x) = (oy * stride + ky, ox * stride + kx);
                        expected.push(padded[(c * padded_h + y) * padded_w + x]);
                    }
                }
            }
        }
    }
    assert_eq!(columns, expected);
}

#[test]
fn im2col_then_matmul_is_the_convolution() {
    // A 2-channel 6 × 6 image, 4 filters of 3 × 3, stride 1, padding 1 with the zero point, so
    // the border sees real zeros.
    let (channels, size, filters, kernel, zero_point) = (2, 6, 4, 3, 90u8);
    let mut rng = SeededRng::new(6);
    let image = random_bytes(&mut rng, channels * size * size);
    let w = random_weights(&mut rng, filters * channels * kernel * kernel);
    let (columns, out_h, out_w) =
        im2col_u8(&image, (channels, size, size), kernel, 1, 1, zero_point).unwrap();
    let taps = channels * kernel * kernel;
    let packed = PackedInt8Weights::new(&w, filters, taps, vec![1.0; filters]).unwrap();
    let positions = out_h * out_w;
    let mut acc = vec![0i32; positions * filters];
    let activations = input(&columns, positions, 1.0, zero_point);
    accumulators(Backend::best(), activations, &packed, &mut acc).unwrap();
    for f in 0..filters {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut sum = 0i32;
                for c in 0..channels {
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let (y, x) =
                                (oy as isize + ky as isize - 1, ox as isize + kx as isize - 1);
                            if (0..size as isize).contains(&y) && (0..size as isize).contains(&x) {
                                let q = image[(c * size + y as usize) * size + x as usize];
                                let weight = w[((f * channels + c) * kernel + ky) * kernel + kx];
                                sum += (i32::from(q) - i32::from(zero_point)) * i32::from(weight);
                            }
                        }
                    }
                }
                assert_eq!(acc[(oy * out_w + ox) * filters + f], sum);
            }
        }
    }
}

#[test]
fn empty_products_are_fine() {
    let packed = PackedInt8Weights::new(&[], 3, 0, vec![1.0; 3]).unwrap();
    let mut y = [9f32; 6];
    let activations = input(&[], 2, 1.0, 0);
    int8::matmul(
        activations,
        &packed,
        Some(&[1.0, 2.0, 3.0]),
        false,
        Output::F32(&mut y),
    )
    .unwrap();
    assert_eq!(
        y,
        [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
        "no inputs: y is the bias"
    );
    let packed = PackedInt8Weights::new(&[1, 2], 1, 2, vec![1.0]).unwrap();
    int8::matmul(
        input(&[], 0, 1.0, 0),
        &packed,
        None,
        true,
        Output::F32(&mut []),
    )
    .unwrap();
}

/// The error's message, which must mention `needle`.
fn assert_error<T: std::fmt::Debug>(result: dl_tensor::Result<T>, needle: &str) {
    let message = result.expect_err("an error").to_string();
    assert!(
        message.contains(needle),
        "'{message}' should mention '{needle}'"
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let w = [1i8, 2, 3, 4, 5, 6];
    assert_error(PackedInt8Weights::new(&w, 2, 4, vec![1.0; 2]), "6 weights");
    assert_error(PackedInt8Weights::new(&w, 2, 3, vec![1.0; 3]), "3 scales");
    assert_error(PackedInt8Weights::new(&[1, -128], 1, 2, vec![1.0]), "-128");
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_error(
            PackedInt8Weights::new(&w, 2, 3, vec![1.0, scale]),
            "output channel 1",
        );
    }
    assert_error(
        PackedInt8Weights::new(&[], usize::MAX, 2, vec![]),
        "overflow",
    );

    let packed = PackedInt8Weights::new(&w, 2, 3, vec![1.0; 2]).unwrap();
    let a = [1u8; 6];
    let mut y = [0f32; 4];
    assert_error(
        int8::matmul(
            input(&a[..5], 2, 1.0, 0),
            &packed,
            None,
            false,
            Output::F32(&mut y),
        ),
        "5 bytes",
    );
    assert_error(
        int8::matmul(
            input(&a, 2, 1.0, 0),
            &packed,
            Some(&[1.0]),
            false,
            Output::F32(&mut y),
        ),
        "1 bias values",
    );
    assert_error(
        int8::matmul(
            input(&a, 2, 1.0, 0),
            &packed,
            None,
            false,
            Output::F32(&mut y[..3]),
        ),
        "room for 3",
    );
    for scale in [0.0, -2.0, f32::NAN] {
        assert_error(
            int8::matmul(
                input(&a, 2, scale, 0),
                &packed,
                None,
                false,
                Output::F32(&mut y),
            ),
            "input scale",
        );
        let mut q = [0u8; 4];
        let output = Output::U8 {
            out: &mut q,
            scale,
            zero_point: 0,
        };
        assert_error(
            int8::matmul(input(&a, 2, 1.0, 0), &packed, None, false, output),
            "output scale",
        );
    }
    assert_error(
        accumulators(
            Backend::Portable,
            input(&a, 2, 1.0, 0),
            &packed,
            &mut [0; 5],
        ),
        "room for 5",
    );
    for backend in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
        assert_error(
            matmul_with_backend(
                backend,
                input(&a, 2, 1.0, 0),
                &packed,
                None,
                false,
                Output::F32(&mut y),
            ),
            "does not run",
        );
    }
    assert_error(reference_accumulators(&a, 3, 0, &w, 2, 3), "6 activations");

    assert_error(quantize_u8(&[1.0, 2.0], 1.0, 0, &mut [0; 3]), "room for 3");
    assert_error(quantize_u8(&[1.0], 0.0, 0, &mut [0]), "scale 0");
    assert_error(choose_u8_scale(f32::NAN, 1.0), "not a finite interval");
    assert_error(choose_u8_scale(2.0, 1.0), "not a finite interval");

    let image = [0u8; 12];
    assert_error(im2col_u8(&image[..11], (3, 2, 2), 1, 1, 0, 0), "11 bytes");
    assert_error(im2col_u8(&image, (3, 2, 2), 0, 1, 0, 0), "kernel 0");
    assert_error(im2col_u8(&image, (3, 2, 2), 1, 0, 0, 0), "stride 0");
    assert_error(im2col_u8(&image, (3, 2, 2), 3, 1, 0, 0), "kernel 3");
    assert!(
        im2col_u8(&image, (3, 2, 2), 3, 1, 1, 0).is_ok(),
        "fits once padded"
    );
    // An empty image is all padding.
    assert_error(im2col_u8(&[], (2, 0, 1), 3, 1, 1, 9), "kernel 3");
    let (columns, out_h, out_w) = im2col_u8(&[], (1, 0, 1), 1, 1, 1, 9).unwrap();
    assert_eq!((columns, out_h, out_w), (vec![9; 6], 2, 3));
}
