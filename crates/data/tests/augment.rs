//! Image augmentation: seeded, shape-preserving, identity when asked for nothing, and moving
//! pixels where the geometry says.

use dl_data::{warp_batch, AffineTransform, AugmentConfig, Augmenter};
use dl_tensor::{DType, Device, SeededRng, Tensor};

/// A batch of `count` random images in 0..1, (count, 1, 28, 28).
fn random_batch(count: usize, seed: u64) -> Tensor {
    SeededRng::new(seed)
        .uniform_tensor((count, 1, 28, 28), 0.0, 1.0, &Device::Cpu)
        .unwrap()
}

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn same_seed_same_output_other_seed_other_output() {
    let batch = random_batch(8, 1);
    let mut first = Augmenter::new(AugmentConfig::default(), 42).unwrap();
    let mut second = Augmenter::new(AugmentConfig::default(), 42).unwrap();
    let mut third = Augmenter::new(AugmentConfig::default(), 43).unwrap();
    let output = values(&first.apply(&batch).unwrap());
    assert_eq!(output, values(&second.apply(&batch).unwrap()));
    assert_ne!(output, values(&third.apply(&batch).unwrap()));
    // The generator advances: the next call draws new transforms.
    assert_ne!(output, values(&first.apply(&batch).unwrap()));
    // for_epoch restarts from the seed: equal for the same epoch, different across epochs.
    let epoch_one = values(&first.for_epoch(1).apply(&batch).unwrap());
    assert_eq!(
        epoch_one,
        values(&second.for_epoch(1).apply(&batch).unwrap())
    );
    assert_ne!(
        epoch_one,
        values(&first.for_epoch(2).apply(&batch).unwrap())
    );
}

#[test]
fn identity_config_returns_the_input_exactly() {
    let batch = random_batch(4, 2);
    let mut augmenter = Augmenter::new(AugmentConfig::identity(), 7).unwrap();
    assert_eq!(values(&augmenter.apply(&batch).unwrap()), values(&batch));
    // And the warp itself is exact for the identity transform, not just short-circuited.
    let warped = warp_batch(&batch, &[AffineTransform::IDENTITY; 4]).unwrap();
    assert_eq!(values(&warped), values(&batch));
}

#[test]
fn integer_shift_moves_pixels_by_hand() {
    // A 4×5 image with pixels 1..=20, row by row:
    //  1  2  3  4  5
    //  6  7  8  9 10
    // 11 12 13 14 15
    // 16 17 18 19 20
    let image = Tensor::from_vec(
        (1..=20).map(|value| value as f32).collect::<Vec<_>>(),
        (1, 1, 4, 5),
        &Device::Cpu,
    )
    .unwrap();
    // One pixel right, two down: the output's (row, column) is the input's (row − 2, column − 1);
    // the uncovered top two rows and left column are 0.
    // One pixel left: the right column is emptied.
    #[rustfmt::skip]
    let cases = [
        ((1.0, 2.0), [
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 3.0, 4.0,
            0.0, 6.0, 7.0, 8.0, 9.0,
        ]),
        ((-1.0, 0.0), [
            2.0, 3.0, 4.0, 5.0, 0.0,
            7.0, 8.0, 9.0, 10.0, 0.0,
            12.0, 13.0, 14.0, 15.0, 0.0,
            17.0, 18.0, 19.0, 20.0, 0.0,
        ]),
    ];
    for ((dx, dy), expected) in cases {
        let shifted = warp_batch(&image, &[AffineTransform::shift(dx, dy)]).unwrap();
        assert_eq!(values(&shifted), expected, "shift ({dx}, {dy})");
    }
}

#[test]
fn half_pixel_shift_averages_neighbours() {
    // Bilinear sampling: shifting right by half a pixel averages each pixel with its left one.
    let image = Tensor::from_vec(vec![0.0f32, 1.0, 0.5, 0.0], (1, 1, 1, 4), &Device::Cpu).unwrap();
    let shifted = warp_batch(&image, &[AffineTransform::shift(0.5, 0.0)]).unwrap();
    // Column 0 mixes the outside (0) and 0.0; column 1: (0 + 1)/2; column 2: (1 + 0.5)/2; ...
    assert_eq!(values(&shifted), vec![0.0, 0.5, 0.75, 0.25]);
}

