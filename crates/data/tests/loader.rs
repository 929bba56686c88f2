//! Batching: batch counts, every example once per epoch, seeded orders, validation splits and
//! augmentation of training batches only.

use std::collections::BTreeSet;

use dl_data::{split_validation, AugmentConfig, Augmenter, BatchLoader, ImageSet};
use dl_tensor::{DType, Device, Tensor};

/// `count` examples whose input is its own index (as f32, shape (count, 2)) and whose target
/// is the index too, so a batch shows which examples it holds.
fn indexed_data(count: usize) -> (Tensor, Tensor) {
    let inputs: Vec<f32> = (0..count)
        .flat_map(|index| [index as f32, -(index as f32)])
        .collect();
    let targets: Vec<u32> = (0..count as u32).collect();
    (
        Tensor::from_vec(inputs, (count, 2), &Device::Cpu).unwrap(),
        Tensor::from_vec(targets, count, &Device::Cpu).unwrap(),
    )
}

/// The target indices of every batch of `epoch`, batch by batch; checks inputs match targets.
fn epoch_order(loader: &BatchLoader, epoch: usize) -> Vec<Vec<u32>> {
    loader
        .epoch_batches(epoch)
        .map(|batch| {
            let (inputs, targets) = batch.unwrap();
            let targets = targets.to_vec1::<u32>().unwrap();
            let inputs = inputs.to_vec2::<f32>().unwrap();
            for (input, &target) in inputs.iter().zip(&targets) {
                assert_eq!(input, &vec![target as f32, -(target as f32)]);
            }
            targets
        })
        .collect()
}

/// The inputs of every batch of `epoch`, batch by batch, each flattened to f32 values.
fn epoch_inputs(loader: &BatchLoader, epoch: usize) -> Vec<Vec<f32>> {
    loader
        .epoch_batches(epoch)
        .map(|batch| {
            let (inputs, _) = batch.unwrap();
            inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
        .collect()
}

#[test]
fn batch_counts_with_and_without_drop_last() {
    let (inputs, targets) = indexed_data(10);
    let loader = BatchLoader::new(inputs, targets, 4).unwrap();
    assert_eq!(loader.batch_count(), 3); // 4 + 4 + 2
    let sizes: Vec<usize> = epoch_order(&loader, 1).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2]);

    let loader = loader.drop_last(true);
    assert_eq!(loader.batch_count(), 2);
    let sizes: Vec<usize> = epoch_order(&loader, 1).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4]);

    // An exact multiple loses nothing either way.
    let (inputs, targets) = indexed_data(8);
    let loader = BatchLoader::new(inputs, targets, 4)
        .unwrap()
        .drop_last(true);
    assert_eq!(loader.batch_count(), 2);
}

#[test]
fn iterator_knows_its_length() {
    let (inputs, targets) = indexed_data(10);
    let loader = BatchLoader::new(inputs, targets, 3).unwrap().shuffled(1);
    let mut batches = loader.epoch_batches(1);
    assert_eq!(batches.len(), 4);
    assert_eq!(batches.size_hint(), (4, Some(4)));
    batches.next().unwrap().unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches.count(), 3);
}

#[test]
fn evaluation_order_is_file_order() {
    let (inputs, targets) = indexed_data(7);
    let loader = BatchLoader::new(inputs, targets, 3).unwrap();
    assert_eq!(
        epoch_order(&loader, 1),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
    assert_eq!(epoch_order(&loader, 2), epoch_order(&loader, 1));
}

#[test]
fn every_example_exactly_once_per_shuffled_epoch() {
    let (inputs, targets) = indexed_data(103);
    let loader = BatchLoader::new(inputs, targets, 10).unwrap().shuffled(42);
    for epoch in 1..=3 {
        let mut seen: Vec<u32> = epoch_order(&loader, epoch).concat();
        assert_ne!(
            seen,
            (0..103).collect::<Vec<u32>>(),
            "epoch {epoch} was not shuffled"
        );
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<u32>>());
    }
}

#[test]
fn shuffled_order_repeats_per_seed_and_epoch() {
    let (inputs, targets) = indexed_data(50);
    let loader = BatchLoader::new(inputs.clone(), targets.clone(), 8)
        .unwrap()
        .shuffled(7);
    let again = BatchLoader::new(inputs.clone(), targets.clone(), 8)
        .unwrap()
        .shuffled(7);
    let other_seed = BatchLoader::new(inputs, targets, 8).unwrap().shuffled(8);
    assert_eq!(epoch_order(&loader, 1), epoch_order(&again, 1));
    assert_eq!(epoch_order(&loader, 3), epoch_order(&again, 3));
    assert_ne!(epoch_order(&loader, 1), epoch_order(&loader, 2));
    assert_ne!(epoch_order(&loader, 1), epoch_order(&other_seed, 1));
}

