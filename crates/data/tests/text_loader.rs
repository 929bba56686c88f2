//! Input/target windows for next-token prediction.

use std::path::Path;

use dl_data::{DataError, TextWindows};
use dl_tensor::{DType, Tensor};

/// 10,007 distinct token ids in a scrambled order (7919 is coprime with the prime 10,007), so a
/// window's first id tells where it starts and an off-by-one shows.
fn scrambled_tokens() -> Vec<u32> {
    (0..10_007u32).map(|index| index * 7919 % 10_007).collect()
}

fn rows(tensor: &Tensor) -> Vec<Vec<u32>> {
    tensor.to_vec2::<u32>().unwrap()
}

fn corpus() -> &'static Path {
    Path::new("corpus.txt")
}

#[test]
fn windows_have_the_right_shape_and_targets_are_inputs_shifted_by_one() {
    let tokens = scrambled_tokens();
    let mut position = vec![0usize; tokens.len()];
    for (index, &token) in tokens.iter().enumerate() {
        position[token as usize] = index;
    }
    let windows = TextWindows::new(corpus(), tokens.clone(), 16, 8, 7).unwrap();
    assert_eq!(windows.window_count(), 10_007 - 16);
    let batches: Vec<_> = windows.epoch_batches(0, 5).collect();
    assert_eq!(batches.len(), 5);
    for batch in batches {
        let (input, target) = batch.unwrap();
        assert_eq!(input.dims(), [8, 16]);
        assert_eq!(target.dims(), [8, 16]);
        assert_eq!((input.dtype(), target.dtype()), (DType::U32, DType::U32));
        for (input_row, target_row) in rows(&input).iter().zip(rows(&target)) {
            let start = position[input_row[0] as usize];
            assert_eq!(input_row[..], tokens[start..start + 16]);
            assert_eq!(target_row[..], tokens[start + 1..start + 17]);
        }
    }
}

#[test]
fn the_same_seed_and_epoch_give_the_same_batches() {
    let first = TextWindows::new(corpus(), scrambled_tokens(), 12, 4, 42).unwrap();
    let second = TextWindows::new(corpus(), scrambled_tokens(), 12, 4, 42).unwrap();
    let inputs = |windows: &TextWindows, epoch| -> Vec<Vec<Vec<u32>>> {
        windows
            .epoch_batches(epoch, 3)
            .map(|batch| rows(&batch.unwrap().0))
            .collect()
    };
    assert_eq!(inputs(&first, 3), inputs(&second, 3));
    assert_ne!(inputs(&first, 3), inputs(&first, 4));
    let other_seed = TextWindows::new(corpus(), scrambled_tokens(), 12, 4, 43).unwrap();
    assert_ne!(inputs(&first, 3), inputs(&other_seed, 3));
}

#[test]
fn random_windows_reach_every_start_including_the_last() {
    // 12 tokens and windows of 3 + 1: starts 0..=8, nine of them.
    let tokens: Vec<u32> = (0..12).collect();
    let windows = TextWindows::new(corpus(), tokens, 3, 10, 1).unwrap();
    assert_eq!(windows.window_count(), 9);
    let mut seen = [false; 9];
    for batch in windows.epoch_batches(0, 20) {
        let (input, _) = batch.unwrap();
        for row in rows(&input) {
            seen[row[0] as usize] = true; // token i sits at position i
        }
    }
    // 200 draws miss one of nine starts with probability 9 · (8/9)^200 ≈ 5e-10.
    assert!(seen.iter().all(|&start| start), "{seen:?}");
}

#[test]
fn epoch_batches_know_their_length() {
    let windows = TextWindows::new(corpus(), scrambled_tokens(), 8, 2, 0).unwrap();
    let mut batches = windows.epoch_batches(1, 4);
    assert_eq!(batches.len(), 4);
    batches.next().unwrap().unwrap();
    assert_eq!(batches.size_hint(), (3, Some(3)));
    assert_eq!(batches.count(), 3);
    assert_eq!(windows.epoch_batches(0, 0).count(), 0);
}

#[test]
fn sequential_batches_cover_the_text_in_order() {
    // 103 tokens, windows of 10: (103 − 1) / 10 = 10 windows, batches of 4, 4 and 2.
    let tokens: Vec<u32> = scrambled_tokens()[..103].to_vec();
    let windows = TextWindows::new(corpus(), tokens.clone(), 10, 4, 0).unwrap();
    let mut batches = windows.sequential_batches();
    assert_eq!(batches.len(), 3);
    let mut inputs = Vec::new();
    let mut targets = Vec::new();
    let mut sizes = Vec::new();
    while let Some(batch) = batches.next() {
        let (input, target) = batch.unwrap();
        sizes.push(input.dims()[0]);
        inputs.extend(rows(&input).concat());
        targets.extend(rows(&target).concat());
        assert_eq!(batches.len(), 3 - sizes.len());
    }
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(inputs, tokens[..100]);
    assert_eq!(targets, tokens[1..101]);
    // Deterministic: a second pass gives the same batches.
    let again: Vec<u32> = windows
        .sequential_batches()
        .flat_map(|batch| rows(&batch.unwrap().0).concat())
        .collect();
    assert_eq!(again, inputs);
}

#[test]
fn a_corpus_of_exactly_one_window_works() {
    let windows = TextWindows::new(corpus(), vec![5, 6, 7, 8], 3, 2, 0).unwrap();
    assert_eq!(windows.window_count(), 1);
    let (input, target) = windows.epoch_batches(0, 1).next().unwrap().unwrap();
    assert_eq!(rows(&input), [[5, 6, 7], [5, 6, 7]]);
    assert_eq!(rows(&target), [[6, 7, 8], [6, 7, 8]]);
    assert_eq!(windows.sequential_batches().count(), 1);
}

#[test]
fn too_short_a_corpus_names_needed_and_available_tokens() {
    let error =
        TextWindows::new(Path::new("data/poem.txt"), vec![1, 2, 3, 4, 5], 5, 2, 0).unwrap_err();
    assert!(
        matches!(error, DataError::TooLittleText { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("data/poem.txt"), "{message}");
    assert!(
        message.contains("5 tokens") && message.contains("needs 6"),
        "{message}"
    );
}

#[test]
fn zero_sizes_and_bad_starts_are_rejected() {
    let error = TextWindows::new(corpus(), vec![1, 2, 3], 0, 2, 0).unwrap_err();
    assert!(matches!(error, DataError::Config { .. }), "{error:?}");
    let error = TextWindows::new(corpus(), vec![1, 2, 3], 1, 0, 0).unwrap_err();
    assert!(matches!(error, DataError::Config { .. }), "{error:?}");

    let windows = TextWindows::new(corpus(), vec![1, 2, 3, 4], 2, 1, 0).unwrap();
    assert!(windows.batch_at(&[1]).is_ok());
    assert!(windows.batch_at(&[2]).is_err()); // tokens 2..5 would run past the end
}