#[test]
fn quarter_turn_rotates_counter_clockwise_on_screen() {
    // A 3×3 image with one lit pixel right of the centre; turning 90° counter-clockwise (as
    // seen, rows growing downwards) brings it above the centre.
    let mut pixels = vec![0.0f32; 9];
    pixels[5] = 1.0; // row 1, column 2
    let image = Tensor::from_vec(pixels, (1, 1, 3, 3), &Device::Cpu).unwrap();
    let turned = warp_batch(
        &image,
        &[AffineTransform {
            rotation_degrees: 90.0,
            ..AffineTransform::IDENTITY
        }],
    )
    .unwrap();
    let turned = values(&turned);
    assert!((turned[1] - 1.0).abs() < 1e-6, "{turned:?}"); // row 0, column 1
    assert!(turned.iter().sum::<f32>() - 1.0 < 1e-5, "{turned:?}");
}

#[test]
fn scaling_up_keeps_the_centre_pixel() {
    // Enlarging by 2 about the centre of a 5×5 image: the centre stays, its neighbours become
    // halfway mixes of the centre and the next pixel out.
    let pixels: Vec<f32> = (0..25).map(|value| value as f32 / 24.0).collect();
    let image = Tensor::from_vec(pixels.clone(), (1, 1, 5, 5), &Device::Cpu).unwrap();
    let scaled = values(
        &warp_batch(
            &image,
            &[AffineTransform {
                scale: 2.0,
                ..AffineTransform::IDENTITY
            }],
        )
        .unwrap(),
    );
    assert_eq!(scaled[12], pixels[12]);
    // Output (2, 3) reads input (2, 2.5): the mean of pixels 12 and 13.
    assert!((scaled[13] - (pixels[12] + pixels[13]) / 2.0).abs() < 1e-6);
}

#[test]
fn shapes_dtype_preserved_and_output_in_unit_range() {
    let batch = random_batch(16, 3);
    let strong = AugmentConfig {
        max_shift: 5.0,
        max_rotation_degrees: 45.0,
        scale_range: (0.5, 1.5),
    };
    let mut augmenter = Augmenter::new(strong, 11).unwrap();
    for _ in 0..5 {
        let output = augmenter.apply(&batch).unwrap();
        assert_eq!(output.dims(), batch.dims());
        assert_eq!(output.dtype(), DType::F32);
        assert!(values(&output)
            .iter()
            .all(|value| (0.0..=1.0).contains(value)));
    }
    // Several channels, and f64 pixels, come back as they went in.
    let colour = SeededRng::new(4)
        .uniform_tensor((2, 3, 8, 6), 0.0, 1.0, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let output = augmenter.apply(&colour).unwrap();
    assert_eq!(output.dims(), &[2, 3, 8, 6]);
    assert_eq!(output.dtype(), DType::F64);
}

#[test]
fn all_channels_of_an_image_get_the_same_transform() {
    let single = random_batch(1, 5);
    let doubled = Tensor::cat(&[&single, &single], 1).unwrap();
    let mut augmenter = Augmenter::new(AugmentConfig::default(), 8).unwrap();
    let output = augmenter.apply(&doubled).unwrap();
    let first = values(&output.narrow(1, 0, 1).unwrap());
    let second = values(&output.narrow(1, 1, 1).unwrap());
    assert_eq!(first, second);
}

#[test]
fn bad_configs_and_inputs_are_refused() {
    let bad_configs = [
        AugmentConfig {
            max_shift: -1.0,
            ..AugmentConfig::default()
        },
        AugmentConfig {
            max_shift: f32::INFINITY,
            ..AugmentConfig::default()
        },
        AugmentConfig {
            max_rotation_degrees: 200.0,
            ..AugmentConfig::default()
        },
        AugmentConfig {
            max_rotation_degrees: f32::NAN,
            ..AugmentConfig::default()
        },
        AugmentConfig {
            scale_range: (0.0, 1.0),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            scale_range: (1.2, 0.8),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            scale_range: (f32::NAN, 1.0),
            ..AugmentConfig::default()
        },
    ];
    for config in bad_configs {
        let error = Augmenter::new(config, 1).expect_err(&format!("{config:?} was accepted"));
        assert!(
            error.to_string().contains("invalid augmentation"),
            "{error}"
        );
    }

    let mut augmenter = Augmenter::new(AugmentConfig::default(), 1).unwrap();
    let flat = Tensor::zeros((4, 784), DType::F32, &Device::Cpu).unwrap();
    let error = augmenter.apply(&flat).unwrap_err();
    assert!(error.to_string().contains("(N, C, H, W)"), "{error}");
    let integers = Tensor::zeros((1, 1, 2, 2), DType::U32, &Device::Cpu).unwrap();
    assert!(augmenter.apply(&integers).is_err());
    let batch = random_batch(2, 1);
    assert!(warp_batch(&batch, &[AffineTransform::IDENTITY]).is_err());
}