#[test]
fn bad_settings_are_refused() {
    let (inputs, targets) = indexed_data(5);
    let error = BatchLoader::new(inputs.clone(), targets, 0).unwrap_err();
    assert!(error.to_string().contains("batch size"), "{error}");
    let (_, fewer_targets) = indexed_data(4);
    let error = BatchLoader::new(inputs.clone(), fewer_targets, 2).unwrap_err();
    assert!(
        error.to_string().contains("5 inputs but 4 targets"),
        "{error}"
    );
    let scalar = Tensor::new(1f32, &Device::Cpu).unwrap();
    assert!(BatchLoader::new(scalar, inputs, 2).is_err());
}

/// A small image set: image `i` is filled with `i / count`, label `i % 10`.
fn image_set(count: usize) -> ImageSet {
    let pixels: Vec<f32> = (0..count)
        .flat_map(|image| std::iter::repeat_n(image as f32 / count as f32, 16))
        .collect();
    let labels: Vec<u32> = (0..count as u32).map(|image| image % 10).collect();
    ImageSet {
        images: Tensor::from_vec(pixels, (count, 1, 4, 4), &Device::Cpu).unwrap(),
        labels: Tensor::from_vec(labels, count, &Device::Cpu).unwrap(),
    }
}

/// The image indices of a set built by `image_set(count)` (from each image's fill value).
fn image_ids(set: &ImageSet, count: usize) -> Vec<usize> {
    let pixels = set.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    pixels
        .chunks(16)
        .map(|image| (image[0] * count as f32).round() as usize)
        .collect()
}

#[test]
fn validation_split_sizes_and_disjointness() {
    let set = image_set(100);
    let (training, validation) = split_validation(&set, 0.2, 5).unwrap();
    assert_eq!((training.len(), validation.len()), (80, 20));
    let training_ids = image_ids(&training, 100);
    let validation_ids = image_ids(&validation, 100);
    // Labels travel with their images.
    let labels = validation.labels.to_vec1::<u32>().unwrap();
    for (&id, &label) in validation_ids.iter().zip(&labels) {
        assert_eq!(label as usize, id % 10);
    }
    let training_set: BTreeSet<usize> = training_ids.iter().copied().collect();
    let validation_set: BTreeSet<usize> = validation_ids.iter().copied().collect();
    assert!(training_set.is_disjoint(&validation_set));
    assert_eq!(training_set.union(&validation_set).count(), 100);
    // Each part keeps the original order, and a seeded split is not just the tail.
    assert!(training_ids.windows(2).all(|pair| pair[0] < pair[1]));
    assert_ne!(validation_ids, (80..100).collect::<Vec<_>>());

    // Same seed, same split; another seed, another split.
    let (_, again) = split_validation(&set, 0.2, 5).unwrap();
    assert_eq!(image_ids(&again, 100), validation_ids);
    let (_, other) = split_validation(&set, 0.2, 6).unwrap();
    assert_ne!(image_ids(&other, 100), validation_ids);

    // Rounded to the nearest example; 0 holds out nothing.
    let (training, validation) = split_validation(&image_set(7), 0.25, 1).unwrap();
    assert_eq!((training.len(), validation.len()), (5, 2));
    let (training, validation) = split_validation(&set, 0.0, 1).unwrap();
    assert_eq!((training.len(), validation.len()), (100, 0));
    assert!(validation.is_empty());
}

#[test]
fn validation_fraction_outside_zero_to_one_is_refused() {
    let set = image_set(10);
    for fraction in [1.0, 1.5, -0.1, f64::NAN] {
        let error = split_validation(&set, fraction, 1).unwrap_err();
        assert!(error.to_string().contains("validation fraction"), "{error}");
    }
}

#[test]
fn image_loaders_batch_images_and_augment_training_only() {
    let set = image_set(10);
    let evaluation = BatchLoader::evaluation(&set, 4).unwrap();
    let (images, labels) = evaluation.epoch_batches(1).next().unwrap().unwrap();
    assert_eq!(images.dims(), &[4, 1, 4, 4]);
    assert_eq!(labels.dtype(), DType::U32);

    let augmenter = Augmenter::new(
        AugmentConfig {
            max_shift: 1.5,
            ..AugmentConfig::default()
        },
        3,
    )
    .unwrap();
    let training = BatchLoader::training(&set, 4, 9)
        .unwrap()
        .augmented(augmenter.clone());
    let plain = BatchLoader::training(&set, 4, 9).unwrap();
    let augmented = epoch_inputs(&training, 1);
    let unaugmented = epoch_inputs(&plain, 1);
    assert_ne!(augmented, unaugmented, "augmentation changed nothing");
    // Same labels in the same order: augmentation does not touch the shuffling.
    let labels = |loader: &BatchLoader| -> Vec<u32> {
        loader
            .epoch_batches(1)
            .flat_map(|batch| batch.unwrap().1.to_vec1::<u32>().unwrap())
            .collect()
    };
    assert_eq!(labels(&training), labels(&plain));
    // The same epoch gives the same augmented batches; another epoch different ones.
    let again = epoch_inputs(&training, 1);
    assert_eq!(augmented, again);
}
